"""What :class:`numadam.Muon` asks of its arrays, checked before a step or a load writes anything.

Muon steps each matrix in several calls (the momentum pass, the iteration, the
update pass) after its auxiliary AdamW, so every rule those calls would enforce
is checked here first, for every leaf: the kind of array (NumPy, CuPy or
torch, one kind and one device throughout), a real floating-point dtype in
native byte order, aligned, writable parameters, and no memory shared between
what a step reads and what it writes.
"""

import contextlib

import numpy as np

from ..adapters.dask import is_dask_array
from ..adapters.foreign import is_tensor

#: Why Dask arrays are refused (by Muon and by ``minimize(method="muon")``).
DASK_REFUSAL = ("Muon takes NumPy, CuPy and torch arrays, not Dask arrays: its Newton–Schulz iteration multiplies "
                "whole matrices (X Xᵀ reads every row of X at once), so a matrix chunked over workers would be "
                "gathered at every step; compute it into one array")


def library_of(array):
    """``"numpy"``, ``"cupy"`` or ``"torch"``; a ``TypeError`` for anything else (Dask with the reason)."""
    if isinstance(array, np.ndarray) and not isinstance(array, np.ma.MaskedArray):
        return "numpy"
    if is_tensor(array):
        return "torch"
    if type(array).__module__.split(".")[0] == "cupy":
        return "cupy"
    if is_dask_array(array):
        raise TypeError(DASK_REFUSAL)
    raise TypeError(f"Muon takes NumPy, CuPy and torch arrays; got {type(array).__module__}."
                    f"{type(array).__qualname__}")


def device_of(array, library):
    """Where ``array`` lives: ``"cpu"``, ``"cuda:N"``; a ``TypeError`` for other torch devices."""
    if library == "numpy":
        return "cpu"
    if library == "cupy":
        return f"cuda:{array.device.id}"
    device = array.device
    if device.type not in ("cpu", "cuda"):
        raise TypeError(f"Muon steps CPU and CUDA tensors; got a tensor on {device}")
    return "cpu" if device.type == "cpu" else f"cuda:{device.index if device.index is not None else 0}"


def checked_leaves(leaves, paths, role, writable):
    """``(library, device)`` of ``leaves``, each checked: one kind and device, real floating point in
    native byte order, aligned, not sparse; ``writable`` ones (parameters) writable too."""
    first = None
    for leaf, path in zip(leaves, paths):
        library = library_of(leaf)
        device = device_of(leaf, library)
        if first is None:
            first = library, device
        elif (library, device) != first:
            raise TypeError(f"{path} is a {library} array on {device} but the first leaf is a {first[0]} array on "
                            f"{first[1]}: one kind of array, on one device, throughout")
        if library == "torch" and leaf.layout is not _torch().strided:
            raise TypeError(f"{path} is a sparse tensor: Muon does not support sparse {role}")
        kind, dtype = _kind_dtype(leaf, library)
        if kind == "c":
            raise TypeError(f"{path} is complex ({dtype}): Muon does not support complex {role}")
        if kind != "f":
            raise TypeError(f"{path} must be real floating point; got dtype {dtype}")
        if library == "numpy":
            if not leaf.dtype.isnative:
                raise TypeError(f"{path} must be in the machine's byte order; got dtype {leaf.dtype.str}")
            if not leaf.flags.aligned:
                raise ValueError(f"{path} must be aligned to its element size")
            if writable and not leaf.flags.writeable:
                raise ValueError(f"{path} is read-only; Muon updates its parameters in place")
    return first


def _kind_dtype(array, library):
    """``(kind, name)`` of an array's dtype: kind ``'f'`` for real floating point, ``'c'`` complex."""
    if library == "torch":
        return ("c" if array.is_complex() else "f" if array.is_floating_point() else "i"), str(array.dtype)
    return array.dtype.kind, str(array.dtype)


def address_range(array, library):
    """``(first byte, one past the last byte)`` that ``array`` may touch."""
    if library == "torch":
        start, itemsize = array.data_ptr(), array.element_size()
        shape, strides = array.shape, array.stride()
    else:
        start = array.ctypes.data if library == "numpy" else array.data.ptr
        itemsize, shape, strides = array.itemsize, array.shape, [s // array.itemsize for s in array.strides]
    if 0 in shape:
        return start, start
    low = start + itemsize * sum(s * (n - 1) for s, n in zip(strides, shape) if s < 0)
    high = start + itemsize * (1 + sum(s * (n - 1) for s, n in zip(strides, shape) if s > 0))
    return low, high


def first_overlap(ranges):
    """The indices ``(i, j)`` of two of the byte ``ranges`` that meet, or ``None``."""
    order = sorted((r for r in range(len(ranges)) if ranges[r][1] > ranges[r][0]), key=lambda r: ranges[r])
    reach, owner = 0, None
    for r in order:
        if owner is not None and ranges[r][0] < reach:
            return owner, r
        if ranges[r][1] > reach:
            reach, owner = ranges[r][1], r
    return None


def as_matrix(array, library, path, parameter):
    """``array`` as the 2-D matrix ``reshape(shape[0], -1)``. A parameter's is a view of its memory
    (so it must be C-contiguous); a gradient's may be a copy."""
    if array.ndim == 2:
        return array
    if library == "torch":
        array = array.detach()
    if not parameter:
        return array.reshape(array.shape[0], -1)
    contiguous = array.is_contiguous() if library == "torch" else array.flags.c_contiguous
    if not contiguous:
        raise ValueError(f"{path} (shape {tuple(array.shape)}) must be C-contiguous: Muon reads a parameter of "
                         "more than two dimensions as the matrix reshape(shape[0], -1) over its memory")
    return array.view(array.shape[0], -1) if library == "torch" else array.reshape(array.shape[0], -1)


def on_device_of(array, library):
    """A context where CuPy allocates and runs on ``array``'s device (nothing for NumPy and torch)."""
    return array.device if library == "cupy" else contextlib.nullcontext()


def staged(value, target, library, path):
    """``value`` (a state array from a state dict: NumPy, CuPy or torch) as an array of ``target``'s
    library, device, dtype and shape, ready to copy in; a ``TypeError``/``ValueError`` otherwise."""
    if value is None or not hasattr(value, "shape"):
        raise TypeError(f"{path} must be an array of shape {tuple(target.shape)}; got {type(value).__name__}")
    if tuple(value.shape) != tuple(target.shape):
        raise ValueError(f"{path} must have shape {tuple(target.shape)}; got {tuple(value.shape)}")
    host = value.detach().cpu().numpy() if is_tensor(value) else (value.get() if hasattr(value, "get") else value)
    host = np.asarray(host)
    if host.dtype.kind != "f":
        raise TypeError(f"{path} must be real floating point; got dtype {host.dtype}")
    if library == "numpy":
        return host.astype(target.dtype, copy=True)
    if library == "cupy":
        with target.device:
            return _cupy().asarray(host, dtype=target.dtype)
    return _torch().as_tensor(host).to(device=target.device, dtype=target.dtype)


def _torch():
    import torch

    return torch


def _cupy():
    import cupy

    return cupy
