"""The clipping formulas of numadam.core.clip_math, one function each: the same bits on every path.

The clamp runs interpreted (``py_func``: the public functions' scalars, the
simulator), compiled into a vectorized loop (the kernels, the solver), and over
whole arrays (``clamp_in_place``: the public ``clip_by_value``); the norm's scale
runs interpreted (the host's decision, the public norm clippers) and compiled
(the CPU and CUDA kernels' decision, the solver). Each pair must agree bit for
bit, NaN, infinities and signed zeros included; and the optimizers' global-norm
scale decided inside the CPU kernel must be the host's.
"""

import math

import numpy as np
import pytest
from numba import njit

import numadam
from numadam.core import clip_math
from numadam.core.pipeline import checked_policies, skip_or_scale
from numadam.engine.local import LocalEngine

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-30, -1e-30, 0.25, -0.25, 0.7, -0.7, 3.0, -3.0, 6e4, -6e4]
LIMITS = [0.0, 1e-3, 0.25, 0.7, 1e4]


@njit
def clamped_loop(values, limit, out):
    """The compiled clamp over a contiguous array: the kernels' vectorized loop shape."""
    for i in range(values.size):
        out[i] = clip_math.clamped(values[i], limit)


@njit
def compiled_norm_and_scale(limit, largest, scaled_sum):
    return clip_math.norm_and_scale(limit, largest, scaled_sum)


def bit_pattern(array):
    return array.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[array.itemsize])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("limit", LIMITS)
def test_the_clamp_gives_the_same_bits_interpreted_compiled_and_over_arrays(dtype, limit):
    values = np.tile(np.array(SPECIAL, dtype), 37)  # long enough for the vector loop and its tail
    rounded = dtype(limit)
    interpreted = np.array([clip_math.clamped.py_func(value, rounded) for value in values], dtype)
    over_array = clip_math.clamp_in_place(values.copy(), limit)
    np.testing.assert_array_equal(bit_pattern(over_array), bit_pattern(interpreted))
    if dtype != np.float16:  # Numba's CPU loops take float32 and float64
        compiled = np.empty_like(values)
        clamped_loop(values, rounded, compiled)
        np.testing.assert_array_equal(bit_pattern(compiled), bit_pattern(interpreted))
    finite = np.isfinite(values)
    assert np.all(np.abs(interpreted[finite]) <= rounded) and np.all(np.isnan(interpreted) == np.isnan(values))


def norm_cases():
    rng = np.random.default_rng(7)
    cases = [(1.0, 1.0, 4.0), (2.0, 1.0, 4.0), (3.0, 1.0, 4.0), (0.5, 0.0, 0.0), (0.5, 1.0, 0.0),
             (0.5, 1.0, math.inf), (0.5, 1.0, math.nan), (0.0, 1.0, 1e-300), (1e-3, 1e200, 3.0), (10.0, 1e-200, 2.0)]
    for _ in range(300):
        cases.append((float(rng.uniform(0, 4)), 1.0, float(rng.uniform(0, 16))))  # a sum of squares
        cases.append((float(10 ** rng.uniform(-5, 5)), float(10 ** rng.uniform(-150, 150)),
                      float(rng.uniform(1, 1000))))  # a largest magnitude and its scaled sum
    return cases


def test_the_norm_and_its_scale_are_the_same_bits_interpreted_and_compiled():
    for limit, largest, scaled_sum in norm_cases():
        expected = clip_math.norm_and_scale.py_func(limit, largest, scaled_sum)
        found = compiled_norm_and_scale(limit, largest, scaled_sum)
        np.testing.assert_array_equal(np.array(found), np.array(expected), err_msg=str((limit, largest, scaled_sum)))


def test_the_scale_of_a_sum_of_squares_is_c_over_its_root():
    """With a largest magnitude of 1, the scale is min(1, c / sqrt(s)) as written without it, bit for
    bit, and the host's decision (skip_or_scale) takes it from the sums added in order."""
    for limit, largest, total in norm_cases():
        if largest != 1.0:
            continue
        norm, scale = clip_math.norm_and_scale.py_func(limit, 1.0, total)
        root = math.sqrt(total)
        assert norm == root or (math.isnan(norm) and math.isnan(root))
        assert scale == (limit / root if root > limit else 1.0)
        assert skip_or_scale(checked_policies(clip_global_norm=limit or 1.0), [total / 4] * 4, [0] * 4, "abcd") == \
            clip_math.norm_and_scale.py_func(limit or 1.0, 1.0, total / 4 + total / 4 + total / 4 + total / 4)[1]


def trajectory(monkeypatch=None):
    """Parameters after steps with clip_global_norm, gradients whose norms lie above and below the
    limit; with ``monkeypatch``, the CPU kernel's one call (which decides the scale itself) off, so
    the host decides (skip_or_scale). Also whether the one call ran."""
    ran = []
    if monkeypatch is not None:
        monkeypatch.setattr(LocalEngine, "_reduce_then_update", lambda self, *args: None)
    rng = np.random.default_rng(11)
    params = [rng.standard_normal((50, 40)).astype(np.float32), rng.standard_normal(30).astype(np.float32)]
    opt = numadam.Adam(params, lr=1e-2, clip_global_norm=3.0)
    fused = LocalEngine._reduce_then_update

    def counted(self, *args):
        result = fused(self, *args)
        ran.append(result is not None)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalEngine, "_reduce_then_update", counted)
        for scale in (10.0, 0.01, 100.0, 1.0, 0.1):
            opt.step([scale * rng.standard_normal(p.shape).astype(p.dtype) for p in params])
    return [p.copy() for p in params], any(ran)


def test_the_global_norm_scale_decided_in_the_cpu_kernel_is_the_host_s(monkeypatch):
    on_device, ran = trajectory()
    assert ran, "the serial one call (reduce_then_update_serial) did not run"
    on_host, ran = trajectory(monkeypatch)
    assert not ran
    for a, b in zip(on_device, on_host):
        np.testing.assert_array_equal(a, b, strict=True)
