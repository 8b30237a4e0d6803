"""Test helpers: random arrays, in every memory layout numadam must handle."""

import numpy as np

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
LAYOUTS = ["C", "F", "strided", "reversed", "transposed"]

# Options of the update, as keyword arguments of numadam.adam_step.
OPTIONS = {
    "adam": {},
    "l2": {"weight_decay": 0.1},
    "adamw": {"weight_decay": 0.1, "decoupled_weight_decay": True},
    "amsgrad": {"amsgrad": True},
    "maximize": {"maximize": True},
    "everything": {"weight_decay": 0.05, "decoupled_weight_decay": True, "amsgrad": True, "maximize": True},
}


def random_array(rng, shape, dtype, scale=1.0, positive=False):
    """Random values of ``dtype`` (complex parts both random); ``positive`` for second moments."""
    def draw():
        values = rng.standard_normal(shape)
        return np.abs(values) if positive else values
    values = draw() * scale
    if np.dtype(dtype).kind == "c":
        values = values + 1j * draw() * scale
    return np.asarray(values).astype(dtype)


def in_layout(array, layout):
    """A copy of ``array`` laid out in memory as ``layout`` says, same shape and values."""
    if layout == "C" or array.ndim == 0:
        return array.copy(order="C")
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "strided":
        big = np.zeros(tuple(2 * n + 1 for n in array.shape), array.dtype)
        view = big[tuple(slice(1, None, 2) for _ in array.shape)]
        view[...] = array
        return view
    if layout == "reversed":
        flipped = np.ascontiguousarray(array[tuple(slice(None, None, -1) for _ in array.shape)])
        return flipped[tuple(slice(None, None, -1) for _ in array.shape)]
    if layout == "transposed":
        return np.ascontiguousarray(array.T).T
    raise ValueError(layout)


def tiered(values, quick, unpack=False):
    """``values`` as pytest parameters, those for which ``quick(value)`` is false marked ``slow``: the
    quick tier (``python -m pytest``) runs a representative few, the full tier all (see conftest.py).
    With ``unpack`` each value is a tuple of several arguments' values."""
    import pytest

    def slow(value):
        return pytest.param(*value, marks=pytest.mark.slow) if unpack else pytest.param(value, marks=pytest.mark.slow)

    return [value if quick(value) else slow(value) for value in values]


def assert_resumes_exactly(optimizer, resumed, steps, params, twin):
    """Step ``optimizer`` (over ``params``) and ``resumed`` (loaded from its state, over ``twin``)
    with the same gradients ``steps``: the same parameters and carry, bit for bit."""
    for grads in steps:
        optimizer.step(grads)
        resumed.step(grads)
    for a, b in zip(twin, params):
        np.testing.assert_array_equal(a, b)
    assert resumed.state_dict()["carry"] == optimizer.state_dict()["carry"]
