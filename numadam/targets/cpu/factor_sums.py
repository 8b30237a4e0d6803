"""The factors' pass on the CPU: each row's and each column's sum of squares, in one read of the gradient.

:func:`row_and_column_squares` reads a gradient of shape ``(B, R, C)`` (any
strides; float32 or float64) once and writes, in float64, the sum of the
squares of the effective gradient over each row (the last dimension) and over
each column (the next-to-last). The rows are cut into blocks
(:func:`rows_per_block`), one ``prange`` iteration each: a block sums its rows,
each into its own total and into the block's partial column sums (narrow rows
one at a time, wide ones eight at a time: :func:`_rows_of_block`), and the
partial sums are added block after block. The association is fixed by the
shape (the blocks, and the rows within one), not by the threads, so the sums
are the same on any number of cores. :func:`matrix_squares` takes the same
sums of one matrix on the calling thread, for :mod:`numadam.jit`'s factored
step.
"""

import math

import numpy as np
from numba import njit, prange
from numba.extending import overload, register_jitable

from ..disk_cache import cached_njit
from .threads import parallel_allowed
from ...core.element_math import torch_lerp
from ...core.magnitudes import peak_magnitude
from ..factor_elements import column_scale, effective, row_scale

#: The fewest rows of a block of parallel work (and of one partial column sum).
FEWEST_ROWS_PER_BLOCK = 64
#: The most blocks of one matrix: their partial column sums are written, then added, once per step;
#: and one matrix's pass takes at most this many cores.
MOST_BLOCKS_PER_MATRIX = 64


