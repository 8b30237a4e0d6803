"""The optimizer objects, their policies and device-counted skips, through the CUDA kernels in the simulator.

The objects keep their CUDA state in CuPy arrays, which need a GPU. Here a
stand-in stores it in the simulator's device arrays instead (host memory
behind ``__cuda_array_interface__``-like views), so that everything the
objects launch runs through numba-cuda's simulator: the update kernel with
every policy, the pre-pass, and the device-side step counting of
``nonfinite="skip"`` (numadam.engine.device_steps). The cases, in
``tests/cuda_object_cases.py``, compare each run bit for bit with the same
optimizer on NumPy arrays (the CPU kernels); ``tests/test_cuda_objects.py``
runs them on a real GPU.
"""

import numpy as np
import pytest
from numba import cuda
from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

from cuda_object_cases import *  # noqa: F401,F403 (the shared tests)
from cuda_object_cases import Device
from numadam.targets.cuda.backend import CudaBackend


def _host(array):
    return array._ary if isinstance(array, FakeCUDAArray) else np.asarray(array)


@pytest.fixture
def device(monkeypatch):
    """CudaBackend storing state (and scratch) in the simulator's device arrays instead of CuPy's."""
    monkeypatch.setattr(CudaBackend, "array_type", FakeCUDAArray)
    monkeypatch.setattr(CudaBackend, "zeros", lambda self, size, dtype: cuda.to_device(np.zeros(size, dtype)))
    # scratch taken uninitialized comes filled with NaN here: a kernel that left an element unwritten fails
    monkeypatch.setattr(CudaBackend, "empty", lambda self, size, dtype: cuda.to_device(np.full(size, np.nan, dtype)))
    monkeypatch.setattr(CudaBackend, "view", lambda self, buffer, offset, shape, strides, dtype: FakeCUDAArray(
        np.ndarray(shape, dtype, buffer=buffer._ary, offset=offset, strides=strides)))
    monkeypatch.setattr(CudaBackend, "broadcast", lambda self, array, shape: FakeCUDAArray(
        np.broadcast_to(_host(array), shape)))

    def assign(self, target, source):
        target._ary[...] = _host(source)

    monkeypatch.setattr(CudaBackend, "assign", assign)
    return Device(to_device=lambda array: cuda.to_device(array), to_host=lambda array: np.array(_host(array)))
