"""LAMB's stored direction: the norms pass keeps each element's direction r, and the update reads it.

A CPU bucket large enough to step on every core keeps r between LAMB's two
passes (``Bucket.direction``). The update then reads p and r instead of p, m and
v and forms r no second time; the results must be the same bits as the update
that forms r again from the state (the path every other bucket takes), under
every option, dtype and layout, and equal the NumPy reference.
"""

import importlib

import numpy as np
import pytest

import numadam
from arrays import in_layout, random_array, tiered
from test_families import Reference, assert_bitwise

bucket_module = importlib.import_module("numadam.engine.bucket")

#: Real numbers in the large parameter: past the CPU's serial limit, so its bucket keeps the directions.
LARGE = (300, 240)


def large_enough(shape, dtype):
    from numadam.targets.cpu.backend import CpuBackend

    return np.prod(shape) * (2 if np.dtype(dtype).kind == "c" else 1) >= CpuBackend.serial_below


def stepped(params, grads, stored, monkeypatch, **options):
    """``params`` after LAMB's steps along ``grads`` (a list per step), with or without the stored directions."""
    with monkeypatch.context() as patch:
        if not stored:
            patch.setattr(bucket_module.Bucket, "_stores_direction", lambda self: False)
        opt = numadam.LAMB(params, lr=1e-2, **options)
        assert (opt._engine.buckets[0].direction is not None) == stored
        for step_grads in grads:
            opt.step(step_grads)
    return params, opt


OPTIONS = [
    {},
    {"weight_decay": 0.1, "eps_root": 1e-10},
    {"convention": "apex", "weight_decay": 0.05},
    {"clip_global_norm": 0.5},
    {"accumulate": 2},
    {"ema": 0.9},
    {"nonfinite": "skip", "clip_value": 0.3},
]


@pytest.mark.parametrize("layout", tiered(["C", "F", "strided"], lambda layout: layout == "C"))
@pytest.mark.parametrize("dtype", tiered([np.float32, np.float64, np.complex64],
                                         lambda dtype: dtype == np.float32))
@pytest.mark.parametrize("options", tiered(OPTIONS, lambda options: len(options) <= 1), ids=str)
def test_stored_directions_give_the_same_bits(options, dtype, layout, monkeypatch):
    rng = np.random.default_rng(3)
    shapes = [LARGE, (7,), (40, 3)]  # one bucket: the large parameter makes it keep directions
    start = [in_layout(random_array(rng, shape, dtype), layout) for shape in shapes]
    grads = [[in_layout(random_array(rng, shape, dtype), layout) for shape in shapes] for _ in range(4)]
    grads[2][1][3] = np.nan  # nonfinite="skip" skips this step; elsewhere the NaN flows through both ways
    stored, _ = stepped([p.copy(order="K") for p in start], grads, True, monkeypatch, **options)
    formed, _ = stepped([p.copy(order="K") for p in start], grads, False, monkeypatch, **options)
    for a, b in zip(stored, formed):
        np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("dtype", tiered([np.float32, np.float64], lambda dtype: dtype == np.float32))
def test_stored_directions_give_the_same_bits_within_bounds(dtype, monkeypatch):
    """Bounds (real parameters only): an array bound for the large parameter, numbers for the others."""
    rng = np.random.default_rng(11)
    shapes = [LARGE, (7,)]
    start = [random_array(rng, shape, dtype) for shape in shapes]
    grads = [[random_array(rng, shape, dtype) for shape in shapes] for _ in range(3)]
    low = [np.full(LARGE, -0.4, dtype), -0.3]
    stored, _ = stepped([p.copy() for p in start], grads, True, monkeypatch, bounds=(low, 0.5), ema=0.5)
    formed, _ = stepped([p.copy() for p in start], grads, False, monkeypatch, bounds=(low, 0.5), ema=0.5)
    for a, b in zip(stored, formed):
        np.testing.assert_array_equal(a, b, strict=True)
    assert stored[0].min() >= -0.4 and stored[1].min() >= -0.3 and max(p.max() for p in stored) <= 0.5


@pytest.mark.parametrize("options", [{"master_weights": True},
                                     {"stochastic_rounding": True, "seed": 3}], ids=str)
