"""The factors' pass on CUDA (:mod:`numadam.core.factors`), on any CUDA array (CuPy, numba-cuda, torch).

Over the matrices of a parameter (its last two dimensions; a batch of them
in each launch), four kernels, launched through CuPy where the arrays are
CuPy's (:mod:`numadam.targets.cuda.launcher`):

1. **The tiles' sums** (:func:`_tile_sums`), the only one that reads the
   gradient: a block of 256 threads takes 256 columns and 256 rows, each
   thread one column, sixteen rows at a time, so that a warp reads 32
   neighbouring elements at once. Each thread adds its column's squares of
   the effective gradient and stages them in shared memory, where sixteen
   threads per row then add the row's. Out come, in float64, each block's
   sums of each of its columns and each of its rows (each under 1% of a
   float32 gradient's bytes).
2. **The rows and the columns** (:func:`_finish_factors`): one thread per
   row and per column adds its tiles' sums in order, divides by the count
   into the state's dtype, and moves the factor toward that mean by torch's
   lerp.
3. **The row mean** (:func:`_floored_mean`): one block adds the row factor,
   each thread a stride of it and the block its threads' sums in a fixed
   tree; at least ``floor``.
4. **The scales** (:func:`_scales`): one thread per row and per column.

The scratch sums and means are allocated uninitialized: the kernels write
every element of them before it is read (a gradient of no elements launches
nothing).

Every sum is in float64 and in an order fixed by the shape and the layout
alone, so a GPU of any size gets the same bits; the CPU's pass adds in its own order, so the two
may differ in the last place of a factor. A matrix stored column-major is
read as its transpose, so that the reads stay coalesced. A parameter of fewer
than two dimensions moves its full second moment toward the squares, one
thread per element. The element arithmetic is the CPU pass's
(:mod:`numadam.targets.factor_elements`) and the rules'
(:func:`numadam.core.element_math.torch_lerp`).
"""

import numpy as np
from numba import cuda, float64

from ...core import factors
from ...core.element_math import torch_lerp
from ..factor_elements import column_scale, effective, row_scale
from .launcher import launch_kernel

THREADS = 128  # a block of the one-dimensional kernels
TILE_COLUMNS = 256  # a tile's columns: one per thread of its block
STAGE_ROWS = 16  # rows staged in shared memory at a time
SPAN_ROWS = 256  # rows a block sums its columns over (sixteen stages)
PARTS = TILE_COLUMNS // STAGE_ROWS  # threads adding one staged row
MOST_BLOCKS = 65535  # at most this many blocks along a grid's dimension: more work takes turns


@cuda.jit
def _tile_sums(grad, grad_scale, clip, row_sums, column_sums):
    """The sums of squares of the effective gradient over each tile's rows and columns, in float64.

    ``grad`` is a batch of matrices, ``(batch, rows, columns)``. Block ``(i, j)`` takes
    the 256 columns of column tile ``i`` and the 256 rows of span ``j`` of the batch's
    spans laid end to end (then span ``j + gridDim.y``, ...). For matrix ``b`` it writes
    ``row_sums[b, i, r]``, row ``r``'s sum over the tile's columns, and
    ``column_sums[b, s, c]``, column ``c``'s sum over span ``s``'s rows. Sixteen rows at
    a time, thread ``k`` reads column ``256 i + k`` of each (a warp's reads are
    neighbours), adds the squares to its column's sum and stages them in shared
    memory; then sixteen threads per staged row each add every sixteenth of its
    squares, and one thread per row adds those sixteen sums, in order.
    """
    thread = cuda.threadIdx.x
    column = cuda.blockIdx.x * TILE_COLUMNS + thread
    inside = column < grad.shape[2]
    staged = cuda.shared.array((STAGE_ROWS, TILE_COLUMNS), float64)
    parts = cuda.shared.array((STAGE_ROWS, PARTS), float64)
    my_row, my_part = thread // PARTS, thread % PARTS
    n_rows = grad.shape[1]
    spans = (n_rows + SPAN_ROWS - 1) // SPAN_ROWS
    for work in range(cuda.blockIdx.y, grad.shape[0] * spans, cuda.gridDim.y):
        matrix, span = work // spans, work % spans
        column_sum = float64(0.0)
        for first in range(span * SPAN_ROWS, min(span * SPAN_ROWS + SPAN_ROWS, n_rows), STAGE_ROWS):
            stage_rows = min(STAGE_ROWS, n_rows - first)
            if inside and stage_rows == STAGE_ROWS:  # a whole stage: sixteen reads in flight
                for k in range(STAGE_ROWS):
                    wide = float64(effective(grad[matrix, first + k, column], grad_scale, clip))
                    staged[k, thread] = wide * wide
                    column_sum += wide * wide
            else:
                for k in range(STAGE_ROWS):
                    square = float64(0.0)
                    if inside and k < stage_rows:
                        wide = float64(effective(grad[matrix, first + k, column], grad_scale, clip))
                        square = wide * wide
                    staged[k, thread] = square
                    column_sum += square
            cuda.syncthreads()
            part = float64(0.0)
            for j in range(my_part, TILE_COLUMNS, PARTS):
                part += staged[my_row, j]
            parts[my_row, my_part] = part
            cuda.syncthreads()
            if thread < stage_rows:
                row_sum = float64(0.0)
                for p in range(PARTS):
                    row_sum += parts[thread, p]
                row_sums[matrix, cuda.blockIdx.x, first + thread] = row_sum
        if inside:
            column_sums[matrix, span, column] = column_sum


