"""What the demo's examples return, the loss tables they print, and the figure of their curves."""

import os
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ExampleResult:
    """One example's outcome: its curves, the numbers it measured, and a one-line summary.

    ``curves`` is a list of ``(label, steps, values)`` drawn in the example's panel,
    against ``xlabel`` and ``ylabel``; ``metrics`` holds the numbers the example
    computed (accuracies, objective values, ...), ``seconds`` its wall time.
    """

    title: str
    xlabel: str
    ylabel: str
    curves: list
    seconds: float
    summary: str
    metrics: dict = field(default_factory=dict)


class Table:
    """Columns printed one row at a time: text left-aligned, numbers right-aligned.

    ``columns`` lists ``(title, format spec)`` pairs, or ``(title, spec, width)``;
    a column is at least ``width`` characters wide and as wide as its title.

    >>> table = Table(print, [("method", "s", 8), ("loss", ".3e")])
    method          loss
    >>> table.row("adam", 0.5)
    adam       5.000e-01
    """

    def __init__(self, out, columns, width=10):
        self._out = out
        self._formats = []
        titles = []
        for title, spec, *column_width in columns:
            size = max(column_width[0] if column_width else width, len(title))
            align = "<" if spec.endswith("s") else ">"
            self._formats.append(f"{align}{size}{spec}")
            titles.append(f"{title:{align}{size}}")
        self._out("  ".join(titles).rstrip())

    def row(self, *values):
        self._out("  ".join(f"{value:{spec}}" for value, spec in zip(values, self._formats)).rstrip())


def report_points(count, rows=8):
    """About ``rows`` indices out of ``range(count)``, spread evenly, first and last included.

    >>> report_points(100, rows=5)
    [0, 25, 50, 74, 99]
    """
    return sorted({int(round(k)) for k in np.linspace(0, count - 1, min(rows, count))})


def save_figure(results, path):
    """Draw one panel per result, its curves on a log scale, into the PNG ``path``.

    Create the folder of ``path`` if needed. Return ``path``, or ``None`` (and create
    nothing) if matplotlib is not installed. The figure is drawn
    on matplotlib's Agg canvas directly, so the caller's pyplot backend is untouched.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    columns = 2 if len(results) > 1 else 1
    rows = -(-len(results) // columns)
    figure = Figure(figsize=(5.5 * columns, 3.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, result in zip(axes, results):
        for label, steps, values in result.curves:
            ax.semilogy(steps, values, label=label)
        if len(result.curves) > 1:
            ax.legend()
        ax.set_title(result.title, fontsize=10)
        ax.set_xlabel(result.xlabel)
        ax.set_ylabel(result.ylabel)
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(results) :]:
        ax.set_visible(False)
    figure.suptitle("numadam demo: loss curves")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
