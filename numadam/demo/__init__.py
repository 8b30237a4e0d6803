"""``numadam demo``: worked examples that run offline on 2 cores."""

from . import linear_fit


def run_demo(out=print):
    """Run every example, printing a report."""
    out("numadam demo: Adam on the linear fit (2W + b - 4)^2")
    linear_fit.run(out=out)
