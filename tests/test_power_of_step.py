"""numadam.core.element_math.power_of_step: the bits of ``beta**step``, with +0 past the certain underflow."""

import numpy as np
import pytest
from numba import njit

from numadam.core.element_math import ZERO_POWER_BEYOND, power_of_step

#: The betas of the families' defaults and their extremes: 0, tiny, near 1, 1, and negative ones
#: (which always take ``pow``).
BETAS = [0.0, 1e-300, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0 - 2.0**-20, 1.0, -0.5, -0.9]


def _steps(beta):
    """Steps from 1 on, through the subnormal powers and past the threshold of ``beta``."""
    steps = set(range(1, 200)) | {10**k for k in range(7)}
    if 0.0 < beta < 1.0:
        subnormal_from = int(-1022 / np.log2(beta))  # beta**t < 2**-1022 from about here
        zero_from = int(-1075 / np.log2(beta))
        threshold = int(ZERO_POWER_BEYOND / (1.0 - beta))
        for middle in (subnormal_from, zero_from, threshold):
            steps |= set(range(max(1, middle - 40), middle + 40))
    return sorted(steps)


@njit
def _compiled(beta, steps, out):
    for i in range(steps.size):
        out[i] = power_of_step(beta, steps[i])


def _bits(values):
    return np.asarray(values, np.float64).view(np.uint64)


@pytest.mark.parametrize("beta", BETAS, ids=repr)
def test_the_power_has_the_bits_of_beta_to_the_step(beta):
    steps = _steps(beta)
    expected = _bits([beta ** float(t) for t in steps])
    assert np.array_equal(_bits([power_of_step(beta, t) for t in steps]), expected)  # int steps, in Python
    assert np.array_equal(_bits([power_of_step(beta, float(t)) for t in steps]), expected)
    for dtype in (np.float64, np.int64):  # numadam.jit passes float(step); other callers an integer
        out = np.empty(len(steps))
        _compiled(beta, np.array(steps, dtype), out)
        assert np.array_equal(_bits(out), expected), f"compiled with {dtype.__name__} steps"


def test_the_threshold_lies_past_every_subnormal_power():
    """Where it returns +0 without ``pow``, ``pow`` has long underflowed: the subnormal
    powers just before (0.9**7000 and on) are still computed, and match."""
    for beta in (0.5, 0.9, 0.99, 0.999):
        first = int(np.ceil(ZERO_POWER_BEYOND / (1.0 - beta)))
        assert beta ** float(first - 1) == 0.0 and power_of_step(beta, first) == 0.0
    assert 0.0 < power_of_step(0.9, 7000) < np.finfo(np.float64).tiny  # subnormal, from pow
