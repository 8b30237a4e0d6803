r"""Example 4: 1-D deconvolution by Tikhonov-regularized least squares, Adam against L-BFGS.

A piecewise signal :math:`x^\ast` on :math:`n` points is blurred by a Gaussian of
width :math:`\sigma` (the matrix :math:`A`, zero boundary) and observed with noise,
:math:`y = A x^\ast + \text{noise}`. The estimate minimizes

.. math::

    f(x) = \tfrac12 \lVert A x - y \rVert^2 + \tfrac{\alpha}{2} \lVert D x \rVert^2,
    \qquad \nabla f(x) = A^T (A x - y) + \alpha D^T D x,

with :math:`D` the forward difference (Tikhonov 1963 regularization of the
first derivative). It is solved three ways: ``numadam.minimize`` (Adam, its rate
decaying along a cosine), ``scipy.optimize.minimize(method="L-BFGS-B")`` as the
reference, and the normal equations :math:`(A^T A + \alpha D^T D) x = A^T y` as
the exact answer.

References: A. N. Tikhonov, "Solution of incorrectly formulated problems and the
regularization method", Soviet Math. Dokl. 4, 1963; R. H. Byrd, P. Lu, J. Nocedal
and C. Zhu, "A limited memory algorithm for bound constrained optimization", SIAM J.
Sci. Comput. 16, 1995 (L-BFGS-B).
"""

import time

import numpy as np

import numadam

from .report import ExampleResult, Table, report_points

TITLE = "deconvolution: Adam vs L-BFGS-B"


def blur_matrix(n, sigma):
    """The ``(n, n)`` matrix of convolution with a unit-sum Gaussian of width ``sigma``, zero outside.

    >>> A = blur_matrix(50, sigma=2.0)
    >>> round(float(A[25].sum()), 12), float(A[25, 25 + 9])
    (1.0, 0.0)
    """
    offsets = np.arange(n)[:, None] - np.arange(n)[None, :]
    half = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    matrix = np.exp(-0.5 * (offsets / sigma) ** 2) / kernel.sum()
    matrix[np.abs(offsets) > half] = 0
    return matrix


def true_signal(n):
    """Two boxes, a Gaussian bump and a step on ``n`` points of [0, 1]."""
    t = np.linspace(0, 1, n)
    return (
        1.0 * ((t > 0.10) & (t < 0.25))
        + 0.6 * ((t > 0.40) & (t < 0.45))
        + 0.8 * np.exp(-(((t - 0.70) / 0.05) ** 2))
        + 0.3 * (t > 0.85)
    )


def difference(x):
    """:math:`D x`, the ``n - 1`` forward differences."""
    return np.diff(x)


def difference_adjoint(r):
    """:math:`D^T r` for ``r`` of length ``n - 1``."""
    return -np.diff(r, prepend=0.0, append=0.0)


def make_problem(rng, n=400, sigma=4.0, noise=0.01, alpha=1e-2):
    """Return ``(objective, A, y, x_true, alpha)``; ``objective(x)`` gives :math:`(f(x), \\nabla f(x))`."""
    A = blur_matrix(n, sigma)
    x_true = true_signal(n)
    y = A @ x_true + noise * rng.standard_normal(n)

    def objective(x):
        residual = A @ x - y
        slope = difference(x)
        value = 0.5 * residual @ residual + 0.5 * alpha * slope @ slope
        return float(value), A.T @ residual + alpha * difference_adjoint(slope)

    return objective, A, y, x_true, alpha


def exact_solution(A, y, alpha):
    """Solve the normal equations :math:`(A^T A + \\alpha D^T D) x = A^T y` directly."""
    n = A.shape[1]
    D = np.diff(np.eye(n), axis=0)
    return np.linalg.solve(A.T @ A + alpha * D.T @ D, A.T @ y)


