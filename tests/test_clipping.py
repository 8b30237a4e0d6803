"""Gradient clipping against direct NumPy computations: values, per-array and global norms."""

import math
import re

import numpy as np
import pytest

import numadam
from arrays import in_layout, random_array

CLIP_DTYPES = [np.float16, np.float32, np.float64, np.complex64, np.complex128]


def reference_norm(array):
    """The L2 norm in extended precision, straight from the definition."""
    values = np.asarray(array).astype(np.clongdouble).ravel()
    return float(np.sqrt(np.sum(values.real**2 + values.imag**2)))


def widened(array):
    """``array`` in float64 or complex128, for computing expectations."""
    return array.astype(np.complex128 if array.dtype.kind == "c" else np.float64)


def rtol_for(dtype):
    return 4 * float(np.finfo(np.dtype(dtype)).eps)


def tree_of(rng, scale=1.0):
    return {
        "W": random_array(rng, (5, 4), np.float32, scale),
        "layers": [in_layout(random_array(rng, (3, 6), np.float64, scale), "strided"),
                   random_array(rng, (7,), np.complex64, scale)],
        "z": (random_array(rng, (2, 3), np.complex128, scale), random_array(rng, (4,), np.float16, scale)),
        "empty": np.zeros((0, 3)),
    }


def leaves(tree):
    from numadam.adapters.tree import flatten
    return flatten(tree)[0]


def copies(tree):
    return [np.array(leaf, copy=True) for leaf in leaves(tree)]


# -- by value ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", CLIP_DTYPES)
def test_clip_by_value_is_elementwise_clip_with_complex_parts_separate(rng, dtype):
    grads = in_layout(random_array(rng, (6, 5), dtype, scale=3.0), "transposed")
    before = grads.copy()
    result = numadam.clip_by_value(grads, 1.25)
    assert result is grads
    expected = np.clip(before.real, -1.25, 1.25)
    if np.dtype(dtype).kind == "c":
        expected = expected + 1j * np.clip(before.imag, -1.25, 1.25)
    np.testing.assert_array_equal(grads, expected.astype(dtype), strict=True)
    assert np.any(np.abs(before.real) > 1.25)


def test_clip_by_value_on_a_tree_clips_every_leaf(rng):
    grads = tree_of(rng, scale=4.0)
    before = copies(grads)
    numadam.clip_by_value(grads, 0.5)
    for leaf, old in zip(leaves(grads), before):
        expected = np.clip(old.real, -0.5, 0.5)
        if old.dtype.kind == "c":
            expected = expected + 1j * np.clip(old.imag, -0.5, 0.5)
        np.testing.assert_array_equal(leaf, expected.astype(old.dtype))


def test_clip_by_value_keeps_nan_and_bounds_infinities():
    grads = np.array([np.nan, np.inf, -np.inf, 0.25])
    numadam.clip_by_value(grads, 1.0)
    np.testing.assert_array_equal(grads, [np.nan, 1.0, -1.0, 0.25])


def test_clip_by_value_zero_limit_zeroes_everything(rng):
    grads = random_array(rng, (9,), np.complex128)
    numadam.clip_by_value(grads, 0)
    assert not np.any(grads)


# -- by norm (per array) -----------------------------------------------------------------


def test_clip_by_norm_scales_only_the_arrays_above_the_limit(rng):
    grads = tree_of(rng)
    before = copies(grads)
    limit = 2.0
    norms = numadam.clip_by_norm(grads, limit)
    returned = leaves(norms)
    assert set(norms) == set(grads) and isinstance(norms["layers"], list) and isinstance(norms["z"], tuple)
    clipped = 0
    for leaf, old, norm in zip(leaves(grads), before, returned):
        assert isinstance(norm, float)
        expected_norm = reference_norm(old)
        assert norm == pytest.approx(expected_norm, rel=1e-12, abs=0)
        if expected_norm > limit:
            clipped += 1
            expected = (widened(old) * (limit / expected_norm)).astype(old.dtype)
            np.testing.assert_allclose(leaf, expected, rtol=rtol_for(old.dtype))
            assert reference_norm(leaf) == pytest.approx(limit, rel=rtol_for(old.dtype))
        else:
            np.testing.assert_array_equal(leaf, old, strict=True)
    assert 0 < clipped < len(before)


def test_clip_by_norm_on_one_array_returns_one_float():
    grads = np.array([3.0, 4.0])
    assert numadam.clip_by_norm(grads, 10.0) == 5.0
    np.testing.assert_array_equal(grads, [3.0, 4.0])
    assert numadam.clip_by_norm(grads, 2.5) == 5.0
    np.testing.assert_allclose(grads, [1.5, 2.0], rtol=1e-15)


