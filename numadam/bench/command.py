"""``numadam bench``: the options, the run, and what it prints and writes.

Exit status: 0, or 1 if an implementation's result was wrong, 2 for bad
options, 3 when ``--device cuda`` finds no GPU to run on.
"""

import argparse
import os
import platform
import sys
from pathlib import Path

from .cases import HELD_ARRAYS, LARGE_CASES, bench_cases, cuda_bench_cases, optional_cases
from .catalog import SUITES
from .machine import ADAM_FOOTPRINT, describe, roofline_size, size_warning

#: The exit status of ``--device cuda`` without a usable GPU.
NO_CUDA_DEVICE = 3


def _cases(device, quick=False, large=None):
    return cuda_bench_cases(quick) if device == "cuda" else bench_cases(quick, large)


def add_arguments(parser):
    """Add the options of ``numadam bench`` to ``parser``."""
    names = ", ".join(bench_cases())
    gpu_only = ", ".join(name for name in cuda_bench_cases() if name not in bench_cases())
    optional = ", ".join(optional_cases())
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cpu (NumPy arrays, the default) or cuda (CuPy arrays on the current GPU)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller arrays and 3 rounds: a smoke test for CI, not a measurement")
    parser.add_argument("--repeat", type=_positive_int, default=None,
                        help="timing rounds; the medians are over these (default 20, or 3 with --quick)")
    parser.add_argument("--cases", type=_case_names, default=None,
                        help=f"comma-separated cases to run (default all: {names}; with --device cuda also "
                             f"{gpu_only}); on the CPU also, only when named: {optional}")
    parser.add_argument("--output", type=Path, default=None,
                        help="save the bar plot to this PNG, and the Markdown table next to it with the suffix .txt")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="Numba and torch threads (default: all of NUMBA_NUM_THREADS)")
    parser.add_argument("--suite", type=_suite_names, default=None,
                        help="instead of the cases, run these comma-separated suites of numadam.bench.catalog "
                             f"({', '.join(SUITES)}, or all) at --size elements; with --device cuda on CuPy arrays "
                             "(default 1e8 elements, as far as half the GPU's free memory allows)")
    parser.add_argument("--size", type=_positive_int, default=None,
                        help="elements per suite study, and in the large cases on the CPU (default: enough for the "
                             "arrays of a float32 Adam step to span 8 times the last-level cache, at least 1e7, as "
                             "far as the available memory allows; with --quick 1e5 per suite study and 2^17 in the "
                             "large cases)")
    parser.add_argument("--solve", action="store_true",
                        help="instead of the cases, time numadam.minimize's compiled solve against its Python loop, "
                             "a hand-written @njit loop and (if installed) optax in jax.jit, per iteration")
    parser.add_argument("--batch", action="store_true",
                        help="instead of the cases, time numadam.minimize_batch on 300 small fits (1 thread and all) "
                             "against a hand-written @njit loop and loops of numadam.minimize calls, per fit")
    parser.add_argument("--startup", action="store_true",
                        help="instead of the cases, time new processes with a warm cache: import numadam, and import "
                             "with the first Adam step, each beside its floor (import numpy, numba; a cached @njit "
                             "function's first call)")
    parser.add_argument("--kernels", nargs="?", const="all", default=None, metavar="FAMILIES",
                        help="instead of the cases, report what the CUDA toolchain makes of the families' GPU update "
                             "kernels (float32), without a GPU: registers, spills, global load and store widths, "
                             "loads in flight, instructions per element (comma-separated families, default all; "
                             "needs ptxas, and cuobjdump with nvdisasm for the SASS columns)")
    parser.add_argument("--iterations", type=_positive_int, default=None,
                        help="iterations of each --solve contender (default 1e5, or 1e3 with --quick)")


#: Suites with a table of their own (not studies of numadam.bench.catalog): name -> module of numadam.bench.
OWN_TABLE_SUITES = {"muon": "muon"}


def _suite_names(text):
    known = [*SUITES, *OWN_TABLE_SUITES]
    names = list(SUITES) if text.strip() == "all" else [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"suites must be among {', '.join(known)} or all; got {text!r}")
    return names


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return value


def _case_names(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = {**bench_cases(), **cuda_bench_cases(), **optional_cases()}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"cases must be among {', '.join(known)}; got {text!r}")
    return names


def _versions(names=("numadam", "numpy", "numba", "torch", "jax", "optax")):
    from importlib import metadata

    parts = []
    for name in names:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def _warn_unless_past_the_cache(size):
    """Warn on stderr when the arrays of a float32 Adam step of ``size`` elements are not past the
    last-level cache (see :mod:`numadam.bench.machine`)."""
    why = size_warning(size, ADAM_FOOTPRINT)
    if why:
        print(f"numadam bench: warning: {why}", file=sys.stderr, flush=True)