@cuda.jit
def _finish_factors(row_sums, columns, row_factor, row_ends, column_sums, rows, column_factor, column_ends, weight,
                    one_minus_weight):
    """Both factors of each matrix ``b`` (rows of factors ``row_factor[b, 0, :]`` and
    ``column_factor[b, 0, :]``) moved by torch's lerp toward the means of their squares: a row's
    factor toward the sum of its tiles' sums ``row_sums[b, :, i]``, in order, divided by
    ``columns`` into ``row_ends[b, 0, i]`` (the state's dtype); a column's likewise from its
    spans' sums in ``column_sums`` over ``rows``. One thread per factor, the rows' first."""
    n_rows, n_columns = row_factor.shape[2], column_factor.shape[2]
    width = n_rows + n_columns
    for index in range(cuda.grid(1), row_factor.shape[0] * width, cuda.gridsize(1)):
        matrix, i = index // width, index % width
        if i < n_rows:
            sums, count, factor, ends = row_sums, columns, row_factor, row_ends
        else:
            sums, count, factor, ends = column_sums, rows, column_factor, column_ends
            i -= n_rows
        total = float64(0.0)
        for tile in range(sums.shape[1]):
            total += sums[matrix, tile, i]
        ends[matrix, 0, i] = total / count
        factor[matrix, 0, i] = torch_lerp(factor[matrix, 0, i], ends[matrix, 0, i], weight, one_minus_weight)


@cuda.jit
def _floored_mean(row_var, floor, mean):
    """``mean[b, 0, 0]``: the mean of matrix ``b``'s row factor ``row_var[b, 0, :]``, at least
    ``floor`` (NaN stays NaN). A block per matrix: each thread adds every ``THREADS``-th
    factor, the block its threads' sums in a tree."""
    thread = cuda.threadIdx.x
    sums = cuda.shared.array(THREADS, float64)
    for matrix in range(cuda.blockIdx.x, row_var.shape[0], cuda.gridDim.x):
        total = float64(0.0)
        for r in range(thread, row_var.shape[2], THREADS):
            total += float64(row_var[matrix, 0, r])
        sums[thread] = total
        cuda.syncthreads()
        half = THREADS // 2
        while half > 0:
            if thread < half:
                sums[thread] += sums[thread + half]
            cuda.syncthreads()
            half //= 2
        if thread == 0:
            mean[matrix, 0, 0] = sums[0] / row_var.shape[2]
            if mean[matrix, 0, 0] < floor:
                mean[matrix, 0, 0] = floor
        cuda.syncthreads()


@cuda.jit
def _scales(row_var, mean, row_scales, col_var, one, col_scales):
    """Matrix b's row r's scale (:func:`~numadam.targets.factor_elements.row_scale`) into
    ``row_scales[b, r, 0]`` and column c's (:func:`~numadam.targets.factor_elements.column_scale`;
    ``one``: 1 in the factors' dtype) into ``col_scales[b, 0, c]``; a thread per row and column."""
    rows, columns = row_var.shape[1], col_var.shape[2]
    width = max(rows, columns)
    for index in range(cuda.grid(1), row_var.shape[0] * width, cuda.gridsize(1)):
        matrix, i = index // width, index % width
        if i < rows:
            row_scales[matrix, i, 0] = row_scale(mean[matrix, 0, 0], row_var[matrix, i, 0])
        if i < columns:
            col_scales[matrix, 0, i] = column_scale(one, col_var[matrix, 0, i])


