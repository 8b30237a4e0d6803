"""Array type -> backend: the one place that knows which kernel runs.

``numpy.ndarray`` goes to the CPU kernel; CuPy arrays, anything with
``__cuda_array_interface__`` (and the CUDA simulator's arrays) go to the CUDA
kernel. The answer is cached per type, and nothing here imports CuPy or
numba-cuda until a CUDA array shows up: NumPy users never load either.
"""

import sys

import numpy as np

_BACKENDS = {}
_BACKEND_BY_TYPE = {}


def _backend(name):
    """The backend called ``name``, made (and its module imported) on first use."""
    backend = _BACKENDS.get(name)
    if backend is None:
        if name == "numpy":
            from .cpu.backend import CpuBackend as kind
        else:
            from .cuda.backend import CudaBackend as kind
        backend = _BACKENDS[name] = kind()
    return backend


def _backend_name(array_type):
    """``"numpy"``, ``"cuda"`` or ``None`` for a type; cached."""
    try:
        return _BACKEND_BY_TYPE[array_type]
    except KeyError:
        pass
    if issubclass(array_type, np.ndarray):
        name = None if issubclass(array_type, np.ma.MaskedArray) else "numpy"
    elif hasattr(array_type, "__cuda_array_interface__") or getattr(array_type, "__cuda_ndarray__", False):
        name = "cuda"
    else:
        name = None
    _BACKEND_BY_TYPE[array_type] = name
    return name


def _holds_device_memory(array):
    """Whether an array of a CUDA-capable type is on the device.

    torch tensors and JAX arrays carry ``__cuda_array_interface__`` on their type
    but refuse it on instances in host memory.
    """
    cupy = sys.modules.get("cupy")
    if (cupy is not None and isinstance(array, cupy.ndarray)) or getattr(type(array), "__cuda_ndarray__", False):
        return True
    try:
        return getattr(array, "__cuda_array_interface__") is not None
    except Exception:  # the property refuses a host instance; libraries raise different errors
        return False


def backend_for(arrays, paths):
    """The backend that updates ``arrays`` (named ``paths`` in errors).

    Raises ``TypeError`` for anything that is not a supported array and for a
    mix of NumPy and CUDA arrays.
    """
    first_name = first_path = first_array = None
    for array, path in zip(arrays, paths):
        name = _backend_name(type(array))
        if name is None or (name == "cuda" and not _holds_device_memory(array)):
            where = "" if name is None else " (not on a CUDA device)"
            raise TypeError(
                f"{path} must be a numpy.ndarray or a CUDA array (CuPy, __cuda_array_interface__); "
                f"got {describe_type(array)}{where}"
            )
        if first_name is None:
            first_name, first_path, first_array = name, path, array
        elif name != first_name:
            raise TypeError(
                f"{path} is a {describe_type(array)} but {first_path} is a "
                f"{describe_type(first_array)}: "
                "all arrays of an update must live on the same backend (NumPy or CUDA)"
            )
    if first_name is None:
        raise ValueError("no arrays given")
    return _backend(first_name)


def describe_type(value):
    """A short description of ``value``'s type for error messages."""
    if value is None:
        return "None"
    kind = type(value)
    module = kind.__module__
    name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    if isinstance(value, (bool, int, float, complex)):
        return f"{name} ({value!r})"
    return name
