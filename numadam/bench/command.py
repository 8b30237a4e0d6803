"""``numadam bench``: the options, the run, and what it prints and writes."""

import argparse
import os
import platform
import sys
from pathlib import Path

from .cases import bench_cases


def add_arguments(parser):
    """Add the options of ``numadam bench`` to ``parser``."""
    names = ", ".join(bench_cases())
    parser.add_argument("--quick", action="store_true",
                        help="smaller arrays and 3 rounds: a smoke test for CI, not a measurement")
    parser.add_argument("--repeat", type=_positive_int, default=None,
                        help="timing rounds; the medians are over these (default 20, or 3 with --quick)")
    parser.add_argument("--cases", type=_case_names, default=None,
                        help=f"comma-separated cases to run (default all: {names})")
    parser.add_argument("--output", type=Path, default=None,
                        help="save the bar plot to this PNG, and the Markdown table next to it with the suffix .txt")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="Numba and torch threads (default: all of NUMBA_NUM_THREADS)")


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
    unknown = [name for name in names if name not in bench_cases()]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"cases must be among {', '.join(bench_cases())}; got {text!r}")
    return names


def _versions():
    from importlib import metadata

    parts = []
    for name in ("numadam", "numpy", "numba", "torch", "jax", "optax"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def run(args, out=print):
    """Run the benchmark ``args`` asks for; return the exit status (1 if a result was wrong)."""
    from .plot import save_plot
    from .runner import run_case, set_threads
    from .table import markdown_tables

    threads = set_threads(args.threads)
    cases = bench_cases(args.quick)
    rounds = args.repeat or (3 if args.quick else 20)
    min_batch_seconds = 1e-3 if args.quick else 5e-3

    def progress(text):
        print(f"numadam bench: {text}", file=sys.stderr, flush=True)

    results = []
    for name in args.cases or list(cases):
        results += run_case(cases[name], rounds, min_batch_seconds, progress=progress)

    header = (
        f"numadam bench{' --quick' if args.quick else ''}: median of {rounds} interleaved rounds, "
        f"{threads} Numba/torch thread(s) on {os.cpu_count()} CPU(s) ({platform.machine()}); "
        f"jax uses its own thread pool. {_versions()}.\n\n"
        "GB/s: the bytes a step must move (28 per float32 element for Adam and AdamW, 36 for AMSGrad; "
        "twice that in float64) over the time. × roofline: time over the faster same-traffic kernel "
        "(same bytes, trivial arithmetic). × numadam: time over numadam's object API.\n"
    )
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
