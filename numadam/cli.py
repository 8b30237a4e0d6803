"""The ``numadam`` command line: ``numadam demo``."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numadam", description="Fused Adam/AdamW for NumPy and CuPy arrays.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the worked examples and print a report")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
