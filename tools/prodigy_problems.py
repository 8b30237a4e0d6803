"""Prodigy at its defaults beside a hand-tuned Adam on four problems of `minimize` (issue 57).

For each problem the optimum f* comes from SciPy's L-BFGS-B run to its limits (the least squares:
from ``lstsq``), and the tolerance is a relative gap (f - f*) / max(|f*|, 1) of
:data:`TOLERANCE`. Adam is tuned over a grid of learning rates (:data:`ADAM_RATES`): the one that
first reaches the tolerance, in the fewest iterations. Prodigy runs at its defaults (no ``lr``).
Each row gives the iterations each method took to first reach the tolerance (where ``minimize``
with a stop rule at that tolerance would stop) within the problem's ``maxiter``; ``history`` is
``minimize``'s value per iteration.

    python tools/prodigy_problems.py            # the table of docs/minimize.md
"""

import sys
from typing import Callable, NamedTuple

import numpy as np

import numadam

#: The relative gap to the optimum both methods must reach.
TOLERANCE = 1e-10
#: The learning rates the hand tuning tries.
ADAM_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


class Problem(NamedTuple):
    name: str
    fun: Callable  # x -> (f, gradient)
    x0: np.ndarray
    optimum: float
    maxiter: int


def _lbfgs(fun, x0):
    from scipy.optimize import minimize

    return minimize(fun, x0, jac=True, method="L-BFGS-B",
                    options={"maxiter": 100000, "maxfun": 200000, "gtol": 1e-14, "ftol": 1e-16}).fun


def least_squares(rng):
    a = rng.standard_normal((200, 20)) @ np.diag(np.logspace(0, 1, 20))
    b = rng.standard_normal(200)

    def fun(x):
        r = a @ x - b
        return 0.5 * float(r @ r), a.T @ r

    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    return Problem("least squares (200 x 20, condition 10)", fun, np.zeros(20), fun(solution)[0], 3000)


def rosenbrock(rng):
    from scipy.optimize import rosen, rosen_der

    return Problem("Rosenbrock, 10 dimensions", lambda x: (float(rosen(x)), rosen_der(x)), np.zeros(10), 0.0, 20000)


def deconvolution(rng):
    from numadam.demo import deconvolution as demo

    objective, _, _, _, _ = demo.make_problem(np.random.default_rng(0), n=400)
    return Problem("deconvolution demo (n = 400)", objective, np.zeros(400), _lbfgs(objective, np.zeros(400)), 3000)


def logistic_regression(rng):
    x = rng.standard_normal((500, 10))
    y = (x @ rng.standard_normal(10) + 0.5 * rng.standard_normal(500) > 0).astype(float)
    penalty = 1e-2

    def fun(w):
        z = x @ w
        loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * penalty * float(w @ w)
        return float(loss), x.T @ (1.0 / (1.0 + np.exp(-z)) - y) / len(y) + penalty * w

    return Problem("logistic regression (500 x 10, L2 1e-2)", fun, np.zeros(10), _lbfgs(fun, np.zeros(10)), 3000)


PROBLEMS = (least_squares, rosenbrock, deconvolution, logistic_regression)


def gaps(problem, **options):
    """The relative gap to the optimum after every iteration of ``minimize``."""
    result = numadam.minimize(problem.fun, problem.x0, jac=True, maxiter=problem.maxiter, gtol=0.0, **options)
    return (result.history - problem.optimum) / max(abs(problem.optimum), 1.0)


def first_within(gap, tolerance):
    """The first iteration whose gap is within ``tolerance``, or None."""
    hits = np.flatnonzero(gap <= tolerance)
    return int(hits[0]) if hits.size else None


def compare(problem):
    """``(tuned lr, Adam's iterations, Prodigy's iterations)`` to :data:`TOLERANCE` (None: not reached)."""
    reached = {lr: first_within(gaps(problem, method="adam", lr=lr), TOLERANCE) for lr in ADAM_RATES}
    best = min((lr for lr in reached if reached[lr] is not None), key=lambda lr: reached[lr], default=None)
    return best, reached.get(best), first_within(gaps(problem, method="prodigy"), TOLERANCE)


def main():
    print(f"| problem | maxiter | hand-tuned Adam: lr, iterations to a gap of {TOLERANCE:g} | "
          "Prodigy at its defaults: iterations |")
    print("|---|---|---|---|")
    for make in PROBLEMS:
        problem = make(np.random.default_rng(0))
        lr, adam_iterations, prodigy_iterations = compare(problem)
        adam = "not reached" if lr is None else f"{lr:g}, {adam_iterations}"
        print(f"| {problem.name} | {problem.maxiter} | {adam} | "
              f"{'not reached' if prodigy_iterations is None else prodigy_iterations} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
