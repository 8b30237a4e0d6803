"""asv_benchmarks/history.py without running asv: naming the machine, choosing commits, selecting the
headline benchmarks, reading asv's results and its comparison table, drawing a machine's plot."""

import json
from pathlib import Path

import pytest

from repo_scripts import script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def history():
    return script("asv_benchmarks/history.py", "numadam_asv_history")


ZEN4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
XEON = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
        "model name\t: Intel(R) Xeon(R) Processor\n")


def test_the_machine_is_named_from_the_cpu_not_its_generic_model_name(history):
    assert history.machine_name(ZEN4, cpus=2, l3_bytes=32 * 2**20) == "amd-f25-m17-2cpu-32mib"
    assert history.machine_name(XEON, cpus=2, l3_bytes=480 * 2**20) == "intel-f6-m143-2cpu-480mib"
    assert history.machine_name(ZEN4, cpus=2, l3_bytes=32 * 2**20) != history.machine_name(
        ZEN4.replace("model\t\t: 17", "model\t\t: 2"), cpus=2, l3_bytes=32 * 2**20)  # Zen 5 is another machine


@pytest.mark.parametrize("total, count", [(100, 20), (21, 20), (5, 20), (486, 20), (2, 2)])
def test_a_backfill_spreads_its_commits_evenly_from_the_first_to_the_last(history, total, count):
    commits = [f"c{i}" for i in range(total)]
    chosen = history.spread(commits, count)
    assert len(chosen) == min(total, count) and len(set(chosen)) == len(chosen)
    assert chosen[0] == commits[0] and chosen[-1] == commits[-1]
    positions = [commits.index(c) for c in chosen]
    gaps = [b - a for a, b in zip(positions, positions[1:])]
    assert positions == sorted(positions) and max(gaps) - min(gaps) <= 1


