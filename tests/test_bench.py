"""``numadam bench``: the command runs, and what it compares is what it claims.

The roofline kernels must move exactly the bytes of an Adam step, the NumPy
baselines must take numadam's step, and the guard must reject a wrong update.
Nothing here asserts on time.
"""

import subprocess
import sys
import tracemalloc
import types

import numba
import numpy as np
import pytest

import numadam
from numadam.bench import frameworks, timing
from numadam.bench.cases import BETAS, EPS, LR, VARIANTS, Case, bench_cases, cnn_shapes
from numadam.bench.command import _case_names
from numadam.bench.contenders import Problem
from numadam.bench.numpy_adam import InPlaceAdam, NaiveAdam
from numadam.bench.roofline import SERIAL_BELOW, kernel_for, same_traffic_kernel, traffic_bytes, traffic_kernel
from numadam.bench.runner import Result, disagreement, run_case, set_threads
from numadam.bench.table import markdown_tables

pytestmark = pytest.mark.slow


FLOATS = [np.float32, np.float64]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def bench(*args, block_optional=False):
    """Run ``python -m numadam bench ARGS``; optionally as if torch, jax, optax and matplotlib were absent."""
    if block_optional:
        code = ("import sys; sys.modules.update(torch=None, jax=None, optax=None, matplotlib=None); "
                "from numadam.cli import main; sys.exit(main(sys.argv[1:]))")
        command = [sys.executable, "-c", code, "bench", *args]
    else:
        command = [sys.executable, "-m", "numadam", "bench", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def test_quick_bench_prints_the_table_and_writes_table_and_plot(tmp_path):
    output = tmp_path / "plots" / "bench.png"
    result = bench("--quick", "--output", str(output))
    assert result.returncode == 0, result.stderr
    for case in bench_cases(quick=True).values():
        assert f"### {case.title}" in result.stdout
    for variant in VARIANTS:
        for label in ("numadam", "same-traffic kernel, serial", "NumPy in place", "NumPy naive"):
            assert f"| {variant.name} | {label} |" in result.stdout
    assert "WRONG RESULT" not in result.stdout
    assert output.read_bytes().startswith(PNG_SIGNATURE)
    table = output.with_suffix(".txt").read_text()
    assert table.startswith("numadam bench --quick") and table in result.stdout
    assert table.splitlines()[1].startswith("Machine: ") and "Numba threading layer " in table.splitlines()[1]


def test_the_solve_bench_times_every_loop_and_checks_the_compiled_iterates(tmp_path):
    output = tmp_path / "solve.png"
    result = bench("--solve", "--quick", "--iterations", "2000", "--output", str(output), block_optional=True)
    assert result.returncode == 0, result.stderr
    assert "took the Python loop's iterates bit for bit: yes" in result.stdout
    for label in ("numadam.minimize, compiled", "Python loop", "hand-written @njit loop"):
        assert f"| {label} |" in result.stdout
    assert "optax" not in result.stdout.split("| loop |")[1]  # an optional contender, absent here
    assert result.stdout.splitlines()[1].startswith("Machine: ") and "Numba threading layer " in result.stdout
    assert output.with_suffix(".txt").read_text() in result.stdout


def test_the_batch_bench_times_every_way_and_checks_the_batch_s_iterates(tmp_path):
    output = tmp_path / "batch.png"
    result = bench("--batch", "--quick", "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert "minimize(compiled=True) alone, bit for bit: yes" in result.stdout
    for label in ("minimize_batch, 1 thread", "hand-written @njit loop, 1 thread", "loop of minimize(compiled=True)",
                  "loop of minimize(compiled=False)"):
        assert f"| {label} |" in result.stdout
    assert "The batch on one thread:" in result.stdout
    assert output.with_suffix(".txt").read_text() in result.stdout


def test_the_muon_suite_times_the_step_beside_its_iteration_alone(tmp_path):
    output = tmp_path / "muon.txt"
    result = bench("--suite", "muon", "--quick", "--repeat", "1", "--output", str(output), block_optional=True)
    assert result.returncode == 0, result.stderr
    for label in ("numadam.Muon, NumPy", "the iteration alone, NumPy"):
        assert result.stdout.count(f"| {label} |") == 2
    assert "torch is not installed" in result.stdout  # an optional contender, absent here
    assert "numadam.Muon on NumPy over the iteration alone:" in result.stdout
    assert output.read_text() in result.stdout
    refused = bench("--suite", "muon,families", "--quick")
    assert refused.returncode == 2 and "runs alone" in refused.stderr


@pytest.mark.gpu
def test_the_muon_suite_runs_on_the_gpu(tmp_path):
    result = bench("--suite", "muon", "--device", "cuda", "--quick", "--repeat", "1")
    assert result.returncode == 0, result.stderr
    for label in ("numadam.Muon, CuPy", "the iteration alone, CuPy"):
        assert result.stdout.count(f"| {label} |") == 2


def test_the_batch_bench_s_hand_written_loop_is_adam():
    from numadam.bench.batch import LR, decay, hand_written_loop, problems

    t, y = problems(4)
    starts = np.tile([1.0, 1.0, 0.0], (4, 1))
    hand_written_loop(starts, t, y, LR, 200)
    for i in range(4):
        res = numadam.minimize(decay, np.array([1.0, 1.0, 0.0]), args=(t, y[i]), jac=True, lr=LR, maxiter=200,
                               gtol=0.0)
        np.testing.assert_allclose(starts[i], res.x, rtol=1e-12)  # (its own arithmetic's order: not bit for bit)


def test_the_solve_bench_s_hand_written_loop_is_adam():
    from numadam.bench.solve import hand_written_loop, rosenbrock

    x = np.zeros(10)
    hand_written_loop(x, 300, 1e-3)
    res = numadam.minimize(rosenbrock, np.zeros(10), jac=True, lr=1e-3, maxiter=300, gtol=0.0)
    np.testing.assert_array_equal(x, res.x)


def test_the_dask_case_runs_only_when_named_and_times_a_local_cluster():
    pytest.importorskip("distributed")
    result = bench("--quick", "--cases", "dask", "--repeat", "1")
    assert result.returncode == 0, result.stderr
    for variant in VARIANTS:
        assert f"| {variant.name} | numadam on Dask |" in result.stdout  # timed: it agreed with numadam
        assert f"| {variant.name} | numadam on Dask, 4 steps in flight |" in result.stdout
    assert "2-worker LocalCluster" in result.stdout and "WRONG RESULT" not in result.stdout
    assert "dask" not in _case_names("large,small") and "dask" in _case_names("dask")


def test_a_contender_taking_several_steps_per_call_is_timed_per_step(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])

    class Ticking:
        def __init__(self, steps_per_call):
            self.steps_per_call = steps_per_call

        def step(self):
            clock[0] += 0.5 * self.steps_per_call  # half a second a step

    medians = timing.interleaved_medians([Ticking(1), Ticking(4)], rounds=3, min_batch_seconds=1.0)
    assert medians == [0.5, 0.5]


def test_missing_optional_packages_are_reported_not_fatal(tmp_path):
    output = tmp_path / "b.png"
    result = bench("--quick", "--cases", "small", "--repeat", "1", "--output", str(output), block_optional=True)
    assert result.returncode == 0, result.stderr
    assert "- torch fused (adam, adamw, amsgrad): not timed: torch is not installed" in result.stdout
    assert "- optax (jax.jit) (adam, adamw): not timed: jax is not installed" in result.stdout
    assert "- DeepSpeedCPUAdam (adam, adamw): not timed: torch is not installed" in result.stdout
    assert "- DeepSpeedCPUAdam (amsgrad): not timed: DeepSpeedCPUAdam has no AMSGrad" in result.stdout
    assert "| adam | numadam |" in result.stdout
    assert "matplotlib is not installed: no plot" in result.stdout
    assert output.with_suffix(".txt").exists() and not output.exists()


@pytest.mark.parametrize("args, message", [
    (["--cases", "large,huge"], "cases must be among"),
    (["--threads", "0"], "must be a positive integer"),
    (["--repeat", "two"], "must be a positive integer"),
])
def test_bad_options_are_rejected_with_the_rule(args, message):
    result = bench(*args)
    assert result.returncode == 2 and message in result.stderr


def test_case_names_and_threads_are_checked():
    assert _case_names("small, many") == ["small", "many"]
    with pytest.raises(ValueError, match="threads must be between 1 and"):
        set_threads(10_000)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_same_traffic_kernels_read_and_write_exactly_the_arrays_of_a_step(rng, dtype, amsgrad, parallel):
    n = 3 * SERIAL_BELOW + 7
    arrays = [rng.standard_normal(n).astype(dtype) for _ in range(5 if amsgrad else 4)]  # written..., grad
    before = [a.copy() for a in arrays]
    same_traffic_kernel(amsgrad, parallel, dtype)(*arrays)
    grad = before[-1]
    np.testing.assert_array_equal(arrays[-1], grad)
    for written, original in zip(arrays[:-1], before[:-1]):
        assert written.dtype == dtype
        np.testing.assert_array_equal(written, original + grad)


def test_traffic_kernels_of_mixed_storage_touch_every_array():
    """bfloat16 parameters (their 16 bits) with float32 and 8-bit state: floats get the sum, bits flip."""
    n = 1000
    param, codes, state = np.arange(n, dtype=np.uint16), np.zeros(n, np.int8), np.ones(n, np.float32)
    grad = np.full(n, 3, np.uint16)
    traffic_kernel(("uint16", "int8", "float32"), ("uint16",), False)(param, codes, state, grad)
    np.testing.assert_array_equal(param, np.arange(n, dtype=np.uint16) ^ 1)
    np.testing.assert_array_equal(codes, 1)
    np.testing.assert_array_equal(state, 4)
    assert traffic_bytes(("uint16", "int8", "float32"), ("uint16",)) == 4 + 2 + 8 + 2


def test_kernel_for_runs_small_arrays_on_the_calling_thread():
    assert kernel_for(SERIAL_BELOW - 1, amsgrad=False) is same_traffic_kernel(False, parallel=False)
    assert kernel_for(SERIAL_BELOW, amsgrad=True) is same_traffic_kernel(True, parallel=True)
    assert kernel_for(10, False, np.float64) is same_traffic_kernel(False, False, np.float64)


def numadam_steps(params, grad_sequence, variant):
    optimizer = numadam.AdamW if variant.decoupled else numadam.Adam
    opt = optimizer(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=variant.weight_decay,
                    amsgrad=variant.amsgrad)
    for grads in grad_sequence:
        opt.step(grads)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
@pytest.mark.parametrize("numpy_adam", [InPlaceAdam, NaiveAdam])
def test_numpy_baselines_take_numadams_step(rng, dtype, variant, numpy_adam):
    shapes = [(7, 5), (300,), (2, 3, 4)]
    params = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    grad_sequence = [[rng.standard_normal(shape).astype(dtype) for shape in shapes] for _ in range(4)]
    expected = [p.copy() for p in params]
    numadam_steps(expected, grad_sequence, variant)
    baseline = numpy_adam([p.copy() for p in params], lr=LR, betas=BETAS, eps=EPS,
                          weight_decay=variant.weight_decay, amsgrad=variant.amsgrad)
    for grads in grad_sequence:
        baseline.step(grads)
    for actual, wanted in zip(baseline.params, expected):
        assert actual.dtype == dtype
        np.testing.assert_allclose(actual, wanted, rtol=4 * np.finfo(dtype).eps, atol=0)
    assert disagreement(expected, baseline.params, dtype) is None


def test_numpy_in_place_step_allocates_no_array_but_naive_does(rng):
    params = [rng.standard_normal(10_000)]
    grads = [rng.standard_normal(10_000)]
    peaks = {}
    for numpy_adam in (InPlaceAdam, NaiveAdam):
        opt = numpy_adam([p.copy() for p in params], lr=LR, betas=BETAS, eps=EPS, amsgrad=True)
        opt.step(grads)
        tracemalloc.start()
        opt.step(grads)
        peaks[numpy_adam] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    array_bytes = params[0].nbytes
    assert peaks[InPlaceAdam] < array_bytes / 10 and peaks[NaiveAdam] >= array_bytes, peaks


@pytest.mark.parametrize("wrong", [{"betas": (0.9, 0.99)}, {"eps": 1e-3}, {"lr": 1.01 * LR}])
def test_guard_rejects_a_wrong_update(rng, wrong):
    params = [rng.standard_normal(1000).astype(np.float32)]
    grad_sequence = [[rng.standard_normal(1000).astype(np.float32)] for _ in range(2)]
    expected = [p.copy() for p in params]
    numadam_steps(expected, grad_sequence, VARIANTS[0])
    options = {"lr": LR, "betas": BETAS, "eps": EPS, **wrong}
    baseline = NaiveAdam([p.copy() for p in params], **options)
    for grads in grad_sequence:
        baseline.step(grads)
    assert "differs from numadam's" in disagreement(expected, baseline.params, np.float32)


def test_every_contender_agrees_with_numadam_on_a_small_mixed_case():
    case = Case("mixed", "mixed", cnn_shapes(widths=(4, 8), hidden=16), np.dtype(np.float32))
    results = run_case(case, rounds=1, min_batch_seconds=1e-5)
    assert not [r for r in results if r.wrong]
    timed = {(r.variant.name, r.label) for r in results if r.seconds is not None}
    for variant in VARIANTS:
        for label in ("numadam", "numadam.adam_step", "same-traffic kernel, parallel",
                      "same-traffic kernel, one call per array", "NumPy in place", "NumPy naive"):
            assert (variant.name, label) in timed
    untimed = {(r.variant.name, r.label): r.note for r in results if r.seconds is None}
    assert "a different update" in untimed[("amsgrad", "optax (jax.jit)")]


def test_frameworks_that_are_missing_raise_unavailable(monkeypatch):
    problem = Problem([np.ones(3, np.float32)], [np.ones(3, np.float32)], single=True)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(frameworks.Unavailable, match="torch is not installed"):
        frameworks.TorchAdam(problem, VARIANTS[0], mode="fused")
    with pytest.raises(frameworks.Unavailable, match="jax is not installed"):
        frameworks.OptaxAdam(problem, VARIANTS[1])
    with pytest.raises(frameworks.Unavailable, match="torch is not installed"):
        frameworks.DeepSpeedAdam(problem, VARIANTS[0])
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # torch without deepspeed
    monkeypatch.setitem(sys.modules, "deepspeed", None)
    with pytest.raises(frameworks.Unavailable, match="deepspeed.ops.adam is not installed"):
        frameworks.DeepSpeedAdam(problem, VARIANTS[0])


def test_deepspeed_is_not_timed_where_it_has_no_such_step():
    amsgrad = next(variant for variant in VARIANTS if variant.amsgrad)
    float64 = Problem([np.ones(3)], [np.ones(3)], single=True)
    with pytest.raises(frameworks.Unavailable, match="DeepSpeedCPUAdam has no AMSGrad"):
        frameworks.DeepSpeedAdam(float64, amsgrad)
    with pytest.raises(frameworks.Unavailable, match="steps float32 parameters here .* not float64"):
        frameworks.DeepSpeedAdam(float64, VARIANTS[0])


def test_table_reports_bandwidth_and_ratios_to_roofline_and_numadam():
    case = Case("one", "one array", ((1000,),), np.dtype(np.float32))
    adam = VARIANTS[0]
    results = [
        Result(case, adam, "same-traffic kernel, parallel", "roofline", 2e-6),
        Result(case, adam, "same-traffic kernel, serial", "roofline", 1e-6),
        Result(case, adam, "numadam", "numadam", 2e-6),
        Result(case, adam, "NumPy naive", "other", 8e-6),
        Result(case, adam, "torch fused", "other", None, "torch is not installed"),
    ]
    table = markdown_tables(results)
    assert "| adam | NumPy naive | 8.00 µs | 3.5 | 8.00 | 4.00 |" in table
    assert "| adam | same-traffic kernel, serial | 1.00 µs | 28.0 | 1.00 | 0.50 |" in table
    assert "- torch fused (adam): not timed: torch is not installed" in table


def test_suites_time_every_study_beside_its_same_traffic_kernel():
    """A tiny run of two suites: every study timed, with its bandwidth, ratios and targets tabulated."""
    from numadam.bench import catalog
    from numadam.bench.suites import markdown, run_suite

    for suite in ("groups", "precision"):
        rows = run_suite(suite, 20_000, rounds=2, min_batch_seconds=1e-4, progress=lambda text: None)
        assert [row.study.name for row in rows] == list(catalog.SUITES[suite]())
        assert all(row.seconds > 0 and row.traffic_seconds > 0 for row in rows)
        table = markdown(suite, 20_000, rows)
        assert table.count("\n| ") == len(rows) + 1
        assert "≤ 1.05 × baseline" in table or "≤ 1.30 × baseline" in table


def test_precision_suite_times_bitsandbytes_adam8bit_beside_int8_state():
    """The optional contender of 8-bit state: bitsandbytes' Adam8bit, in its own column."""
    pytest.importorskip("bitsandbytes")
    from numadam.bench.suites import markdown, run_suite

    rows = run_suite("precision", 20_000, rounds=2, min_batch_seconds=1e-4, progress=lambda text: None)
    timed = {row.study.name: row.other_seconds for row in rows}
    assert timed.pop("int8 state") > 0 and set(timed.values()) == {None}
    table = markdown("precision", 20_000, rows)
    assert "| bitsandbytes ms | bitsandbytes / numadam |" in table


def test_every_family_has_a_study_with_its_own_bytes():
    from numadam.bench import catalog

    studies = catalog.families()
    deepspeed_arithmetic = {"adam, convention='deepspeed'", "adamw, convention='deepspeed'"}
    in_policies = {"lamb", "prodigy"}  # two passes each: the policies suite's
    assert set(studies) == (set(numadam.families()) - in_policies) | deepspeed_arithmetic
    assert {studies[name].options["convention"] for name in deepspeed_arithmetic} == {"deepspeed"}
    two_passes = catalog.policies()
    assert two_passes["lamb"].bytes_per_element == 40 and two_passes["prodigy"].bytes_per_element == 56
    assert studies["adam"].bytes_per_element == 28 and studies["ademamix"].bytes_per_element == 36
    assert studies["lion"].bytes_per_element == 20


def test_adafactor_suite_steps_three_widths_of_twenty_bytes():
    """Adafactor's two passes (the norms summed in the factors' pass) move 20 bytes an element: the
    factors' pass reads p and g, the update reads them and writes p. Three widths, one target."""
    from numadam.bench import catalog

    studies = catalog.SUITES["adafactor"]()
    assert [study.width for study in studies.values()] == [100, 1000, 10000]
    assert {study.bytes_per_element for study in studies.values()} == {20}
    assert [study.target for study in studies.values()] == [(), ("same-traffic", 1.30), ()]


def fake_sysfs(root, caches):
    """A ``cpu0/cache`` folder as Linux writes it: ``index*/{level,type,size}``."""
    for k, (level, kind, size) in enumerate(caches):
        index = root / f"index{k}"
        index.mkdir(parents=True)
        for name, text in (("level", str(level)), ("type", kind), ("size", size)):
            (index / name).write_text(text + "\n")
    return root


EPYC_CACHES = [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"), (3, "Unified", "32768K")]


def test_cache_sizes_are_read_from_sysfs(tmp_path, monkeypatch):
    from numadam.bench import machine

    monkeypatch.setattr(machine, "SYSFS_CACHES", fake_sysfs(tmp_path / "cache", EPYC_CACHES))
    found = machine.caches()
    assert [(cache.name, cache.size) for cache in found] == [("L1d", 48 << 10), ("L2", 1 << 20), ("L3", 32 << 20)]
    assert machine.last_level_cache(found).size == 32 << 20


def test_cache_sizes_fall_back_to_lscpu_and_then_to_none(tmp_path, monkeypatch):
    from numadam.bench import machine

    lscpu = ('{"caches": [{"name": "L1d", "one-size": "49152", "type": "Data", "level": 1},'
             ' {"name": "L3", "one-size": "503316480", "type": "Unified", "level": 3}]}')
    assert machine.parse_lscpu(lscpu)[-1] == machine.Cache(3, "Unified", 480 << 20)
    monkeypatch.setattr(machine, "SYSFS_CACHES", tmp_path / "absent")
    monkeypatch.setattr(machine, "_lscpu_caches", lambda: machine.parse_lscpu(lscpu))
    assert machine.last_level_cache(machine.caches()).size == 480 << 20
    monkeypatch.setattr(machine, "_lscpu_caches", lambda: [])
    assert machine.caches() == [] and machine.last_level_cache([]) is None
    assert "caches of one CPU: not reported by the OS" in machine.describe()
    assert machine.roofline_size(16, 100) == machine.LEAST_SIZE and machine.size_warning(10, 16) is None


@pytest.mark.parametrize("last_level, memory, held, expected", [
    (32 << 20, None, 180, 2 * 10**7),           # a 32 MiB L3: 8 x 32 MiB / 16 B = 1.7e7, rounded up
    (480 << 20, None, 180, 3 * 10**8),          # a 480 MiB L3: 2.5e8, rounded up
    (480 << 20, 24 << 30, 180, 10**8),          # ... but 3/4 of 24 GiB holds 1.07e8 at 180 B per element
    (1 << 20, None, 180, 10**7),                # never below 1e7
    (480 << 20, 1 << 30, 180, 10**7),           # not even for want of memory
    (None, None, 180, 10**7),                   # no cache known: 1e7
])
def test_roofline_sizes_pass_the_last_level_cache_as_far_as_memory_allows(last_level, memory, held, expected):
    from numadam.bench.machine import roofline_size

    assert roofline_size(16, held, last_level=last_level, memory=memory) == expected


def test_sizes_short_of_the_last_level_cache_are_named():
    from numadam.bench.machine import size_warning

    why = size_warning(10**7, 16, last_level=32 << 20)
    assert "4.8x the last-level cache (32 MiB)" in why and "--size 2e7 or more" in why
    assert size_warning(6 * 10**7, 16, last_level=32 << 20) is None


def test_headers_name_the_machine_and_warn_when_the_size_is_in_cache(tmp_path, monkeypatch, capsys):
    import argparse

    from numadam.bench import command, machine

    monkeypatch.setattr(machine, "SYSFS_CACHES", fake_sysfs(tmp_path / "cache", EPYC_CACHES))
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B45\n")
    monkeypatch.setattr(machine, "CPUINFO", cpuinfo)
    line = machine.describe(2)
    assert line.startswith("Machine: AMD EPYC 9B45 (")
    assert "caches of one CPU: L1d 48 KiB, L2 1 MiB, L3 32 MiB;" in line
    assert f"Numba threading layer {numba.threading_layer()}, 2 thread(s)." in line

    args = argparse.Namespace(suite=["groups"], quick=False, size=20_000, repeat=1, threads=None, output=None)
    printed = []
    assert command.run_suites(args, out=printed.append) == 0
    assert printed[0].splitlines()[1].startswith("Machine: AMD EPYC 9B45 (")
    assert "warning: at 2e4 elements the arrays of a step (312 KiB) are 0.0095x the last-level cache" \
        in capsys.readouterr().err


def test_the_startup_bench_times_each_new_process_and_states_both_targets(tmp_path):
    from numadam.bench.startup import CONTENDERS

    output = tmp_path / "startup.png"
    result = bench("--startup", "--quick", "--output", str(output))
    assert result.returncode == 0, result.stderr
    for contender in CONTENDERS:
        assert f"| {contender.name} | " in result.stdout
    assert "import numadam over import numpy, numba: " in result.stdout
    assert "the first step over its floor: " in result.stdout
    assert output.with_suffix(".txt").read_text() in result.stdout


@pytest.mark.parametrize("medians, verdicts", [
    ([0.30, 0.34, 0.80, 0.90], ("+0.040 s (target at most +0.05 s: met)", "1.12x (target at most 1.15x: met)")),
    ([0.30, 0.36, 0.80, 0.95], ("+0.060 s (target at most +0.05 s: not met)",
                                "1.19x (target at most 1.15x: not met)")),
])
def test_the_startup_table_measures_both_targets_from_the_medians(medians, verdicts):
    from numadam.bench.startup import markdown

    table = markdown(medians)
    assert all(verdict in table for verdict in verdicts)


def test_the_size_ladder_cases_run_by_name():
    result = bench("--quick", "--cases", "f32-1e4", "--repeat", "1", block_optional=True)
    assert result.returncode == 0, result.stderr
    assert "### 1 array of 1e4 float32" in result.stdout
    assert "| adam | numadam |" in result.stdout and "| adamw | same-traffic kernel, serial |" in result.stdout
