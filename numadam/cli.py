"""The ``numadam`` command line: ``numadam demo``, ``numadam bench`` and ``numadam cache``."""

import argparse
import sys

from . import bench


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numadam", description="The Adam family of optimizers, fused, for NumPy, CuPy, torch and Dask arrays.")
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
    from .targets import disk_cache

    caches = {"compiled functions": disk_cache.cache_files(), "compiled solves": compiled_solves.cache_files()}
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

if __name__ == "__main__":
    sys.exit(main())
