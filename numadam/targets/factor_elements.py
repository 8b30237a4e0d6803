"""What the factors' passes of every target compute per element (:mod:`numadam.core.factors`).

Written once, inlined into the CPU pass (:mod:`numadam.targets.cpu.factor_sums`)
and the CUDA one (:mod:`numadam.targets.cuda.factors`).
"""

import math

from numba import njit

from ..core.clip_math import clamped


@njit(inline="always")
def effective(value, grad_scale, clip):
    """The gradient the rule steps with: scaled by ``grad_scale``, then clipped to [-clip, clip]
    (:func:`~numadam.core.clip_math.clamped`: NaN stays NaN), in the dtype of ``grad_scale`` and
    ``clip``, as the update kernels form it."""
    return clamped(value * grad_scale, clip)


@njit(inline="always")
def row_scale(mean, row):
    """A matrix row's scale :math:`a_r = \\sqrt{\\bar r / r_r}` (``mean`` already floored): with the
    column's, what Adafactor's rule multiplies the gradient by (:mod:`numadam.families.adafactor`)."""
    return math.sqrt(mean / row)


@njit(inline="always")
def column_scale(one, column):
    """A matrix column's scale :math:`b_c = 1 / \\sqrt{c_c}` (``one``: 1 in the factors' dtype)."""
    return one / math.sqrt(column)