# -- global norm ------------------------------------------------------------------------


def test_clip_by_global_norm_scales_every_array_by_one_factor(rng):
    grads = tree_of(rng)
    before = copies(grads)
    global_norm = math.sqrt(sum(reference_norm(old) ** 2 for old in before))
    limit = global_norm / 3
    norm = numadam.clip_by_global_norm(grads, limit)
    assert isinstance(norm, float)
    assert norm == pytest.approx(global_norm, rel=1e-12, abs=0)
    factor = limit / global_norm
    for leaf, old in zip(leaves(grads), before):
        expected = (widened(old) * factor).astype(old.dtype)
        np.testing.assert_allclose(leaf, expected, rtol=rtol_for(old.dtype))
    after = math.sqrt(sum(reference_norm(leaf) ** 2 for leaf in leaves(grads)))
    assert after == pytest.approx(limit, rel=1e-3)


def test_clip_by_global_norm_below_the_limit_changes_nothing(rng):
    grads = tree_of(rng)
    before = copies(grads)
    norm = numadam.clip_by_global_norm(grads, 1e6)
    assert 0 < norm < 1e6
    for leaf, old in zip(leaves(grads), before):
        np.testing.assert_array_equal(leaf, old, strict=True)


@pytest.mark.parametrize("clip", [numadam.clip_by_norm, numadam.clip_by_global_norm])
def test_zero_gradients_have_norm_zero_and_stay_zero(clip):
    grads = {"a": np.zeros(4, np.float32), "b": np.zeros((2, 2), np.complex128), "c": np.zeros(0)}
    with np.errstate(all="raise"):
        norms = clip(grads, 0.0)
    assert norms == 0.0 or norms == {"a": 0.0, "b": 0.0, "c": 0.0}
    assert not any(np.any(leaf) for leaf in grads.values())


def test_zero_limit_zeroes_a_nonzero_gradient(rng):
    grads = [random_array(rng, (5,), np.float64), random_array(rng, (3,), np.complex64)]
    assert numadam.clip_by_global_norm(grads, 0.0) > 0
    assert not any(np.any(leaf) for leaf in grads)


# -- range: no overflow, no underflow ------------------------------------------------------


@pytest.mark.parametrize("dtype, magnitude", [(np.float32, 3e38), (np.float64, 1e300), (np.complex64, 2e38),
                                              (np.float16, 6e4), (np.float64, 1e-300), (np.float32, 1e-40)])
def test_norms_of_huge_and_tiny_values_are_exact(dtype, magnitude):
    grads = np.full(16, magnitude, dtype)
    assert np.all(np.isfinite(grads)) and np.all(grads != 0)
    expected = reference_norm(grads)
    assert math.isfinite(expected) and expected > 0
    norm = numadam.clip_by_global_norm(grads, expected / 2)
    assert norm == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(grads, np.full(16, magnitude / 2, dtype), rtol=rtol_for(dtype))


@pytest.mark.parametrize("huge_or_tiny, other, other_dtype", [(1e200, 1.0, np.float64), (1e-170, 1e-90, np.complex128),
                                                               (1e-170, 1e200, np.float64), (1e150, 1e37, np.float32)])
def test_global_norms_mixing_huge_tiny_and_ordinary_arrays(rng, huge_or_tiny, other, other_dtype):
    grads = [random_array(rng, (7,), np.float64) * huge_or_tiny, random_array(rng, (3,), other_dtype) * other]
    assert all(np.all(np.isfinite(g)) for g in grads)
    squares = sum(np.sum(np.abs(g.astype(np.clongdouble)) ** 2) for g in grads)  # long double: no overflow here
    expected = float(np.sqrt(squares))
    assert numadam.clip_by_global_norm(grads, 1e300) == pytest.approx(expected, rel=1e-12)


def test_a_norm_beyond_float64_is_inf_but_the_scaling_is_still_right():
    grads = [np.full(4, 1.5e308), np.array([1e308])]
    norm = numadam.clip_by_global_norm(grads, 3.0)
    assert norm == math.inf
    norm_in_units_of_1e308 = math.sqrt(4 * 1.5**2 + 1)
    np.testing.assert_allclose(grads[0], 1.5 * 3.0 / norm_in_units_of_1e308, rtol=1e-14)
    np.testing.assert_allclose(grads[1], 3.0 / norm_in_units_of_1e308, rtol=1e-14)


# -- non-finite gradients: an error, nothing changed ------------------------------------------


