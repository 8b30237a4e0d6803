"""LAMB against optax.lamb, where optax is installed (not a CI dependency)."""

import numpy as np
import pytest

import numadam

optax = pytest.importorskip("optax")
jax = pytest.importorskip("jax")


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_lamb_follows_optax_lamb(weight_decay):
    """60 steps on three float32 arrays; optax computes its norms and bias corrections in float32."""
    rng = np.random.default_rng(0)
    shapes = {"W": (8, 5), "b": (5,), "v": (30,)}
    params = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    ours = {name: p.copy() for name, p in params.items()}
    opt = numadam.LAMB(ours, lr=1e-2, weight_decay=weight_decay)
    transform = optax.lamb(1e-2, weight_decay=weight_decay)
    theirs = {name: jax.numpy.asarray(p) for name, p in params.items()}
    state = transform.init(theirs)
    for _ in range(60):
        grads = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
        opt.step(grads)
        updates, state = transform.update({k: jax.numpy.asarray(g) for k, g in grads.items()}, state, theirs)
        theirs = optax.apply_updates(theirs, updates)
    for name in shapes:
        np.testing.assert_allclose(ours[name], np.asarray(theirs[name]), rtol=2e-5, atol=2e-6)
