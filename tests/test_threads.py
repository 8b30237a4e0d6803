"""Threads: separate optimizers stepped on separate threads at once give the results of stepping them one by one."""

import threading

import numpy as np
import pytest

import numadam
from concurrency import run_together
from numadam.targets.cpu.backend import CpuBackend

SIZE = 1 << 17
STEPS = 20
assert SIZE >= CpuBackend.serial_below  # the parallel kernel runs

# One optimizer per thread; every variant takes a different path through the kernels.
PROBLEMS = {
    "adam float32": (np.float32, numadam.Adam, {"lr": 1e-2}),
    "adam float64 amsgrad": (np.float64, numadam.Adam, {"lr": 1e-3, "amsgrad": True}),
    "adamw float32": (np.float32, numadam.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    "adam complex64 l2": (np.complex64, numadam.Adam, {"lr": 1e-2, "weight_decay": 0.01}),
}


def problem(name):
    """A fresh ``(optimizer, params, gradients for every step)`` for the problem called ``name``."""
    dtype, kind, options = PROBLEMS[name]
    rng = np.random.default_rng(list(PROBLEMS).index(name))

    def draw(*shape):
        values = rng.standard_normal(shape)
        if np.dtype(dtype).kind == "c":
            values = values + 1j * rng.standard_normal(shape)
        return values.astype(dtype)

    params = {"w": draw(SIZE), "b": draw(3, 1000)}
    grads = [{"w": draw(SIZE), "b": draw(3, 1000)} for _ in range(STEPS)]
    return kind(params, **options), params, grads


def take_steps(optimizer, grads):
    for grad in grads:
        optimizer.step(grad)


@pytest.mark.slow
def test_separate_optimizers_on_separate_threads_match_stepping_them_in_turn():
    in_turn = {}
    for name in PROBLEMS:
        optimizer, params, grads = problem(name)
        take_steps(optimizer, grads)
        in_turn[name] = params

    together = {name: problem(name) for name in PROBLEMS}
    start = threading.Barrier(len(together))

    def run(optimizer, grads):
        start.wait(timeout=60)
        take_steps(optimizer, grads)

    targets = [lambda optimizer=optimizer, grads=grads: run(optimizer, grads) for optimizer, _, grads in together.values()]
    assert run_together(targets) == []
    for name, (optimizer, params, _) in together.items():
        assert optimizer.state_dict()["step"] == STEPS
        for key in params:
            np.testing.assert_array_equal(params[key], in_turn[name][key], strict=True, err_msg=f"{name}: {key}")
