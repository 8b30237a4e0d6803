"""The ``numadam`` command line: ``numadam demo``."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numadam", description="Fused Adam/AdamW for NumPy and CuPy arrays.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the worked examples, print a report and save a plot")
    demo.add_argument("--quick", action="store_true", help="short training runs (a few seconds in all)")
    demo.add_argument(
        "--output", metavar="DIR", default="numadam-demo-output", help="folder for the plot (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(quick=args.quick, output=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