def run(quick=False, seed=0, maxiter=None, lr=0.1, out=print):
    """Deconvolve with Adam and with L-BFGS-B, print both; return an :class:`ExampleResult`.

    Adam's rate starts at ``lr`` and follows a cosine down to 0 over ``maxiter``
    iterations, which defaults to 2000, or 1000 with ``quick``.
    ``metrics`` holds ``adam_fun``, ``lbfgs_fun``, ``exact_fun``, the relative
    objective gap ``relative_gap`` = (adam - L-BFGS) / L-BFGS, the relative
    difference of the solutions ``solution_difference``, the times ``adam_seconds``
    and ``lbfgs_seconds``, and ``adam_success``.
    """
    from scipy.optimize import minimize as scipy_minimize

    maxiter = maxiter if maxiter is not None else (1000 if quick else 2000)
    rng = np.random.default_rng(seed)
    objective, A, y, x_true, alpha = make_problem(rng)
    n = len(x_true)
    x0 = np.zeros(n)
    out(
        f"n = {n} points, Gaussian blur, noise, alpha = {alpha:g}; "
        f"Adam lr={lr:g} with cosine decay over {maxiter} iterations"
    )
    schedule = numadam.schedules.CosineDecay(lr, total_steps=maxiter)
    start = time.perf_counter()
    adam = numadam.minimize(objective, x0, jac=True, lr=lr, schedule=schedule, maxiter=maxiter, gtol=1e-10)
    adam_seconds = time.perf_counter() - start
    lbfgs_history = [objective(x0)[0]]

    def record(intermediate_result):
        lbfgs_history.append(intermediate_result.fun)

    start = time.perf_counter()
    lbfgs = scipy_minimize(
        objective,
        x0,
        jac=True,
        method="L-BFGS-B",
        callback=record,
        options={"maxiter": 10000, "gtol": 1e-10, "ftol": 1e-15},
    )
    lbfgs_seconds = time.perf_counter() - start
    start = time.perf_counter()
    x_exact = exact_solution(A, y, alpha)
    exact_seconds = time.perf_counter() - start
    exact_fun = objective(x_exact)[0]

    adam_gap = np.asarray(adam.history, dtype=float) / exact_fun - 1
    lbfgs_gap = np.array(lbfgs_history) / exact_fun - 1
    table = Table(out, [("iteration", "d"), ("Adam f/f* - 1", ".3e")])
    for k in report_points(len(adam_gap)):
        table.row(k, adam_gap[k])

    methods = Table(out, [("method", "s", 23), ("objective f", ".8e", 14), ("iterations", "d"), ("seconds", ".3f")])
    methods.row("numadam.minimize (Adam)", adam.fun, adam.nit, adam_seconds)
    methods.row("scipy L-BFGS-B", lbfgs.fun, lbfgs.nit, lbfgs_seconds)
    methods.row("normal equations", exact_fun, 1, exact_seconds)
    relative_gap = (adam.fun - lbfgs.fun) / lbfgs.fun
    solution_difference = float(np.linalg.norm(adam.x - lbfgs.x) / np.linalg.norm(lbfgs.x))
    reconstruction_error = float(np.linalg.norm(adam.x - x_true) / np.linalg.norm(x_true))
    out(
        f"objective gap (Adam - L-BFGS) / L-BFGS = {relative_gap:.2e}; "
        f"|x_adam - x_lbfgs| / |x_lbfgs| = {solution_difference:.2e}; "
        f"Adam's reconstruction is {reconstruction_error:.1%} from the true signal; Adam: {adam.message}"
    )
    return ExampleResult(
        title=TITLE,
        xlabel="iteration",
        ylabel="f / f* - 1 (floored at 1e-16)",
        curves=[
            ("numadam.minimize (Adam)", np.arange(len(adam_gap)), np.maximum(adam_gap, 1e-16)),
            ("scipy L-BFGS-B", np.arange(len(lbfgs_gap)), np.maximum(lbfgs_gap, 1e-16)),
        ],
        seconds=adam_seconds + lbfgs_seconds + exact_seconds,
        summary=f"objective gap to L-BFGS {relative_gap:.1e}, solutions differ by {solution_difference:.1e}",
        metrics={
            "adam_fun": float(adam.fun),
            "lbfgs_fun": float(lbfgs.fun),
            "exact_fun": exact_fun,
            "relative_gap": float(relative_gap),
            "solution_difference": solution_difference,
            "adam_seconds": adam_seconds,
            "lbfgs_seconds": lbfgs_seconds,
            "adam_success": bool(adam.success),
        },
    )