@pytest.mark.parametrize("clip", [numadam.clip_by_norm, numadam.clip_by_global_norm])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, complex(0, np.nan)])
def test_non_finite_gradients_raise_before_anything_is_scaled(rng, clip, bad):
    grads = {"first": random_array(rng, (5,), np.float64, 100.0),
             "second": random_array(rng, (4,), np.complex128, 100.0)}
    grads["second"][2] = bad
    before = copies(grads)
    with pytest.raises(ValueError, match=r"grads\['second'\] holds NaN or infinity.*no gradient was clipped"):
        clip(grads, 1.0)
    for leaf, old in zip(leaves(grads), before):
        np.testing.assert_array_equal(leaf, old, strict=True)


# -- bad input ---------------------------------------------------------------------------


BAD_LIMITS = [(-1.0, ValueError, "must be finite and >= 0; got -1.0"),
              (math.nan, ValueError, "must be finite and >= 0; got nan"),
              (math.inf, ValueError, "must be finite and >= 0; got inf"),
              ("1", TypeError, "must be a real number; got '1'"),
              (True, TypeError, "must be a real number; got True"),
              (None, TypeError, "must be a real number; got None")]


@pytest.mark.parametrize("clip, name", [(numadam.clip_by_value, "max_value"), (numadam.clip_by_norm, "max_norm"),
                                        (numadam.clip_by_global_norm, "max_norm")])
@pytest.mark.parametrize("limit, error, message", BAD_LIMITS)
def test_bad_limits_are_refused(rng, clip, name, limit, error, message):
    grads = [random_array(rng, (4,), np.float64, 10.0)]
    before = copies(grads)
    with pytest.raises(error, match=re.escape(f"{name} {message}")):
        clip(grads, limit)
    np.testing.assert_array_equal(grads[0], before[0])


def read_only(array):
    array.flags.writeable = False
    return array


BAD_TREES = [
    (lambda: {"a": np.ones(3) * 9, "b": np.arange(3)}, TypeError, r"grads\['b'\] has dtype int64; clipping takes"),
    (lambda: {"a": np.ones(3) * 9, "b": read_only(np.ones(3) * 9)}, ValueError, r"grads\['b'\] is read-only"),
    (lambda: [np.ones(3) * 9, [1.0, 2.0]], TypeError, r"grads\[1\]\[0\] must be a numpy.ndarray"),
    (lambda: {}, ValueError, "grads must hold at least one array"),
    (lambda: [np.ones(3) * 9, np.ones(2, np.longdouble)], TypeError, "has dtype float128"),
]


@pytest.mark.parametrize("clip", [numadam.clip_by_value, numadam.clip_by_norm, numadam.clip_by_global_norm])
@pytest.mark.parametrize("make, error, message", BAD_TREES)
def test_bad_gradients_are_refused_and_nothing_changes(clip, make, error, message):
    if np.dtype(np.longdouble).itemsize <= 8 and "float128" in message:
        pytest.skip("this platform has no extended-precision long double")
    grads = make()
    before = [np.array(leaf, copy=True) for leaf in leaves(grads)]
    with pytest.raises(error, match=message):
        clip(grads, 1.0)
    for leaf, old in zip(leaves(grads), before):
        np.testing.assert_array_equal(leaf, old)


@pytest.mark.parametrize("clip", [numadam.clip_by_norm, numadam.clip_by_global_norm, numadam.clip_by_value])
def test_an_array_given_twice_is_refused(clip):
    shared = np.full(4, 10.0)
    with pytest.raises(ValueError, match="share memory"):
        clip({"a": shared, "b": shared[1:]}, 1.0)
    np.testing.assert_array_equal(shared, np.full(4, 10.0))


# -- CuPy ------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("clip, limit", [(numadam.clip_by_value, 0.3), (numadam.clip_by_norm, 1.0),
                                         (numadam.clip_by_global_norm, 2.0)])
def test_cupy_gradients_are_clipped_on_the_device_like_numpy(rng, clip, limit):
    import cupy

    host = {"a": random_array(rng, (50, 3), np.float32, 2.0), "b": random_array(rng, (20,), np.complex128, 2.0)}
    device = {key: cupy.asarray(value) for key, value in host.items()}
    expected = clip(host, limit)
    result = clip(device, limit)
    for key in host:
        assert isinstance(device[key], cupy.ndarray)
        np.testing.assert_allclose(device[key].get(), host[key], rtol=1e-6)
    if clip is not numadam.clip_by_value:
        assert leaves(result) == pytest.approx(leaves(expected), rel=1e-12)
