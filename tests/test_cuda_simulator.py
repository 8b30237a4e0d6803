"""Run tests/simulator in its own pytest process with numba-cuda's simulator switched on.

NUMBA_ENABLE_CUDASIM must be set before Numba is imported, and once set it
replaces numba.cuda for the whole process; a separate process keeps it away
from every other test.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda")


def test_cuda_kernel_under_the_simulator():
    tests = Path(__file__).parent
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(tests / "simulator"), "-q", "-p", "no:cacheprovider"],
        cwd=tests.parent, env=env, capture_output=True, text=True, timeout=1800,
    )
    print(result.stdout[-5000:])
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