def _cpu_header(args, rounds, threads):
    return (
        f"numadam bench{' --quick' if args.quick else ''}: median of {rounds} interleaved rounds, "
        f"{threads} Numba/torch thread(s) on {os.cpu_count()} CPU(s) ({platform.machine()}); "
        f"jax uses its own thread pool. {_versions()}.\n{describe(threads)}\n\n"
        "GB/s: the bytes a step must move (28 per float32 element for Adam and AdamW, 36 for AMSGrad; "
        "twice that in float64) over the time. × roofline: time over the faster same-traffic kernel "
        "(same bytes, trivial arithmetic). × numadam: time over numadam's object API.\n"
    )


def _cuda_header(args, rounds):
    import cupy

    device = cupy.cuda.Device()
    properties = cupy.cuda.runtime.getDeviceProperties(device.id)
    name = properties["name"].decode() if isinstance(properties["name"], bytes) else properties["name"]
    return (
        f"numadam bench --device cuda{' --quick' if args.quick else ''}: median of {rounds} interleaved rounds "
        f"on {name} ({properties['multiProcessorCount']} SMs, {properties['totalGlobalMem'] / 2**30:.0f} GiB; "
        f"CUDA driver {cupy.cuda.runtime.driverGetVersion()}, runtime {cupy.cuda.runtime.runtimeGetVersion()}), "
        f"host {platform.machine()} with {os.cpu_count()} CPU(s). "
        f"{_versions(('numadam', 'numpy', 'numba', 'numba-cuda', 'cupy-cuda13x', 'cupy-cuda12x', 'torch'))}.\n"
        f"Host: {describe()}\n\n"
        "time per step: GPU time per step over a batch of steps queued back to back (CUDA events); when the "
        "host launches slower than the GPU runs, this is the host's rate. GB/s: the bytes a step must move "
        "(28 per float32 element for Adam and AdamW, 36 for AMSGrad; twice that in float64 and complex64) "
        "over that time. % of copy: that bandwidth over the device's copy bandwidth (the faster device copy "
        "of the same bytes). × roofline: time over the same-traffic kernel (same bytes, trivial arithmetic). "
        "× numadam: time over numadam's object API. wall, queued: host clock per step over the queued batch, "
        "one synchronization at its end. wall, synchronized: host clock of one step followed by a device "
        "synchronization.\n"
    )


def run_suites(args, out=print):
    """``--suite``: the suites' tables, printed and (with ``--output``) written as Markdown."""
    if "muon" in args.suite:
        if args.suite != ["muon"]:
            print("numadam bench --suite muon: runs alone (its own table)", file=sys.stderr)
            return 2
        return run_muon(args, out)
    if getattr(args, "device", "cpu") == "cuda":
        return run_cuda_suites(args, out)
    from .runner import set_threads
    from .suites import held_bytes, run_suite

    threads = set_threads(args.threads)
    size = args.size or (100_000 if args.quick else
                         roofline_size(ADAM_FOOTPRINT, max(held_bytes(name) for name in args.suite)))
    if not args.quick:
        _warn_unless_past_the_cache(size)
    rounds = _suite_rounds(args)
    header = (f"numadam bench --suite {','.join(args.suite)}{' --quick' if args.quick else ''}: median of {rounds} "
            f"interleaved rounds, {threads} Numba/torch thread(s) on {os.cpu_count()} CPU(s) "
            f"({platform.machine()}). {_versions(('numadam', 'numpy', 'numba', 'torch', 'bitsandbytes'))}.\n{describe(threads)}\n\n"
            "GB/s: the bytes a step must move per element (in parentheses) times the elements, over the time. "
            "× same-traffic: time over a loop moving those bytes with trivial arithmetic. × baseline: time over "
            "the named study of the same run. torch: torch.optim's multi-tensor (foreach) step of the family; "
            "for row-sparse gradients, SparseAdam's with a sparse COO .grad. bitsandbytes: its Adam8bit on CPU "
            "tensors, beside int8 state.\n")
    return _tabulate_suites(args, size, header, run_suite, out)


def _suite_rounds(args):
    return args.repeat or (3 if args.quick else 15)


