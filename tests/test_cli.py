"""The command line: ``numadam demo`` and ``python -m numadam demo``."""

import shutil
import subprocess
import sys

import pytest


pytestmark = pytest.mark.subprocess


def run(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_python_m_numadam_demo_quick_reports_every_example_and_writes_the_figure(tmp_path):
    figure = tmp_path / "out" / "loss_curves.png"
    output = run([sys.executable, "-m", "numadam", "demo", "--quick", "--output", str(figure.parent)])
    for number in range(1, 5):
        assert f"== {number}. " in output
    assert "2W + b = 4.000000 (target 4)" in output
    assert f"loss curves saved to {figure}" in output
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_script_is_installed():
    script = shutil.which("numadam")
    if script is None:
        pytest.fail("the numadam console script is not on PATH: install with pip install -e .")
    assert "demo" in run([script, "--help"])
