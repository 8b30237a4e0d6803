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

    def __call__(self, grid, block, arguments, stream=None):
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
@pytest.mark.slow
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


class CupyArray:
    """A stand-in for a CuPy array on the host: what :mod:`numadam.targets.cuda.launcher` reads of one."""

    def __init__(self, array):
        self.dtype, self.ndim, self.shape, self.strides = array.dtype, array.ndim, array.shape, array.strides
        self.size, self.itemsize = array.size, array.itemsize
        self.data = types.SimpleNamespace(ptr=array.ctypes.data)
        self.flags = types.SimpleNamespace(c_contiguous=array.flags.c_contiguous)


def fake_cupy(monkeypatch):
    """A stand-in for the ``cupy`` module, as :mod:`numadam.targets.cuda.launcher` reads it: its array
    class (:class:`CupyArray`) and the current device's number."""

    class Cupy:
        ndarray = CupyArray

        class cuda:  # noqa: N801 (CuPy's name)
            runtime = types.SimpleNamespace(getDevice=lambda: 0)

    monkeypatch.setitem(sys.modules, "cupy", Cupy)


def launched_through_cupy(monkeypatch, kernel, blocks, threads, arguments):
    """``(signature, arguments)``: the types ``kernel`` was compiled for and the values CuPy was handed
    by :func:`launcher.launch_kernel`, with :class:`CupyArray` as CuPy's array class; fails if
    numba-cuda's launcher was used."""
    from numadam.targets.cuda import launcher

    loaded, compiled = LoadedKernel(), []

    def cupy_function(kernel, key, device_id):
        compiled.append(launcher.signature(key))
        return None, loaded

    def numba_launch(*_):
        raise AssertionError("launched through numba-cuda")

    fake_cupy(monkeypatch)
    monkeypatch.setattr(launcher, "cupy_function", cupy_function)
    monkeypatch.setattr(launcher, "quiet_grid", numba_launch)
    launcher.launch_kernel(kernel, blocks, threads, 0, *arguments)
    (handed,) = loaded.arguments
    return compiled[0], handed


def ptx_parameters(kernel, signature):
    """The PTX types of the parameters of ``kernel`` compiled for ``signature``."""
    from numba import cuda

    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
    entry = ptx[ptx.index(".entry"):]
    return re.findall(r"\.param \.(\w+)", entry[:entry.index(")")])


PTX_TYPE = {np.dtype(np.int64): "u64", np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


@pytest.mark.parametrize("transposed", tiered([False, True], lambda transposed: transposed))
def test_a_kernel_of_arrays_is_handed_to_cupy_as_its_compiled_parameters(monkeypatch, transposed):
    """The factors' first kernel, of two arrays of three dimensions, a float32 and a float64
    one, and two scalars: CuPy gets each array's pointers, count, item size, extents and byte
    strides, and the scalars in the types the kernel was compiled for, one value per PTX
    parameter of the same type; a transposed view is compiled for any layout."""
    from numadam.targets.cuda import factors

    grad = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    grad = grad.transpose(0, 2, 1) if transposed else grad
    sums = np.zeros((2, 1, 5))
    signature, handed = launched_through_cupy(
        monkeypatch, factors._tile_sums, (1, 2), 256, (CupyArray(grad), np.float32(1), np.float32(np.inf),
                                                       CupyArray(sums), CupyArray(sums)))
    assert [parameter.layout for parameter in (signature[0], signature[3])] == ["A" if transposed else "C", "C"]
    assert str(signature[1]) == "float32"
    assert [PTX_TYPE[np.asarray(value).dtype] for value in handed] == ptx_parameters(factors._tile_sums, signature)
    assert handed[:11] == (0, 0, grad.size, 4, grad.ctypes.data, *grad.shape, *grad.strides)
    assert handed[11:13] == (1, np.inf)
    assert handed[13:24] == (0, 0, sums.size, 8, sums.ctypes.data, *sums.shape, *sums.strides)


def test_a_python_int_is_handed_to_cupy_as_the_int64_it_was_compiled_for(monkeypatch):
    """The count of the factors' finishing kernel, a Python int, goes as an int64; every value
    handed matches a PTX parameter of its type."""
    from numadam.targets.cuda import factors

    state, ends = np.ones((1, 1, 6), np.float32), np.zeros((1, 1, 6), np.float32)
    sums = np.zeros((1, 2, 6))
    matrix = (CupyArray(sums), 7, CupyArray(state), CupyArray(ends))
    signature, handed = launched_through_cupy(monkeypatch, factors._finish_factors, 1, 128,
                                              matrix * 2 + (np.float32(0.25), np.float32(0.75)))
    assert str(signature[1]) == "int64"
    assert type(handed[11]) is np.int64 and handed[11] == 7
    assert [PTX_TYPE[np.asarray(value).dtype] for value in handed] == ptx_parameters(factors._finish_factors,
                                                                                      signature)


def test_a_tuple_of_scalars_is_typed_as_one_tuple():
    from numadam.targets.cuda import launcher

    key = launcher.arguments_key((5, (np.float32(1), np.float32(2)), 0.5), CupyArray)
    assert [str(kind) for kind in launcher.signature(key)] == ["int64", "UniTuple(float32 x 2)", "float64"]
    assert launcher.flattened((5, (np.float32(1), np.float32(2)), 0.5), CupyArray) == (5, 1, 2, 0.5)
    assert [type(value) for value in launcher.flattened((5, (np.float32(1), np.float32(2)), 0.5), CupyArray)] == [
        np.int64, np.float32, np.float32, np.float64]


@pytest.mark.parametrize("argument", [np.zeros(3), True, np.bool_(True), 1 + 2j, np.complex64(1), 2 ** 63,
                                      np.timedelta64(1), (1.0, True), "text", None],
                         ids=lambda argument: type(argument).__name__)
def test_an_argument_cupy_cannot_take_is_launched_by_numba_cuda(monkeypatch, argument):
    """A host (or any non-CuPy) array, a boolean, a complex number, an int past int64, a
    timedelta, a tuple holding a boolean or another object leaves the launch to numba-cuda."""
    from numadam.targets.cuda import launcher

    configured = []

    fake_cupy(monkeypatch)
    monkeypatch.setattr(launcher, "cupy_function", lambda *_: pytest.fail("launched through CuPy"))
    monkeypatch.setattr(launcher, "quiet_grid", lambda *grid: lambda *arguments: configured.append((grid, arguments)))
    launcher.launch_kernel("kernel", 3, 128, "stream", 1, argument)
    assert configured == [(("kernel", 3, 128, "stream"), (1, argument))]


def test_a_kernel_without_a_cubin_is_launched_by_numba_cuda(monkeypatch):
    """Where numba-cuda keeps no cubin to load (:func:`launcher.cupy_function` is ``None``),
    numba-cuda launches the kernel itself."""
    from numadam.targets.cuda import launcher

    configured = []

    fake_cupy(monkeypatch)
    monkeypatch.setattr(launcher, "cupy_function", lambda *_: None)
    monkeypatch.setattr(launcher, "quiet_grid", lambda *grid: lambda *arguments: configured.append((grid, arguments)))
    launcher.launch_kernel("kernel", (2, 3), 256, "stream", 4, np.float32(1))
    assert configured == [(("kernel", (2, 3), 256, "stream"), (4, np.float32(1)))]
