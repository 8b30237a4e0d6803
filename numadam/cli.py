"""The ``numadam`` command line: ``numadam demo`` and ``numadam bench``."""

import argparse
import sys

from . import bench


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numadam", description="Fused Adam/AdamW for NumPy and CuPy arrays.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the worked examples and print a report")
    bench_parser = commands.add_parser("bench", help="time numadam against the roofline, NumPy, torch and optax")
    bench.add_arguments(bench_parser)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo()
    if args.command == "bench":
        return bench.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
