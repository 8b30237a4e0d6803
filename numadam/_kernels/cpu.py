"""CPU kernels: ``prange`` over the chunks of a segment table.

Each chunk is a run of equal length of the segments laid end to end, so every
iteration has the same work. Elements are read and written through raw
pointers taken from the table, so a single call updates any number of arrays.
Contiguous runs take a loop that LLVM vectorizes; strided runs take the
general loop. Both call :func:`~numadam._kernels.rules.adam_update`.

``error_model="numpy"`` matters: Python's error model inserts a
division-by-zero check that stops LLVM from vectorizing the loop.
"""

import functools
from typing import NamedTuple

from numba import njit, prange, types
from numba.extending import intrinsic
from numba.np.unsafe.ndarray import to_fixed_tuple

from .rules import NUM_HYPER, adam_update
from .segments import (
    ADDRESS,
    EXP_AVG,
    EXP_AVG_SQ,
    GRAD,
    MAX_EXP_AVG_SQ,
    NUM_COLUMNS,
    PARAM,
    STRIDE,
    piece_of,
    segment_of_element,
    sequence_length,
)


@intrinsic
def _pointer(typingctx, address, like):
    """A typed pointer to the element at byte ``address``; ``like`` gives its type."""
    pointer_type = types.CPointer(like)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer_type))

    return pointer_type(types.intp, like), codegen


@njit(inline="always")
def _update_run(table, row, start, stop, hyper, amsgrad, l2_decay):
    """Update elements ``start:stop`` of the segment at ``row``."""
    like = hyper[0]
    param = _pointer(table[row + ADDRESS + PARAM], like)
    grad = _pointer(table[row + ADDRESS + GRAD], like)
    exp_avg = _pointer(table[row + ADDRESS + EXP_AVG], like)
    exp_avg_sq = _pointer(table[row + ADDRESS + EXP_AVG_SQ], like)
    max_exp_avg_sq = _pointer(table[row + ADDRESS + MAX_EXP_AVG_SQ], like)
    sp = table[row + STRIDE + PARAM]
    sg = table[row + STRIDE + GRAD]
    sm = table[row + STRIDE + EXP_AVG]
    sv = table[row + STRIDE + EXP_AVG_SQ]
    sx = table[row + STRIDE + MAX_EXP_AVG_SQ]
    if sp == 1 and sg == 1 and sm == 1 and sv == 1 and (sx == 1 or not amsgrad):
        for i in range(start, stop):
            peak = max_exp_avg_sq[i] if amsgrad else like
            p, m, v, peak = adam_update(
                param[i], grad[i], exp_avg[i], exp_avg_sq[i], peak, hyper, amsgrad, l2_decay
            )
            param[i] = p
            exp_avg[i] = m
            exp_avg_sq[i] = v
            if amsgrad:
                max_exp_avg_sq[i] = peak
    else:
        for i in range(start, stop):
            peak = max_exp_avg_sq[i * sx] if amsgrad else like
            p, m, v, peak = adam_update(
                param[i * sp], grad[i * sg], exp_avg[i * sm], exp_avg_sq[i * sv], peak,
                hyper, amsgrad, l2_decay,
            )
            param[i * sp] = p
            exp_avg[i * sm] = m
            exp_avg_sq[i * sv] = v
            if amsgrad:
                max_exp_avg_sq[i * sx] = peak


@njit(inline="always")
def _update_chunk(table, n_segments, n_elements, chunk, chunk_size, hyper, amsgrad, l2_decay):
    """Update chunk ``chunk`` of the sequence, segment piece by segment piece."""
    first = chunk * chunk_size
    last = min(first + chunk_size, n_elements)
    segment = segment_of_element(table, n_segments, first)
    while first < last:
        row, start, stop = piece_of(table, segment, first, last)
        _update_run(table, row, start, stop, hyper, amsgrad, l2_decay)
        first += stop - start
        segment += 1


class AdamKernels(NamedTuple):
    """The CPU kernels of one variant; both take ``(table, n_chunks, chunk_size, hyper)``."""

    serial: object
    parallel: object


@functools.cache
def adam_kernels(amsgrad, l2_decay):
    """The kernels for one variant, with ``amsgrad`` and ``l2_decay`` compiled in.

    As compile-time constants the flags cost nothing per element: the branches
    they guard vanish, and without AMSGrad the loop touches four arrays, not
    five, which lets LLVM vectorize it. ``hyper`` is a NumPy array of the
    elements' real dtype in the order of
    :data:`~numadam._kernels.rules.HYPER_FIELDS`.
    """

    @njit(error_model="numpy")
    def serial(table, n_chunks, chunk_size, hyper):
        scalars = to_fixed_tuple(hyper, NUM_HYPER)
        n_segments = table.size // NUM_COLUMNS
        n_elements = sequence_length(table, n_segments)
        for chunk in range(n_chunks):
            _update_chunk(table, n_segments, n_elements, chunk, chunk_size, scalars, amsgrad, l2_decay)

    @njit(parallel=True, error_model="numpy")
    def parallel(table, n_chunks, chunk_size, hyper):
        scalars = to_fixed_tuple(hyper, NUM_HYPER)
        n_segments = table.size // NUM_COLUMNS
        n_elements = sequence_length(table, n_segments)
        for chunk in prange(n_chunks):
            _update_chunk(table, n_segments, n_elements, chunk, chunk_size, scalars, amsgrad, l2_decay)

    return AdamKernels(serial, parallel)


@njit(cache=True)
def data_address(array):
    """The address of ``array``'s first element, found faster than ``array.ctypes.data``."""
    return array.ctypes.data