@pytest.mark.parametrize("total", [1, 2, 3, 7, 20])
def test_a_backfill_runs_coarse_to_fine_so_a_partial_one_spans_the_range(history, total):
    commits = [f"c{i}" for i in range(total)]
    ordered = history.coarse_to_fine(commits)
    assert sorted(ordered, key=commits.index) == commits  # each commit once
    assert ordered[0] == commits[-1] and ordered[min(1, total - 1)] == commits[0]
    if total >= 7:
        first_three = sorted(commits.index(c) for c in ordered[:3])
        assert first_three == [0, (total - 1) // 2, total - 1]


HEADLINE_NAMES = {
    "calls.NewGradientArrays.time_step('one array', 'new arrays')": True,
    "calls.CallCost.time_step('adam_step')": True,
    "single_array.OneArray.time_step('numpy', 'float32', 10000000, 'adam')": True,
    "single_array.OneArray.track_bandwidth('numpy', 'float32', 10000000, 'adamw')": True,
    "single_array.OneArray.time_step('numpy', 'float64', 10000000, 'adam')": False,
    "single_array.OneArray.time_step('numpy', 'float32', 1000, 'adam')": False,
    "single_array.OneArray.time_step('numpy', 'float32', 10000000, 'amsgrad')": False,
    "suites.Suites.track_ratio_to_same_traffic('families: yogi')": True,
    "suites.Suites.track_ratio_to_same_traffic('policies: clip')": False,
    "suites.Suites.time_step('families: yogi')": False,
    "deepspeed.AdamBesideDeepSpeed.time_step('numadam', 'adam', 1000000)": True,
    "many_arrays.ManyArrays.time_step('numpy', '1 x 1e6', 'adam')": False,
}


@pytest.mark.parametrize("name", sorted(HEADLINE_NAMES))
def test_the_headline_selects_per_call_roofline_families_and_deepspeed(history, name):
    import re

    assert any(re.search(regex, name) for regex in history.HEADLINE) == HEADLINE_NAMES[name]


COMPARE = """
Benchmarks that have got worse:

| Change   | Before [1f2a3b4c]    | After [5d6e7f8a]    |   Ratio | Benchmark (Parameter)                                              |
|----------|----------------------|---------------------|---------|--------------------------------------------------------------------|
| +        | 9.20±0.1ms           | 10.5±0.2ms          |    1.14 | single_array.OneArray.time_step('numpy', 'float32', 10000000, 'adam') |
| +        | 5.01±0.05μs          | 6.20±0.1μs          |    1.24 | calls.NewGradientArrays.time_step('one array', 'new arrays')       |

Benchmarks that have improved:

| Change   | Before [1f2a3b4c]    | After [5d6e7f8a]    |   Ratio | Benchmark (Parameter)                                              |
|----------|----------------------|---------------------|---------|--------------------------------------------------------------------|
| -        | 1.20                 | 1.05                |    0.88 | suites.Suites.track_ratio_to_same_traffic('families: yogi')         |
"""


def test_the_comparison_s_slower_rows_are_read_with_their_parameters(history):
    assert history.slower(COMPARE) == [
        "single_array.OneArray.time_step('numpy', 'float32', 10000000, 'adam')",
        "calls.NewGradientArrays.time_step('one array', 'new arrays')",
    ]
    assert history.slower(COMPARE.replace("| +", "| -")) == []
    newly_failing = COMPARE.replace("| +        | 9.20±0.1ms           | 10.5±0.2ms ",
                                    "| !        | 9.20±0.1ms           | failed     ")
    assert history.slower(newly_failing)[0].startswith("single_array.OneArray.time_step(")


def test_a_comparison_without_a_table_is_an_error_not_a_clean_bill(history, monkeypatch):
    import subprocess

    def no_results(*arguments, check=True, capture=False):
        return subprocess.CompletedProcess(arguments, 0, stdout="", stderr="no results for 5d6e7f8a")

    monkeypatch.setattr(history, "asv", no_results)
    with pytest.raises(RuntimeError, match="gave no table"):
        history.compared("amd-f25-m17-2cpu-32mib", "1f2a3b4c", "5d6e7f8a")
    monkeypatch.setattr(history, "asv", lambda *a, check=True, capture=False: subprocess.CompletedProcess(
        a, 0, stdout=COMPARE, stderr=""))
    assert len(history.compared("amd-f25-m17-2cpu-32mib", "1f2a3b4c", "5d6e7f8a")) == 2


def _result_file(folder, commit, date, results):
    folder.mkdir(parents=True, exist_ok=True)
    data = {"commit_hash": commit, "date": date, "result_columns": ["result", "params", "version"],
            "results": {name: [values, params, "v"] for name, (values, params) in results.items()}}
    (folder / f"{commit[:8]}-virtualenv-py3.11.json").write_text(json.dumps(data))


@pytest.fixture()
def results(history, tmp_path, monkeypatch):
    monkeypatch.setattr(history, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(history, "PLOTS", tmp_path / "plots")
    machine = tmp_path / "results" / "amd-f25-m17-2cpu-32mib"
    (machine.parent).mkdir(parents=True)
    (machine / "machine.json").parent.mkdir(parents=True)
    (machine / "machine.json").write_text("{}")
    params = [["'numpy'"], ["'float32'", "'float64'"], ["10000000"], ["'adam'", "'adamw'"]]
    for commit, date, base in (("bbbbbbbb22", 2000, 9.0e-3), ("aaaaaaaa11", 1000, 10.0e-3)):
        _result_file(machine, commit, date, {
            "single_array.OneArray.time_step": ([base, 2 * base, base + 1e-3, None], params),
            "suites.Suites.track_ratio_to_same_traffic": ([1.1, 1.2], [["'families: yogi'", "'families: lion'"]]),
            # asv saves a benchmark that failed for every parameter (an old commit without its API) as None
            "calls.NewGradientArrays.time_step": (None, [["'one array'"], ["'new arrays'"]]),
        })
    return machine.name


def test_a_series_is_one_parameter_combination_by_commit_date(history, results):
    found = history.series(results, "single_array.OneArray.time_step", ("'numpy'", "'float32'", "10000000", "'adam'"))
    assert found == {("'numpy'", "'float32'", "10000000", "'adam'"): [(1000, "aaaaaaaa", 10.0e-3),
                                                                      (2000, "bbbbbbbb", 9.0e-3)]}
    every_family = history.series(results, "suites.Suites.track_ratio_to_same_traffic", (None,))
    assert sorted(every_family) == [("'families: lion'",), ("'families: yogi'",)]
    absent = ("'numpy'", "'float64'", "10000000", "'adamw'")  # its result is None: it failed or was skipped
    assert history.series(results, "single_array.OneArray.time_step", absent) == {}
    assert history.benchmarked(results) == {"aaaaaaaa11", "bbbbbbbb22"}
    assert history.series(results, "calls.NewGradientArrays.time_step", (None, "'new arrays'")) == {}


def test_a_machine_s_plot_is_drawn_from_its_kept_results(history, results):
    pytest.importorskip("matplotlib")
    path = history.plot(results)
    assert path == history.PLOTS / f"history-{results}.png" and path.stat().st_size > 1000
    assert history.plot("a-machine-with-no-results") is None
