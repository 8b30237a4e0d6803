"""Run the asv suite's benchmarks for one backend once, without asv.

For machines where asv cannot run: the GPU machines have no asv and no git
history to attach results to. Every parameter combination of every benchmark
class whose ``backend`` parameter matches is set up as asv would (a setup that
raises ``NotImplementedError`` is skipped, with its reason); each ``time_*``
method is timed as the median of repeated calls, each ``track_*`` method's
value is recorded. ``peakmem_*`` benchmarks need asv's process isolation and
are listed as not run. Run from the repository root::

    python asv_benchmarks/run_without_asv.py --backend cupy --output asv-cupy.json

With ``--require`` the exit status is 1 if any combination was skipped, so that
a run on a GPU machine cannot pass by skipping everything.
"""

import argparse
import inspect
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks import adafactor, dask_cluster, functional, many_arrays, single_array  # noqa: E402

MODULES = (single_array, many_arrays, functional, dask_cluster, adafactor)


def benchmark_classes(names=None):
    """``(qualified name, class)`` of every class with asv parameters, optionally only those named."""
    for module in MODULES:
        for name, kind in inspect.getmembers(module, inspect.isclass):
            if kind.__module__ == module.__name__ and hasattr(kind, "param_names"):
                if names is None or name in names:
                    yield f"{module.__name__.split('.')[-1]}.{name}", kind


def median_call_seconds(method, args, budget_seconds, min_samples=5, max_samples=1000):
    samples = []
    start = time.perf_counter()
    while len(samples) < min_samples or (time.perf_counter() - start < budget_seconds and len(samples) < max_samples):
        before = time.perf_counter()
        method(*args)
        samples.append(time.perf_counter() - before)
    return statistics.median(samples)


def run_class(qualified, kind, backend, budget_seconds):
    """One record per benchmark method and parameter combination with ``backend``."""
    records = []
    position = kind.param_names.index("backend")
    for params in itertools.product(*kind.params):
        if params[position] != backend:
            continue
        label = ", ".join(f"{name}={value}" for name, value in zip(kind.param_names, params))
        methods = sorted(name for name in dir(kind) if name.startswith(("time_", "track_", "peakmem_")))
        instance = kind()
        try:
            instance.setup(*params)
        except NotImplementedError as reason:
            records += [dict(benchmark=f"{qualified}.{name}", params=label, skipped=str(reason)) for name in methods]
            continue
        for name in methods:
            record = dict(benchmark=f"{qualified}.{name}", params=label)
            method = getattr(instance, name)
            if name.startswith("time_"):
                record.update(value=median_call_seconds(method, params, budget_seconds), unit="seconds")
            elif name.startswith("track_"):
                record.update(value=method(*params), unit=getattr(method, "unit", ""))
            else:
                record.update(not_run="peak memory needs asv's separate process")
            records.append(record)
    return records


def format_value(record):
    if "skipped" in record:
        return f"skipped: {record['skipped']}"
    if "not_run" in record:
        return f"not run: {record['not_run']}"
    if record["unit"] == "seconds":
        return f"{record['value'] * 1e6:.1f} µs"
    return f"{record['value']:.4g} {record['unit']}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="cupy")
    parser.add_argument("--bench", default=None, help="comma-separated class names (default: all)")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds of repeated calls per timing")
    parser.add_argument("--output", type=Path, default=None, help="write the records as JSON here")
    parser.add_argument("--require", action="store_true", help="exit with status 1 if anything was skipped")
    args = parser.parse_args(argv)
    names = None if args.bench is None else set(args.bench.split(","))
    records = []
    for qualified, kind in benchmark_classes(names):
        print(f"run_without_asv: {qualified}", file=sys.stderr, flush=True)
        records += run_class(qualified, kind, args.backend, args.budget)
    print("| benchmark | parameters | result |\n|---|---|---|")
    for record in records:
        print(f"| {record['benchmark']} | {record['params']} | {format_value(record)} |")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(records, indent=1))
    skipped = [record for record in records if "skipped" in record]
    if not records:
        print(f"no benchmark has backend {args.backend}", file=sys.stderr)
        return 1
    return 1 if args.require and skipped else 0


if __name__ == "__main__":
    sys.exit(main())
