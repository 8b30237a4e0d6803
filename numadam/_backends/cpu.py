"""NumPy arrays, updated by the Numba ``prange`` kernels of :mod:`numadam._kernels.cpu`."""

import numpy as np

from .._layout import number_chunks
from . import ArrayInfo, Plan


class CpuBackend:
    """NumPy arrays, updated by the Numba ``prange`` kernel."""

    name = "numpy"
    #: Elements per chunk (one ``prange`` iteration).
    chunk_size = 1 << 14
    #: Below this many elements the update runs on the calling thread: waking
    #: the thread pool costs more than it saves.
    serial_below = 1 << 16

    def __init__(self):
        from .._threading import choose_threading_layer; choose_threading_layer()  # before any parallel kernel
        from .._kernels import cpu

        self._kernels = cpu

    @staticmethod
    def describe(array):
        address, readonly = array.__array_interface__["data"]
        return ArrayInfo(address, array.shape, array.strides, array.dtype, readonly)

    def address(self, array):
        if type(array) is np.ndarray:
            return self._kernels.data_address(array)
        return array.__array_interface__["data"][0]

    def plan(self, rows):
        n_chunks, n_elements = number_chunks(rows, self.chunk_size)
        return Plan(rows, n_chunks, n_elements, rows.reshape(-1))

    def run(self, plan, real_dtype, hyper, amsgrad, l2_decay):
        """Apply the update with scalars ``hyper`` (floats, rounded here to ``real_dtype``)."""
        if plan.n_chunks == 0:
            return
        kernels = self._kernels.adam_kernels(amsgrad, l2_decay)
        kernel = kernels.serial if plan.n_elements < self.serial_below else kernels.parallel
        kernel(plan.device_table, plan.n_chunks, self.chunk_size, np.array(hyper, real_dtype))

    # Optimizer state lives in NumPy arrays.
    array_type = np.ndarray

    @staticmethod
    def zeros(size, dtype):
        return np.zeros(size, dtype)

    @staticmethod
    def view(buffer, offset, shape, strides, dtype):
        """An array of ``shape``/``strides`` over ``buffer`` starting ``offset`` bytes in."""
        return np.ndarray(shape, dtype, buffer=buffer, offset=offset, strides=strides)

    @staticmethod
    def assign(target, source):
        """Copy ``source`` (a NumPy or CuPy array) into the NumPy array ``target``."""
        if not isinstance(source, np.ndarray) and hasattr(source, "get"):
            source = source.get()
        np.copyto(target, source)
