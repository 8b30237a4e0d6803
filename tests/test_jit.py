"""numadam.jit: each family's step from njit code, bit for bit the optimizer objects' trajectory."""

import numpy as np
import pytest
from numba import njit

import numadam
from numadam import jit

OFFERED = [name for name in numadam.families() if name not in jit.NOT_OFFERED]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", OFFERED)
def test_steps_follow_the_objects_bit_for_bit(name, dtype):
    cls = numadam.families()[name]
    rng = np.random.default_rng(0)
    ours = rng.standard_normal(40).astype(dtype)
    theirs = ours.copy()
    opt = cls(theirs, lr=1e-2)
    always = [kind.name for kind in cls.family.state if kind.present is None]
    state = [np.array(opt.state_dict()[kind], copy=True) for kind in always]
    defaults = {**cls._class_defaults, **cls.pinned, "lr": 1e-2}
    hyper = [defaults[h] for h in jit._hyperparameters(cls)]
    step, carry = getattr(jit, f"{name}_step"), None
    for t in range(1, 21):
        grad = rng.standard_normal(40).astype(dtype)
        opt.step(grad)
        if name == "adam":
            step(ours, grad, *state, t, 1e-2, 0.9, 0.999, 1e-8, 0.0)
        elif cls.family.carry is not None:
            carry = step(ours, grad, *state, t, *hyper, carry)
        else:
            step(ours, grad, *state, t, *hyper)
    np.testing.assert_array_equal(ours, theirs)
    for name_, array in zip(always, state):
        np.testing.assert_array_equal(array, opt.state_dict()[name_])


def test_callable_from_a_users_njit_loop():
    @njit
    def solve(x, target, steps):
        m, v, g = np.zeros_like(x), np.zeros_like(x), np.empty_like(x)
        carry = None
        for t in range(1, steps + 1):
            g[:] = 2 * (x - target)
            carry = jit.nadam_step(x, g, m, v, t, 0.05, (0.9, 0.999), 1e-8, 0.0, 4e-3, False, False, "torch",
                                   0.0, carry)
        return x

    x = solve(np.zeros(4), np.array([1.0, -2.0, 0.5, 3.0]), 3000)
    np.testing.assert_allclose(x, [1.0, -2.0, 0.5, 3.0], atol=1e-3)


def test_scalars_are_the_hosts():
    family = numadam.Adam.family
    h = family.Hyper(**numadam.Adam._class_defaults)
    expected = family.scalars(7, h, ())
    assert tuple(jit.adam_scalars(7, 1e-3, (0.9, 0.999), 1e-8, 0.0)) == tuple(expected)
    assert jit.adam_rule is family.rule


def test_families_not_offered_say_why():
    with pytest.raises(AttributeError, match="lamb_step"):
        jit.lamb_step
    assert set(jit.NOT_OFFERED) == {"lamb", "ademamix", "adopt"}
