"""Launching numba-cuda kernels: through CuPy's launcher where it can, else numba-cuda's.

numba-cuda's launcher types and converts every argument on every launch
(about 0.2 ms of host time for a kernel of several CuPy array arguments on
an H100's host, docs/gpu.md), so a step of several small kernels (Adafactor's
factors' pass, a norms pass) waited on the host, not on the GPU.
The same compiled code can be launched by CuPy instead: numba-cuda compiles
a kernel for the argument types, CuPy loads its cubin and launches it with
the arguments laid out as the compiled kernel takes them:

- an array of ``n`` dimensions as ``2 + 3 + 2n`` values: two null pointers
  (numba's meminfo and parent), the element count, the item size, the data's
  address, the ``n`` extents and the ``n`` strides in bytes, all 64-bit;
- a Python int as an ``int64``, a Python float as a ``float64``, a NumPy
  integer or real scalar as itself;
- a tuple as its values, one by one.

An array is typed C-contiguous (``layout "C"``) only where its strides are
exactly a C-ordered array's of its shape, else as of any layout (``"A"``,
indexed through its strides), so the compiled code is right for any array
it is given. CuPy launches on its current stream, the one
:mod:`numadam.targets.cuda.backend` wraps for numba-cuda, so both launchers
queue on the same stream.

numba-cuda launches where an argument is anything else (a numba-cuda device
array, a torch tensor, a boolean, a complex number, a Python int past
int64), where CuPy is not imported, in the simulator, and where numba-cuda
keeps its compiled code in another form than a cubin.
"""

import functools
import sys
import warnings

import numpy as np
from numba import cuda, typeof
from numba.core import types
from numba.np import numpy_support

from ..block_labels import fresh_block_labels

SIMULATED = bool(cuda.config.ENABLE_CUDASIM)

#: The scalar types passed as themselves (a Python int or float: as int64, float64).
_SCALARS = frozenset({int, float, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                      np.float16, np.float32, np.float64})
_INT64 = np.iinfo(np.int64)


def quiet_grid(kernel, blocks, threads, stream):
    """``kernel`` configured by numba-cuda for ``blocks`` blocks of ``threads`` threads on ``stream``.

    A small update (or a small parameter's factors' pass) gets a small grid on
    purpose, so numba-cuda's performance warning about grids of fewer than 128
    blocks is silenced here (matched by its text: its class moved between numba-cuda
    versions).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Grid size")
        return kernel[blocks, threads, stream]


def launch_kernel(kernel, blocks, threads, stream, *arguments):
    """Launch the numba-cuda kernel ``kernel`` on ``blocks`` blocks (an int or a tuple) of
    ``threads`` threads: through CuPy's launcher on CuPy's current stream where every
    argument allows it (see the module docstring), else through numba-cuda on ``stream``,
    which must therefore be CuPy's current stream (as numba-cuda wraps it:
    :meth:`numadam.targets.cuda.backend.CudaBackend._stream`), or 0 in the simulator."""
    cupy = None if SIMULATED else sys.modules.get("cupy")
    if cupy is not None:
        key = arguments_key(arguments, cupy.ndarray)
        if key is not None:
            loaded = cupy_function(kernel, key, cupy.cuda.runtime.getDevice())
            if loaded is not None:
                grid = blocks if type(blocks) is tuple else (blocks,)
                loaded[1](grid, (threads,), flattened(arguments, cupy.ndarray))
                return
    quiet_grid(kernel, blocks, threads, stream)(*arguments)


def arguments_key(arguments, array_class):
    """What the compiled kernel depends on in ``arguments`` (hashable), or ``None`` where one is
    not an ``array_class`` array, an integer, a real number or a tuple of those scalars."""
    key = []
    for argument in arguments:
        kind = type(argument)
        if kind is array_class:
            key.append((argument.dtype, argument.ndim, "C" if argument.flags.c_contiguous else "A"))
        elif kind is tuple and all(_scalar(value) for value in argument):
            key.append(tuple(map(type, argument)))
        elif _scalar(argument):
            key.append(kind)
        else:
            return None
    return tuple(key)


def _scalar(value):
    """Whether ``value`` is a scalar passed as itself (:data:`_SCALARS`; a Python int within int64)."""
    kind = type(value)
    return kind in _SCALARS and (kind is not int or _INT64.min <= value <= _INT64.max)


def signature(key):
    """The numba types of arguments with :func:`arguments_key` ``key``."""
    return tuple(_numba_type(part) for part in key)


def _numba_type(part):
    """The numba type of one part of an :func:`arguments_key`: an array's ``(dtype, ndim, layout)``,
    a tuple's types, or a scalar's type."""
    if type(part) is tuple and len(part) == 3 and isinstance(part[0], np.dtype):
        dtype, ndim, layout = part
        return types.Array(numpy_support.from_dtype(dtype), ndim, layout)
    if type(part) is tuple:
        return types.BaseTuple.from_types(tuple(_numba_type(kind) for kind in part))
    return typeof(part(0))


def flattened(arguments, array_class):
    """``arguments`` laid out as the kernel's parameters (see the module docstring): each value
    typed, for CuPy's launcher, as the compiled kernel takes it."""
    values = []
    for argument in arguments:
        kind = type(argument)
        if kind is array_class:
            values += (_NULL, _NULL, np.int64(argument.size), np.int64(argument.itemsize),
                       np.int64(argument.data.ptr), *map(np.int64, argument.shape),
                       *map(np.int64, argument.strides))
        elif kind is tuple:
            values += map(_typed, argument)
        else:
            values.append(_typed(argument))
    return tuple(values)


_NULL = np.int64(0)


def _typed(value):
    """A scalar argument as its numba type's NumPy scalar (a Python int as int64, a float as float64)."""
    kind = type(value)
    if kind is int:
        return np.int64(value)
    if kind is float:
        return np.float64(value)
    return value


@functools.cache  # never evicted: unloading a module could pull code from under queued launches
def cupy_function(kernel, key, device_id):
    """``(module, function)``: ``kernel`` compiled by numba-cuda for :func:`signature` ``(key)``,
    loaded by CuPy into GPU ``device_id`` (the current one); ``None`` where numba-cuda keeps
    no cubin."""
    fresh_block_labels()
    return loaded_function(kernel.compile(signature(key)))


def loaded_function(compiled):
    """``(module, function)``: the numba-cuda compiled kernel ``compiled`` loaded by CuPy into the
    current GPU (the function is valid while its module is loaded), or ``None`` where
    numba-cuda keeps its code in another form than a cubin."""
    cupy = sys.modules["cupy"]
    try:
        code = compiled._codelibrary.get_cubin()  # numba-cuda 0.2x-0.30: bytes, or cuda.core's ObjectCode
        module = cupy.cuda.function.Module()
        module.load(getattr(code, "code", code))
    except (AttributeError, TypeError):
        return None
    return module, module.get_function(compiled.entry_name)
