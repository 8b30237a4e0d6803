"""The solver's array measures (numadam.solver.rules): :math:`\\max_i |a_i|` taken as an integer maximum
of the magnitudes' bits, against NumPy's float maximum, over the values where the two could part:
NaN, infinities, signed zeros, subnormals, the largest finite numbers, both dtypes and every length."""

import math

import numpy as np
import pytest

from numadam.solver import rules

SPECIALS = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 5e-324, -5e-324, 1e-40, -1e-40, 1.7e308, -3.4e38, 2.5, -2.5]


def reference(values):
    """:math:`\\max_i |a_i|` in float64 from the definition: NaN if any element is NaN, 0 when empty."""
    magnitudes = np.abs(np.asarray(values, np.float64))
    if magnitudes.size == 0:
        return 0.0
    return math.nan if np.isnan(magnitudes).any() else float(magnitudes.max())


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def arrays(dtype):
    rng = np.random.default_rng(7)
    with np.errstate(over="ignore"):  # (float32: the large ones round to inf)
        specials = np.array(SPECIALS, np.float64).astype(dtype)
    found = [np.zeros(0, dtype), specials]
    for size in (1, 3, 8, 9, 17, 64, 1000):
        found.append((rng.standard_normal(size) * 10.0 ** rng.integers(-30, 30, size)).astype(dtype))
        mixed = rng.choice(specials, size)
        found.append(mixed)
        for special in (np.nan, -np.nan, np.inf, -np.inf):
            marked = mixed.copy()
            marked[rng.integers(size)] = special
            found.append(marked)
    return found


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_largest_magnitude_is_numpy_s_largest_absolute_value(dtype):
    for values in arrays(dtype):
        assert same(rules.largest_magnitude(values), reference(values)), values


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_largest_difference_is_the_largest_absolute_difference_in_the_dtype(dtype):
    for values in arrays(dtype):
        shifted = np.roll(values, 1)
        with np.errstate(invalid="ignore", over="ignore"):
            expected = reference(values - shifted)  # each difference rounded to the dtype, as NumPy's
        assert same(rules.largest_difference(values, shifted), expected), values


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_projected_peak_is_the_largest_projected_step(dtype):
    for values in arrays(dtype):
        x = np.clip(np.nan_to_num(np.roll(values, 3), posinf=1.0, neginf=-1.0), -2, 2).astype(dtype)
        low, high = np.full_like(x, -1.5), np.full_like(x, 1.0)
        with np.errstate(invalid="ignore", over="ignore"):
            moved = x - values
            clipped = np.where(moved < low, low, np.where(moved > high, high, moved))
            expected = reference(x - clipped)
        assert same(rules.projected_peak(x, values, low, high), expected), values
