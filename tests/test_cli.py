"""The command line: ``numadam demo`` and ``python -m numadam demo``."""

import re
import shutil
import subprocess
import sys

import pytest


def run(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_python_m_numadam_demo_fits_the_line():
    output = run([sys.executable, "-m", "numadam", "demo"])
    losses = [float(m) for m in re.findall(r"^\s+\d+\s+([0-9.e+-]+)\s", output, flags=re.M)]
    assert len(losses) >= 5 and losses[-1] < 1e-8 * losses[0], output
    assert "2W + b = 4.000000 (target 4)" in output


def test_console_script_is_installed():
    script = shutil.which("numadam")
    if script is None:
        pytest.fail("the numadam console script is not on PATH: install with pip install -e .")
    assert "demo" in run([script, "--help"])
