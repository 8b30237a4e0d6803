"""The factors' pass on the CPU: each row's and each column's sum of squares, in one read of the gradient.

:func:`row_and_column_squares` reads a gradient of shape ``(B, R, C)`` (any
strides; float32 or float64) once and writes, in float64, the sum of the
squares of the effective gradient over each row (the last dimension) and over
each column (the next-to-last). The rows are cut into blocks of
:data:`ROWS_PER_BLOCK`, one ``prange`` iteration each: a block sums its rows
and its own partial column sums, and the partial sums are added block after
block. The association is fixed by the blocks (and, within one, by groups of
eight rows), not by the threads, so the sums are the same on any number of
cores. :func:`matrix_squares` takes the same sums of one matrix on the
calling thread, for :mod:`numadam.jit`'s factored step.
"""

import math

import numpy as np
from numba import njit, prange

from ...families._common import torch_lerp
from ..factor_elements import column_scale, effective, row_scale

#: Rows of one block of parallel work (and of one partial column sum).
ROWS_PER_BLOCK = 64


def row_and_column_squares(grad, grad_scale, clip_value, scratch=None):
    """``(row_sums, column_sums)`` of ``grad`` (``(..., R, C)``), as :func:`numadam.core.factors.sums_of_squares`
    computes them but in one read, on every core. ``scratch`` (a dict the caller keeps for this
    gradient's shape) holds the partial sums from call to call: memory touched before, which new
    arrays of megabytes are not."""
    shape = grad.shape
    flat = grad[None] if grad.ndim == 2 else grad.reshape((math.prod(shape[:-2]),) + shape[-2:])
    if walks_transposed(flat.strides[-2], flat.strides[-1]):
        columns, rows = _squares(flat.swapaxes(-1, -2), grad_scale, clip_value, {} if scratch is None else scratch)
    else:
        rows, columns = _squares(flat, grad_scale, clip_value, {} if scratch is None else scratch)
    return rows.reshape(shape[:-1]), columns.reshape(shape[:-2] + shape[-1:])


