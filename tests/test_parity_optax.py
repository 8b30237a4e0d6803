"""The families against optax, where optax is installed (never a CI dependency).

Each case runs numadam and optax side by side on the same parameters and
gradients. In float64 (JAX's x64 mode) they agree to 1e-12. In float32, XLA
fuses and reorders the arithmetic, and optax computes its per-step scalars in
float32 where numadam computes them in float64 and rounds once, so the two
agree to a few float32 ulps per step, accumulating over the run; RAdam's
rectification (:math:`\rho_t`, a difference of two numbers near 2000) loses
2e-4 of the update to float32 in optax, so float32 RAdam is compared to 1e-3.
LAMB is in tests/test_parity_lamb.py.
"""

import numpy as np
import pytest

import numadam

optax = pytest.importorskip("optax")
jax = pytest.importorskip("jax")
contrib = pytest.importorskip("optax.contrib")

LR = 1e-2

#: name: (numadam class, its options, the optax transformation)
CASES = {
    "adam-eps_root": ("Adam", {"convention": "optax", "eps_root": 1e-8}, lambda: optax.adam(LR, eps_root=1e-8)),
    "amsgrad": ("Adam", {"convention": "optax", "amsgrad": True}, lambda: optax.amsgrad(LR)),
    "adamw": ("Adam", {"convention": "optax", "weight_decay": 0.1, "decoupled_weight_decay": True},
              lambda: optax.adamw(LR, weight_decay=0.1)),
    "nadam": ("NAdam", {"convention": "optax"}, lambda: optax.nadam(LR)),
    "radam": ("RAdam", {"convention": "optax"}, lambda: optax.radam(LR)),
    "adamax": ("Adamax", {"convention": "optax"}, lambda: optax.adamax(LR)),
    "adabelief": ("AdaBelief", {}, lambda: optax.adabelief(LR)),
    "yogi": ("Yogi", {}, lambda: optax.yogi(LR)),
    "lion": ("Lion", {"weight_decay": 1e-3}, lambda: optax.lion(LR, weight_decay=1e-3)),
    "ademamix": ("AdEMAMix", {"alpha": 5.0}, lambda: contrib.ademamix(LR, alpha=5.0)),
    "adopt": ("ADOPT", {"convention": "optax"}, lambda: contrib.adopt(LR)),
}


TOLERANCES = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-13}}


def run_both(name, options, transform, dtype=np.float32, steps=40, seed=0):
    with jax.enable_x64(dtype == np.float64):
        return _run_both(name, options, transform, dtype, steps, seed)


def _run_both(name, options, transform, dtype, steps, seed):
    rng = np.random.default_rng(seed)
    shapes = {"W": (6, 5), "b": (5,)}
    params = {key: rng.standard_normal(shape).astype(dtype) for key, shape in shapes.items()}
    ours = {key: p.copy() for key, p in params.items()}
    opt = getattr(numadam, name)(ours, lr=LR, **options)
    theirs = {key: jax.numpy.asarray(p) for key, p in params.items()}
    state = transform.init(theirs)
    for _ in range(steps):
        grads = {key: rng.standard_normal(shape).astype(dtype) for key, shape in shapes.items()}
        opt.step(grads)
        updates, state = transform.update({k: jax.numpy.asarray(g) for k, g in grads.items()}, state, theirs)
        theirs = optax.apply_updates(theirs, updates)
    return params, ours, theirs, opt, state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_forty_steps_agree_with_optax(case, dtype):
    name, options, make = CASES[case]
    tolerance = TOLERANCES[dtype]
    if case == "radam" and dtype == np.float32:  # optax's float32 rectification (module docstring)
        tolerance = {"rtol": 1e-3, "atol": 1e-4}
    with jax.enable_x64(dtype == np.float64):
        transform = make()
    start, ours, theirs, _, _ = run_both(name, options, transform, dtype)
    for key in ours:
        assert np.asarray(theirs[key]).dtype == dtype
        np.testing.assert_allclose(ours[key], np.asarray(theirs[key]), **tolerance, err_msg=key)
        assert not np.array_equal(ours[key], start[key])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_schedule_free_adamw_agrees_with_optax_in_both_iterates(dtype):
    """The training iterate y (the parameters) and the evaluation iterate x (``eval_params``)."""
    with jax.enable_x64(dtype == np.float64):
        transform = contrib.schedule_free_adamw(LR, weight_decay=0.01)
        _, ours, theirs, opt, state = _run_both("ScheduleFreeAdamW", {"weight_decay": 0.01}, transform, dtype, 40, 0)
        evaluation = contrib.schedule_free_eval_params(state, theirs)
    ours_x = opt.eval_params()
    for key in ours:
        np.testing.assert_allclose(ours[key], np.asarray(theirs[key]), **TOLERANCES[dtype])
        np.testing.assert_allclose(ours_x[key], np.asarray(evaluation[key]), **TOLERANCES[dtype])
