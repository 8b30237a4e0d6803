"""asv_benchmarks/run_without_asv.py: the asv suite's cases for one backend, run without asv.

It is what runs the CuPy cases on a GPU machine that has no asv; here it runs
the NumPy ones and must skip the CuPy ones with the reason (and fail on them
under --require). CuPy is blocked in the subprocess so the answer is the same
on a machine with a GPU.
"""

import json
import subprocess
import sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.subprocess


ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "asv_benchmarks" / "run_without_asv.py"


def run_without_asv(*args):
    code = ("import runpy, sys; sys.modules['cupy'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code, str(SCRIPT), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_numpy_cases_are_timed_and_tracked(tmp_path):
    output = tmp_path / "asv.json"
    result = run_without_asv("--backend", "numpy", "--bench", "ManyArrays", "--budget", "0.01",
                             "--output", str(output))
    assert result.returncode == 0, result.stderr
    records = json.loads(output.read_text())
    assert {record["params"] for record in records} == {
        f"backend=numpy, layout={layout}, variant={variant}"
        for layout in ("1 x 1e6", "1000 x 1e3", "cnn") for variant in ("adam", "adamw", "amsgrad")}
    by_method = {}
    for record in records:
        by_method.setdefault(record["benchmark"].rsplit(".", 1)[1], []).append(record)
    assert all(r["unit"] == "seconds" and r["value"] > 0 for r in by_method["time_step"])
    assert all(r["unit"] == "GB/s" and r["value"] > 0 for r in by_method["track_bandwidth"])
    assert "| many_arrays.ManyArrays.time_step | backend=numpy, layout=1000 x 1e3, variant=adam |" in result.stdout


def test_cupy_cases_are_skipped_with_the_reason_and_fail_when_required():
    result = run_without_asv("--backend", "cupy", "--bench", "AdamStep")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("skipped: cupy is not installed") == 4
    required = run_without_asv("--backend", "cupy", "--bench", "AdamStep", "--require")
    assert required.returncode == 1
