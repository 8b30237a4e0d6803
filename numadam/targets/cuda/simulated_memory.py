"""Raw-address access for the CUDA simulator, where device memory is host memory.

On real hardware :mod:`numadam.targets.cuda.kernels` turns addresses into pointers
with LLVM intrinsics; the simulator runs kernels as Python, so these stand-ins
read and write the same addresses through ``ctypes``.
"""

import ctypes

import numpy as np


class _ElementPointer:
    """``pointer[i]`` is the element ``i`` items after ``address`` (``i`` may be negative)."""

    __slots__ = ("address", "dtype")

    def __init__(self, address, dtype):
        self.address = address
        self.dtype = dtype

    def _element(self, index):
        size = self.dtype.itemsize
        buffer = (ctypes.c_char * size).from_address(self.address + int(index) * size)
        return np.frombuffer(buffer, dtype=self.dtype)

    def __getitem__(self, index):
        return self._element(index)[0]

    def __setitem__(self, index, value):
        self._element(index)[0] = value


def element_pointer(address, like):
    return _ElementPointer(int(address), np.dtype(type(like)))


def table_view(address, n_values):
    buffer = (ctypes.c_int64 * int(n_values)).from_address(int(address))
    return np.frombuffer(buffer, dtype=np.int64)


def scalar_view(scalars, like):
    """The scalar rows, indexable: a tuple of values (kernel arguments) as it is, an address as a pointer."""
    return scalars if isinstance(scalars, tuple) else element_pointer(scalars, like)
