"""The optimizer objects, their policies and device-counted skips, through the CUDA kernels in the simulator.

The objects keep their CUDA state in CuPy arrays, which need a GPU. Here a
stand-in stores it in the simulator's device arrays instead (host memory
behind ``__cuda_array_interface__``-like views), so that everything the
objects launch runs through numba-cuda's simulator: the update kernel with
every policy, the pre-pass, and the device-side step counting of
``nonfinite="skip"`` (numadam._device_steps). Each run is compared with the
same optimizer on NumPy arrays (the CPU kernels).
"""

import numpy as np
import pytest
from numba import cuda
from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

import numadam
from arrays import random_array
from numadam._backends.cuda import CudaBackend


def _host(array):
    return array._ary if isinstance(array, FakeCUDAArray) else np.asarray(array)


@pytest.fixture
def simulator_storage(monkeypatch):
    """CudaBackend storing state in the simulator's device arrays instead of CuPy's."""
    monkeypatch.setattr(CudaBackend, "array_type", FakeCUDAArray)
    monkeypatch.setattr(CudaBackend, "zeros", lambda self, size, dtype: cuda.to_device(np.zeros(size, dtype)))
    monkeypatch.setattr(CudaBackend, "view", lambda self, buffer, offset, shape, strides, dtype: FakeCUDAArray(
        np.ndarray(shape, dtype, buffer=buffer._ary, offset=offset, strides=strides)))
    monkeypatch.setattr(CudaBackend, "broadcast", lambda self, array, shape: FakeCUDAArray(
        np.broadcast_to(_host(array), shape)))

    def assign(self, target, source):
        target._ary[...] = _host(source)

    monkeypatch.setattr(CudaBackend, "assign", assign)


def twins(seed, shapes, dtype=np.float32):
    rng = np.random.default_rng(seed)
    host = [random_array(rng, shape, dtype) for shape in shapes]
    return host, [cuda.to_device(array.copy()) for array in host]


def gradient_sequence(seed, shapes, steps, poisoned=(), dtype=np.float32):
    rng = np.random.default_rng(seed)
    sequence = []
    for step in range(steps):
        grads = [random_array(rng, shape, dtype) for shape in shapes]
        if step in poisoned:
            grads[0].flat[1] = np.nan
        sequence.append(grads)
    return sequence


SHAPES = [(40,), (3, 9), (70,)]


@pytest.mark.parametrize("options", [
    {"nonfinite": "skip"},
    {"nonfinite": "skip", "clip_global_norm": 1.0},
    {"bounds": (-0.5, 0.5), "ema": 0.8},
    {"accumulate": 2, "clip_value": 0.3},
    {"nonfinite": "skip", "accumulate": 2},  # skipped on the host, which waits for the pre-pass
])
def test_the_objects_on_cuda_kernels_match_the_cpu(simulator_storage, options):
    host, device = twins(1, SHAPES)
    cpu = numadam.Adam(host, lr=0.05, **options)
    gpu = numadam.Adam(device, lr=0.05, **options)
    for grads in gradient_sequence(2, SHAPES, 9, poisoned={2, 5, 6}):
        cpu.step(grads)
        gpu.step([cuda.to_device(g) for g in grads])
    assert gpu.step_count == cpu.step_count and gpu.skipped_steps == cpu.skipped_steps
    for actual, expected in zip(device, host):
        np.testing.assert_array_equal(actual.copy_to_host(), expected)
    if "ema" in options:
        for actual, expected in zip(gpu.ema_params(), cpu.ema_params()):
            np.testing.assert_array_equal(_host(actual), expected)


def test_device_steps_count_on_the_gpu_and_the_host_learns_them(simulator_storage):
    from numadam._device_steps import WINDOW

    host, device = twins(3, SHAPES)
    cpu = numadam.NAdam(host, lr=0.05, nonfinite="skip")
    gpu = numadam.NAdam(device, lr=0.05, nonfinite="skip")
    poisoned = set(range(3, 3 + WINDOW + 2))  # more skips in a row than the window holds
    for grads in gradient_sequence(4, SHAPES, WINDOW + 8, poisoned=poisoned):
        cpu.step(grads)
        gpu.step([cuda.to_device(g) for g in grads])
    assert gpu._device_steps is not None, "the GPU counted the steps"
    assert (gpu.step_count, gpu.skipped_steps) == (cpu.step_count, cpu.skipped_steps) == (6, WINDOW + 2)
    for actual, expected in zip(device, host):
        np.testing.assert_array_equal(actual.copy_to_host(), expected)
    state = gpu.state_dict()
    assert state["step"] == 6 and state["skipped_steps"] == WINDOW + 2
    assert state["carry"] == cpu.state_dict()["carry"]