def test_stored_directions_give_the_same_bits_in_16_bits(options, monkeypatch):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(9)
    parameter_dtype = ml_dtypes.bfloat16
    start = [random_array(rng, LARGE, np.float32).astype(parameter_dtype)]
    grads = [[random_array(rng, LARGE, np.float32).astype(parameter_dtype)] for _ in range(3)]
    stored, _ = stepped([p.copy() for p in start], grads, True, monkeypatch, **options)
    formed, _ = stepped([p.copy() for p in start], grads, False, monkeypatch, **options)
    np.testing.assert_array_equal(stored[0].view(np.uint16), formed[0].view(np.uint16))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stored_directions_match_the_reference(dtype, monkeypatch):
    rng = np.random.default_rng(4)
    params = [random_array(rng, LARGE, dtype), random_array(rng, (9,), dtype)]
    reference = Reference("lamb", {"weight_decay": 0.1}, params)
    opt = numadam.LAMB(params, lr=1e-2, weight_decay=0.1)
    assert opt._engine.buckets[0].direction is not None
    for _ in range(5):
        grads = [random_array(rng, p.shape, dtype) for p in params]
        opt.step(grads)
        reference.step(grads)
    assert_bitwise(params, reference.params, "lamb")


def test_the_stored_direction_is_the_last_steps_r():
    """After a step the bucket holds each element's r of that step, the reference's elementwise."""
    rng = np.random.default_rng(5)
    param = random_array(rng, LARGE, np.float32)
    before = param.copy()
    opt = numadam.LAMB(param, lr=1e-2, weight_decay=0.1)
    grad = random_array(rng, LARGE, np.float32)
    opt.step(grad)
    real = np.float32  # r as the reference forms it (tests/reference.py), from zero moments
    m = real(1 - 0.9) * grad
    v = real(1 - 0.999) * (grad * grad)
    r = (m / real(1 - 0.9)) / (np.sqrt(v / real(1 - 0.999) + real(0.0)) + real(1e-6)) + real(0.1) * before
    np.testing.assert_array_equal(opt._engine.buckets[0].direction.reshape(LARGE), r)


def test_only_large_cpu_buckets_of_a_family_with_apply_keep_directions():
    rng = np.random.default_rng(6)
    large, small = random_array(rng, LARGE, np.float32), random_array(rng, (50, 50), np.float32)
    assert large_enough(LARGE, np.float32) and not large_enough((50, 50), np.float32)
    assert numadam.LAMB(large)._engine.buckets[0].direction.dtype == np.float32
    assert numadam.LAMB(small)._engine.buckets[0].direction is None
    # 16-bit state: the update forms r from the rounded moments, which a stored r would not be
    assert numadam.LAMB(large, state_dtype="bfloat16")._engine.buckets[0].direction is None
    assert numadam.Adam(large)._engine.buckets[0].direction is None
    # Adafactor has a norms pass, but its update takes no stored direction (no Norms.apply)
    assert numadam.Adafactor(large)._engine.buckets[0].direction is None


def test_the_stored_direction_is_not_state():
    """The state holds the moments only; an optimizer loaded from it steps to the same bits."""
    rng = np.random.default_rng(7)
    param = random_array(rng, LARGE, np.float32)
    opt = numadam.LAMB(param)
    opt.step(random_array(rng, LARGE, np.float32))
    saved = opt.state_dict()
    assert {"exp_avg", "exp_avg_sq"} <= set(saved) and not any("direction" in key for key in saved)
    copy = param.copy()
    restored = numadam.LAMB(copy)
    restored.load_state_dict(saved)
    grad = random_array(rng, LARGE, np.float32)
    opt.step(grad)
    restored.step(grad)
    np.testing.assert_array_equal(copy, param, strict=True)


def test_a_gradient_that_overlaps_the_stored_directions_is_refused():
    rng = np.random.default_rng(8)
    param = random_array(rng, LARGE, np.float32)
    opt = numadam.LAMB(param)
    direction = opt._engine.buckets[0].direction.reshape(LARGE)
    with pytest.raises(ValueError, match="shares memory"):
        opt.step(direction)


def test_minimize_compiled_steps_through_the_stored_directions(monkeypatch):
    """The compiled solve's one-call kernel takes the bucket's specs, stored direction included."""
    from numba import njit

    @njit
    def bowl(x):
        grad = np.empty_like(x)
        value = 0.0
        for i in range(x.size):
            gap = np.float64(x[i]) - 0.25 * (i % 7)
            value += gap * gap
            grad[i] = 2.0 * gap
        return value, grad

    x0 = np.random.default_rng(10).standard_normal(np.prod(LARGE))
    compiled = numadam.minimize(bowl, x0, jac=True, method="lamb", lr=1e-2, maxiter=6, gtol=0.0, compiled=True)
    monkeypatch.setattr(bucket_module.Bucket, "_stores_direction", lambda self: False)
    formed = numadam.minimize(bowl, x0, jac=True, method="lamb", lr=1e-2, maxiter=6, gtol=0.0, compiled=False)
    assert compiled.compiled and not formed.compiled and compiled.nit == formed.nit == 6
    np.testing.assert_array_equal(compiled.x, formed.x)
