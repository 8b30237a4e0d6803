"""Copies of an optimizer own their arrays: pickle, deepcopy, cloudpickle, joblib workers, spawned processes.

An optimizer's segment tables hold raw addresses; a copy must rebuild them from
its own arrays and never write into the original's memory.
"""

import copy
import multiprocessing
import pickle

import numpy as np
import pytest

import numadam
from arrays import random_array

#: Large enough for the parallel kernel (numadam runs arrays of 65,536 elements or more on all cores).
SIZE = 1 << 17


def trained(method="adam", size=8, **options):
    rng = np.random.default_rng(3)
    params = {"w": random_array(rng, (size,), np.float32), "b": random_array(rng, (3,), np.float64)}
    opt = numadam.families()[method](params, lr=0.1, **options)
    opt.step({"w": np.ones(size, np.float32), "b": np.ones(3)})
    return opt, params


def grads_like(params, value=1.0):
    return {name: np.full_like(array, value) for name, array in params.items()}


def step_twins(original, duplicate, steps=3):
    """Step both with the same gradients; return the original's params before and after."""
    for k in range(steps):
        original.step(grads_like(original.params, 0.5 + k))
        duplicate.step(grads_like(duplicate.params, 0.5 + k))


def assert_same_trajectory(original, duplicate):
    for name in original.params:
        assert duplicate.params[name] is not original.params[name]
        np.testing.assert_array_equal(duplicate.params[name], original.params[name], strict=True)
    for kind, tree in original.state_dict().items():
        if isinstance(tree, dict) and all(isinstance(v, np.ndarray) for v in tree.values()):
            for name in tree:
                np.testing.assert_array_equal(duplicate.state_dict()[kind][name], tree[name], strict=True)
    assert duplicate.step_count == original.step_count


def roundtrip_pickle(opt):
    return pickle.loads(pickle.dumps(opt))


def roundtrip_cloudpickle(opt):
    cloudpickle = pytest.importorskip("cloudpickle")
    return cloudpickle.loads(cloudpickle.dumps(opt))


@pytest.mark.parametrize("make_copy", [roundtrip_pickle, copy.deepcopy, roundtrip_cloudpickle],
                         ids=["pickle", "deepcopy", "cloudpickle"])
@pytest.mark.parametrize("method", ["adam", "nadam", "schedule_free_adamw"])
def test_a_copy_is_independent_and_continues_identically(make_copy, method):
    """Stepping the copy never moves the original; both continue the same trajectory."""
    opt, params = trained(method)
    duplicate = make_copy(opt)
    frozen = {name: array.copy() for name, array in params.items()}
    duplicate.step(grads_like(duplicate.params))
    for name in params:
        np.testing.assert_array_equal(params[name], frozen[name])  # the original did not move
    opt.step(grads_like(params))
    assert_same_trajectory(opt, duplicate)
    step_twins(opt, duplicate)
    assert_same_trajectory(opt, duplicate)
    assert duplicate.hyperparameters() == opt.hyperparameters()


def test_a_deepcopy_with_its_params_shares_them_like_the_original():
    """deepcopy of (optimizer, params) gives a copy whose optimizer updates the copied params."""
    opt, params = trained()
    duplicate, duplicate_params = copy.deepcopy((opt, params))
    duplicate.step(grads_like(duplicate_params))
    assert duplicate.params["w"] is duplicate_params["w"]
    assert not np.array_equal(duplicate_params["w"], params["w"])


def test_copy_copy_is_refused_with_the_fix():
    opt, _ = trained()
    with pytest.raises(TypeError, match=r"would share its parameter and state arrays.*copy\.deepcopy"):
        copy.copy(opt)


def test_the_schedule_and_groups_travel_with_the_copy():
    rng = np.random.default_rng(4)
    params = {"g": numadam.Group([random_array(rng, (5,), np.float32)], weight_decay=0.0),
              "h": random_array(rng, (4,), np.float32)}
    opt = numadam.AdamW(params, lr=0.1, schedule=numadam.schedules.ExponentialDecay(0.1, gamma=0.9))
    opt.step({"g": [np.ones(5, np.float32)], "h": np.ones(4, np.float32)})
    duplicate = roundtrip_pickle(opt)
    assert duplicate.schedule is not opt.schedule and duplicate.groups[0].overrides == {"weight_decay": 0.0}
    for optimizer in (opt, duplicate):
        optimizer.step({"g": [np.ones(5, np.float32)], "h": np.ones(4, np.float32)})
    np.testing.assert_array_equal(duplicate.params["g"][0], opt.params["g"][0], strict=True)
    assert duplicate.lr == opt.lr


def _step_copy(opt):
    """In a worker: step the optimizer it received and return its parameters and step count."""
    for _ in range(3):
        opt.step({"w": np.ones(SIZE, np.float32), "b": np.ones(3)})
    return opt.params, opt.step_count


@pytest.mark.subprocess
def test_joblib_workers_step_their_own_copies():
    """joblib's default backend (loky) pickles the optimizer into worker processes with cloudpickle."""
    joblib = pytest.importorskip("joblib")
    opt, params = trained(size=SIZE)
    frozen = {name: array.copy() for name, array in params.items()}
    results = joblib.Parallel(n_jobs=2, timeout=300)(joblib.delayed(_step_copy)(opt) for _ in range(2))
    for name in params:
        np.testing.assert_array_equal(params[name], frozen[name])
    _step_copy(opt)
    for worker_params, count in results:
        assert count == opt.step_count == 4
        for name in params:
            np.testing.assert_array_equal(worker_params[name], params[name], strict=True)


@pytest.mark.subprocess
def test_a_spawned_process_steps_its_copy():
    opt, params = trained(size=SIZE)
    frozen = {name: array.copy() for name, array in params.items()}
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        worker_params, count = pool.apply_async(_step_copy, (opt,)).get(timeout=300)
    for name in params:
        np.testing.assert_array_equal(params[name], frozen[name])
    _step_copy(opt)
    assert count == opt.step_count
    for name in params:
        np.testing.assert_array_equal(worker_params[name], params[name], strict=True)


def test_one_optimizer_stepped_from_two_threads_loses_no_step():
    """Steps are serialized per optimizer: 2 x 2000 steps from two threads equal 4000 sequential ones."""
    from concurrency import run_together

    shared, _ = trained(size=64)
    sequential, _ = trained(size=64)
    grads = grads_like(shared.params)
    assert run_together([lambda: [shared.step(grads) for _ in range(2000)]] * 2) == []
    for _ in range(4000):
        sequential.step(grads)
    assert shared.step_count == sequential.step_count == 4001
    assert_same_trajectory(sequential, shared)
