"""A gradient ``None`` leaves its parameter and state untouched (torch's rule for ``p.grad is None``)."""

import numpy as np
import pytest

import numadam
from arrays import random_array
from reference import adam_exact


def trees(rng):
    """Two dtypes: two kernel passes."""
    return {"a": random_array(rng, (7, 3), np.float32), "b": random_array(rng, (5,), np.float32),
            "c": random_array(rng, (64,), np.float64)}


def test_a_parameter_without_gradient_keeps_its_values_and_state():
    rng = np.random.default_rng(0)
    params = trees(rng)
    opt = numadam.Adam(params, lr=0.1)
    expected = {name: (value.copy(), np.zeros_like(value), np.zeros_like(value)) for name, value in params.items()}
    for step in range(1, 5):
        grads = {name: random_array(rng, value.shape, value.dtype) for name, value in params.items()}
        if step in (2, 3):
            grads["b"] = None
        for name, grad in grads.items():
            if grad is not None:
                expected[name] = _exact(expected[name], grad, step)
        opt.step(grads)
    state = opt.state_dict()
    for name, (param, exp_avg, exp_avg_sq) in expected.items():
        np.testing.assert_array_equal(params[name], param)
        np.testing.assert_array_equal(state["exp_avg"][name], exp_avg)
        np.testing.assert_array_equal(state["exp_avg_sq"][name], exp_avg_sq)
    assert opt.step_count == 4


def _exact(triple, grad, step):
    param, exp_avg, exp_avg_sq = triple
    new = adam_exact(param, grad, exp_avg, exp_avg_sq, step=step, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    return new[0], new[1], new[2]


def test_a_step_where_no_parameter_has_a_gradient_changes_nothing_and_is_not_counted():
    rng = np.random.default_rng(1)
    params = trees(rng)
    before = {name: value.copy() for name, value in params.items()}
    opt = numadam.Adam(params, lr=0.1)
    opt.step({name: None for name in params})
    assert opt.step_count == 0
    for name in params:
        np.testing.assert_array_equal(params[name], before[name])


@pytest.mark.parametrize("options", [{"clip_global_norm": 1.0}, {"nonfinite": "skip"}, {"accumulate": 2},
                                     {"state_dtype": "int8"}])
def test_policies_over_every_parameter_refuse_a_missing_gradient_before_writing(options):
    rng = np.random.default_rng(2)
    params = {"a": random_array(rng, (5000,), np.float32), "b": random_array(rng, (5000,), np.float32)}
    before = {name: value.copy() for name, value in params.items()}
    opt = numadam.Adam(params, lr=0.1, **options)
    with pytest.raises(ValueError, match=r"grads\['b'\] is None; .* every parameter needs a gradient"):
        opt.step({"a": random_array(rng, (5000,), np.float32), "b": None})
    for name in params:
        np.testing.assert_array_equal(params[name], before[name])
    assert opt.step_count == 0


def test_the_functional_step_still_needs_its_gradient():
    param = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match="grad must be a numpy.ndarray or a CUDA array"):
        numadam.adam_step(param, None, np.zeros(3, np.float32), np.zeros(3, np.float32), step=1)


def test_a_family_with_norms_refuses_a_missing_gradient_every_time():
    """The second call with the same gradients must not take the bound plan's short way round."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(5), rng.standard_normal(4)
    given = a.copy(), b.copy()
    opt = numadam.LAMB([a, b], lr=0.1)
    grads = [rng.standard_normal(5), None]
    for _ in range(2):
        with pytest.raises(ValueError, match=r"grads\[1\] is None"):
            opt.step(grads)
    np.testing.assert_array_equal(a, given[0])
    np.testing.assert_array_equal(b, given[1])
    assert opt.step_count == 0
