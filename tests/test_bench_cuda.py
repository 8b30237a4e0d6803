"""``numadam bench --device cuda``: what runs without a GPU, and one end-to-end check on a GPU.

Without a GPU the command must say why and exit with status 3; the table's GPU
columns, complex cases and the GPU timer's synchronization pattern are plain
Python and are checked here. The contenders themselves need CuPy on a device:
the test marked ``gpu`` runs them all on a small case and checks that each
Adam implementation agrees with numadam.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from numadam.bench import cuda_timing
from numadam.bench.cases import VARIANTS, Case, cuda_bench_cases
from numadam.bench.command import NO_CUDA_DEVICE
from numadam.bench.plot import save_plot
from numadam.bench.runner import Result, _random_arrays, disagreement, run_case
from numadam.bench.table import markdown_tables

FAKE_CUPY_WITHOUT_DEVICE = ("import types; sys.modules['cupy'] = types.SimpleNamespace("
                            "cuda=types.SimpleNamespace(is_available=lambda: False))")


def bench_with(setup, *args):
    code = f"import sys; {setup}; from numadam.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "bench", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("suite", [[], ["--suite", "precision"]], ids=["cases", "suite"])
@pytest.mark.parametrize("setup, reason", [
    ("sys.modules['cupy'] = None", "cupy is not installed (pip install 'numadam[cuda]')"),
    (FAKE_CUPY_WITHOUT_DEVICE, "CuPy finds no CUDA device (cupy.cuda.is_available() is false)"),
])
def test_without_a_gpu_the_cuda_bench_exits_3_and_says_why(tmp_path, setup, reason, suite):
    output = tmp_path / "bench.png"
    result = bench_with(setup, "--device", "cuda", "--quick", *suite, "--output", str(output))
    assert result.returncode == NO_CUDA_DEVICE == 3
    assert result.stderr.strip() == f"numadam bench --device cuda: {reason}"
    assert result.stdout == "" and not output.with_suffix(".txt").exists()


def test_gpu_suites_take_float16_for_bfloat16_parameters_and_keep_every_other_study():
    from numadam.bench import catalog
    from numadam.bench.cuda_suites import on_the_gpu

    studies = catalog.SUITES["precision"]()
    placed = on_the_gpu(studies)
    assert list(placed) == ["float32", "bfloat16 state", "int8 state", "float16 parameters",
                            "float16 parameters, master weights", "float16 parameters, stochastic rounding",
                            "float16 parameters, Kahan compensation"]
    assert {study.param_dtype for study in placed.values()} == {"float32", "float16"}
    master = placed["float16 parameters, master weights"]
    assert master.options == studies["bfloat16 parameters, master weights"].options
    assert master.bytes_per_element == studies["bfloat16 parameters, master weights"].bytes_per_element
    for name in ("families", "policies", "rows", "adafactor"):
        assert list(on_the_gpu(catalog.SUITES[name]())) == list(catalog.SUITES[name]())


@pytest.mark.parametrize("n_written, n_read", [(3, 1), (4, 1), (2, 0), (1, 2)])
def test_the_gpu_same_traffic_kernel_reads_every_array_and_writes_the_written_ones(n_written, n_read):
    from numadam.bench.cuda_suites import traffic_operation

    in_params, out_params, operation = traffic_operation(n_written, n_read)
    read_kinds = [chr(ord("N") + k) for k in range(n_read)]
    written_kinds = [chr(ord("A") + k) for k in range(n_written)]
    assert in_params.split(", ") == ([f"{t} r{k}" for k, t in enumerate(read_kinds)] if n_read else [""])
    assert out_params.split(", ") == [f"{t} w{k}" for k, t in enumerate(written_kinds)]
    total, *assignments = operation.split("; ")
    assert sorted(total.removeprefix("float total = ").split(" + ")) == sorted(
        [f"(float)w{k}" for k in range(n_written)] + [f"(float)r{k}" for k in range(n_read)])
    assert [line.split(" = ")[0] for line in assignments] == [f"w{k}" for k in range(n_written)]
    assert all(f"({t})((float)w{k} + 1e-30f * total)" in line for k, (t, line) in enumerate(zip(written_kinds, assignments)))


@pytest.mark.parametrize("n_written, n_read", [(3, 1), (5, 1), (1, 2)])
def test_cupy_takes_the_same_traffic_kernels_parameters(n_written, n_read):
    """CuPy parses a kernel's parameters without a GPU: each placeholder must be a type it knows,
    as the one-letter type placeholders are (a two-letter ``R0`` is read as a dtype's name, and
    fails)."""
    cupy = pytest.importorskip("cupy")
    from numadam.bench.cuda_suites import traffic_operation

    kernel = cupy.ElementwiseKernel(*traffic_operation(n_written, n_read), "numadam_bench_traffic")
    assert kernel.nin == n_read and kernel.nout == n_written


def test_the_same_traffic_kernel_refuses_more_arrays_than_placeholders():
    from numadam.bench.cuda_suites import traffic_operation

    with pytest.raises(ValueError, match="at most 13 written and 13 read arrays, not 14 and 1"):
        traffic_operation(14, 1)


def test_a_case_the_device_lacks_is_refused():
    result = bench_with("pass", "--device", "cpu", "--cases", "small,large-c64")
    assert result.returncode == 2
    assert "--device cpu has no case large-c64" in result.stderr


def test_gpu_cases_cover_the_targets_of_issue_5():
    cases = cuda_bench_cases()
    assert cases["large"].n_elements == 10**8 and cases["large"].dtype == np.float32
    assert cases["small"].n_elements == 1000
    assert cases["many"].shapes == ((1000,),) * 1000
    assert {cases["large-f64"].dtype, cases["large-c64"].dtype} == {np.dtype(np.float64), np.dtype(np.complex64)}
    assert all(case.n_elements < 2_000_000 for case in cuda_bench_cases(quick=True).values())


def test_complex_cases_draw_complex_numbers_and_the_check_compares_both_parts():
    case = Case("c", "c", ((300,),), np.dtype(np.complex64))
    (array,) = _random_arrays(np.random.default_rng(0), case)
    assert array.dtype == np.complex64 and array.shape == (300,)
    assert np.std(array.real) > 0.5 and np.std(array.imag) > 0.5
    shifted = array + np.complex64(1e-2j)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert disagreement([array], [array.copy()], case.dtype) is None
        assert "differs from numadam's by up to 0.01" in disagreement([array], [shifted], case.dtype)


def test_gpu_tables_add_the_copy_fraction_and_the_host_clock_times():
    case = Case("large", "1 array of 1e8 float32", ((10**8,),), np.dtype(np.float32))
    adam = VARIANTS[0]
    results = [
        Result(case, adam, "numadam", "numadam", 1e-3, wall_queued=1.01e-3, wall_synchronized=1.1e-3),
        Result(case, adam, "same-traffic kernel (CuPy)", "roofline", 0.95e-3, wall_queued=0.96e-3,
               wall_synchronized=1.0e-3),
        Result(case, adam, "device copy, cudaMemcpyAsync", "copy", 0.9e-3, wall_queued=0.91e-3,
               wall_synchronized=0.95e-3),
        Result(case, adam, "device copy, CuPy kernel", "copy", 0.93e-3, wall_queued=0.94e-3,
               wall_synchronized=0.97e-3),
    ]
    table = markdown_tables(results)
    assert ("| variant | implementation | time per step | GB/s | % of copy | × roofline | × numadam | "
            "wall, queued | wall, synchronized |") in table
    assert "| adam | numadam | 1.00 ms | 2800.0 | 90% | 1.05 | 1.00 | 1.01 ms | 1.10 ms |" in table
    assert "| adam | device copy, cudaMemcpyAsync | 900 µs | 3111.1 | 100% |" in table


def test_the_plot_leaves_out_what_has_no_roofline_to_compare_with(tmp_path):
    pytest.importorskip("matplotlib")
    case = Case("small", "1 array of 1e3 float32", ((1000,),), np.dtype(np.float32))
    adam, adamw = VARIANTS[:2]
    results = [Result(case, adam, "numadam", "numadam", 2e-5),
               Result(case, adam, "same-traffic kernel (CuPy)", "roofline", 1e-5),
               Result(case, adam, "device copy, CuPy kernel", "copy", 1e-5),
               Result(case, adamw, "numadam", "numadam", 2e-5),
               Result(case, adamw, "same-traffic kernel (CuPy)", "roofline", None, "raised RuntimeError: nvrtc")]
    path = tmp_path / "plot.png"
    assert save_plot(results, path) is None
    assert path.read_bytes().startswith(b"\x89PNG")
    assert save_plot(results[3:], tmp_path / "none.png") == "no implementation was timed next to a roofline: no plot"


class RecordingClock:
    """Stands in for CUDA events and device synchronization; logs the order of calls."""

    def __init__(self, log):
        self.log = log

    def synchronize(self):
        self.log.append("sync")

    def start(self):
        self.log.append("start")

    def stop(self):
        self.log.append("stop")
        return 1e-3


class Stepper:
    def __init__(self, log):
        self.log = log

    def step(self):
        self.log.append("step")


def test_queued_steps_wait_once_per_batch_and_synchronized_steps_after_each_step():
    log = []
    clock, stepper = RecordingClock(log), Stepper(log)
    device, wall = cuda_timing._queued_batch(stepper, 3, clock)
    assert log == ["sync", "start", "step", "step", "step", "stop", "sync"]
    assert device == pytest.approx(1e-3 / 3) and wall > 0
    log.clear()
    cuda_timing._synchronized_steps(stepper, 3, clock)
    assert log == ["step", "sync"] * 3


def test_every_contender_is_sampled_once_per_round_and_reports_three_times():
    log = []
    clock = RecordingClock(log)
    medians = cuda_timing.cuda_interleaved_medians([Stepper(log), Stepper(log)], rounds=4,
                                                   min_batch_seconds=0, clock=clock)
    assert len(medians) == 2 and all(len(times) == 3 and min(times) > 0 for times in medians)
    assert log.count("start") == 2 + 2 * 4  # one batch each to size it, then one per round


@pytest.mark.gpu
def test_every_gpu_contender_runs_and_agrees_with_numadam():
    from numadam.bench.cuda_contenders import cuda_platform

    platform = cuda_platform()
    cases = [Case("small", "small", ((1000,),), np.dtype(np.float32)),
             Case("mixed", "mixed", ((7, 5), (300,), (2, 3, 4)), np.dtype(np.float64)),
             Case("complex", "complex", ((513,),), np.dtype(np.complex64))]
    for case in cases:
        results = run_case(case, rounds=1, min_batch_seconds=1e-5, platform=platform)
        assert not [r for r in results if r.wrong], markdown_tables(results)
        timed = {r.label for r in results if r.seconds is not None}
        assert {"numadam", "numadam.adam_step", "same-traffic kernel (CuPy)", "device copy, cudaMemcpyAsync",
                "device copy, CuPy kernel"} <= timed, markdown_tables(results)
        if not case.single:
            assert {"numadam, one flat array", "same-traffic kernel, one call per array"} <= timed
        raised = [r.note for r in results if r.note.startswith("raised")]
        assert not raised, raised


@pytest.mark.gpu
def test_every_precision_study_runs_on_the_gpu_beside_its_same_traffic_kernel():
    import cupy

    from numadam.bench.cuda_suites import CupyTraffic, on_the_gpu, run_cuda_suite
    from numadam.bench.suites import markdown
    from numadam.bench import catalog

    rows = run_cuda_suite("precision", 20_000, rounds=1, min_batch_seconds=1e-5, progress=lambda text: None)
    assert [row.study.name for row in rows] == list(on_the_gpu(catalog.SUITES["precision"]()))
    assert all(row.seconds > 0 and row.traffic_seconds > 0 and row.other_seconds is None for row in rows)
    assert markdown("precision", 20_000, rows).count("\n| ") == len(rows) + 1
    traffic = CupyTraffic(cupy, on_the_gpu(catalog.SUITES["precision"]())["int8 state"], 1000)
    assert [a.dtype for a in traffic.written] == [np.float32, np.int8, np.uint8]
    assert [a.dtype for a in traffic.read] == [np.float32]
    assert all(int((a == 1).sum()) == 1000 for a in traffic.written)  # near 1, rounded to 1