def _squares(grad, grad_scale, clip_value, scratch):
    real = grad.dtype.type
    batch, n_rows, n_columns = grad.shape
    n_blocks = max(1, -(-n_rows // ROWS_PER_BLOCK))
    key = batch, n_rows, n_columns
    if scratch.get("shape") != key:
        scratch.update(shape=key, partial=np.empty((batch, n_blocks, n_columns)), rows=np.empty((batch, n_rows)),
                       columns=np.empty((batch, n_columns)))
    clip = real(np.inf if clip_value is None else clip_value)
    parallel = grad.size >= SERIAL_BELOW
    as_given = grad_scale == 1 and clip_value is None
    (_block_sums if parallel else _block_sums_serial)(grad, real(grad_scale), clip, as_given, ROWS_PER_BLOCK,
                                                      scratch["rows"], scratch["partial"])
    (_added_blocks if parallel else _added_blocks_serial)(scratch["partial"], scratch["columns"])
    return scratch["rows"], scratch["columns"]


def move_factors(grad, row_var, col_var, row_mean, row_scales, col_scales, weight, floor, grad_scale, clip_value,
                 scratch):
    """One parameter's factors moved toward its gradient (float32 or float64, as its factors), in
    place: :func:`numadam.core.factors.update_factors` in compiled calls, on every core from
    :data:`SERIAL_BELOW` elements. ``scratch`` is a dict the caller keeps for the parameter."""
    real = row_var.dtype.type
    one_minus = real(1) - weight
    if grad.ndim < 2:
        clip = real(np.inf if clip_value is None else clip_value)
        moved_variance(grad.reshape(-1), real(grad_scale), clip, row_var.reshape(-1), weight, one_minus)
        return
    rows, columns = row_and_column_squares(grad, grad_scale, clip_value, scratch)
    batch = math.prod(grad.shape[:-2])
    n_rows, n_columns = grad.shape[-2:]
    moved_factors_from_sums(rows.reshape(batch, n_rows), columns.reshape(batch, n_columns),
                            row_var.reshape(batch, n_rows), col_var.reshape(batch, n_columns), row_mean.reshape(batch),
                            row_scales.reshape(batch, n_rows), col_scales.reshape(batch, n_columns), weight, one_minus,
                            floor)


#: From this many elements on, the factors' pass runs on every core: waking the threads costs more
#: than it saves below.
SERIAL_BELOW = 1 << 16


@njit
def moved_variance(grad, grad_scale, clip, variance, weight, one_minus_weight):
    """A vector's full second moment moved toward its gradient's squares (torch's lerp)."""
    for i in range(grad.size):
        value = effective(grad[i], grad_scale, clip)
        variance[i] = torch_lerp(variance[i], value * value, weight, one_minus_weight)


@njit(error_model="numpy")  # a factor of 0: an infinite scale (the direction takes the cap)
def moved_factors_from_sums(row_sums, column_sums, row_var, col_var, row_mean, row_scales, col_scales, weight,
                            one_minus_weight, floor):
    """The factors of each matrix of a batch moved toward the means of its rows' and columns' squares
    (float64 sums, each mean rounded once), then its row factor's mean over the rows, floored, and
    the rows' and columns' scales (:func:`~numadam.targets.factor_elements.row_scale`,
    :func:`~numadam.targets.factor_elements.column_scale`)."""
    batch, n_rows = row_var.shape
    n_columns = col_var.shape[1]
    end = row_var[0, :1].copy()  # one number of the factors' dtype: a mean rounded into it
    end[0] = 1
    one = end[0]
    for b in range(batch):
        total = 0.0
        for r in range(n_rows):
            end[0] = row_sums[b, r] / n_columns
            row_var[b, r] = torch_lerp(row_var[b, r], end[0], weight, one_minus_weight)
            total += np.float64(row_var[b, r])
        for c in range(n_columns):
            end[0] = column_sums[b, c] / n_rows
            col_var[b, c] = torch_lerp(col_var[b, c], end[0], weight, one_minus_weight)
            col_scales[b, c] = column_scale(one, col_var[b, c])
        end[0] = total / n_rows
        row_mean[b] = floor if end[0] < floor else end[0]
        for r in range(n_rows):
            row_scales[b, r] = row_scale(row_mean[b], row_var[b, r])


# Not cached on disk (here and below): they inline numadam.targets.factor_elements, which Numba's
# cache would not watch.
@njit(parallel=True)
def _block_sums(grad, grad_scale, clip, as_given, per_block, rows, partial):
    """Each row's sum of squares into ``rows``, and the column sums of each block of ``per_block``
    rows into ``partial``: eight rows at a time, whose squares go into the column sums as
    :math:`((s_0 + s_1) + (s_2 + s_3)) + ((s_4 + s_5) + (s_6 + s_7))` (an eighth of the loads and
    stores of the sums), then the rows left one by one. ``as_given``: the squares of the gradient
    as it is (:func:`_element`)."""
    batch, n_rows, n_columns = grad.shape
    n_blocks = partial.shape[1]
    for job in prange(batch * n_blocks):
        b = job // n_blocks
        block = job - b * n_blocks
        part = partial[b, block]
        part[:] = 0.0
        totals = np.empty(8)
        r, last = block * per_block, min(n_rows, (block + 1) * per_block)
        while r + 8 <= last:
            _eight_rows(grad[b, r:r + 8], grad_scale, clip, as_given, part, totals)
            rows[b, r:r + 8] = totals
            r += 8
        while r < last:
            rows[b, r] = _one_row(grad[b, r], grad_scale, clip, as_given, part)
            r += 1


@njit(fastmath={"reassoc"})
def _eight_rows(eight, grad_scale, clip, as_given, part, totals):
    """The sums of squares of eight rows into ``totals``, their column sums added into ``part``."""
    row0, row1, row2, row3, row4, row5, row6, row7 = (eight[0], eight[1], eight[2], eight[3], eight[4], eight[5],
                                                      eight[6], eight[7])
    total0 = total1 = total2 = total3 = total4 = total5 = total6 = total7 = 0.0
    for c in range(row0.size):
        wide0 = np.float64(_element(row0[c], grad_scale, clip, as_given))
        wide1 = np.float64(_element(row1[c], grad_scale, clip, as_given))
        wide2 = np.float64(_element(row2[c], grad_scale, clip, as_given))
        wide3 = np.float64(_element(row3[c], grad_scale, clip, as_given))
        wide4 = np.float64(_element(row4[c], grad_scale, clip, as_given))
        wide5 = np.float64(_element(row5[c], grad_scale, clip, as_given))
        wide6 = np.float64(_element(row6[c], grad_scale, clip, as_given))
        wide7 = np.float64(_element(row7[c], grad_scale, clip, as_given))
        square0, square1, square2, square3 = wide0 * wide0, wide1 * wide1, wide2 * wide2, wide3 * wide3
        square4, square5, square6, square7 = wide4 * wide4, wide5 * wide5, wide6 * wide6, wide7 * wide7
        total0 += square0
        total1 += square1
        total2 += square2
        total3 += square3
        total4 += square4
        total5 += square5
        total6 += square6
        total7 += square7
        part[c] += ((square0 + square1) + (square2 + square3)) + ((square4 + square5) + (square6 + square7))
    totals[0], totals[1], totals[2], totals[3] = total0, total1, total2, total3
    totals[4], totals[5], totals[6], totals[7] = total4, total5, total6, total7


@njit(fastmath={"reassoc"})
def _one_row(row, grad_scale, clip, as_given, part):
    """The sum of squares of one row, its squares added into the column sums ``part``."""
    total = 0.0
    for c in range(row.size):
        wide = np.float64(_element(row[c], grad_scale, clip, as_given))
        square = wide * wide
        total += square
        part[c] += square
    return total


@njit(inline="always")
def _element(value, grad_scale, clip, as_given):
    """The effective gradient (:func:`~numadam.targets.factor_elements.effective`), or with ``as_given``
    (``grad_scale`` 1, no clip) the value itself: the same number without the multiply and the two
    comparisons. The flag does not change within a loop, so the compiler makes a loop of each kind."""
    return value if as_given else effective(value, grad_scale, clip)


_block_sums_serial = njit(_block_sums.py_func)  # the same loops on the calling thread


@njit(cache=True, parallel=True)
def _added_blocks(partial, columns):
    """The blocks' column sums added in block order."""
    batch, n_blocks, n_columns = partial.shape
    for b in prange(batch):
        for c in range(n_columns):
            columns[b, c] = 0.0
        for block in range(n_blocks):
            for c in range(n_columns):
                columns[b, c] += partial[b, block, c]


_added_blocks_serial = njit(_added_blocks.py_func)  # the same order on the calling thread


@njit
def matrix_squares(grad, one, infinity):
    """``(row_sums, column_sums)`` of a matrix's squares, each of shape ``(1, n)``, for njit code
    (:mod:`numadam.jit`): :func:`row_and_column_squares` of a gradient neither scaled nor clipped
    (``one`` and ``infinity`` in the gradient's dtype), on the calling thread, over the same blocks
    and the same walk of an F-ordered matrix: the same bits."""
    if _walks_transposed(grad.strides[0], grad.strides[1]):
        columns, rows = _serial_squares(grad.T, one, infinity)
        return rows, columns
    return _serial_squares(grad, one, infinity)


@njit
def _serial_squares(grad, one, infinity):
    """:func:`matrix_squares` of a matrix walked row by row."""
    n_rows, n_columns = grad.shape
    n_blocks = max(1, -(-n_rows // ROWS_PER_BLOCK))
    rows, partial, columns = np.empty((1, n_rows)), np.empty((1, n_blocks, n_columns)), np.empty((1, n_columns))
    _block_sums_serial(grad[None], one, infinity, True, ROWS_PER_BLOCK, rows, partial)
    _added_blocks_serial(partial, columns)
    return rows, columns


def walks_transposed(row_stride, column_stride):
    """Whether a matrix with these strides is Fortran-like, so its sums walk it transposed (the
    columns as rows): the same association for a matrix and its transpose's memory."""
    return row_stride != 0 and abs(column_stride) > abs(row_stride)


_walks_transposed = njit(inline="always")(walks_transposed)
