"""Keras 3's and scikit-learn's Adam family against numadam's ``convention="keras"`` and
``"sklearn"``, where those libraries are installed (never CI dependencies).

Keras runs on its JAX backend, in float32 (XLA reorders the arithmetic: a few
ulps per step); scikit-learn's MLP optimizer is plain NumPy float64, which
numadam follows to rounding.
"""

import os

import numpy as np
import pytest

import numadam

LR = 1e-2

#: name: (numadam class and options, the Keras optimizer's name and options)
KERAS_CASES = {
    "adam": (("Adam", {"eps": 1e-7}), ("Adam", {})),
    "amsgrad": (("Adam", {"eps": 1e-7, "amsgrad": True}), ("Adam", {"amsgrad": True})),
    "adamw": (("Adam", {"eps": 1e-7, "weight_decay": 0.004, "decoupled_weight_decay": True}), ("AdamW", {})),
    "nadam": (("NAdam", {"eps": 1e-7}), ("Nadam", {})),
    "adamax": (("Adamax", {"eps": 1e-7}), ("Adamax", {})),
}


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("these comparisons run on Keras's JAX backend")
    return keras


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_keras_convention_follows_keras(keras, case):
    (ours_name, ours_options), (keras_name, keras_options) = KERAS_CASES[case]
    rng = np.random.default_rng(0)
    start = rng.standard_normal(64).astype(np.float32)
    ours = start.copy()
    opt = getattr(numadam, ours_name)(ours, lr=LR, convention="keras", **ours_options)
    variable = keras.Variable(start.copy())
    theirs = getattr(keras.optimizers, keras_name)(learning_rate=LR, **keras_options)
    for _ in range(40):
        grad = rng.standard_normal(64).astype(np.float32)
        opt.step(grad)
        theirs.apply_gradients([(keras.ops.convert_to_tensor(grad), variable)])
    np.testing.assert_allclose(ours, np.asarray(variable.value), rtol=2e-5, atol=4e-6)
    assert not np.array_equal(ours, start)


def test_the_classic_keras_line_is_one_numadam_line(keras):
    """``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=False)``, as
    docs/algorithm.md writes it in numadam."""
    rng = np.random.default_rng(1)
    start = rng.standard_normal(32).astype(np.float32)
    ours, variable = start.copy(), keras.Variable(start.copy())
    opt = numadam.Adam(ours, lr=0.001, betas=(0.9, 0.999), eps=1e-07, amsgrad=False, convention="keras")
    theirs = keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=False)
    for _ in range(40):
        grad = rng.standard_normal(32).astype(np.float32)
        opt.step(grad)
        theirs.apply_gradients([(keras.ops.convert_to_tensor(grad), variable)])
    np.testing.assert_allclose(ours, np.asarray(variable.value), rtol=2e-5, atol=4e-6)


def test_sklearn_convention_follows_the_mlp_optimizer():
    optimizers = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    rng = np.random.default_rng(2)
    start = [rng.standard_normal((5, 4)), rng.standard_normal(4)]
    theirs = [p.copy() for p in start]
    sklearn_adam = optimizers.AdamOptimizer(theirs, learning_rate_init=LR, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    ours = [p.copy() for p in start]
    opt = numadam.Adam(ours, lr=LR, eps=1e-8, convention="sklearn")
    for _ in range(50):
        grads = [rng.standard_normal(p.shape) for p in start]
        sklearn_adam.update_params(theirs, grads)
        opt.step(grads)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
