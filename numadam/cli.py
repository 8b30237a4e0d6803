"""The ``numadam`` command line: ``numadam demo`` and ``numadam bench``."""

import argparse
import sys

from . import bench


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numadam", description="Fused Adam/AdamW for NumPy and CuPy arrays.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the worked examples, print a report and save a plot")
    demo.add_argument("--quick", action="store_true", help="short training runs (a few seconds in all)")
    demo.add_argument(
        "--output", metavar="DIR", default="numadam-demo-output", help="folder for the plot (default: %(default)s)"
    )
    bench_parser = commands.add_parser("bench", help="time numadam against the roofline, NumPy, torch and optax")
    bench.add_arguments(bench_parser)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(quick=args.quick, output=args.output)
    if args.command == "bench":
        return bench.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
