r"""The stop rules of :func:`numadam.minimize` and the array measures they read, written once.

:func:`stop_status` is plain Python: the Python loop calls it as it is and the
compiled solve (:mod:`numadam.solver.compiled`) compiles the same function, so
both decide on the same floats in the same order. The array helpers below are
Numba functions over real NumPy arrays; the Python loop clips real NumPy
gradients with them too, so its clipped gradients are the compiled solve's, bit
for bit.
"""

import math

import numpy as np
from numba import njit

from ..core.clip_math import clamped, norm_and_scale, sum_is_final
from ..core.magnitudes import magnitude_bits, peak_magnitude, peak_of_bits, zero_bits
from ..targets.disk_cache import cached_njit

#: The statuses of a solve; 0, 2 and 3 are successes. ``NONE``: no rule fired yet.
GTOL, MAXITER, FTOL, XTOL, NON_FINITE, CALLBACK, NONE = 0, 1, 2, 3, 4, 99, -1
SUCCESS = (GTOL, FTOL, XTOL)

def stop_status(nit, value, previous, grad_peak, x_change_peak, x_peak, quiet_f, quiet_x, gtol, ftol, xtol,
                patience, maxiter):
    r"""``(status, quiet_f, quiet_x)`` after iterate ``nit``: the first rule that fires, in order, or
    :data:`NONE`; ``quiet_f``/``quiet_x`` count the quiet iterations in a row.

    ``value``/``previous`` are :math:`f_k, f_{k-1}`; ``x_change_peak`` and ``x_peak``
    are :math:`\|x_k - x_{k-1}\|_\infty` and :math:`\|x_k\|_\infty` (read only with ``xtol``);
    ``ftol``/``xtol`` below zero are off.
    """
    if grad_peak <= gtol:
        return GTOL, quiet_f, quiet_x
    if nit > 0 and ftol >= 0.0:
        quiet_f = quiet_f + 1 if abs(value - previous) <= ftol * max(abs(value), abs(previous), 1.0) else 0
        if quiet_f >= patience:
            return FTOL, quiet_f, quiet_x
    if nit > 0 and xtol >= 0.0:
        quiet_x = quiet_x + 1 if x_change_peak <= xtol * max(x_peak, 1.0) else 0
        if quiet_x >= patience:
            return XTOL, quiet_f, quiet_x
    if nit == maxiter:
        return MAXITER, quiet_f, quiet_x
    return NONE, quiet_f, quiet_x


def stop_message(status, grad_peak, gtol, ftol, xtol, patience, maxiter):
    """The result's ``message`` for a rule's ``status``."""
    if status == GTOL:
        return f"converged: max |gradient| = {grad_peak:.3g} <= gtol = {gtol:g}"
    if status == FTOL:
        return f"converged: the relative change of fun stayed <= ftol = {ftol:g} for {patience} iterations"
    if status == XTOL:
        return f"converged: the relative step stayed <= xtol = {xtol:g} for {patience} iterations"
    return (f"stopped: maxiter = {maxiter} iterations reached with max |gradient| = {grad_peak:.3g} "
            f"> gtol = {gtol:g}")


def non_finite_message(value, iteration):
    """What stopped a solve at ``iteration``: a non-finite ``value``, or else the gradient."""
    what = "fun returned {value}" if not math.isfinite(value) else "the gradient holds NaN or infinity"
    return f"stopped: {what.format(value=value)} at iteration {iteration}"


@cached_njit()
def largest_magnitude(array):
    r""":math:`\max_i |a_i|` of a real array as a float64; NaN if any element is NaN
    (:func:`~numadam.core.magnitudes.peak_magnitude`)."""
    return peak_magnitude(array)


@cached_njit()
def projected_peak(x, grad, low, high):
    r""":math:`\|x - \operatorname{clip}(x - g, l, u)\|_\infty` (L-BFGS-B's projected gradient), each
    operation in the arrays' dtype as NumPy's; NaN if any element is NaN."""
    top = zero_bits(x)
    for i in range(x.size):
        moved = x[i] - grad[i]
        if moved < low[i]:
            moved = low[i]
        elif moved > high[i]:
            moved = high[i]
        top = max(top, magnitude_bits(x[i] - moved))
    return peak_of_bits(top)


# Not cached on disk (these two): they inline numadam.core.clip_math, which Numba's cache would not
# watch. The compiled solve that calls them is cached with every numadam source in its key.
@njit
def clip_value_in_place(grad, limit):
    r""":math:`g_i \leftarrow \min(\max(g_i, -c), c)` (:func:`~numadam.core.clip_math.clamped`) with
    :math:`c` rounded to ``grad``'s dtype, as :func:`numadam.clip_by_value`."""
    high = grad.dtype.type(limit)
    for i in range(grad.size):
        grad[i] = clamped(grad[i], high)


@njit
def clip_norm_in_place(grad, limit):
    r"""Scale ``grad`` by :math:`\min(1, c/\|g\|_2)` (:func:`~numadam.core.clip_math.norm_and_scale`),
    as :func:`numadam.clip_by_norm`: the squares summed in float64, in order, again after dividing
    by the largest magnitude where they could overflow or underflow
    (:func:`~numadam.core.clip_math.sum_is_final`), and the factor rounded once to the dtype. The
    gradient is finite (the solve checked it)."""
    total = 0.0
    for value in grad:
        total += np.float64(value) * np.float64(value)
    largest = 1.0
    if not sum_is_final(total, grad.itemsize < 8):
        largest = largest_magnitude(grad)
        if largest == 0.0:
            return
        total = 0.0
        for value in grad:
            scaled = np.float64(value) / largest
            total += scaled * scaled
    scale = norm_and_scale(limit, largest, total)[1]
    if scale == 1.0:  # nothing to scale: the norm is within the limit
        return
    factor = grad.dtype.type(scale)
    for i in range(grad.size):
        grad[i] = grad[i] * factor


@cached_njit()
def largest_difference(x, previous):
    r""":math:`\|x - x_{prev}\|_\infty`, each difference in the arrays' dtype (as NumPy's ``x - previous``)."""
    top = zero_bits(x)
    for i in range(x.size):
        top = max(top, magnitude_bits(x[i] - previous[i]))
    return peak_of_bits(top)


@cached_njit()
def project(x, low, high):
    """Each element of ``x`` moved into ``[low, high]``, as the optimizer's bounds stage does after the rule."""
    for i in range(x.size):
        if x[i] < low[i]:
            x[i] = low[i]
        elif x[i] > high[i]:
            x[i] = high[i]


@cached_njit()
def copy_into(target, source):
    """``target[i] = source[i]`` over two flat arrays of one size (faster than a slice copy in Numba)."""
    for i in range(target.size):
        target[i] = source[i]