def _tabulate_suites(args, size, header, run_suite, out):
    """Run each suite of ``args`` with ``run_suite(name, size, rounds, min_batch_seconds, progress)``;
    print and (with ``--output``) write ``header`` and their tables; return the exit status 0."""
    from .suites import markdown

    def progress(text):
        print(f"numadam bench: {text}", file=sys.stderr, flush=True)

    text = header
    min_batch_seconds = 1e-3 if args.quick else 2e-2
    for name in args.suite:
        text += "\n" + markdown(name, size, run_suite(name, size, _suite_rounds(args), min_batch_seconds, progress))
    _print_and_write(text, args.output, out)
    return 0


#: The elements of a GPU suite study unless ``--size`` says otherwise (``--quick``: 1e5), as
#: far as half the GPU's free memory allows.
CUDA_SUITE_SIZE = 100_000_000


def run_cuda_suites(args, out=print):
    """``--device cuda --suite``: the suites' tables on the current GPU (:mod:`numadam.bench.cuda_suites`)."""
    from .cuda_contenders import NoCudaDevice, cuda_platform

    try:
        cuda_platform()
    except NoCudaDevice as reason:
        print(f"numadam bench --device cuda: {reason}", file=sys.stderr)
        return NO_CUDA_DEVICE
    import cupy

    from .cuda_suites import held_bytes, run_cuda_suite

    free_bytes = cupy.cuda.runtime.memGetInfo()[0]
    size = args.size or (100_000 if args.quick else
                         min(CUDA_SUITE_SIZE, int(free_bytes / 2 / max(held_bytes(name) for name in args.suite))))
    header = (_cuda_header(args, _suite_rounds(args)).replace("numadam bench --device cuda",
                                               f"numadam bench --device cuda --suite {','.join(args.suite)}", 1)
            .split("\n\n")[0] + "\n\n"
            "ms per step: GPU time per step over a batch of steps queued back to back (CUDA events). GB/s: the "
            "bytes a step must move per element (in parentheses) times the elements, over the time. × "
            "same-traffic: time over a CuPy kernel moving those bytes with trivial arithmetic. × baseline: time "
            "over the named study of the same run. CuPy has no bfloat16: the bfloat16 parameter studies run "
            "with float16 parameters.\n")
    return _tabulate_suites(args, size, header, run_cuda_suite, out)


