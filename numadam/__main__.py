"""``python -m numadam``: the same command line as the ``numadam`` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