@cuda.jit
def _squares(grad, grad_scale, clip, out):
    """``out[i]``: the square of element i of a flat gradient, in the state's dtype."""
    for i in range(cuda.grid(1), grad.shape[0], cuda.gridsize(1)):
        value = effective(grad[i], grad_scale, clip)
        out[i] = value * value


@cuda.jit
def _lerp(state, ends, weight, one_minus_weight):
    """``state[i]`` moved toward ``ends[i]`` (flat, one length) by torch's lerp, a thread per element."""
    for i in range(cuda.grid(1), state.shape[0], cuda.gridsize(1)):
        state[i] = torch_lerp(state[i], ends[i], weight, one_minus_weight)


def _over(kernel, threads, stream, *arguments):
    """``kernel`` run with ``THREADS`` threads per block and enough blocks for ``threads`` threads
    (at most ``MOST_BLOCKS``: its loops take turns beyond)."""
    launch_kernel(kernel, max(1, min(-(-threads // THREADS), MOST_BLOCKS)), THREADS, stream, *arguments)


def _column_major(matrices):
    """Whether the columns of a batch of matrices are their contiguous direction (read them
    transposed then)."""
    return abs(matrices.strides[-2]) < abs(matrices.strides[-1])


def _swapped(matrices):
    """A batch of matrices ``(batch, rows, columns)`` viewed as their transposes."""
    return matrices.transpose((0, 2, 1))


def update_factors(backend, grad, row_var, col_var, row_mean, row_scales, col_scales, weight, floor, grad_scale,
                   clip_value, stream=0):
    """One parameter's factors moved toward its gradient (see :func:`numadam.core.factors.update_factors`),
    in place, by kernels on ``stream`` (the backend's current one, where the update runs and the
    scratch arrays were allocated). ``weight`` and ``floor`` are of the state's dtype.
    The matrices of a batch go through each kernel in one launch, as a 3-D array (the factors
    are contiguous: their reshapes are views). A gradient of no elements moves nothing (its
    callers skip it; the tiles' sums would have no span to write)."""
    if grad.size == 0:
        return
    real = np.dtype(row_var.dtype).type
    scale, clip = real(grad_scale), real(np.inf if clip_value is None else clip_value)
    one_minus = real(1) - weight
    if not factors.factored(grad.shape):
        flat_grad, flat_var = grad.reshape(-1), row_var.reshape(-1)
        squares = backend.empty(max(1, flat_var.size), row_var.dtype)
        _over(_squares, flat_grad.size, stream, flat_grad, scale, clip, squares)
        _over(_lerp, flat_var.size, stream, flat_var, squares, weight, one_minus)
        return
    rows, columns = grad.shape[-2:]
    batch = int(np.prod(grad.shape[:-2], dtype=np.int64))
    matrices = grad.reshape(batch, rows, columns)
    r, c = row_var.reshape(batch, rows, 1), col_var.reshape(batch, 1, columns)
    m = row_mean.reshape(batch, 1, 1)
    a, b = row_scales.reshape(batch, rows, 1), col_scales.reshape(batch, 1, columns)
    transposed = _column_major(matrices)  # (a reshape that had to copy made a C-ordered batch)
    read_rows, read_columns = (columns, rows) if transposed else (rows, columns)
    column_tiles = max(1, -(-read_columns // TILE_COLUMNS))
    spans = max(1, -(-read_rows // SPAN_ROWS))
    across = backend.empty(batch * column_tiles * read_rows, np.float64).reshape(batch, column_tiles, read_rows)
    down = backend.empty(batch * spans * read_columns, np.float64).reshape(batch, spans, read_columns)
    row_tile_sums, column_tile_sums = (down, across) if transposed else (across, down)
    row_ends = backend.empty(batch * rows, row_var.dtype).reshape(batch, 1, rows)
    column_ends = backend.empty(batch * columns, col_var.dtype).reshape(batch, 1, columns)
    launch_kernel(_tile_sums, (column_tiles, max(1, min(batch * spans, MOST_BLOCKS))), TILE_COLUMNS, stream,
                  _swapped(matrices) if transposed else matrices, scale, clip, across, down)
    _over(_finish_factors, batch * (rows + columns), stream, row_tile_sums, columns, _swapped(r), row_ends,
          column_tile_sums, rows, c, column_ends, weight, one_minus)
    launch_kernel(_floored_mean, max(1, min(batch, MOST_BLOCKS)), THREADS, stream, _swapped(r), floor, m)
    _over(_scales, batch * max(rows, columns), stream, r, m, a, c, real(1), b)
