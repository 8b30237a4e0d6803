r"""Example 1: the classic linear fit, minimizing :math:`(2W + b - 4)^2` from a random start.

The loss :math:`L = (2W + b - 4)^2` has gradient
:math:`\partial L/\partial W = 4(2W + b - 4)` and :math:`\partial L/\partial b = 2(2W + b - 4)`;
every point of the line :math:`2W + b = 4` is a minimizer.
"""

import time

import numpy as np

import numadam

from .report import ExampleResult, Table, report_points

TITLE = "linear fit (2W + b - 4)^2"


def run(quick=False, seed=0, steps=300, lr=0.1, out=print):
    """Fit ``W`` and ``b`` with Adam; return an :class:`ExampleResult` (``metrics``: ``W``, ``b``).

    The fit takes milliseconds, so ``quick`` changes nothing.
    """
    rng = np.random.default_rng(seed)
    W = rng.standard_normal(1)
    b = rng.standard_normal(1)
    out(f"start W = {W[0]:.5f}, b = {b[0]:.5f}; Adam lr={lr:g}, {steps} steps")
    opt = numadam.Adam({"W": W, "b": b}, lr=lr)
    grads = {"W": np.empty(1), "b": np.empty(1)}
    table = Table(out, [("step", "d"), ("loss", ".4e"), ("W", ".5f"), ("b", ".5f")])
    shown = set(report_points(steps + 1))
    losses = []
    start = time.perf_counter()
    for step in range(steps + 1):
        residual = 2 * W + b - 4
        losses.append(float(residual[0] ** 2))
        if step in shown:
            table.row(step, losses[-1], W[0], b[0])
        if step < steps:
            np.multiply(4, residual, out=grads["W"])
            np.multiply(2, residual, out=grads["b"])
            opt.step(grads)
    seconds = time.perf_counter() - start
    fit = float(2 * W[0] + b[0])
    out(f"2W + b = {fit:.6f} (target 4)")
    return ExampleResult(
        title=TITLE,
        xlabel="Adam step",
        ylabel="(2W + b - 4)^2",
        curves=[("Adam", np.arange(steps + 1), np.array(losses))],
        seconds=seconds,
        summary=f"2W + b = {fit:.6f}, loss {losses[0]:.3g} -> {losses[-1]:.3g}",
        metrics={"W": float(W[0]), "b": float(b[0])},
    )
