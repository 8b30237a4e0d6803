"""How the CUDA kernel is launched, checked without a GPU.

numba-cuda configures a launch (grid, block, stream) without touching the
device, so what a launch costs on the host and what it prints can be checked
here; the launch itself is tested on hardware (test_cupy.py) and in the
simulator (tests/simulator).
"""

import re
import sys
import types
import warnings

import pytest

pytest.importorskip("numba.cuda")

import numpy as np  # noqa: E402

import numadam  # noqa: E402
from numadam.targets.cuda import kernels as cuda_kernels  # noqa: E402
from numadam.engine.operands import kernel_spec  # noqa: E402
from arrays import tiered  # noqa: E402


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


class LoadedKernel:
    """A stand-in for the CuPy function of :func:`cuda_kernels.cupy_loaded`, recording its launches."""

    def __init__(self):
        self.arguments = []

    def __call__(self, grid, block, arguments, stream):
        self.arguments.append(arguments)


def cupy_launch(monkeypatch, spec, scalars):
    """The arguments :func:`cuda_kernels.launch` hands CuPy for ``scalars``, and the number of values
    the kernel it asked for takes as arguments."""
    loaded, asked = LoadedKernel(), []

    class Cupy:  # the attributes launch reads: cupy.cuda.Device().id, cupy.cuda.get_current_stream()
        class cuda:  # noqa: N801 (CuPy's name)
            Device = staticmethod(lambda: types.SimpleNamespace(id=0))
            get_current_stream = staticmethod(lambda: None)

    def cupy_loaded(spec, device_step, device_id, n_values=0):
        asked.append(n_values)
        return None, loaded

    monkeypatch.setitem(sys.modules, "cupy", Cupy)
    monkeypatch.setattr(cuda_kernels, "cupy_loaded", cupy_loaded)
    monkeypatch.setattr(cuda_kernels, "max_blocks", lambda: 132 * 16)
    cuda_kernels.launch(spec, 4096, 13, 2, 1, scalars, np.float32(0))
    (arguments,) = loaded.arguments
    return arguments, asked[0]


@pytest.mark.parametrize("n_rows", tiered([0, 1, 2], lambda n_rows: n_rows == 2))
def test_a_launch_through_cupy_packs_its_scalars_as_the_kernel_takes_them(monkeypatch, n_rows):
    """CuPy packs each argument by its dtype; the compiled kernel's parameters, in PTX, must be
    those types in that order: the scalars' values (or their address, ``n_rows`` 0) in place."""
    from numba import cuda

    spec = adam_spec(True)
    values = tuple(np.arange(n_rows * spec.n_scalars, dtype=np.float32))
    arguments, n_values = cupy_launch(monkeypatch, spec, values if n_rows else 8192)
    assert n_values == len(values)
    if n_rows:
        assert arguments[5:5 + n_values] == values
    ptx, _ = cuda.compile_ptx(cuda_kernels.kernel_for(spec).py_func, cuda_kernels.update_signature(spec, n_values),
                              cc=(9, 0))
    entry = ptx[ptx.index(".entry"):]
    parameters = re.findall(r"\.param \.(\w+)", entry[:entry.index(")")])
    ptx_type = {np.dtype(np.int64): "u64", np.dtype(np.float32): "f32"}
    assert [ptx_type[np.asarray(argument).dtype] for argument in arguments] == parameters
