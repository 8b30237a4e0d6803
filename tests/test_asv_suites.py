"""asv_benchmarks/benchmarks/suites.py against this commit's numadam.bench: a study sets up, steps
and is compared with its same-traffic kernel (the names it imports from numadam.bench.suites)."""

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_asv_suites_benchmark_steps_a_study_beside_its_same_traffic_kernel(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "asv_benchmarks"))
    for name in [module for module in sys.modules if module == "benchmarks" or module.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, name)
    suites = importlib.import_module("benchmarks.suites")
    monkeypatch.setattr(suites, "SIZE", 4096)
    study = "groups: no groups"
    assert study in suites.Suites.params[0]
    benchmark = suites.Suites()
    benchmark.setup(study)
    benchmark.time_step(study)
    assert benchmark.track_bandwidth(study) > 0
    assert benchmark.track_ratio_to_same_traffic(study) > 0
