"""Example 1: the classic linear fit, minimizing (2W + b - 4)^2 from a random start."""

import time

import numpy as np

import numadam


def run(seed=0, steps=300, lr=0.1, report_every=30, out=print):
    """Fit ``W`` and ``b`` so that ``2 W + b = 4``; return ``(W, b, losses)``.

    The loss :math:`L = (2W + b - 4)^2` has gradient
    :math:`\\partial L/\\partial W = 4(2W + b - 4)`, :math:`\\partial L/\\partial b = 2(2W + b - 4)`.
    """
    rng = np.random.default_rng(seed)
    W = rng.standard_normal(1)
    b = rng.standard_normal(1)
    opt = numadam.Adam({"W": W, "b": b}, lr=lr)
    losses = []
    start = time.perf_counter()
    out(f"{'step':>6}  {'loss':>12}  {'W':>9}  {'b':>9}")
    for step in range(1, steps + 1):
        residual = 2 * W + b - 4
        losses.append(float(residual[0] ** 2))
        if step == 1 or step % report_every == 0 or step == steps:
            out(f"{step:>6}  {losses[-1]:>12.6g}  {W[0]:>9.5f}  {b[0]:>9.5f}")
        opt.step({"W": 4 * residual, "b": 2 * residual})
    elapsed = time.perf_counter() - start
    out(f"2W + b = {float(2 * W[0] + b[0]):.6f} (target 4) after {steps} Adam steps in {elapsed:.3f} s")
    return W, b, losses
