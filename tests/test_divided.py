"""``element_math.divided``: a rule's quotient by a step's constant, the same bits as the division.

On Numba's CPU target a float32 quotient is a float64 product with the
constant's float64 reciprocal, rounded to float32. Each test compares it with
NumPy's float32 division, bit for bit, over float32 numbers taken as bit
patterns: whole binades, the subnormals, the largest numbers, zeros,
infinities and NaN; the full tier takes every one of the 2**32 patterns.
"""

import numba
import numpy as np
import pytest

from arrays import tiered
from numadam.core.element_math import divided

#: Constants as LAMB meets them (bias corrections 1 - beta**t in float32, at t = 1 and later),
#: their roots, the end points 1 and the smallest normal number, and numbers above 1.
CONSTANTS = [np.float32(value) for value in
             (1 - 0.9, 1 - 0.999, 1 - 0.9**7, 1 - 0.999**123, 1 - 0.999**5000, np.sqrt(1 - 0.999),
              0.7071068, 1.0, 2.0**-126, 3.0, 6.0, 1e10)] + [np.float32(-0.3)]


@numba.njit(parallel=True, error_model="numpy")
def _quotients(values, c):
    """``divided(x, c)`` for each float32 ``x`` of ``values``, in Numba's CPU code."""
    out = np.empty(values.size, np.float32)
    for i in numba.prange(values.size):
        out[i] = divided(values[i], c)
    return out


@numba.njit(parallel=True, error_model="numpy")
def _mismatches(first, last, c):
    """How many float32 bit patterns in ``first:last`` whose ``divided(x, c)`` differs in its
    bits from ``x / c`` (two NaNs count as the same)."""
    chunks = 64
    counts = np.zeros(chunks, np.int64)
    for chunk in numba.prange(chunks):
        start = first + (last - first) * chunk // chunks
        stop = first + (last - first) * (chunk + 1) // chunks
        for pattern in range(start, stop):
            x = np.uint32(pattern).view(np.float32)
            quotient = np.float32(divided(x, c))
            exact = np.float32(x / c)
            if quotient.view(np.uint32) != exact.view(np.uint32) and not (quotient != quotient
                                                                        and exact != exact):
                counts[chunk] += 1
    return counts.sum()


def _patterns():
    """Bit patterns of positive and negative float32 numbers: the binades around 1, 2**-126
    and 2**-100, the subnormals' first 2**20, the largest 2**20 finite numbers, the specials."""
    def binade(exponent):
        low = np.uint32(exponent + 127) << np.uint32(23)
        return np.arange(low, low + (1 << 23), dtype=np.uint32)

    specials = np.array([0, 1, 0x7F800000, 0x7FC00000, 0x7F7FFFFF, 0x00800000], np.uint32)
    positive = np.concatenate([binade(0), binade(-1), binade(-126), binade(-100), binade(100),
                               np.arange(1 << 20, dtype=np.uint32),
                               np.arange(0x7F800000 - (1 << 20), 0x7F800000, dtype=np.uint32), specials])
    return np.concatenate([positive, positive | np.uint32(0x80000000)])


@pytest.mark.parametrize("c", tiered(CONSTANTS, lambda c: c in CONSTANTS[:3]), ids=repr)
def test_the_float32_quotient_has_the_bits_of_the_division(c):
    bits = _patterns()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        expected = (bits.view(np.float32) / c).astype(np.float32)
    quotients = _quotients(bits.view(np.float32), c)
    same = (quotients.view(np.uint32) == expected.view(np.uint32)) | (np.isnan(quotients) & np.isnan(expected))
    assert same.all(), f"x / {c!r} differs for x = {bits.view(np.float32)[~same][:5]}"


@pytest.mark.slow
@pytest.mark.parametrize("c", [np.float32(1 - 0.9), np.float32(1 - 0.999), np.float32(1 - 0.999**123)], ids=repr)
def test_every_float32_quotient_has_the_bits_of_the_division(c):
    assert _mismatches(0, 1 << 32, c) == 0


def test_a_reciprocal_product_is_not_a_quotient():
    """The comparison can fail: a float32 reciprocal (rounded twice) misses many quotients."""
    c = np.float32(1 - 0.9)
    numbers = _patterns().view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        wrong, exact = numbers * (np.float32(1) / c), numbers / c
    assert (wrong.view(np.uint32) != exact.view(np.uint32)).any()


def test_other_types_divide():
    """float64 numbers, and a float32 number over a float64 constant, are divided as written."""
    @numba.njit
    def quotient(x, c):
        return divided(x, c)

    assert quotient(1.0, 3.0) == 1.0 / 3.0
    assert quotient(np.float32(1), 3.0) == np.float32(1) / 3.0
    assert divided(np.float32(1), np.float32(3)) == np.float32(1) / np.float32(3)
