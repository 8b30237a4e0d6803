r"""Example 5: a decay rate per pixel of an image stack, every pixel's fit at once.

Each pixel of a 32 x 32 stack of 40 frames decays as :math:`y(t) = a e^{-kt} + c`
plus noise, with its own :math:`a, k, c`. ``numadam.minimize_batch`` fits all
1024 pixels with Adam: an ``@numba.njit`` objective (the mean squared residual
and its gradient), so the batch runs the compiled solve per pixel over Numba's
threads. Beside it, what a user writes without it: a Python loop of
``scipy.optimize.least_squares`` fits, one per pixel (Levenberg-Marquardt on the
residuals). Both should find the same rates; the report prints their times and
the largest difference.
"""

import time

import numba
import numpy as np

import numadam

from ..bench.batch import decay
from .report import ExampleResult

TITLE = "decay rate per pixel (minimize_batch)"


#: The mean squared residual of :math:`a e^{-kt} + c` and its gradient in ``(a, k, c)`` (an ``@njit``
#: function: ``decay_misfit(x, t, y)``), the one ``numadam bench --batch`` times.
decay_misfit = decay


def make_stack(rng, side=32, frames=40, noise=0.01):
    """``(t, stack, truth)``: frame times, a ``(side, side, frames)`` stack and each pixel's ``(a, k, c)``."""
    t = np.linspace(0.0, 5.0, frames)
    truth = np.stack([rng.uniform(1.0, 2.0, (side, side)), rng.uniform(0.3, 1.5, (side, side)),
                      rng.uniform(-0.1, 0.1, (side, side))], axis=-1)
    stack = truth[..., :1] * np.exp(-truth[..., 1:2] * t) + truth[..., 2:] + noise * rng.standard_normal(
        (side, side, frames))
    return t, stack, truth


def scipy_fits(t, pixels, start):
    """Each pixel's ``(a, k, c)`` by ``scipy.optimize.least_squares``, one call per pixel."""
    from scipy.optimize import least_squares

    def residual(x, y):
        return x[0] * np.exp(-x[1] * t) + x[2] - y

    def jacobian(x, y):
        e = np.exp(-x[1] * t)
        return np.column_stack([e, -x[0] * t * e, np.ones_like(t)])

    return np.array([least_squares(residual, start, jac=jacobian, args=(y,), method="lm").x for y in pixels])


def run(quick=False, seed=0, out=print):
    """Fit every pixel with ``minimize_batch`` and with a loop of SciPy fits; return an
    :class:`ExampleResult` (``metrics``: the largest rate error of each, their largest difference,
    the times and whether the batch compiled)."""
    side = 16 if quick else 32
    rng = np.random.default_rng(seed)
    t, stack, truth = make_stack(rng, side=side)
    pixels = stack.reshape(-1, t.size)
    start = np.array([1.0, 1.0, 0.0])
    out(f"{side} x {side} pixels, {t.size} frames each; Adam lr=0.05 from a=1, k=1, c=0, up to 4000 iterations")
    options = dict(args=(t,), batched_args=(pixels,), jac=True, lr=0.05, maxiter=4000, gtol=1e-8)
    numadam.minimize_batch(decay_misfit, start, **{**options, "batched_args": (pixels[:2],), "maxiter": 2})
    began = time.perf_counter()
    fits = numadam.minimize_batch(decay_misfit, start, **options)
    batch_seconds = time.perf_counter() - began
    began = time.perf_counter()
    reference = scipy_fits(t, pixels, start)
    scipy_seconds = time.perf_counter() - began
    rate = truth[..., 1].reshape(-1)
    metrics = {
        "compiled": bool(fits.compiled),
        "converged": float(fits.success.mean()),
        "batch_rate_error": float(np.abs(fits.x[:, 1] - rate).max()),
        "scipy_rate_error": float(np.abs(reference[:, 1] - rate).max()),
        "rate_difference": float(np.abs(fits.x[:, 1] - reference[:, 1]).max()),
        "batch_seconds": batch_seconds,
        "scipy_seconds": scipy_seconds,
    }
    out(f"minimize_batch: {batch_seconds * 1e3:.1f} ms for {len(pixels)} fits on {numba.get_num_threads()} "
        f"thread(s) (compiled: {fits.compiled}; {metrics['converged']:.0%} met gtol, median "
        f"{int(np.median(fits.nit))} iterations)")
    out(f"a loop of scipy.optimize.least_squares: {scipy_seconds * 1e3:.1f} ms")
    out(f"largest error of k against the truth: batch {metrics['batch_rate_error']:.2e}, "
        f"scipy {metrics['scipy_rate_error']:.2e}; largest difference between them {metrics['rate_difference']:.2e}")
    median = int(np.argsort(fits.nit)[len(fits.nit) // 2])
    history = fits.history[median, :fits.nit[median] + 1]
    return ExampleResult(
        title=TITLE,
        xlabel="Adam iteration (the median pixel)",
        ylabel="mean squared residual",
        curves=[("minimize_batch", np.arange(history.size), history)],
        seconds=batch_seconds + scipy_seconds,
        summary=(f"{len(pixels)} fits in {batch_seconds * 1e3:.0f} ms (SciPy loop {scipy_seconds * 1e3:.0f} ms), "
                 f"rates within {metrics['rate_difference']:.1e} of SciPy's"),
        metrics=metrics,
    )
