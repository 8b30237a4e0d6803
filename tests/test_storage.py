"""Storage conversions: 16-bit formats widened to float32 exactly and narrowed by rounding to nearest even.

Compared, every bit pattern of the 16-bit formats and many float32 values, with
NumPy's float16 and ml_dtypes' bfloat16.
"""

import numpy as np
import pytest
from numba import njit

from numadam._kernels.primitives import INTERPRETED, cpu_primitives
from numadam._kernels.storage import conversions

ml_dtypes = pytest.importorskip("ml_dtypes")


def compiled(code):
    widen, narrow = conversions(code, cpu_primitives())

    @njit
    def widen_all(bits):
        out = np.empty(bits.size, np.float32)
        for i in range(bits.size):
            out[i] = widen(bits[i])
        return out

    @njit
    def narrow_all(values):
        out = np.empty(values.size, np.uint16)
        for i in range(values.size):
            out[i] = narrow(values[i])
        return out

    return widen_all, narrow_all


FORMATS = {"f2": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16)}


def float32_cases():
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.standard_normal(200_000) * 10.0 ** rng.integers(-8, 8, 200_000),
        rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65520.0, 65519.99, 6e-8, 3e-8, 2.98e-8,
                  np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1.0 + 2**-8, 1.0 + 3 * 2**-9], np.float32),
    ])
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(np.float32)


@pytest.mark.parametrize("code", FORMATS)
def test_widening_is_exact_for_every_bit_pattern(code):
    bits = np.arange(2**16, dtype=np.uint16)
    expected = bits.view(FORMATS[code]).astype(np.float32)
    widen_all, _ = compiled(code)
    np.testing.assert_array_equal(widen_all(bits), expected)


@pytest.mark.parametrize("code", FORMATS)
def test_narrowing_rounds_to_nearest_even_as_numpy_and_ml_dtypes(code):
    values = float32_cases()
    with np.errstate(over="ignore"):
        expected = values.astype(FORMATS[code])
    _, narrow_all = compiled(code)
    actual = narrow_all(values).view(FORMATS[code])
    nan = np.isnan(values)
    np.testing.assert_array_equal(actual[~nan].view(np.uint16), expected[~nan].view(np.uint16))
    assert np.isnan(actual[nan].astype(np.float32)).all()


@pytest.mark.parametrize("code", FORMATS)
def test_the_simulators_conversions_agree(code):
    """The CUDA simulator converts in Python (numadam._kernels.primitives.INTERPRETED)."""
    widen, narrow = conversions(code, INTERPRETED)
    values = float32_cases()[:2000]
    for value in values[np.isfinite(values)]:
        assert narrow(np.float32(value)) == np.float32(value).astype(FORMATS[code]).view(np.uint16)
    for bits in range(0, 2**16, 97):
        widened, expected = widen(np.uint16(bits)), np.uint16(bits).view(FORMATS[code]).astype(np.float32)
        assert widened == expected or (np.isnan(widened) and np.isnan(expected))
