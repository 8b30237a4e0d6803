"""CPU kernels: ``prange`` over the chunks of a segment table.

Each chunk is a run of equal length of the segments laid end to end, so every
iteration has the same work. Elements are read and written through raw
pointers taken from the table, so a single call updates any number of arrays.
Each piece of a segment goes through the spec's ``run_piece``
(:mod:`numadam._kernels.runner`), whose contiguous loop LLVM vectorizes.

The kernels take the :class:`~numadam._kernels.spec.KernelSpec` as their first
argument; Numba compiles one machine code per spec and caches it on disk
(``cache=True``), so a new process loads it instead of compiling.

``error_model="numpy"`` matters: Python's error model inserts a
division-by-zero check that stops LLVM from vectorizing the loop.
"""

import functools
import pathlib

from numba import njit, prange, typeof, types
from numba.extending import overload

from .primitives import cpu_primitives
from .runner import piece_runner, reduction_runner
from .segments import piece_of, segment_of_element, sequence_length


def run_piece(spec, table, row, start, stop, scalars, like):
    """Update elements ``start:stop`` of the segment at ``row`` (compiled per spec)."""


@functools.cache
def _compiled_piece(spec):
    return njit(piece_runner(spec, cpu_primitives()))


@overload(run_piece)
def _run_piece(spec, table, row, start, stop, scalars, like):
    piece = _compiled_piece(spec.spec)

    def implementation(spec, table, row, start, stop, scalars, like):
        piece(table, row, start, stop, 1, scalars, like)

    return implementation


def reduce_piece(spec, table, row, start, stop, scalars, like):
    """The pre-pass's two sums over ``start:stop`` of a segment (see :func:`~numadam._kernels.runner.reduction_source`)."""


@functools.cache
def _compiled_reduction(spec):
    return njit(reduction_runner(spec, cpu_primitives()))


@overload(reduce_piece)
def _reduce_piece(spec, table, row, start, stop, scalars, like):
    piece = _compiled_reduction(spec.spec)

    def implementation(spec, table, row, start, stop, scalars, like):
        return piece(table, row, start, stop, 1, scalars, like)

    return implementation


@njit(inline="always")
def _reduce_span(spec, table, width, n_segments, first, last, scalars, like):
    """The sums over elements ``first:last`` of the sequence, segment piece by segment piece, in order."""
    first_sum = 0.0
    second_sum = 0.0
    segment = segment_of_element(table, n_segments, first, width)
    while first < last:
        row, start, stop = piece_of(table, segment, first, last, width)
        piece_first, piece_second = reduce_piece(spec, table, row, start, stop, scalars, like)
        first_sum += piece_first
        second_sum += piece_second
        first += stop - start
        segment += 1
    return first_sum, second_sum


@njit(cache=True, error_model="numpy")
def reduce_serial(spec, table, width, starts, stops, scalars, like, out):
    """For each piece ``starts[p]:stops[p]`` of the sequence, ``out[p]``: the pre-pass's two sums."""
    n_segments = table.size // width
    for piece in range(starts.size):
        out[piece, 0], out[piece, 1] = _reduce_span(spec, table, width, n_segments, starts[piece], stops[piece],
                                                    scalars, like)


@njit(cache=True, parallel=True, error_model="numpy")
def reduce_parallel(spec, table, width, starts, stops, scalars, like, out):
    """:func:`reduce_serial`, one ``prange`` iteration per piece."""
    n_segments = table.size // width
    for piece in prange(starts.size):
        out[piece, 0], out[piece, 1] = _reduce_span(spec, table, width, n_segments, starts[piece], stops[piece],
                                                    scalars, like)


@njit(inline="always")
def _update_chunk(spec, table, width, n_segments, n_elements, chunk, chunk_size, scalars, like):
    """Update chunk ``chunk`` of the sequence, segment piece by segment piece."""
    first = chunk * chunk_size
    last = min(first + chunk_size, n_elements)
    segment = segment_of_element(table, n_segments, first, width)
    while first < last:
        row, start, stop = piece_of(table, segment, first, last, width)
        run_piece(spec, table, row, start, stop, scalars, like)
        first += stop - start
        segment += 1


@njit(cache=True, error_model="numpy")
def update_serial(spec, table, width, n_chunks, chunk_size, scalars, like):
    """Apply the spec's rule over every chunk of ``table``, on the calling thread.

    ``scalars`` holds each group's per-step scalars, row after row, in the real
    dtype; ``like`` is zero in that dtype.
    """
    n_segments = table.size // width
    n_elements = sequence_length(table, n_segments, width)
    for chunk in range(n_chunks):
        _update_chunk(spec, table, width, n_segments, n_elements, chunk, chunk_size, scalars, like)


@njit(cache=True, parallel=True, error_model="numpy")
def update_parallel(spec, table, width, n_chunks, chunk_size, scalars, like):
    """Apply the spec's rule over every chunk of ``table``, one ``prange`` iteration per chunk."""
    n_segments = table.size // width
    n_elements = sequence_length(table, n_segments, width)
    for chunk in prange(n_chunks):
        _update_chunk(spec, table, width, n_segments, n_elements, chunk, chunk_size, scalars, like)


def signature(spec):
    """The argument types of the kernels for ``spec``."""
    real = types.float32 if spec.real == "float32" else types.float64
    return (typeof(spec), types.int64[::1], types.int64, types.int64, types.int64, real[::1], real)


def reduction_signature(spec):
    """The argument types of the reduction kernels for ``spec``."""
    real = types.float32 if spec.real == "float32" else types.float64
    return (typeof(spec), types.int64[::1], types.int64, types.int64[::1], types.int64[::1], real[::1], real,
            types.float64[:, ::1])


@functools.cache
def compiled_reduction(spec, parallel):
    """The machine code of ``reduce_parallel`` (or ``reduce_serial``) for ``spec`` (see :func:`compiled`)."""
    return (reduce_parallel if parallel else reduce_serial).compile(reduction_signature(spec))


@functools.cache
def compiled(spec, parallel):
    """The machine code of ``update_parallel`` (or ``update_serial``) for ``spec``, as a
    function called without Numba's dispatch (which would type the spec on every call).

    It takes ``(spec, table, width, n_chunks, chunk_size, scalars, like)`` exactly as
    :func:`signature` types them: an int64 table, and scalars and a zero in the
    spec's real dtype.
    """
    return (update_parallel if parallel else update_serial).compile(signature(spec))


@njit(cache=True)
def data_address(array):
    """The address of ``array``'s first element, found faster than ``array.ctypes.data``."""
    return array.ctypes.data


def cache_files():
    """The files of Numba's disk cache that hold these kernels' machine code.

    Numba writes them to ``__pycache__`` beside this module when that folder is
    writable, else to a folder of the user's cache directory, or to
    ``NUMBA_CACHE_DIR`` when that is set.
    """
    files = []
    for kernel in (update_serial, update_parallel, reduce_serial, reduce_parallel, data_address):
        directory = pathlib.Path(kernel.stats.cache_path)
        files += sorted(directory.glob(f"{__name__.rsplit('.', 1)[-1]}.{kernel.__name__}-*.nb[ic]"))
    return files
