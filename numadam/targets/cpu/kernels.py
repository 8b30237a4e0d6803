"""CPU kernels: ``prange`` over the chunks of a segment table.

Each chunk is a run of equal length of the segments laid end to end, so every
iteration has the same work. Elements are read and written through raw
pointers taken from the table, so a single call updates any number of arrays.
Each piece of a segment goes through the spec's ``run_piece``
(:mod:`numadam.targets.body`), whose contiguous loop LLVM vectorizes.

The kernels take the :class:`~numadam.targets.spec.KernelSpec` as their first
argument; Numba compiles one machine code per spec and caches it on disk
(:func:`~numadam.targets.disk_cache.cached_njit`), so a new process loads it
instead of compiling, and never loads another spec's.

``error_model="numpy"`` matters: Python's error model inserts a
division-by-zero check that stops LLVM from vectorizing the loop.
"""

import functools
from typing import NamedTuple

import numpy as np
from numba import njit, prange, typeof, types
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ...core.clip_math import norm_and_scale
from ..disk_cache import cached_njit
from ..fingerprint import compiled_from_module
from ..primitives import cpu_primitives
from ..quantization import BLOCK
from ..block_labels import fresh_block_labels
from ..body import GRAD as GRAD_OPERAND, block_runners, blocks_runner, piece_runner, quantized_operands, reduction_runner
from ..segments import (ADDRESS, LENGTH, OFFSET, first_fix, listed_address, piece_of, segment_of_element,
                        sequence_length)
from ..spec import algorithm

compiled_from_module(__name__)  # its kernels are cached on disk: see numadam.targets.fingerprint


def run_piece(spec, table, row, start, stop, scalars, like):
    """Update elements ``start:stop`` of the segment at ``row`` (compiled per spec)."""


@functools.cache
def _compiled_piece(spec):
    return njit(piece_runner(spec, cpu_primitives()))


def run_piece_inline(spec, table, row, start, stop, scalars, like):
    """:func:`run_piece`, compiled into its caller: for a caller that runs one short piece after
    another (a listed row's, of tens of elements), where a call for each cost more than its
    elements (21875 rows of 16 float32s: 0.46-0.52 ms called, 0.34 inlined, Zen 5). Only a
    serial caller: a ``prange`` loop's analysis of the inlined rule fails."""


@functools.cache
def _inlined_piece(spec):
    return njit(inline="always")(piece_runner(spec, cpu_primitives()))


def _piece_call(compiled_piece):
    """The overload of a piece's entry point that calls ``compiled_piece(spec)`` on the piece."""

    def typed(spec, table, row, start, stop, scalars, like):
        piece = compiled_piece(spec.spec)

        def implementation(spec, table, row, start, stop, scalars, like):
            piece(table, row, start, stop, 1, scalars, like)

        return implementation

    return typed


overload(run_piece)(_piece_call(_compiled_piece))
overload(run_piece_inline, inline="always")(_piece_call(_inlined_piece))


def reduce_piece(spec, table, row, start, stop, scalars, like):
    """The pre-pass's two sums over ``start:stop`` of a segment (see :func:`~numadam.targets.body.reduction_source`)."""


@functools.cache
def _compiled_reduction(spec):
    # Reassociation lets LLVM vectorize the sums: still one fixed order per compiled kernel, so the
    # same bits with 1 or N threads (the pieces and their combination are fixed by the chunking).
    return njit(fastmath={"reassoc"})(reduction_runner(spec, cpu_primitives()))


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


@cached_njit(error_model="numpy")
def reduce_serial(spec, table, width, starts, stops, scalars, like, out):
    """For each piece ``starts[p]:stops[p]`` of the sequence, ``out[p]``: the pre-pass's two sums."""
    n_segments = table.size // width
    for piece in range(starts.size):
        out[piece, 0], out[piece, 1] = _reduce_span(spec, table, width, n_segments, starts[piece], stops[piece],
                                                    scalars, like)


