"""Prodigy's compiled solve beside its Python loop and Adam's compiled solve (issue 57).

The 10-parameter Rosenbrock function of ``numadam bench --solve`` (an njit objective), float64, from
zeros, Prodigy at its defaults (no ``lr``); medians of 5 solves of 1e5 iterations (the Python loop:
5000), per iteration.

    python tools/prodigy_solve_speed.py
"""

import time

import numpy as np

import numadam
from numadam.bench.solve import rosenbrock

RUNS = 5


def per_iteration(method, compiled, iterations, **options):
    """Median seconds an iteration of ``minimize`` over ``iterations``, and the last result."""
    start = np.zeros(10)
    numadam.minimize(rosenbrock, start.copy(), jac=True, method=method, maxiter=100, gtol=0.0, compiled=compiled,
                     **options)  # (compiled, or loaded from the disk cache, before the timing)
    seconds = []
    for _ in range(RUNS):
        started = time.perf_counter()
        result = numadam.minimize(rosenbrock, start.copy(), jac=True, method=method, maxiter=iterations, gtol=0.0,
                                  compiled=compiled, **options)
        seconds.append((time.perf_counter() - started) / iterations)
    return float(np.median(seconds)), result


def main():
    for label, method, compiled, iterations, options in (
            ("Prodigy, compiled", "prodigy", True, 100_000, {}),
            ("Prodigy, Python loop", "prodigy", False, 5_000, {}),
            ("Adam (lr 1e-3), compiled", "adam", True, 100_000, {"lr": 1e-3})):
        seconds, result = per_iteration(method, compiled, iterations, **options)
        print(f"{label:26s} {1e9 * seconds:8.0f} ns an iteration   f after {iterations}: {result.fun:.3g}")


if __name__ == "__main__":
    main()
