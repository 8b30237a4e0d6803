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
the exact answer. Adam runs twice: with the NumPy objective in ``minimize``'s
Python loop, and with the same objective written as a Numba function
(:func:`compiled_tikhonov`), which ``minimize`` compiles with its whole loop. On a smooth deterministic objective like this one, L-BFGS-B's
curvature model needs far fewer iterations; the example shows that Adam, with a
decaying rate, still reaches the same minimizer to many digits through the same
``fun(x) -> (f, grad)`` interface, the one it shares with stochastic problems.

References: A. N. Tikhonov, "Solution of incorrectly formulated problems and the
regularization method", Soviet Math. Dokl. 4, 1963; R. H. Byrd, P. Lu, J. Nocedal
and C. Zhu, "A limited memory algorithm for bound constrained optimization", SIAM J.
Sci. Comput. 16, 1995 (L-BFGS-B).
"""

import time

import numpy as np
from numba import njit

import numadam

from ..targets.disk_cache import cached_njit
from .report import ExampleResult, Table, report_points

TITLE = "deconvolution: Adam vs L-BFGS-B"


def gaussian_kernel(sigma):
    """Samples of a Gaussian of width ``sigma`` on ``-ceil(4 sigma) .. ceil(4 sigma)``, scaled to sum 1."""
    half = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    return kernel / kernel.sum()


def blur(x, kernel):
    """:math:`A x`: convolve with ``kernel``, zero outside, keeping ``len(x)`` points.

    For a symmetric kernel of odd length the blur is self-adjoint, :math:`A^T = A`.
    """
    return np.convolve(x, kernel, mode="same")


def blur_matrix(n, kernel):
    """:math:`A` as an ``(n, n)`` matrix, column by column.

    >>> A = blur_matrix(50, gaussian_kernel(2.0))
    >>> round(float(A[:, 25].sum()), 12), float(A[25 + 9, 25]), bool(np.allclose(A, A.T))
    (1.0, 0.0, True)
    """
    return np.stack([blur(unit, kernel) for unit in np.eye(n)], axis=1)


def true_signal(n):
    """Two boxes, a Gaussian bump and a step on ``n`` points of [0, 1]."""
    return signal_at(np.linspace(0, 1, n))


def signal_at(t):
    """:func:`true_signal` at the points ``t`` (elementwise: NumPy or Dask arrays)."""
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
    """Return ``(objective, kernel, y, x_true, alpha)``; ``objective(x)`` gives :math:`(f(x), \\nabla f(x))`.

    The objective applies :math:`A` by convolution, :math:`O(n\\sigma)` work that wakes
    no BLAS thread pool: with matrix products here, NumPy's and SciPy's separate
    OpenBLAS pools competed for the cores of a loaded machine and made the timing
    of L-BFGS-B erratic (from 0.01 s to 0.9 s for the same 111 iterations).
    """
    kernel = gaussian_kernel(sigma)
    x_true = true_signal(n)
    y = blur(x_true, kernel) + noise * rng.standard_normal(n)
    return tikhonov_objective(y, kernel, alpha), kernel, y, x_true, alpha


def tikhonov_objective(y, kernel, alpha):
    """``objective(x) -> (f(x), grad f(x))`` for the data ``y``."""

    def objective(x):
        residual = blur(x, kernel) - y
        slope = difference(x)
        value = 0.5 * np.dot(residual, residual) + 0.5 * alpha * np.dot(slope, slope)
        return float(value), blur(residual, kernel) + alpha * difference_adjoint(slope)

    return objective


@njit(inline="always")
def _blurred_at(values, kernel, i):
    """``np.convolve(values, kernel, mode="same")[i]`` written out (zero outside)."""
    total, half = 0.0, (kernel.size - 1) // 2
    for j in range(kernel.size):
        k = i + half - j
        if 0 <= k < values.size:
            total += values[k] * kernel[j]
    return total


@cached_njit()
def compiled_tikhonov(x, kernel, y, alpha):
    """:func:`tikhonov_objective`'s ``(f(x), grad f(x))`` as a Numba function of ``(x, kernel, y, alpha)``,
    in loops (the blur is self-adjoint: :math:`A^T = A`)."""
    n = x.size
    residual = np.empty(n)
    for i in range(n):
        residual[i] = _blurred_at(x, kernel, i) - y[i]
    value = 0.0
    for i in range(n):
        value += residual[i] * residual[i]
    slopes = 0.0
    for i in range(n - 1):
        slopes += (x[i + 1] - x[i]) * (x[i + 1] - x[i])
    grad = np.empty(n)
    for i in range(n):
        left = x[i] - x[i - 1] if i > 0 else 0.0  # D^T D x: minus the change of the slopes at i
        right = x[i + 1] - x[i] if i < n - 1 else 0.0
        grad[i] = _blurred_at(residual, kernel, i) + alpha * (left - right)
    return 0.5 * value + 0.5 * alpha * slopes, grad


def exact_solution(kernel, y, alpha):
    """Solve the normal equations :math:`(A^T A + \\alpha D^T D) x = A^T y` directly."""
    n = len(y)
    A = blur_matrix(n, kernel)
    D = np.diff(np.eye(n), axis=0)
    return np.linalg.solve(A.T @ A + alpha * D.T @ D, A.T @ y)


def best_of(solve, repeats):
    """Call ``solve()`` ``repeats`` times; return its last result and the shortest wall time.

    The shortest of a few runs is the least disturbed by other work on the machine.
    """
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = solve()
        seconds.append(time.perf_counter() - start)
    return result, min(seconds)


def run(quick=False, seed=0, maxiter=None, lr=0.1, repeats=3, out=print):
    """Deconvolve with Adam and with L-BFGS-B, print both; return an :class:`ExampleResult`.

    Adam's rate starts at ``lr`` and follows a cosine down to 0 over ``maxiter``
    iterations, which defaults to 2000, or 1000 with ``quick``.
    ``metrics`` holds ``adam_fun``, ``lbfgs_fun``, ``exact_fun``, the relative
    objective gap ``relative_gap`` = (adam - L-BFGS) / L-BFGS, the relative
    difference of the solutions ``solution_difference``, the times ``adam_seconds``
    and ``lbfgs_seconds`` (each the best of ``repeats`` solves), and ``adam_success``.
    """
    from scipy.optimize import minimize as scipy_minimize

    maxiter = maxiter if maxiter is not None else (1000 if quick else 2000)
    rng = np.random.default_rng(seed)
    objective, kernel, y, x_true, alpha = make_problem(rng)
    n = len(x_true)
    x0 = np.zeros(n)
    out(
        f"n = {n} points, Gaussian blur, noise, alpha = {alpha:g}; "
        f"Adam lr={lr:g} with cosine decay over {maxiter} iterations"
    )
    example_start = time.perf_counter()

    def solve_with_adam():
        schedule = numadam.schedules.CosineDecay(lr, total_steps=maxiter)
        return numadam.minimize(objective, x0, jac=True, lr=lr, schedule=schedule, maxiter=maxiter, gtol=1e-10)

    def solve_compiled():
        schedule = numadam.schedules.CosineDecay(lr, total_steps=maxiter)
        return numadam.minimize(compiled_tikhonov, x0, args=(kernel, y, alpha), jac=True, lr=lr, schedule=schedule,
                                maxiter=maxiter, gtol=1e-10, compiled=True)

    def solve_with_lbfgs():
        history = [objective(x0)[0]]

        def record(intermediate_result):
            history.append(intermediate_result.fun)

        options = {"maxiter": 10000, "gtol": 1e-10, "ftol": 1e-15}
        return scipy_minimize(objective, x0, jac=True, method="L-BFGS-B", callback=record, options=options), history

    x_exact, exact_seconds = best_of(lambda: exact_solution(kernel, y, alpha), repeats)
    adam, adam_seconds = best_of(solve_with_adam, repeats)
    solve_compiled()  # compiled (or loaded from the disk cache) before it is timed
    compiled, compiled_seconds = best_of(solve_compiled, repeats)
    (lbfgs, lbfgs_history), lbfgs_seconds = best_of(solve_with_lbfgs, repeats)
    exact_fun = objective(x_exact)[0]

    adam_gap = np.asarray(adam.history, dtype=float) / exact_fun - 1
    lbfgs_gap = np.array(lbfgs_history) / exact_fun - 1
    table = Table(out, [("iteration", "d"), ("Adam f/f* - 1", ".3e")])
    for k in report_points(len(adam_gap)):
        table.row(k, adam_gap[k])

    out(f"times: best of {repeats} runs")
    methods = Table(out, [("method", "s", 23), ("objective f", ".8e", 14), ("iterations", ""), ("seconds", ".4f")])
    methods.row("numadam.minimize (Adam)", adam.fun, adam.nit, adam_seconds)
    methods.row("the same, compiled", compiled.fun, compiled.nit, compiled_seconds)
    methods.row("scipy L-BFGS-B", lbfgs.fun, lbfgs.nit, lbfgs_seconds)
    methods.row("normal equations", exact_fun, "-", exact_seconds)
    relative_gap = (adam.fun - lbfgs.fun) / lbfgs.fun
    solution_difference = float(np.linalg.norm(adam.x - lbfgs.x) / np.linalg.norm(lbfgs.x))
    reconstruction_error = float(np.linalg.norm(adam.x - x_true) / np.linalg.norm(x_true))
    out(f"Adam: {adam.message}")
    out(
        f"objective gap (Adam - L-BFGS) / L-BFGS = {relative_gap:.2e}; "
        f"|x_adam - x_lbfgs| / |x_lbfgs| = {solution_difference:.2e}"
    )
    out(f"|x_adam - x_true| / |x_true| = {reconstruction_error:.1%} (the blur and the noise cost this much)")
    compiled_difference = float(np.linalg.norm(compiled.x - adam.x) / np.linalg.norm(adam.x))
    out(f"compiled: the objective as a Numba function, the whole solve in machine code, "
        f"{adam_seconds / compiled_seconds:.1f}x faster; |x_compiled - x_adam| / |x_adam| = {compiled_difference:.1e} "
        "(the loops add in another order than np.convolve)")
    return ExampleResult(
        title=TITLE,
        xlabel="iteration",
        ylabel="f / f* - 1 (floored at 1e-16)",
        curves=[
            ("numadam.minimize (Adam)", np.arange(len(adam_gap)), np.maximum(adam_gap, 1e-16)),
            ("scipy L-BFGS-B", np.arange(len(lbfgs_gap)), np.maximum(lbfgs_gap, 1e-16)),
        ],
        seconds=time.perf_counter() - example_start,
        summary=(
            f"gap to L-BFGS {relative_gap:.1e}, solutions differ by {solution_difference:.1e}; "
            f"Adam {adam_seconds:.3f} s (compiled {compiled_seconds:.3f} s), L-BFGS-B {lbfgs_seconds:.3f} s"
        ),
        metrics={
            "adam_fun": float(adam.fun),
            "lbfgs_fun": float(lbfgs.fun),
            "exact_fun": exact_fun,
            "relative_gap": float(relative_gap),
            "solution_difference": solution_difference,
            "adam_seconds": adam_seconds,
            "lbfgs_seconds": lbfgs_seconds,
            "adam_success": bool(adam.success),
            "compiled": bool(compiled.compiled),
            "compiled_seconds": compiled_seconds,
            "compiled_difference": compiled_difference,
        },
    )
