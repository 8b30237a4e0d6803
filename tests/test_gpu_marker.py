"""The ``gpu`` marker: a GPU test skips where CuPy is missing, and fails instead under NUMADAM_REQUIRE_GPU=1.

Each case runs pytest in a subprocess with CuPy blocked, so the answer is the
same on a machine with a GPU.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess


TESTS = Path(__file__).resolve().parent
GPU_TEST = "tests/test_cupy.py::test_state_dict_round_trips_between_numpy_and_cupy"


def pytest_without_cupy(*args, require=False):
    env = {key: value for key, value in os.environ.items() if key != "NUMADAM_REQUIRE_GPU"}
    if require:
        env["NUMADAM_REQUIRE_GPU"] = "1"
    code = "import sys, pytest; sys.modules['cupy'] = None; sys.exit(pytest.main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "-p", "no:cacheprovider", "-rsE", *args],
                          cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=300)


def test_gpu_tests_skip_with_the_reason_when_cupy_is_missing():
    result = pytest_without_cupy(GPU_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and "cupy is not installed" in result.stdout


def test_gpu_tests_fail_when_a_gpu_is_required():
    result = pytest_without_cupy(GPU_TEST, require=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NUMADAM_REQUIRE_GPU=1 but cupy is not installed" in result.stdout
    assert "skipped" not in result.stdout


@pytest.mark.parametrize("selection, selected", [("gpu", True), ("not gpu", False)])
def test_the_marker_selects_the_gpu_tests(selection, selected):
    result = pytest_without_cupy("--collect-only", "-q", "-m", selection, "tests/test_cupy.py",
                                 "tests/test_clipping.py", "tests/test_minimize.py")
    assert result.returncode == 0, result.stdout + result.stderr
    gpu_tests = ["test_cupy.py::test_kernel_runs_on_cupys_current_stream",
                 "test_clipping.py::test_cupy_gradients_are_clipped_on_the_device_like_numpy",
                 "test_minimize.py::test_a_cupy_start_keeps_the_solve_on_the_gpu"]
    for name in gpu_tests:
        assert (name in result.stdout) == selected, result.stdout