def test_lamb_and_a_groups_tree_on_cuda_kernels(simulator_storage):
    host, device = twins(5, SHAPES)
    make = lambda arrays: numadam.LAMB({"g": numadam.Group(arrays[:1], weight_decay=0.0), "rest": arrays[1:]},  # noqa
                                       lr=0.02, weight_decay=0.1)
    cpu, gpu = make(host), make(device)
    for grads in gradient_sequence(6, SHAPES, 4):
        cpu.step({"g": grads[:1], "rest": grads[1:]})
        gpu.step({"g": [cuda.to_device(grads[0])], "rest": [cuda.to_device(g) for g in grads[1:]]})
    for actual, expected in zip(device, host):
        np.testing.assert_array_equal(actual.copy_to_host(), expected)


@pytest.mark.parametrize("storage", [
    {"dtype": "float16"}, {"dtype": "bfloat16"}, {"dtype": "bfloat16", "master_weights": True},
    {"dtype": "float16", "stochastic_rounding": True, "seed": 3}, {"dtype": "float32", "state_dtype": "bfloat16"},
], ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_every_storage_combination_on_cuda_kernels_matches_the_cpu(simulator_storage, storage):
    """16-bit parameters, master copies, stochastic rounding (the same random bits on both) and 16-bit state."""
    options = dict(storage)
    name = options.pop("dtype")
    dtype = np.dtype(pytest.importorskip("ml_dtypes").bfloat16 if name == "bfloat16" else name)
    host, _ = twins(7, SHAPES)
    host = [array.astype(dtype) for array in host]
    device = [cuda.to_device(array.copy()) for array in host]
    cpu, gpu = numadam.Adam(host, lr=0.01, **options), numadam.Adam(device, lr=0.01, **options)
    for grads in gradient_sequence(8, SHAPES, 4, dtype=np.float32):
        grads = [g.astype(dtype) for g in grads]
        cpu.step(grads)
        gpu.step([cuda.to_device(g) for g in grads])
    for actual, expected in zip(device, host):
        np.testing.assert_array_equal(actual.copy_to_host().view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("method, options", [("adam", {"amsgrad": True}), ("yogi", {"nonfinite": "skip"})])
def test_int8_state_on_cuda_kernels_matches_the_cpu(simulator_storage, method, options):
    """8-bit blockwise state: codes and scales bit for bit, a block per thread block (strided threads)."""
    shapes = [(4100,), (3, 9)]  # the first quantized in 17 blocks (the last of 4 elements); the second kept in float32
    host, device = twins(9, shapes)
    cls = numadam.families()[method]
    cpu = cls(host, lr=0.01, state_dtype="int8", **options)
    gpu = cls(device, lr=0.01, state_dtype="int8", **options)
    for grads in gradient_sequence(10, shapes, 3, poisoned=(1,) if options else ()):
        cpu.step(grads)
        gpu.step([cuda.to_device(g) for g in grads])
    for actual, expected in zip(device, host):
        np.testing.assert_array_equal(actual.copy_to_host(), expected)
    on_gpu, on_cpu = gpu.state_dict(), cpu.state_dict()
    for name, tree in on_cpu.items():
        if isinstance(tree, list):
            for actual, expected in zip(on_gpu[name], tree):
                np.testing.assert_array_equal(_host(actual), expected)


@pytest.mark.parametrize("options", [{"amsgrad": True}, {"convention": "optax", "weight_decay": 0.1,
                                                          "decoupled_weight_decay": True}])
def test_complex_magnitude_mode_on_cuda_kernels_matches_the_cpu(simulator_storage, options):
    """A shared real second moment per complex element: complex elements in the table, bit for bit."""
    shapes = [(12,), (3, 4)]
    host, device = twins(11, shapes, np.complex64)
    cpu = numadam.Adam(host, lr=0.01, complex_mode="magnitude", **options)
    gpu = numadam.Adam(device, lr=0.01, complex_mode="magnitude", **options)
    for grads in gradient_sequence(12, shapes, 3, dtype=np.complex64):
        cpu.step(grads)
        gpu.step([cuda.to_device(g) for g in grads])
    for actual, expected in zip(device, host):
        np.testing.assert_array_equal(actual.copy_to_host(), expected)
    on_gpu = gpu.state_dict()
    for name, tree in cpu.state_dict().items():
        if isinstance(tree, list):
            for actual, expected in zip(on_gpu[name], tree):
                np.testing.assert_array_equal(_host(actual), expected)
