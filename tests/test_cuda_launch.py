"""How the CUDA kernel is launched, checked without a GPU.

numba-cuda configures a launch (grid, block, stream) without touching the
device, so what a launch costs on the host and what it prints can be checked
here; the launch itself is tested on hardware (test_cupy.py) and in the
simulator (tests/simulator).
"""

import warnings

import pytest

pytest.importorskip("numba.cuda")

import numpy as np  # noqa: E402

import numadam  # noqa: E402
from numadam.targets.cuda import kernels as cuda_kernels  # noqa: E402
from numadam.engine.operands import kernel_spec  # noqa: E402


def adam_spec(amsgrad):
    family = numadam.Adam.algorithm
    h = family.Hyper(**{**numadam.Adam._class_defaults, "amsgrad": amsgrad})
    return kernel_spec(family, family.flags(h), np.dtype(np.float32), {k.name for k in family.state_kinds(h)})


def test_a_one_block_launch_is_configured_without_a_low_occupancy_warning():
    """numba-cuda warns about grids under 128 blocks; a 1e3-element step needs one block."""
    cuda_kernels.configured_kernel.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        launch = cuda_kernels.configured_kernel(adam_spec(False), 1, 0)
    assert launch.griddim == (1, 1, 1)
    assert launch.blockdim == (cuda_kernels.THREADS_PER_BLOCK, 1, 1)
    assert cuda_kernels.configured_kernel(adam_spec(False), 1, 0) is launch
    assert cuda_kernels.configured_kernel(adam_spec(True), 1, 0) is not launch


def test_the_multiprocessor_count_is_asked_of_the_driver_once(monkeypatch):
    queries = []

    class Device:
        MULTIPROCESSOR_COUNT = 132

    def get_current_device():
        queries.append(1)
        return Device()

    monkeypatch.setattr(cuda_kernels.cuda, "get_current_device", get_current_device)
    cuda_kernels.max_blocks.cache_clear()
    try:
        assert [cuda_kernels.max_blocks() for _ in range(3)] == [132 * 16] * 3
        assert len(queries) == 1
    finally:
        cuda_kernels.max_blocks.cache_clear()
