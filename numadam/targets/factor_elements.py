"""What the factors' passes of every target compute per element (:mod:`numadam.core.factors`).

Written once, inlined into the CPU pass (:mod:`numadam.targets.cpu.factor_sums`)
and the CUDA one (:mod:`numadam.targets.cuda.factors`).
"""

from numba import njit


@njit(inline="always")
def effective(value, grad_scale, clip):
    """The gradient the rule steps with: scaled by ``grad_scale``, then clipped to [-clip, clip]
    (NaN stays NaN), in the dtype of ``grad_scale`` and ``clip``, as the update kernels form it."""
    value = value * grad_scale
    if value > clip:
        return clip
    if value < -clip:
        return -clip
    return value