@register_jitable  # a plain function on the host, compiled into numadam.jit's pass
def rows_per_block(n_rows):
    """The rows of each block of the factors' pass over a matrix of ``n_rows`` rows (as the pass walks
    it): at least :data:`FEWEST_ROWS_PER_BLOCK`, a multiple of 8 (the column sums' groups of eight rows), and
    enough that the matrix has at most :data:`MOST_BLOCKS_PER_MATRIX` blocks. At 30000 x 1000,
    blocks of 64 rows wrote and added 469 partial sums of 1000 columns twice a step: 1.3 ms of a
    23 ms step on two cores (a Zen 4). A function of the shape alone, so the sums' association is
    too."""
    per_block = max(FEWEST_ROWS_PER_BLOCK, -(-n_rows // MOST_BLOCKS_PER_MATRIX))
    return -(-per_block // 8) * 8


@register_jitable
def block_count(n_rows, per_block):
    """The blocks of ``per_block`` rows (:func:`rows_per_block`) of a matrix of ``n_rows`` rows (one,
    empty, where it has none)."""
    return max(1, -(-n_rows // per_block))


def row_and_column_squares(grad, grad_scale, clip_value, scratch=None):
    """``(row_sums, column_sums)`` of ``grad`` (``(..., R, C)``), as :func:`numadam.core.factors.sums_of_squares`
    computes them but in one read, on every core. ``scratch`` (a dict the caller keeps for this
    gradient's shape) holds the partial sums from call to call: memory touched before, which new
    arrays of megabytes are not."""
    shape = grad.shape
    flat = _batched(grad)
    scratch = {} if scratch is None else scratch
    if walks_transposed(flat.strides[-2], flat.strides[-1]):
        columns, rows = _squares(flat.swapaxes(-1, -2), grad_scale, clip_value, scratch)
    else:
        rows, columns = _squares(flat, grad_scale, clip_value, scratch)
    return rows.reshape(shape[:-1]), columns.reshape(shape[:-2] + shape[-1:])


def _batched(array):
    """``array`` of shape ``(..., R, C)`` as ``(B, R, C)``."""
    return array[None] if array.ndim == 2 else array.reshape((math.prod(array.shape[:-2]),) + array.shape[-2:])


def _squares(grad, grad_scale, clip_value, scratch, norms=None):
    r"""The sums of :func:`row_and_column_squares` over ``grad`` ``(B, R, C)`` walked row by row; with
    ``norms`` (``(param, walk_factor, weight, one_minus_weight)``, :func:`_block_sums_with_norms`) also
    each column's :math:`\sum_r g_{rc}^2 / f_r` into ``scratch["weighted"]`` and each block's
    :math:`\sum p^2` into ``scratch["param_blocks"]``."""
    real = grad.dtype.type
    batch, n_rows, n_columns = grad.shape
    per_block = rows_per_block(n_rows)
    n_blocks = block_count(n_rows, per_block)
    key = batch, n_rows, n_columns, norms is not None
    if scratch.get("shape") != key:
        scratch.clear()
        scratch.update(shape=key, partial=np.empty((batch, n_blocks, n_columns)), rows=np.empty((batch, n_rows)),
                       columns=np.empty((batch, n_columns)))
        if norms is not None:
            scratch.update(weighted_blocks=np.empty((batch, n_blocks, n_columns)),
                           weighted=np.empty((batch, n_columns)), param_blocks=np.empty((batch, n_blocks)))
    clip = real(np.inf if clip_value is None else clip_value)
    parallel = grad.size >= SERIAL_BELOW and parallel_allowed()
    as_given = grad_scale == 1 and clip_value is None
    if norms is None:
        (_block_sums if parallel else _block_sums_serial)(grad, real(grad_scale), clip, per_block, scratch["rows"],
                                                          scratch["partial"])
    else:
        param, walk_factor, weight, one_minus_weight = norms
        (_block_sums_with_norms if parallel else _block_sums_with_norms_serial)(
            grad, real(grad_scale), clip, as_given, per_block, scratch["rows"], scratch["partial"], param,
            walk_factor, weight, one_minus_weight, scratch["weighted_blocks"], scratch["param_blocks"])
        (_added_blocks if parallel else _added_blocks_serial)(scratch["weighted_blocks"], scratch["weighted"])
    (_added_blocks if parallel else _added_blocks_serial)(scratch["partial"], scratch["columns"])
    return scratch["rows"], scratch["columns"]


def move_factors(grad, row_var, col_var, row_mean, row_scales, col_scales, weight, floor, grad_scale, clip_value,
                 scratch, param=None, estimate_floor=None):
    r"""One parameter's factors moved toward its gradient (float32 or float64, as its factors), in
    place: :func:`numadam.core.factors.update_factors` in compiled calls, on every core from
    :data:`SERIAL_BELOW` elements. ``scratch`` is a dict the caller keeps for the parameter.

    With ``param`` (the parameter, in the factors' dtype) and ``estimate_floor`` (the floor
    :math:`\epsilon_1^2` of the rule's estimate), the same read also sums what the norms pass
    would (:mod:`numadam.core.factors`, "The norms from the factors' pass"): returns ``(‖p‖², ‖u‖²)``, or ``None``
    where the pass cannot (a matrix whose rows are wider than :data:`WIDEST_ROW_WITH_NORMS`, or
    whose direction meets the cap somewhere). Without ``param``, ``None``."""
    real = row_var.dtype.type
    one_minus = real(1) - weight
    clip = real(np.inf if clip_value is None else clip_value)
    if grad.ndim < 2:
        if param is None:
            moved_variance(grad.reshape(-1), real(grad_scale), clip, row_var.reshape(-1), weight, one_minus)
            return None
        return moved_variance_with_norms(grad.reshape(-1), param.reshape(-1), real(grad_scale), clip,
                                         row_var.reshape(-1), weight, one_minus, real(estimate_floor))
    flat = _batched(grad)
    batch, n_rows, n_columns = flat.shape
    transposed = walks_transposed(flat.strides[-2], flat.strides[-1])
    walked = flat.swapaxes(-1, -2) if transposed else flat
    norms = None
    if param is not None and walked.shape[-1] <= WIDEST_ROW_WITH_NORMS:
        walk_param = _batched(param).swapaxes(-1, -2) if transposed else _batched(param)
        walk_factor = (col_var if transposed else row_var).reshape(batch, -1)
        norms = walk_param, walk_factor, weight, one_minus
    walk_rows, walk_columns = _squares(walked, grad_scale, clip_value, scratch, norms)
    rows, columns = (walk_columns, walk_rows) if transposed else (walk_rows, walk_columns)
    moved_factors_from_sums(rows, columns, row_var.reshape(batch, n_rows), col_var.reshape(batch, n_columns),
                            row_mean.reshape(batch), row_scales.reshape(batch, n_rows),
                            col_scales.reshape(batch, n_columns), weight, one_minus, floor)
    if norms is None:
        return None
    with np.errstate(divide="ignore"):  # a floor of 0 (eps1 squared below the dtype's range): no cap
        cap = real(1) / np.sqrt(real(estimate_floor))
    found = _norms_from_sums(scratch["weighted"], (row_var if transposed else col_var).reshape(batch, -1),
                             row_mean.reshape(batch), row_scales.reshape(-1), col_scales.reshape(-1),
                             scratch["param_blocks"], cap)
    return found[1:] if found[0] else None


#: The widest row (in the order the pass walks the matrix) whose norms the factors' pass sums: it
#: reads eight rows twice, the second time from the cache (8 x 65536 float64 is 4 MiB).
WIDEST_ROW_WITH_NORMS = 1 << 16


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


def moved_variance_with_norms(grad, param, grad_scale, clip, variance, weight, one_minus_weight, estimate_floor):
    r""":func:`moved_variance`, and the vector's ``(‖p‖², ‖u‖²)``: its direction
    :math:`u = g / \sqrt{\max(v, \epsilon_1^2)}` formed as the rule forms it (the factors' floor
    ``estimate_floor``; its sign does not matter here), each square summed in float64; in chunks
    of :data:`VECTOR_CHUNK` elements on every core from :data:`SERIAL_BELOW` elements, their sums
    added in order (the same sums on any number of cores)."""
    if grad.size < SERIAL_BELOW:
        moved_variance(grad, grad_scale, clip, variance, weight, one_minus_weight)
        return _vector_norms(grad, param, grad_scale, clip, variance, estimate_floor)
    sums = np.empty((-(-grad.size // VECTOR_CHUNK), 2))
    chunks = _moved_variance_chunks if parallel_allowed() else _moved_variance_chunks_serial
    chunks(grad, param, grad_scale, clip, variance, weight, one_minus_weight, estimate_floor, sums)
    return _added_in_order(sums)


#: Elements of one parallel task of a vector's factors' pass.
VECTOR_CHUNK = 1 << 14


@njit(parallel=True, error_model="numpy")
def _moved_variance_chunks(grad, param, grad_scale, clip, variance, weight, one_minus_weight, estimate_floor, sums):
    """:func:`moved_variance` and :func:`_vector_norms` chunk by chunk (the chunk's arrays in the cache
    for the second loop), each chunk's two sums into its row of ``sums``."""
    for k in prange(sums.shape[0]):
        first = k * VECTOR_CHUNK
        last = min(grad.size, first + VECTOR_CHUNK)
        moved_variance(grad[first:last], grad_scale, clip, variance[first:last], weight, one_minus_weight)
        sums[k, 0], sums[k, 1] = _vector_norms(grad[first:last], param[first:last], grad_scale, clip,
                                               variance[first:last], estimate_floor)


_moved_variance_chunks_serial = njit(error_model="numpy")(_moved_variance_chunks.py_func)  # the same chunks


@njit
def _added_in_order(sums):
    """The columns of ``sums`` each added row after row: ``(‖p‖², ‖u‖²)``."""
    param_squares = direction_squares = 0.0
    for k in range(sums.shape[0]):
        param_squares += sums[k, 0]
        direction_squares += sums[k, 1]
    return param_squares, direction_squares


@njit(fastmath={"reassoc"}, error_model="numpy")
def _vector_norms(grad, param, grad_scale, clip, variance, estimate_floor):
    """``(‖p‖², ‖u‖²)`` of a vector from its moved second moment ``variance`` (see
    :func:`moved_variance_with_norms`)."""
    one = variance[:1].copy()
    one[0] = 1
    param_squares = direction_squares = 0.0
    for i in range(grad.size):
        value = effective(grad[i], grad_scale, clip)
        moved = variance[i]
        if moved < estimate_floor:  # NaN stays NaN
            moved = estimate_floor
        direction = (one[0] / math.sqrt(moved)) * value
        direction_squares += np.float64(direction) * np.float64(direction)
        param_squares += np.float64(param[i]) * np.float64(param[i])
    return param_squares, direction_squares


@njit(error_model="numpy")
def _norms_from_sums(weighted, walk_columns, row_mean, row_scales, column_scales, param_blocks, cap):
    r"""``(valid, ‖p‖², ‖u‖²)`` of a batch of matrices from the factors' pass
    (:mod:`numadam.core.factors`): :math:`\|u\|^2 = \sum_b \bar r_b \sum_j W_{bj} / h_{bj}`
    with ``weighted`` :math:`W` (each walked column's :math:`\sum_i g^2 / f_i`) and ``walk_columns``
    :math:`h` (the walked columns' moved factors); valid where no product of scales passes
    ``cap`` and the sum is finite."""
    largest = np.empty(2, row_scales.dtype)  # (the peaks, exact in the scales' dtype, multiplied there as the cap is)
    largest[0], largest[1] = peak_magnitude(row_scales), peak_magnitude(column_scales)  # (NaN: not valid)
    param_squares = direction_squares = 0.0
    for b in range(weighted.shape[0]):
        for block in range(param_blocks.shape[1]):
            param_squares += param_blocks[b, block]
        matrix = 0.0
        for j in range(weighted.shape[1]):
            matrix += weighted[b, j] / np.float64(walk_columns[b, j])
        direction_squares += np.float64(row_mean[b]) * matrix
    valid = largest[0] * largest[1] <= cap and math.isfinite(direction_squares)
    return valid, param_squares, direction_squares


# Not cached on disk (here and below): they inline numadam.targets.factor_elements, which Numba's
# cache would not watch.
@njit(parallel=True)
def _block_sums(grad, grad_scale, clip, per_block, rows, partial):
    """Each row's sum of squares into ``rows``, and the column sums of each block of ``per_block``
    rows into ``partial`` (:func:`_rows_of_block`)."""
    batch, n_rows, n_columns = grad.shape
    n_blocks = partial.shape[1]
    for job in prange(batch * n_blocks):
        b = job // n_blocks
        block = job - b * n_blocks
        part = partial[b, block]
        part[:] = 0.0
        first, last = block * per_block, min(n_rows, (block + 1) * per_block)
        _rows_in_eights(grad[b, first:last], grad_scale, clip, part, rows[b, first:last])


@njit(inline="always")
def _rows_in_eights(run, grad_scale, clip, part, totals):
    """The rows of ``run`` (a block's, or a group of them starting a multiple of eight rows into
    it) eight at a time (:func:`_rows_of_block`): their sums of squares into ``totals``, their
    squares into the column sums ``part``. Both passes sum a block's rows in these groups, so its
    column sums are the same bits with the norms or without."""
    for first in range(0, run.shape[0], 8):
        last = min(run.shape[0], first + 8)
        _rows_of_block(run[first:last], grad_scale, clip, part, totals[first:last])


#: The widest rows summed one at a time: the block's partial column sums (float64) then stay in the
#: first-level cache (8 KiB of the 32 or 48 KiB of these CPUs) while each row streams past them.
ONE_ROW_WIDEST = 1024


@njit(inline="always")
def _rows_of_block(group, grad_scale, clip, part, totals):
    """Up to eight rows' sums of squares into ``totals``, their squares into the column sums ``part``:
    rows of at most :data:`ONE_ROW_WIDEST` one after another (one stream from memory; on a Zen 4 at
    30000 x 1000 float32, 5.0 ms against 6.6 ms eight at a time), wider ones eight at a time (an
    eighth of the loads and stores of ``part``, which no longer fits the first-level cache: 5.0-5.4
    against 7.9-8.5 ms from 2000 to 10000 wide). A function of the shape alone, so the sums'
    association is too."""
    if group.shape[0] == 8 and group.shape[1] > ONE_ROW_WIDEST:
        _eight_rows(group, grad_scale, clip, part, totals)
    else:
        for k in range(group.shape[0]):
            totals[k] = _one_row(group[k], grad_scale, clip, part)


@njit(fastmath={"reassoc"})
def _eight_rows(eight, grad_scale, clip, part, totals):
    """The sums of squares of eight rows' effective gradient into ``totals``, their column sums
    added into ``part`` as :math:`((s_0 + s_1) + (s_2 + s_3)) + ((s_4 + s_5) + (s_6 + s_7))`."""
    row0, row1, row2, row3, row4, row5, row6, row7 = (eight[0], eight[1], eight[2], eight[3], eight[4], eight[5],
                                                      eight[6], eight[7])
    total0 = total1 = total2 = total3 = total4 = total5 = total6 = total7 = 0.0
    for c in range(row0.size):
        wide0 = np.float64(effective(row0[c], grad_scale, clip))
        wide1 = np.float64(effective(row1[c], grad_scale, clip))
        wide2 = np.float64(effective(row2[c], grad_scale, clip))
        wide3 = np.float64(effective(row3[c], grad_scale, clip))
        wide4 = np.float64(effective(row4[c], grad_scale, clip))
        wide5 = np.float64(effective(row5[c], grad_scale, clip))
        wide6 = np.float64(effective(row6[c], grad_scale, clip))
        wide7 = np.float64(effective(row7[c], grad_scale, clip))
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
def _one_row(row, grad_scale, clip, part):
    """The sum of squares of one row's effective gradient, its squares added into the column sums
    ``part``.

    Here and in :func:`_eight_rows`, always the effective gradient
    (:func:`~numadam.targets.factor_elements.effective`), whatever the caller's ``as_given``: a loop
    of its own for the gradient as given would sum the rows in another association (LLVM vectorizes
    the two loops differently), and it was no faster (4.2 against 3.9 ms, the rows of 30000 x 1000
    float32 on a Zen 4)."""
    total = 0.0
    for c in range(row.size):
        wide = np.float64(effective(row[c], grad_scale, clip))
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


@njit(parallel=True, error_model="numpy")  # a factor of 0: an infinite quotient (the norms pass then sums u)
def _block_sums_with_norms(grad, grad_scale, clip, as_given, per_block, rows, partial, param, walk_factor, weight,
                           one_minus_weight, weighted, param_blocks):
    r""":func:`_block_sums`, and in the same pass, for each block: :math:`\sum p^2` of its rows of
    ``param`` (in float64) into ``param_blocks``, read first, row after row; and each column's
    :math:`\sum_r (g_{rc} / \sqrt{f_r})^2` over its rows into ``weighted``, with :math:`f_r` row r's
    factor ``walk_factor`` moved toward its new mean square (as :func:`moved_factors_from_sums`
    moves it: the same bits), a group of rows at a time (:func:`weighted_group_rows`) once their
    sums are known, while they are in the cache (:func:`_weighted_rows`).

    The block's parameter read first, in one stream (:func:`block_squares`), then its gradient:
    about 10% faster than each group of eight rows' parameter after their gradient (a Zen 4,
    30000 x 1000 float32)."""
    batch, n_rows, n_columns = grad.shape
    n_blocks = partial.shape[1]
    group = weighted_group_rows(n_columns)
    for job in prange(batch * n_blocks):
        b = job // n_blocks
        block = job - b * n_blocks
        part, heavy = partial[b, block], weighted[b, block]
        part[:] = 0.0
        heavy[:] = 0.0
        scales = np.zeros(16, grad.dtype)
        end = walk_factor[b, :1].copy()  # one number of the factors' dtype: a mean rounded into it
        end[0] = 1
        one = end[0]
        first, last = block * per_block, min(n_rows, (block + 1) * per_block)
        param_blocks[b, block] = block_squares(param, b, first, last)
        for r in range(first, last, group):
            count = min(group, last - r)
            _rows_in_eights(grad[b, r:r + count], grad_scale, clip, part, rows[b, r:r + count])
            for k in range(count):
                end[0] = rows[b, r + k] / n_columns
                scales[k] = one / math.sqrt(torch_lerp(walk_factor[b, r + k], end[0], weight, one_minus_weight))
            _weighted_rows(grad[b, r:r + count], grad_scale, clip, as_given, scales, heavy)


#: The walked rows' narrowest and widest (in columns) whose weighted sums take sixteen rows at a
#: time (:func:`weighted_group_rows`).
SIXTEEN_ROWS_NARROWEST, SIXTEEN_ROWS_WIDEST = 512, ONE_ROW_WIDEST


@register_jitable
def weighted_group_rows(n_columns):
    """The rows of each group whose weighted column sums the factors' pass adds at once: sixteen for
    walked rows of :data:`SIXTEEN_ROWS_NARROWEST` to :data:`SIXTEEN_ROWS_WIDEST` columns, else eight.
    Sixteen rows add into the float64 column sums half as often; on a Zen 4 (3e7 float32, two
    threads) the pass took about 5% less at 700 and 1000 wide, but 11-16% more at 250 and 400 wide,
    where each group's setup (sixteen rows' pointers) weighs more than its columns. Rows wider than
    :data:`ONE_ROW_WIDEST`, summed eight at a time, were not measured with sixteen. A function of
    the shape alone, so the sums' association is too."""
    return 16 if SIXTEEN_ROWS_NARROWEST <= n_columns <= SIXTEEN_ROWS_WIDEST else 8


@njit(inline="always")
def _weighted_rows(group, grad_scale, clip, as_given, scales, heavy):
    """The weighted squares of a group's rows (``scales[k]`` row k's) added into the column sums
    ``heavy``: sixteen at a time (:func:`_sixteen_rows_weighted`), eight at a time
    (:func:`_eight_rows_weighted`) and the rows left one at a time."""
    count = group.shape[0]
    if count == 16:
        _sixteen_rows_weighted(group, grad_scale, clip, as_given, scales, heavy)
        return
    done = 0
    if count >= 8:
        _eight_rows_weighted(group[:8], grad_scale, clip, as_given, scales, heavy)
        done = 8
    for k in range(done, count):
        _one_row_weighted(group[k], grad_scale, clip, as_given, scales[k], heavy)


_block_sums_with_norms_serial = njit(error_model="numpy")(_block_sums_with_norms.py_func)


@njit(fastmath={"reassoc", "contract"})
def _eight_rows_weighted(eight, grad_scale, clip, as_given, scales, heavy):
    r"""Eight rows' :math:`(g\, s_k)^2` (row k's ``scales[k]``, :math:`1/\sqrt{f_k}`), added into the
    column sums ``heavy``: in the gradient's dtype (eight float32 lanes where it is float32), each
    column's eight added in float64. A square past the dtype's range is infinite, and the norms
    pass then sums u itself."""
    row0, row1, row2, row3, row4, row5, row6, row7 = (eight[0], eight[1], eight[2], eight[3], eight[4], eight[5],
                                                      eight[6], eight[7])
    s0, s1, s2, s3, s4, s5, s6, s7 = scales[0], scales[1], scales[2], scales[3], scales[4], scales[5], scales[6], \
        scales[7]
    for c in range(row0.size):
        x0 = _element(row0[c], grad_scale, clip, as_given) * s0
        x1 = _element(row1[c], grad_scale, clip, as_given) * s1
        x2 = _element(row2[c], grad_scale, clip, as_given) * s2
        x3 = _element(row3[c], grad_scale, clip, as_given) * s3
        x4 = _element(row4[c], grad_scale, clip, as_given) * s4
        x5 = _element(row5[c], grad_scale, clip, as_given) * s5
        x6 = _element(row6[c], grad_scale, clip, as_given) * s6
        x7 = _element(row7[c], grad_scale, clip, as_given) * s7
        heavy[c] += np.float64(((x0 * x0 + x1 * x1) + (x2 * x2 + x3 * x3)) + ((x4 * x4 + x5 * x5) + (x6 * x6 + x7 * x7)))


@njit
def _sixteen_rows_weighted(sixteen, grad_scale, clip, as_given, scales, heavy):
    r"""Sixteen rows' :math:`(g\, s_k)^2` added into the column sums ``heavy``, each column's sixteen
    summed in the gradient's dtype (:func:`_sixteen_squares`: its two eights added there too,
    one rounding more than two calls of :func:`_eight_rows_weighted`, and other bits: no fused
    multiply-adds here), then once into ``heavy`` in float64.

    Two loops, one for the gradient as given and one for the effective gradient, the same
    arithmetic in each, exactly as written (no reassociation, no fused multiply-adds: the two
    loops' sums are the same bits where the effective gradient is the gradient): one loop of the
    sixteen rows with the flag inside, as :func:`_eight_rows_weighted`, forms the effective
    gradient whatever the flag (LLVM does not split a loop that large), and gained nothing. The
    scales enter as a tuple of values, not read from their array in the loop: the pass 5.5%
    faster than the eight-row one that way, 2.7% reading the array (a Zen 4, 30000 x 1000)."""
    r0, r1, r2, r3, r4, r5, r6, r7 = (sixteen[0], sixteen[1], sixteen[2], sixteen[3], sixteen[4], sixteen[5],
                                      sixteen[6], sixteen[7])
    r8, r9, r10, r11, r12, r13, r14, r15 = (sixteen[8], sixteen[9], sixteen[10], sixteen[11], sixteen[12],
                                            sixteen[13], sixteen[14], sixteen[15])
    scale = (scales[0], scales[1], scales[2], scales[3], scales[4], scales[5], scales[6], scales[7], scales[8],
             scales[9], scales[10], scales[11], scales[12], scales[13], scales[14], scales[15])
    if as_given:
        for c in range(r0.size):
            heavy[c] += _sixteen_squares(r0[c], r1[c], r2[c], r3[c], r4[c], r5[c], r6[c], r7[c], r8[c], r9[c],
                                         r10[c], r11[c], r12[c], r13[c], r14[c], r15[c], scale)
    else:
        for c in range(r0.size):
            heavy[c] += _sixteen_squares(
                effective(r0[c], grad_scale, clip), effective(r1[c], grad_scale, clip),
                effective(r2[c], grad_scale, clip), effective(r3[c], grad_scale, clip),
                effective(r4[c], grad_scale, clip), effective(r5[c], grad_scale, clip),
                effective(r6[c], grad_scale, clip), effective(r7[c], grad_scale, clip),
                effective(r8[c], grad_scale, clip), effective(r9[c], grad_scale, clip),
                effective(r10[c], grad_scale, clip), effective(r11[c], grad_scale, clip),
                effective(r12[c], grad_scale, clip), effective(r13[c], grad_scale, clip),
                effective(r14[c], grad_scale, clip), effective(r15[c], grad_scale, clip), scale)


@njit(inline="always")
def _sixteen_squares(g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10, g11, g12, g13, g14, g15, scale):
    r"""One column's :math:`\sum_k (g_k s_k)^2` over sixteen rows, in the gradient's dtype, as a
    float64: each eight rows' squares added pairwise, then the two eights."""
    x0, x1, x2, x3 = g0 * scale[0], g1 * scale[1], g2 * scale[2], g3 * scale[3]
    x4, x5, x6, x7 = g4 * scale[4], g5 * scale[5], g6 * scale[6], g7 * scale[7]
    x8, x9, x10, x11 = g8 * scale[8], g9 * scale[9], g10 * scale[10], g11 * scale[11]
    x12, x13, x14, x15 = g12 * scale[12], g13 * scale[13], g14 * scale[14], g15 * scale[15]
    first = ((x0 * x0 + x1 * x1) + (x2 * x2 + x3 * x3)) + ((x4 * x4 + x5 * x5) + (x6 * x6 + x7 * x7))
    second = ((x8 * x8 + x9 * x9) + (x10 * x10 + x11 * x11)) + ((x12 * x12 + x13 * x13) + (x14 * x14 + x15 * x15))
    return np.float64(first + second)


@njit(fastmath={"reassoc", "contract"})
def _one_row_weighted(row, grad_scale, clip, as_given, scale, heavy):
    r"""One row's :math:`(g\, s)^2` added into the column sums ``heavy`` (see :func:`_eight_rows_weighted`)."""
    for c in range(row.size):
        x = _element(row[c], grad_scale, clip, as_given) * scale
        heavy[c] += np.float64(x * x)


def block_squares(param, b, first, last):
    """The sum of the squares of rows ``first:last`` of matrix ``b`` of ``param`` (``(B, R, C)``), in
    float64: of C-ordered rows as one run (:func:`_row_squares` once: at 30000 x 1000 float32 on a
    Zen 5, the factors' pass 4.84-5.08 against 5.16-5.21 ms in its fast state, 5.67-6.00 against
    5.83-6.25 in its slow one, than row after row), of others row after row. A function of the
    array's layout, which the one-call step's parameter shares with the host pass's (both C-ordered
    as walked), so its sums are the same bits."""


@overload(block_squares)
def _block_squares(param, b, first, last):
    if param.layout == "C":
        return lambda param, b, first, last: _row_squares(param[b, first:last].reshape(-1))

    def row_after_row(param, b, first, last):
        squares = 0.0
        for r in range(first, last):
            squares += _row_squares(param[b, r])
        return squares

    return row_after_row


@njit(fastmath={"reassoc"})
def _row_squares(row):
    """The sum of the squares of one row (or one run of rows), in float64."""
    total = 0.0
    for c in range(row.size):
        wide = np.float64(row[c])
        total += wide * wide
    return total


#: Columns of one parallel task of :func:`_added_blocks`.
COLUMNS_PER_TASK = 256


@cached_njit(parallel=True)
def _added_blocks(partial, columns):
    """The blocks' column sums added in block order, a task per :data:`COLUMNS_PER_TASK` columns of
    each matrix (so that one matrix of many blocks takes every core too)."""
    batch, n_blocks, n_columns = partial.shape
    n_tiles = -(-n_columns // COLUMNS_PER_TASK)
    for job in prange(batch * n_tiles):
        b = job // n_tiles
        first = (job - b * n_tiles) * COLUMNS_PER_TASK
        last = min(n_columns, first + COLUMNS_PER_TASK)
        for c in range(first, last):
            columns[b, c] = 0.0
        for block in range(n_blocks):
            for c in range(first, last):
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
    per_block = rows_per_block(n_rows)
    n_blocks = block_count(n_rows, per_block)
    rows, partial, columns = np.empty((1, n_rows)), np.empty((1, n_blocks, n_columns)), np.empty((1, n_columns))
    _block_sums_serial(grad[None], one, infinity, per_block, rows, partial)
    _added_blocks_serial(partial, columns)
    return rows, columns


def walks_transposed(row_stride, column_stride):
    """Whether a matrix with these strides is Fortran-like, so its sums walk it transposed (the
    columns as rows): the same association for a matrix and its transpose's memory."""
    return row_stride != 0 and abs(column_stride) > abs(row_stride)


_walks_transposed = njit(inline="always")(walks_transposed)