def _print_and_write(text, output, out):
    """Print ``text``; with ``--output``, write it beside that path with the suffix .txt."""
    out(text)
    if output is not None:
        path = output.with_suffix(".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out(f"table written to {path}")


def run_solve(args, out=print):
    """``--solve``: the table of :mod:`numadam.bench.solve`, printed and (with ``--output``) written."""
    from . import solve

    iterations = args.iterations or (1_000 if args.quick else 100_000)
    rounds = args.repeat or (3 if args.quick else 7)
    rows, compile_seconds, same = solve.run(iterations, rounds, progress=_progress("solve"))
    return _timed_table("solve", args, rounds, solve.markdown(rows, compile_seconds, same, iterations), same, out)


def run_batch(args, out=print):
    """``--batch``: the table of :mod:`numadam.bench.batch`, printed and (with ``--output``) written."""
    from . import batch

    rounds = args.repeat or (3 if args.quick else 7)
    fits, iterations = (30, 50) if args.quick else (batch.FITS, batch.ITERATIONS)
    rows, same = batch.run(rounds, fits, iterations, progress=_progress("batch"))
    return _timed_table("batch", args, rounds, batch.markdown(rows, same, fits, iterations), same, out)


def run_muon(args, out=print):
    """``--suite muon``: the tables of :mod:`numadam.bench.muon`, printed and (with ``--output``) written."""
    from . import muon

    rounds = args.repeat or (3 if args.quick else 7)
    results = muon.run(rounds, args.quick, progress=_progress("suite muon"), device=getattr(args, "device", "cpu"))
    return _timed_table("suite muon", args, rounds, muon.markdown(results), True, out)


def _progress(name):
    """A function printing ``numadam bench --NAME: text`` on standard error."""
    return lambda text: print(f"numadam bench --{name}: {text}", file=sys.stderr, flush=True)


def _timed_table(name, args, rounds, table, same, out):
    """Print (and with ``--output`` write) ``table`` under the run's header; the exit status: 0 when
    the compiled iterates were the same as checked (``same``), else 1."""
    text = (f"numadam bench --{name}{' --quick' if args.quick else ''}: median of {rounds} interleaved rounds on "
            f"{os.cpu_count()} CPU(s) ({platform.machine()}). {_versions()}.\n{describe()}\n\n" + table)
    _print_and_write(text, args.output, out)
    return 0 if same else 1


def run_startup(args, out=print):
    """``--startup``: the table of :mod:`numadam.bench.startup`, printed and (with ``--output``) written."""
    from . import startup

    rounds = args.repeat or (3 if args.quick else 21)

    def progress(text):
        print(f"numadam bench --startup: {text}", file=sys.stderr, flush=True)

    medians = startup.run(rounds, progress=progress)
    text = (f"numadam bench --startup{' --quick' if args.quick else ''}: median of {rounds} interleaved rounds of new "
            f"processes on {os.cpu_count()} CPU(s) ({platform.machine()}), Python {platform.python_version()}. "
            f"{_versions(('numadam', 'numpy', 'numba'))}.\n{describe()}\n\n" + startup.markdown(medians))
    _print_and_write(text, args.output, out)
    return 0


def _large_size(size, device, names):
    """Elements in the large cases: ``size`` if given, else past the last-level cache (as far as
    memory allows), with a warning when the large cases run and are not past it; ``None`` on a GPU."""
    if device != "cpu":
        return None
    if size is None:
        size = roofline_size(ADAM_FOOTPRINT, HELD_ARRAYS * 8)  # the float64 case holds the most
    if any(name in LARGE_CASES for name in names):
        _warn_unless_past_the_cache(size)
    return size


def run_kernels(args, out=print):
    """``--kernels``: the table of :mod:`numadam.bench.kernel_report`, printed and (with ``--output``)
    written; status 2 for an unknown family, a missing ``ptxas`` or numba-cuda, or the simulator."""
    import numadam

    from . import kernel_report

    names = list(numadam.families()) if args.kernels == "all" else [n.strip() for n in args.kernels.split(",")]
    unknown = [name for name in names if name not in numadam.families()]
    if unknown:
        print(f"numadam bench --kernels: no family {', '.join(unknown)}; the families are "
              f"{', '.join(numadam.families())}", file=sys.stderr)
        return 2
    try:
        found = kernel_report.reports(names)
    except (FileNotFoundError, ImportError, RuntimeError) as missing:  # ptxas, numba-cuda, or the simulator
        print(f"numadam bench --kernels: {missing}", file=sys.stderr)
        return 2
    text = (f"numadam bench --kernels: {kernel_report.toolchain()}. {_versions(('numadam', 'numba'))}.\n\n"
            + kernel_report.markdown(found))
    _print_and_write(text, args.output, out)
    return 0


def run(args, out=print):
    """Run the benchmark ``args`` asks for; return the exit status (see the module's docstring)."""
    if getattr(args, "kernels", None):
        return run_kernels(args, out)
    if getattr(args, "suite", None):
        return run_suites(args, out)
    if getattr(args, "solve", False):
        return run_solve(args, out)
    if getattr(args, "batch", False):
        return run_batch(args, out)
    if getattr(args, "startup", False):
        return run_startup(args, out)
    from .plot import save_plot
    from .runner import CPU, run_case, set_threads
    from .table import markdown_tables

    device = getattr(args, "device", "cpu")
    default = list(_cases(device, args.quick))
    large = args.size if args.quick else _large_size(args.size, device, args.cases or default)
    cases = {**_cases(device, args.quick, large), **(optional_cases(args.quick) if device == "cpu" else {})}
    unknown = [name for name in args.cases or [] if name not in cases]
    if unknown:
        print(f"numadam bench: --device {device} has no case {', '.join(unknown)}; "
              f"its cases are {', '.join(cases)}", file=sys.stderr)
        return 2
    threads = set_threads(args.threads)
    if device == "cuda":
        from .cuda_contenders import NoCudaDevice, cuda_platform

        try:
            runner_platform = cuda_platform()
        except NoCudaDevice as reason:
            print(f"numadam bench --device cuda: {reason}", file=sys.stderr)
            return NO_CUDA_DEVICE
    else:
        runner_platform = CPU
    rounds = args.repeat or (3 if args.quick else 20)
    min_batch_seconds = 1e-3 if args.quick else 5e-3

    def progress(text):
        print(f"numadam bench: {text}", file=sys.stderr, flush=True)

    results = []
    for name in args.cases or default:
        results += run_case(cases[name], rounds, min_batch_seconds, progress=progress, platform=runner_platform)

    header = _cuda_header(args, rounds) if device == "cuda" else _cpu_header(args, rounds, threads)
    text = header + "\n" + markdown_tables(results)
    out(text)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        table_path = args.output.with_suffix(".txt")
        table_path.write_text(text)
        out(f"table written to {table_path}")
        why_not = save_plot(results, args.output)
        out(why_not or f"plot written to {args.output}")
    return 1 if any(result.wrong for result in results) else 0
