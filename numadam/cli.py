"""The ``numadam`` command line: ``numadam demo``, ``numadam bench`` and ``numadam cache``."""

import argparse
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

from . import bench


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numadam", description="First-order optimizers, fused: Adam, its family (AdamW, Lion, LAMB, "
                                     "Adafactor, ...) and SGD, RMSprop and Adagrad, for NumPy, CuPy, torch and Dask arrays.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the worked examples, print a report and save a plot")
    demo.add_argument("--quick", action="store_true", help="short training runs (a few seconds in all)")
    demo.add_argument(
        "--output", metavar="DIR", default="numadam-demo-output", help="folder for the plot (default: %(default)s)"
    )
    demo.add_argument("--dask", action="store_true",
                      help="instead, the deconvolution on a Dask array on a local cluster (pip install numadam[dask])")
    bench_parser = commands.add_parser("bench", help="time numadam against the roofline, NumPy, torch and optax")
    bench.add_arguments(bench_parser)
    cache = commands.add_parser("cache", help="where numadam's compiled code is cached on disk; --clear deletes it")
    cache.add_argument("--clear", action="store_true",
                       help="delete every file of numadam's caches: kernels, helpers, solves (they recompile on use)")
    args = parser.parse_args(argv)
    if args.command == "cache":
        return kernel_cache(args.clear)
    if args.command == "demo":
        from .demo import DASK_EXAMPLES, run_demo

        run_demo(quick=args.quick, output=args.output, **({"examples": DASK_EXAMPLES} if args.dask else {}))
    if args.command == "bench":
        return bench.run(args)
    return 0


def kernel_cache(clear, out=print):
    """Report (or ``clear``) every cache of compiled code numadam writes: its compiled functions
    (the kernels and their helpers, in Numba's cache folders) and the compiled ``minimize`` solves."""
    from .solver import compiled as compiled_solves

    caches = {"compiled functions": compiled_function_files(), "compiled solves": compiled_solves.cache_files()}
    for name, files in caches.items():
        folders = sorted({str(path.parent) for path in files})
        size = sum(path.stat().st_size for path in files if path.exists())
        out(f"{name}: {len(files)} files, {size / 2**20:.1f} MiB, in {', '.join(folders) or 'no folder yet'}")
    if clear:
        deleted = 0
        for files in caches.values():
            for path in files:
                path.unlink(missing_ok=True)
                deleted += 1
        out(f"deleted {deleted} files")
    return 0

def compiled_functions():
    """Every function of numadam made by :func:`~numadam.targets.disk_cache.cached_njit`, its
    modules imported first (each module of the package whose source uses it)."""
    from .targets.disk_cache import CachedFunctions

    for module in pkgutil.walk_packages([str(Path(__file__).parent)], "numadam."):
        if module.ispkg:
            continue
        spec = importlib.util.find_spec(module.name)
        if spec is None or spec.origin is None:
            continue
        if "@cached_njit(" in Path(spec.origin).read_text(encoding="utf-8"):
            importlib.import_module(module.name)
    return list(CachedFunctions.made)


def compiled_function_files():
    """Every file the disk caches of numadam's compiled functions hold, in every folder they use."""
    from .targets.disk_cache import KeyedFunctionCache

    files = set()
    for function in compiled_functions():
        if isinstance(function._cache, KeyedFunctionCache):
            files.update(function._cache.files())
    return sorted(files)


if __name__ == "__main__":
    sys.exit(main())
