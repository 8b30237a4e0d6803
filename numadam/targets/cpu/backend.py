"""NumPy arrays, updated by the Numba ``prange`` kernels of :mod:`numadam.targets.cpu.kernels`."""

import numpy as np

from . import threads
from ..quantization import BLOCK
from ..layout import number_chunks
from ..arrays import ArrayInfo, Plan


#: A spec's real dtype by name, and zero in it.
_REAL_DTYPES = {name: (np.dtype(name), np.dtype(name).type(0)) for name in ("float32", "float64")}


def _row_major(scalars, real):
    """The rows of ``scalars`` (tuples of floats, or a float64 array of rows) one after the other,
    rounded once to ``real``."""
    if isinstance(scalars, np.ndarray):
        return scalars.astype(real).reshape(-1)
    if len(scalars) == 1:
        return np.fromiter(scalars[0], real, len(scalars[0]))
    return np.array(scalars, real).reshape(-1)


class CpuBackend:
    """NumPy arrays, updated by the Numba ``prange`` kernel."""

    name = "numpy"
    #: Elements per chunk (one ``prange`` iteration).
    chunk_size = 1 << 14
    #: Below this many elements the update runs on the calling thread: waking
    #: the thread pool costs more than it saves.
    serial_below = 1 << 16

    def __init__(self):
        from . import kernels as cpu

        self._kernels = cpu

    @staticmethod
    def describe(array):
        address, readonly = array.__array_interface__["data"]
        return ArrayInfo(address, array.shape, array.strides, array.dtype, readonly)

    def address(self, array):
        if type(array) is np.ndarray and array.dtype.itemsize >= 4:  # Numba has no 16-bit floats
            return self._kernels.data_address(array)
        return array.__array_interface__["data"][0]

    def plan(self, rows):
        n_chunks, n_elements = number_chunks(rows, self.chunk_size)
        return Plan(rows, n_chunks, n_elements, rows.reshape(-1))

    def _parallel(self, plan):
        """Whether ``plan`` runs on every core: large enough, and not in a child forked from OpenMP."""
        return plan.n_elements >= self.serial_below and threads.parallel_allowed()

    def run(self, plan, spec, scalars):
        """Apply ``spec``'s rule with ``scalars``: one row of floats per group, rounded
        here, once, to the spec's real dtype."""
        if plan.n_chunks == 0:
            return
        plan.check_fits(spec, scalars)
        real, zero = _REAL_DTYPES[spec.real]
        kernel = self._kernels.compiled(spec, self._parallel(plan))
        kernel(spec, plan.device_table, plan.width, plan.n_chunks, self.chunk_size, _row_major(scalars, real), zero)

    def run_blocks(self, plan, spec, scalars, blocks, scales):
        """:meth:`run` for a spec with 8-bit state: block by block (``blocks``: each block's first
        element in the sequence, then its length), reading and writing the blocks' ``scales``."""
        if plan.n_chunks == 0:
            return
        plan.check_fits(spec, scalars)
        real, zero = _REAL_DTYPES[spec.real]
        kernel = self._kernels.compiled_blocks(spec, self._parallel(plan))
        kernel(spec, plan.device_table, plan.width, blocks, self.chunk_size // BLOCK, _row_major(scalars, real), zero,
               scales)

    def reduce(self, plan, spec, scalars, starts, stops):
        """``(pieces, 2)`` float64: the sum of squares and the non-finite count of the
        effective gradient over each piece ``starts[p]:stops[p]`` of the sequence."""
        out = np.zeros((len(starts), 2))
        plan.check_fits(spec, scalars)
        if len(starts):
            real, zero = _REAL_DTYPES[spec.real]
            kernel = self._kernels.compiled_reduction(spec, self._parallel(plan))
            kernel(spec, plan.device_table, plan.width, starts, stops, _row_major(scalars, real), zero, out)
        return out

    # Optimizer state lives in NumPy arrays.
    array_type = np.ndarray

    @staticmethod
    def zeros(size, dtype):
        return np.zeros(size, dtype)

    @staticmethod
    def broadcast(array, shape):
        """A read-only view of ``array`` repeated to ``shape`` (strides 0 where repeated)."""
        return np.broadcast_to(array, shape)

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
