"""An objective in a file of its own, so that a compiled ``minimize`` of it is cached on disk and a new
process finds it again (see :mod:`cache_races`)."""

import numpy as np
from numba import njit


@njit
def bowl(x):
    """:math:`\\sum_i (i + 1)(x_i - 0.3)^2` and its gradient, in float64 whatever ``x``'s dtype."""
    value = 0.0
    grad = np.empty(x.size)
    for i in range(x.size):
        gap = np.float64(x[i]) - 0.3
        value += (i + 1.0) * gap * gap
        grad[i] = 2.0 * (i + 1.0) * gap
    return value, grad