@cached_njit(parallel=True, error_model="numpy")
def reduce_parallel(spec, table, width, starts, stops, scalars, like, out):
    """:func:`reduce_serial`, one ``prange`` iteration per piece."""
    n_segments = table.size // width
    for piece in prange(starts.size):
        out[piece, 0], out[piece, 1] = _reduce_span(spec, table, width, n_segments, starts[piece], stops[piece],
                                                    scalars, like)


#: How many segments ahead of the one it updates a chunk asks for the first lines of each operand
#: (:func:`prefetch_segment`). Rows of 64 bytes of a table past the L3, in random order, on a Zen 5
#: (ms for 12500 rows): 4 ahead 0.56, 8 0.46, 16 0.39, 24 0.40, 32 0.40.
PREFETCH_AHEAD = 16

#: The bytes of a cache line.
LINE = 64

#: The most bytes of each operand's row the listed kernel asks for ahead (every line of a row of
#: up to 64 float32s). Each line counts: 12500 rows of 32 float32s (three lines each, from NumPy's
#: 16-byte alignment) took 1.16 ms with their first two lines asked for and 0.31 with all three
#: (a 1.1e6-row table, Zen 5).
PREFETCH_BYTES = 256


@intrinsic
def prefetch_line(typingctx, address):
    """Ask the cache for the line at ``address`` (an int), to be written: LLVM's prefetch, which
    never faults, whatever the address."""
    def codegen(context, builder, signature, args):
        bytes_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [bytes_pointer, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(function, [builder.inttoptr(args[0], bytes_pointer), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(types.int64), codegen


def prefetch_segment(spec, table, row):
    """Ask for the lines of the first :data:`LINE` bytes of every operand of the segment at ``row``
    (its offset in the table): a step over rows listed in random order (a minibatch's) finds them
    in the cache, where the hardware, which sees no pattern in them, fetches one row at a time.
    Two lines, since a row of 64 bytes rarely starts a line: NumPy aligns its arrays to 16 bytes,
    so each such row straddles two (asking for the first alone left the step waiting on the
    second: 0.96 against 0.40 ms for 12500 such rows of a 1.25e6-row table, on a Zen 5)."""


@overload(prefetch_segment)
def _prefetch_segment(spec, table, row):
    present = [k for k, code in enumerate(spec.spec.operands) if code]
    lines = ["def implementation(spec, table, row):"]
    lines += [f"    prefetch_line(table[row + {ADDRESS + k}] + {byte})" for k in present for byte in (0, LINE - 1)] or ["    pass"]
    namespace = {"prefetch_line": prefetch_line}
    exec("\n".join(lines), namespace)
    return namespace["implementation"]


def prefetch_listed_row(spec, template, strides, reach, row):
    """Ask for the lines of listed row ``row`` of every operand the spec has but the gradient and
    those that do not move with the row (row stride 0: a scalar bound's, in the cache already):
    each one's first ``reach[k]`` bytes (at most :data:`PREFETCH_BYTES`) from the address of its
    row, as :func:`_update_listed` lays it out. The gradient's values are read in their own order,
    row after row, which the hardware's prefetcher follows. Written out per spec, one operand after
    the other and no loop: a loop over the operands with the same requests took 0.48-0.51 ms for
    21875 rows of a 2.2e6 x 16 table where this took 0.30 (Zen 5)."""


@overload(prefetch_listed_row)
def _prefetch_listed_row(spec, template, strides, reach, row):
    asked = [k for k, code in enumerate(spec.spec.operands) if code and k != GRAD_OPERAND]
    lines = ["def implementation(spec, template, strides, reach, row):"]
    for k in asked:
        lines += [f"    if strides[{k}] != 0:",
                  f"        address = template[0, {ADDRESS + k}] + row * strides[{k}]",
                  f"        last = min(reach[{k}], {PREFETCH_BYTES}) - 1",
                  "        prefetch_line(address)"]
        for byte in range(LINE, PREFETCH_BYTES - 1, LINE):  # (the lines between the first and the last)
            lines += [f"        if last >= {byte}:", f"            prefetch_line(address + {byte})"]
        lines.append("        prefetch_line(address + last)")
    if not asked:
        lines.append("    pass")
    namespace = {"prefetch_line": prefetch_line}
    exec("\n".join(lines), namespace)
    return namespace["implementation"]


#: The widest element of a first operand (the parameter), in bytes: a segment that starts within that
#: many bytes for each element of the segment before it (a matrix's next row in Adafactor's update)
#: is left to the hardware's prefetcher (:func:`_follows_closely`).
WIDEST_ELEMENT = 8


@njit(inline="always")
def _follows_closely(table, row, width):
    """Whether the segment at ``row`` starts, in its first operand, within the reach of the one before
    it (:data:`WIDEST_ELEMENT` bytes an element): the next row of one matrix, which the hardware's
    prefetcher streams already (asking for each row's lines cost Adafactor's update 18% at 300000 x
    100 float32, Zen 5), and not rows listed in order with others between them, which it does not."""
    before = row - width
    gap = table[row + ADDRESS] - table[before + ADDRESS]
    return 0 <= gap <= WIDEST_ELEMENT * table[before + LENGTH]


@njit(inline="always")
def _update_chunk(spec, table, width, n_segments, n_elements, chunk, chunk_size, scalars, like):
    """Update chunk ``chunk`` of the sequence, segment piece by segment piece (asking for the
    segment :data:`PREFETCH_AHEAD` further on as each begins)."""
    first = chunk * chunk_size
    last = min(first + chunk_size, n_elements)
    segment = segment_of_element(table, n_segments, first, width)
    while first < last:
        row, start, stop = piece_of(table, segment, first, last, width)
        ahead = (segment + PREFETCH_AHEAD) * width
        if segment + PREFETCH_AHEAD < n_segments and not _follows_closely(table, ahead, width):
            prefetch_segment(spec, table, ahead)
        run_piece(spec, table, row, start, stop, scalars, like)
        first += stop - start
        segment += 1


#: Listed rows one ``prange`` iteration of :func:`update_listed_parallel` updates.
LISTED_BLOCK = 256


@njit(error_model="numpy")
def _update_listed(spec, template, strides, reach, index, grad_address, grad_stride, fixes, grad, first, last,
                   scalars, like):
    """Update listed rows ``first:last``: each row's segments laid out from ``template`` into a
    small table, as :func:`numadam.adapters.rows.listed_rows` lays them out (``OFFSET`` numbered
    as in the table of every row), then updated as :func:`_update_chunk` updates a table's. The
    table starts as the template, and each row rewrites only what moves: the offset, and the
    address of the values and of every operand with a row stride. Before each row, the lines of
    the row :data:`PREFETCH_AHEAD` further on are asked for (as :func:`prefetch_segment` does
    from a table; :func:`prefetch_listed_row`). A listing the plan's ``fixes`` skip is passed
    over (see :class:`~numadam.targets.arrays.ListedPlan`)."""
    per_row, width = template.shape
    table = template.copy().reshape(-1)
    moving = np.empty(len(strides), np.int64)
    n_moving = 0
    for k in range(len(strides)):
        if k == grad or strides[k] != 0:
            moving[n_moving] = k
            n_moving += 1
    row_length = 0
    for t in range(per_row):
        row_length += template[t, LENGTH]
    n_listed = len(index)
    cursor, skipped = first_fix(fixes, first)
    j = first
    while j < last:  # (runs between fixes, each one loop without a test: a test in each row cost 30%, Zen 5)
        address, stride, stop = grad_address, grad_stride, min(last, fixes[0, cursor])
        if stop == j:  # (listing j is fixed: its values are elsewhere, or it is skipped)
            address, stride, stop = fixes[1, cursor], 0, j + 1
            cursor += 1
            if address == 0:
                skipped += 1
                j += 1
                continue
        for listing in range(j, stop):
            if listing + PREFETCH_AHEAD < n_listed:  # (the lines of each operand's row further on)
                prefetch_listed_row(spec, template, strides, reach, index[listing + PREFETCH_AHEAD])
            values, row = address + listing * stride, index[listing]
            offset = (listing - skipped) * row_length
            for t in range(per_row):
                base = t * width
                table[base + OFFSET] = offset
                for m in range(n_moving):
                    k = moving[m]
                    table[base + ADDRESS + k] = listed_address(template[t, ADDRESS + k], k, grad, values, row,
                                                               strides[k])
                run_piece_inline(spec, table, base, 0, template[t, LENGTH], scalars, like)
                offset += template[t, LENGTH]
        j = stop


@cached_njit(error_model="numpy")
def update_listed_serial(spec, template, strides, reach, index, grad_address, grad_stride, fixes, grad, scalars,
                         like):
    """Apply the spec's rule over the rows ``index`` of one parameter that a ``Rows`` gradient lists
    (a :class:`~numadam.targets.arrays.ListedPlan`), on the calling thread: the rows of the table
    :func:`update_serial` would read, laid out one at a time instead."""
    _update_listed(spec, template, strides, reach, index, grad_address, grad_stride, fixes, grad, 0, len(index),
                   scalars, like)


@cached_njit(parallel=True, error_model="numpy")
def update_listed_parallel(spec, template, strides, reach, index, grad_address, grad_stride, fixes, grad, scalars,
                           like):
    """:func:`update_listed_serial`, one ``prange`` iteration per :data:`LISTED_BLOCK` listed rows."""
    n_listed = len(index)
    for block in prange(-(-n_listed // LISTED_BLOCK)):
        _update_listed(spec, template, strides, reach, index, grad_address, grad_stride, fixes, grad,
                       block * LISTED_BLOCK, min(n_listed, (block + 1) * LISTED_BLOCK), scalars, like)


@cached_njit(error_model="numpy")
def update_serial(spec, table, width, n_chunks, chunk_size, scalars, like):
    """Apply the spec's rule over every chunk of ``table``, on the calling thread.

    ``scalars`` holds each group's per-step scalars, row after row, in the real
    dtype; ``like`` is zero in that dtype.
    """
    n_segments = table.size // width
    n_elements = sequence_length(table, n_segments, width)
    for chunk in range(n_chunks):
        _update_chunk(spec, table, width, n_segments, n_elements, chunk, chunk_size, scalars, like)


@cached_njit(parallel=True, error_model="numpy")
def update_parallel(spec, table, width, n_chunks, chunk_size, scalars, like):
    """Apply the spec's rule over every chunk of ``table``, one ``prange`` iteration per chunk."""
    n_segments = table.size // width
    n_elements = sequence_length(table, n_segments, width)
    for chunk in prange(n_chunks):
        _update_chunk(spec, table, width, n_segments, n_elements, chunk, chunk_size, scalars, like)


@cached_njit(error_model="numpy")
def reduce_then_update_serial(spec, table, width, starts, stops, leaves, scalars, like, sums, nonfinite, clip,
                              scale_slot, row_size, n_chunks, chunk_size):
    r"""A serial step with a gradient pre-pass, in one call: the pre-pass over each piece
    ``starts[p]:stops[p]``, added into ``sums[leaves[p]]`` in piece order; its decision; then the
    update over every chunk.

    Returns 1, having written nothing, where a gradient holds NaN or infinity
    and ``nonfinite`` is set (``nonfinite="raise"`` or ``"skip"``); else 0. With
    ``clip > 0`` (``clip_global_norm``) the gradients' scale
    :math:`\min(1, c/\|g\|)` (:func:`~numadam.core.clip_math.norm_and_scale`), the norm
    from the sums of squares added in parameter order, is written into slot ``scale_slot``
    of every row of ``scalars`` first (where it is not 1): the host's decision
    (:func:`numadam.core.pipeline.skip_or_scale`), the same float64 operations in the same order.
    """
    n_segments = table.size // width
    sums[:] = 0.0
    for piece in range(starts.size):
        first_sum, second_sum = _reduce_span(spec, table, width, n_segments, starts[piece], stops[piece], scalars,
                                             like)
        sums[leaves[piece], 0] += first_sum
        sums[leaves[piece], 1] += second_sum
    if nonfinite:
        for leaf in range(sums.shape[0]):
            if sums[leaf, 1] != 0.0:
                return 1
    if clip > 0.0:
        total = 0.0
        for leaf in range(sums.shape[0]):
            total += sums[leaf, 0]
        scale = norm_and_scale(clip, 1.0, total)[1]
        if scale != 1.0:  # the rows hold 1 already
            for slot in range(scale_slot, scalars.size, row_size):
                scalars[slot] = scale
    n_elements = sequence_length(table, n_segments, width)
    for chunk in range(n_chunks):
        _update_chunk(spec, table, width, n_segments, n_elements, chunk, chunk_size, scalars, like)
    return 0


def norms_value(spec, param_squares, direction_squares):
    """What a parameter's sums of squares set in its scalars (the family's norms value, compiled per spec)."""


@overload(norms_value)
def _norms_value(spec, param_squares, direction_squares):
    value = njit(inline="always")(algorithm(spec.spec.rule).norms_value)

    def implementation(spec, param_squares, direction_squares):
        return value(param_squares, direction_squares)

    return implementation


@njit(inline="always")
def _norms_then_update(first, update, table, width, starts, stops, leaves, first_scalars, scalars, like, sums,
                       applies, field_slot, row_size, n_chunks, chunk_size):
    """The body of :func:`norms_then_update_serial` and :func:`norms_step_serial`."""
    n_segments = table.size // width
    n_leaves = sums.shape[0]
    sums[:] = 0.0
    for piece in range(starts.size):
        first_sum, second_sum = _reduce_span(first, table, width, n_segments, starts[piece], stops[piece],
                                             first_scalars, like)
        sums[leaves[piece], 0] += first_sum
        sums[leaves[piece], 1] += second_sum
    first_size = first_scalars.size // n_leaves
    if first_size != row_size and scalars.ctypes.data == first_scalars.ctypes.data:
        for leaf in range(1, n_leaves):  # each row moves down, onto rows already moved
            for slot in range(row_size):
                scalars[leaf * row_size + slot] = scalars[leaf * first_size + slot]
    for leaf in range(n_leaves):
        if applies[leaf]:
            scalars[leaf * row_size + field_slot] = norms_value(update, sums[leaf, 0], sums[leaf, 1])
    n_elements = sequence_length(table, n_segments, width)
    for chunk in range(n_chunks):
        _update_chunk(update, table, width, n_segments, n_elements, chunk, chunk_size, scalars, like)


@cached_njit(error_model="numpy")
def norms_then_update_serial(first, update, table, width, starts, stops, leaves, first_scalars, scalars, like, sums,
                             applies, field_slot, row_size, n_chunks, chunk_size):
    """A serial step of a family with a norms pass (LAMB), in one call: the first pass (``first``)
    over each piece, its sums of squares added into ``sums[leaves[p]]`` in piece order; each
    parameter's field ``field_slot`` of ``scalars`` (one row per parameter) set to the family's
    value of its sums where ``applies``; then the update (``update``) over every chunk. The host's
    float64 operations in the same order (:meth:`numadam.engine.stepping.Engine._norms_pass`).

    ``scalars`` may be ``first_scalars`` itself: each row then holds the first pass's scalars,
    whose first ``row_size`` are the update's (the policy's come after the family's), and each is
    cut to them in place once the first pass has read it."""
    _norms_then_update(first, update, table, width, starts, stops, leaves, first_scalars, scalars, like, sums,
                       applies, field_slot, row_size, n_chunks, chunk_size)


class KernelCall(NamedTuple):
    """A compiled step as data, for compiled code that calls it itself (a compiled ``minimize``
    solve): ``kernel(*arguments)``."""

    kernel: object
    arguments: tuple


class NormsStepArguments(NamedTuple):
    """The arguments of :func:`norms_then_update_serial`, by its parameters' names."""

    first: object
    update: object
    table: object
    width: int
    starts: object
    stops: object
    leaves: object
    first_scalars: object
    scalars: object
    like: object
    sums: object
    applies: object
    field_slot: int
    row_size: int
    n_chunks: int
    chunk_size: int


def row_sizes(first, update):
    """``(fields, first, update)``: the family's scalars, and the first pass's and the update's
    scalars per row (the policy's after the family's; compiled per spec)."""


@overload(row_sizes)
def _row_sizes(first, update):
    sizes = len(algorithm(first.spec.rule).Scalars._fields), first.spec.n_scalars, update.spec.n_scalars

    def implementation(first, update):
        return sizes

    return implementation


@cached_njit(error_model="numpy")
def norms_step_serial(first, update, table, width, layout, group_scalars, scalars, like, sums, field_slot, n_chunks,
                      chunk_size):
    """The common step (no policy) of a family with a norms pass, in one serial call: each
    parameter's row of ``scalars`` made of its group's row of ``group_scalars`` (the family's
    scalars) and the policy's scalars, kept in front of the rows; then
    :func:`norms_then_update_serial` over those rows, which it cuts to the update's in place.

    ``layout`` holds the pieces' starts, their stops and their parameters, then each parameter's
    group and whether its sums set its field (1 or 0), one after the other."""
    n_leaves = sums.shape[0]
    n_pieces = (layout.size - 2 * n_leaves) // 3
    n_fields, n_first, n_update = row_sizes(first, update)
    n_policy = n_first - n_fields
    rows = scalars[n_policy:]
    groups = layout[3 * n_pieces:3 * n_pieces + n_leaves]
    for leaf in range(n_leaves):
        row, group = leaf * n_first, groups[leaf] * n_fields
        for slot in range(n_fields):
            rows[row + slot] = group_scalars[group + slot]
        for slot in range(n_policy):
            rows[row + n_fields + slot] = scalars[slot]
    _norms_then_update(first, update, table, width, layout[:n_pieces], layout[n_pieces:2 * n_pieces],
                       layout[2 * n_pieces:3 * n_pieces], rows, rows, like, sums, layout[3 * n_pieces + n_leaves:],
                       field_slot, n_update, n_chunks, chunk_size)


# -- 8-bit state: block by block ----------------------------------------------------------------


def load_piece(spec, table, row, start, stop, scalars, like, scales, n_blocks, block, shift, buffer, largest):
    """The first half of a block's update over elements ``start:stop`` of a segment (compiled per
    spec); returns ``largest`` with this piece's new state taken in."""


def store_piece(spec, table, row, start, stop, inverse, shift, buffer):
    """The second half: encode the block's new state (compiled per spec)."""


def settle(spec, largest, scales, n_blocks, block, inverse, like):
    """The block's new scales, from the bits of each state's largest magnitude (compiled per spec)."""


def run_blocks(spec, table, row, scalars, like, scales, n_blocks, blocks, block, end_block, segment_offset, buffer):
    """Update blocks ``block:end_block``, all in the segment at ``row``, each whole (compiled per
    spec)."""


def block_buffers(spec, like):
    """The new state of one block, each state's inverse scale in the real dtype, and the bits of
    no magnitude yet (a ``uint32`` zero per 8-bit state) to start ``largest`` from."""


@functools.cache
def _compiled_blocks(spec):
    return tuple(njit(function) for function in block_runners(spec, cpu_primitives()))


@overload(load_piece)
def _load_piece(spec, table, row, start, stop, scalars, like, scales, n_blocks, block, shift, buffer, largest):
    piece = _compiled_blocks(spec.spec)[0]

    def implementation(spec, table, row, start, stop, scalars, like, scales, n_blocks, block, shift, buffer,
                       largest):
        return piece(table, row, start, stop, 1, scalars, like, scales, n_blocks, block, shift, buffer, largest)

    return implementation


@overload(store_piece)
def _store_piece(spec, table, row, start, stop, inverse, shift, buffer):
    piece = _compiled_blocks(spec.spec)[1]

    def implementation(spec, table, row, start, stop, inverse, shift, buffer):
        piece(table, row, start, stop, 1, inverse, shift, buffer)

    return implementation


@overload(settle)
def _settle(spec, largest, scales, n_blocks, block, inverse, like):
    function = _compiled_blocks(spec.spec)[2]

    def implementation(spec, largest, scales, n_blocks, block, inverse, like):
        function(largest, scales, n_blocks, block, inverse, like)

    return implementation


@overload(run_blocks)
def _run_blocks(spec, table, row, scalars, like, scales, n_blocks, blocks, block, end_block, segment_offset, buffer):
    function = njit(blocks_runner(spec.spec, cpu_primitives()))

    def implementation(spec, table, row, scalars, like, scales, n_blocks, blocks, block, end_block, segment_offset,
                       buffer):
        function(table, row, scalars, like, scales, n_blocks, blocks, block, end_block, segment_offset, buffer)

    return implementation


@overload(block_buffers)
def _block_buffers(spec, like):
    quantized = quantized_operands(spec.spec)
    slots = max(quantized) - 1
    dtype = np.float32 if like == types.float32 else np.float64
    nothing = {1: lambda: (np.uint32(0),), 2: lambda: (np.uint32(0), np.uint32(0)),
               3: lambda: (np.uint32(0), np.uint32(0), np.uint32(0))}[len(quantized)]
    nothing = njit(inline="always")(nothing)

    def implementation(spec, like):
        return np.empty(slots * BLOCK, dtype), np.empty(slots, dtype), nothing()

    return implementation


@njit(inline="always")
def _update_blocks(spec, table, width, n_segments, blocks, first_block, last_block, scalars, like, scales):
    """Update blocks ``first_block:last_block``: each block's elements, then its scales, then its
    codes; a run of blocks in one segment in one call, a block across segments piece by piece."""
    buffer, inverse, nothing = block_buffers(spec, like)
    n_blocks = blocks.size - 1
    block = first_block
    while block < last_block:
        first = blocks[block]
        segment = segment_of_element(table, n_segments, first, width)
        row = segment * width
        segment_offset = table[row + OFFSET]
        end_block = block
        while end_block < last_block and blocks[end_block + 1] <= segment_offset + table[row + LENGTH]:
            end_block += 1
        if end_block > block:
            run_blocks(spec, table, row, scalars, like, scales, n_blocks, blocks, block, end_block, segment_offset,
                       buffer)
            block = end_block
            continue
        last = blocks[block + 1]
        position = first
        largest = nothing
        while position < last:
            row, start, stop = piece_of(table, segment, position, last, width)
            largest = load_piece(spec, table, row, start, stop, scalars, like, scales, n_blocks, block,
                                 position - first - start, buffer, largest)
            position += stop - start
            segment += 1
        settle(spec, largest, scales, n_blocks, block, inverse, like)
        segment = segment_of_element(table, n_segments, first, width)
        position = first
        while position < last:
            row, start, stop = piece_of(table, segment, position, last, width)
            store_piece(spec, table, row, start, stop, inverse, position - first - start, buffer)
            position += stop - start
            segment += 1
        block += 1


@cached_njit(error_model="numpy")
def update_blocks_serial(spec, table, width, blocks, blocks_per_chunk, scalars, like, scales):
    """Apply the spec's rule block by block (8-bit state; ``blocks`` holds each block's first
    element in the sequence, then the sequence's length), on the calling thread."""
    n_blocks = blocks.size - 1
    update_count = -(-n_blocks // blocks_per_chunk)
    for chunk in range(update_count):
        _update_blocks(spec, table, width, table.size // width, blocks, chunk * blocks_per_chunk,
                       min((chunk + 1) * blocks_per_chunk, n_blocks), scalars, like, scales)


@cached_njit(parallel=True, error_model="numpy")
def update_blocks_parallel(spec, table, width, blocks, blocks_per_chunk, scalars, like, scales):
    """:func:`update_blocks_serial`, one ``prange`` iteration per run of ``blocks_per_chunk`` blocks."""
    n_blocks = blocks.size - 1
    update_count = -(-n_blocks // blocks_per_chunk)
    for chunk in prange(update_count):
        _update_blocks(spec, table, width, table.size // width, blocks, chunk * blocks_per_chunk,
                       min((chunk + 1) * blocks_per_chunk, n_blocks), scalars, like, scales)


def _arguments(real):
    """The types of each kernel's arguments after its spec(s), for the real dtype ``real``."""
    table, integer, integers = types.int64[::1], types.int64, types.int64[::1]
    return {
        "update": (table, integer, integer, integer, real[::1], real),
        "listed": (types.int64[:, ::1], integers, integers, integers, integer, integer, types.int64[:, ::1], integer,
                   real[::1], real),
        "reduce": (table, integer, integers, integers, real[::1], real, types.float64[:, ::1]),
        "blocks": (table, integer, integers, integer, real[::1], real, types.float32[::1]),
        "reduce_then_update": (table, integer, integers, integers, integers, real[::1], real, types.float64[:, ::1],
                               types.boolean, types.float64, integer, integer, integer, integer),
        "norms_then_update": (table, integer, integers, integers, integers, real[::1], real[::1], real,
                              types.float64[:, ::1], types.boolean[::1], integer, integer, integer, integer),
        "norms_step": (table, integer, integers, real[::1], real[::1], real, types.float64[:, ::1], integer, integer,
                       integer),
    }


#: Each kernel by name: its serial and its parallel function (``None``: serial only).
KERNELS = {
    "update": (update_serial, update_parallel),
    "listed": (update_listed_serial, update_listed_parallel),
    "reduce": (reduce_serial, reduce_parallel),
    "blocks": (update_blocks_serial, update_blocks_parallel),
    "reduce_then_update": (reduce_then_update_serial, None),
    "norms_then_update": (norms_then_update_serial, None),
    "norms_step": (norms_step_serial, None),
}


def signature(kind, *specs):
    """The argument types of kernel ``kind`` for ``specs`` (one spec; two for the norms kernels)."""
    real = types.float32 if specs[0].real == "float32" else types.float64
    return tuple(typeof(spec) for spec in specs) + _arguments(real)[kind]


@functools.cache
def compiled(kind, *specs, parallel=False):
    """The machine code of kernel ``kind`` (a name of :data:`KERNELS`) for ``specs``, serial or
    ``parallel``: a function called without Numba's dispatch (which would type the spec on every
    call), with its arguments exactly as :func:`signature` types them: an int64 table, and
    scalars and a zero in the spec's real dtype. One entry for every kernel."""
    fresh_block_labels()
    return KERNELS[kind][1 if parallel else 0].compile(signature(kind, *specs))


@cached_njit()
def data_address(array):
    """The address of ``array``'s first element, found faster than ``array.ctypes.data``."""
    return array.ctypes.data

