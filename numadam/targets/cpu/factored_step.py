r"""The common step of a family with factored state (Adafactor) in one serial call.

Adafactor's step on the CPU is two passes over memory (:mod:`numadam.core.factors`):
the factors' pass, which moves each parameter's row and column factors and sums
:math:`\|p\|^2` and :math:`\|u\|^2` in the same read, then the update, whose
step size per parameter,

.. math::

    \text{step\_scale} = -\frac{\rho_t \max(\epsilon_2, \operatorname{RMS}(p))}{\max(1, \operatorname{RMS}(u)/d)},

comes from those sums. On arrays of a few thousand numbers the passes
themselves take a few microseconds and the Python between them (the factors'
constants of each parameter, the step sizes, the rows of scalars) took ten
times that. :func:`factored_step_serial` makes the whole step in compiled code:
each parameter's row of scalars from its group's, the factors' constants from
that row rounded to the compute dtype (the family's ``factors`` and
``direction_floor``), the factors' pass (the functions of
:mod:`numadam.targets.cpu.factor_sums`, on the calling thread), the norms pass
for the parameters whose norms that pass could not take (a compiled solve's;
the objects' call leaves it, and the update, to the host), the family's norms
value, the rows rounded once, then the update over every chunk. The same
functions, in the same order, on the same numbers as the host's passes: the
same bits.

The parameters reach the kernel as one ``int64`` array, :data:`FIELDS` numbers
each (:func:`factored_layout`): what kind of parameter it is, its group, its
element count, whether its norms set its field, the walk of its gradient and
parameter (their addresses and the shape ``(B, R, C)`` the factors' pass walks,
a matrix transposed where it is Fortran-ordered; both dense in that walk) and
the addresses of its factors (each dense in C order). The pass's loops are
compiled for the arrays' layouts, so the dense walk is what makes them the
host's machine code, which sums in the host's order.

The same kernel serves a compiled :func:`numadam.minimize` (the solve fills the
group's row before each call; :meth:`numadam.engine.local.LocalEngine.norms_kernel`),
at any size: the factors' pass of a large vector runs in the chunks whose sums the
host adds in order, on one thread.
"""

import functools
from typing import NamedTuple

import numpy as np
from numba import carray, njit, types
from numba.extending import overload

from ..block_labels import fresh_block_labels
from ..disk_cache import cached_njit
from ..fingerprint import compiled_from_module
from ..primitives import cpu_primitives
from ..spec import algorithm
from .factor_sums import (SERIAL_BELOW, VECTOR_CHUNK, WIDEST_ROW_WITH_NORMS, _added_blocks_serial,
                          _batched, _block_sums_with_norms_serial, _norms_from_sums, _vector_norms,
                          block_count, moved_factors_from_sums, moved_variance, rows_per_block,
                          walks_transposed)
from .kernels import _reduce_span, _update_chunk, sequence_length

compiled_from_module(__name__)  # cached on disk: its closure is part of every spec's fingerprint

pointer = cpu_primitives().pointer

#: The kinds of parameter in the layout.
EMPTY, VECTOR, MATRIX = 0, 1, 2
#: Numbers per parameter in the layout, and where each sits.
(KIND, GROUP, COUNT, APPLIES, KEEPS_FACTORS, TRANSPOSED, BATCH, ROWS, COLUMNS, GRAD, PARAM, ROW_VAR, COL_VAR,
 ROW_MEAN, ROW_SCALES, COL_SCALES) = range(16)
FIELDS = 16


def factored_layout(grads, params, factor_states, groups, applies, counts, real):
    """The layout of :func:`factored_step_serial` (see the module docstring) for these parameters:
    ``grads`` and ``params`` (arrays of dtype ``real``), ``factor_states`` each parameter's
    ``(row_var, col_var, row_mean, row_scale, col_scale)``, ``groups`` their scalar rows' groups,
    ``applies`` whether their norms set their field, ``counts`` their real elements.

    ``None`` where the one call does not apply: another dtype; factors not dense; a batch of
    matrices whose ``(B, R, C)`` form is a copy; rows (as the pass walks them) wider than the
    pass sums the norms of; a gradient or parameter the pass does not walk densely (a vector
    not contiguous, a matrix or batch of them neither C- nor Fortran-ordered), for the pass's
    sums are compiled for the arrays' layouts, and the one call must add them in the order the
    host's pass does (its dense arrays' loops, the same machine code)."""
    layout = np.zeros((len(grads), FIELDS), np.int64)
    for k, (grad, param, factors) in enumerate(zip(grads, params, factor_states)):
        if grad.dtype != real or param.dtype != real:
            return None
        if any(not array.flags.c_contiguous for array in factors):
            return None
        row = layout[k]
        row[GROUP], row[COUNT], row[APPLIES], row[KEEPS_FACTORS] = groups[k], counts[k], applies[k], grad.ndim >= 2
        row[ROW_VAR:COL_SCALES + 1] = [array.__array_interface__["data"][0] for array in factors]
        if grad.size == 0:
            row[KIND] = EMPTY
            continue
        if grad.ndim < 2:
            row[KIND] = VECTOR
            walked_grad, walked_param = grad.reshape(1, 1, -1), param.reshape(1, 1, -1)
        else:
            row[KIND] = MATRIX
            walked_grad, walked_param = _batched_view(grad), _batched_view(param)
            if walked_grad is None or walked_param is None:
                return None
            row[TRANSPOSED] = walks_transposed(walked_grad.strides[-2], walked_grad.strides[-1])
            if row[TRANSPOSED]:
                walked_grad, walked_param = walked_grad.swapaxes(-1, -2), walked_param.swapaxes(-1, -2)
            if walked_grad.shape[-1] > WIDEST_ROW_WITH_NORMS:
                return None
        if not (walked_grad.flags.c_contiguous and walked_param.flags.c_contiguous):
            return None
        row[BATCH:COLUMNS + 1] = walked_grad.shape
        row[GRAD], row[PARAM] = walked_grad.__array_interface__["data"][0], walked_param.__array_interface__["data"][0]
    return layout.reshape(-1)


def grad_addresses(layout):
    """The view of ``layout`` (:func:`factored_layout`) that holds each parameter's gradient address
    (0 for an empty one): a new gradient array of the same layout moves the step onto itself by
    writing its address there."""
    return layout.reshape(-1, FIELDS)[:, GRAD]


def _batched_view(array):
    """``array`` ``(..., R, C)`` as ``(B, R, C)`` (as the factors' pass takes it), or ``None`` where
    that is not a view."""
    batched = _batched(array)
    return batched if np.shares_memory(batched, array) else None


def factor_constants(spec, row, like):
    """``(weight, floor, estimate_floor)`` of the factors' pass from a parameter's float64 scalar
    ``row``, rounded to ``like``'s dtype as the host rounds it (:func:`numadam.core.factors.pass_constants`;
    compiled per spec)."""


def norms_field(spec, param_squares, direction_squares, count, row):
    """The family's norms value of a parameter (its field of the update's scalars) from its sums and
    its float64 scalar ``row`` (compiled per spec)."""


@functools.cache
def _family_functions(rule_name, real):
    """The compiled ``(constants(row), field(param_squares, direction_squares, count, row))`` of rule
    ``rule_name`` in the dtype ``real``: its scalars made from a row as the host makes them."""
    declared = algorithm(rule_name)
    fields = range(len(declared.Scalars._fields))
    narrowed = "Scalars(" + ", ".join(f"real(row[{j}])" for j in fields) + ")"
    wide = "Scalars(" + ", ".join(f"row[{j}]" for j in fields) + ")"
    source = (f"def constants(row):\n"
              f"    s = {narrowed}\n"
              f"    weight, floor = factors(s)\n"
              f"    return real(weight), real(floor), real(direction_floor(s))\n"
              f"def field(param_squares, direction_squares, count, row):\n"
              f"    return value(param_squares, direction_squares, count, {wide})\n")
    namespace = {"Scalars": declared.Scalars, "real": np.dtype(real).type,
                 "factors": njit(inline="always")(declared.factors), "direction_floor": declared.direction_floor,
                 "value": njit(inline="always")(declared.norms_value)}
    exec(compile(source, f"<numadam factored step of {rule_name}>", "exec"), namespace)
    return njit(inline="always")(namespace["constants"]), njit(inline="always")(namespace["field"])


@overload(factor_constants)
def _factor_constants(spec, row, like):
    constants = _family_functions(spec.spec.rule, spec.spec.real)[0]
    return lambda spec, row, like: constants(row)


@overload(norms_field)
def _norms_field(spec, param_squares, direction_squares, count, row):
    field = _family_functions(spec.spec.rule, spec.spec.real)[1]
    return lambda spec, param_squares, direction_squares, count, row: field(param_squares, direction_squares,
                                                                           count, row)


@njit(inline="always")
def _walked(address, layout, base, like):
    """The dense ``(B, R, C)`` array the layout describes at ``address``."""
    return carray(pointer(address, like), (layout[base + BATCH], layout[base + ROWS], layout[base + COLUMNS]))


@njit(inline="always")
def _dense(address, shape, like):
    return carray(pointer(address, like), shape)


@njit(inline="always", error_model="numpy")
def _matrix_pass(layout, base, one, infinity, weight, one_minus_weight, floor, estimate_floor, like):
    """One matrix's factors' pass with its norms (:func:`numadam.targets.cpu.factor_sums.move_factors`
    on the calling thread): ``(valid, ‖p‖², ‖u‖²)``."""
    grad = _walked(layout[base + GRAD], layout, base, like)
    param = _walked(layout[base + PARAM], layout, base, like)
    batch, walked_rows, walked_columns = grad.shape
    transposed = layout[base + TRANSPOSED] != 0
    n_rows, n_columns = (walked_columns, walked_rows) if transposed else (walked_rows, walked_columns)
    row_var = _dense(layout[base + ROW_VAR], (batch, n_rows), like)
    col_var = _dense(layout[base + COL_VAR], (batch, n_columns), like)
    row_mean = _dense(layout[base + ROW_MEAN], (batch,), like)
    row_scales = _dense(layout[base + ROW_SCALES], (batch, n_rows), like)
    col_scales = _dense(layout[base + COL_SCALES], (batch, n_columns), like)
    per_block = rows_per_block(walked_rows)  # the host pass's blocks, from the walked shape as there
    n_blocks = block_count(walked_rows, per_block)
    walk_sums, walk_columns = np.empty((batch, walked_rows)), np.empty((batch, walked_columns))
    partial, weighted_blocks = np.empty((batch, n_blocks, walked_columns)), np.empty((batch, n_blocks, walked_columns))
    weighted, param_blocks = np.empty((batch, walked_columns)), np.empty((batch, n_blocks))
    as_given = layout[base + KIND] == MATRIX  # (true: neither scaled nor clipped; a bool, as the host's)
    _block_sums_with_norms_serial(grad, one, infinity, as_given, per_block, walk_sums, partial, param,
                                  col_var if transposed else row_var, weight, one_minus_weight, weighted_blocks,
                                  param_blocks)
    _added_blocks_serial(weighted_blocks, weighted)
    _added_blocks_serial(partial, walk_columns)
    rows, columns = (walk_columns, walk_sums) if transposed else (walk_sums, walk_columns)
    moved_factors_from_sums(rows, columns, row_var, col_var, row_mean, row_scales, col_scales, weight,
                            one_minus_weight, floor)
    return _norms_from_sums(weighted, row_var if transposed else col_var, row_mean, row_scales.reshape(-1),
                            col_scales.reshape(-1), param_blocks, one / np.sqrt(estimate_floor))


@njit(inline="always")
def _vector_pass(layout, base, one, infinity, weight, one_minus_weight, estimate_floor, like):
    """One vector's moving average with its norms: ``(‖p‖², ‖u‖²)``, as
    :func:`numadam.targets.cpu.factor_sums.moved_variance_with_norms` sums them (from its parallel
    size on, chunk by chunk, the chunks' sums added in order: here on the calling thread)."""
    n = layout[base + COLUMNS]
    grad, param = _dense(layout[base + GRAD], (n,), like), _dense(layout[base + PARAM], (n,), like)
    variance = _dense(layout[base + ROW_VAR], (n,), like)
    if n < SERIAL_BELOW:
        moved_variance(grad, one, infinity, variance, weight, one_minus_weight)
        return _vector_norms(grad, param, one, infinity, variance, estimate_floor)
    param_squares = direction_squares = 0.0
    for first in range(0, n, VECTOR_CHUNK):
        last = min(n, first + VECTOR_CHUNK)
        moved_variance(grad[first:last], one, infinity, variance[first:last], weight, one_minus_weight)
        chunk_param, chunk_direction = _vector_norms(grad[first:last], param[first:last], one, infinity,
                                                     variance[first:last], estimate_floor)
        param_squares += chunk_param
        direction_squares += chunk_direction
    return param_squares, direction_squares


def first_is_none(first):
    """Whether the kernel was given no norms pass (compiled to a constant)."""


@overload(first_is_none)
def _first_is_none(first):
    none = isinstance(first, types.NoneType)
    return lambda first: none


def _missing_norms(first, table, width, n_segments, starts, stops, leaves, rows, first_scalars, like, sums, found):
    """The norms pass ``first`` over the pieces of the parameters not ``found``, its sums added into
    theirs in piece order, each row rounded into ``first_scalars`` (nothing without a pass)."""


@overload(_missing_norms)
def _missing_norms_overload(first, table, width, n_segments, starts, stops, leaves, rows, first_scalars, like, sums,
                            found):
    if isinstance(first, types.NoneType):
        return lambda first, table, width, n_segments, starts, stops, leaves, rows, first_scalars, like, sums, \
            found: None

    def implementation(first, table, width, n_segments, starts, stops, leaves, rows, first_scalars, like, sums,
                       found):
        n_leaves, n_fields = rows.shape
        n_first = first_scalars.size // n_leaves
        for leaf in range(n_leaves):
            for slot in range(n_fields):
                first_scalars[leaf * n_first + slot] = rows[leaf, slot]
        for piece in range(starts.size):
            leaf = leaves[piece]
            if not found[leaf]:
                param_squares, direction_squares = _reduce_span(first, table, width, n_segments, starts[piece],
                                                                stops[piece], first_scalars, like)
                sums[leaf, 0] += param_squares
                sums[leaf, 1] += direction_squares

    return implementation


class FactoredStepArguments(NamedTuple):
    """The arguments of :func:`factored_step_serial`, by its parameters' names."""

    update: object
    first: object
    table: object
    width: int
    n_chunks: int
    chunk_size: int
    layout: object
    starts: object
    stops: object
    leaves: object
    group_scalars: object
    rows: object
    first_scalars: object
    scalars: object
    like: object
    sums: object
    found: object
    factored_slot: int
    field_slot: int


@cached_njit(error_model="numpy")
def factored_step_serial(update, first, table, width, n_chunks, chunk_size, layout, starts, stops, leaves,
                         group_scalars, rows, first_scalars, scalars, like, sums, found, factored_slot, field_slot):
    """The common step (no policy) of a family with factored state, on the calling thread (see the
    module docstring). ``group_scalars`` holds each group's float64 scalars (the family's);
    ``rows`` receives each parameter's (its ``factored_slot`` 1 for a matrix, 0 otherwise; its
    ``field_slot`` its norms value where that applies), ``scalars`` the same rounded to the
    update's dtype, in front of each row's policy scalars, already there (the bounds of a
    compiled solve); ``sums`` each parameter's ``(‖p‖², ‖u‖²)`` and ``found`` whether the
    factors' pass found them.

    Where it did not, the norms pass (``first``) sums them over that parameter's pieces
    ``starts[p]:stops[p]`` (``leaves[p]`` the parameter of each), added in piece order, with the
    parameter's row rounded into ``first_scalars`` (whose slots after the family's already hold
    the first pass's policy scalars): as the host's norms pass, which sums every parameter and
    keeps the others' sums from the factors' pass. Returns how many parameters took it. With
    ``first`` None (the objects' step: a pass compiled in costs seconds and rarely runs), it
    returns that number having moved the factors and written nothing else: the host runs the
    norms pass and the update."""
    n_leaves, n_fields = rows.shape
    units = np.ones(2, scalars.dtype)  # 1 and infinity in the real dtype (a literal would be float64)
    units[1] = np.inf
    one, infinity = units[0], units[1]
    missing = 0
    for leaf in range(n_leaves):
        base = leaf * FIELDS
        kind = layout[base + KIND]
        for slot in range(n_fields):
            rows[leaf, slot] = group_scalars[layout[base + GROUP], slot]
        rows[leaf, factored_slot] = 1.0 if layout[base + KEEPS_FACTORS] else 0.0
        found[leaf] = True
        sums[leaf, 0] = sums[leaf, 1] = 0.0
        if kind == EMPTY:  # no squares to take the means of: the factors stay as they are
            continue
        weight, floor, estimate_floor = factor_constants(update, rows[leaf], like)
        one_minus_weight = one - weight
        if kind == VECTOR:
            sums[leaf, 0], sums[leaf, 1] = _vector_pass(layout, base, one, infinity, weight, one_minus_weight,
                                                        estimate_floor, like)
            continue
        valid, sums[leaf, 0], sums[leaf, 1] = _matrix_pass(layout, base, one, infinity, weight, one_minus_weight,
                                                           floor, estimate_floor, like)
        if not valid:
            found[leaf] = False
            sums[leaf, 0] = sums[leaf, 1] = 0.0
            missing += 1
    n_segments = table.size // width
    if missing:
        if first_is_none(first):  # (compiled away) the host runs the norms pass and the update
            return missing
        _missing_norms(first, table, width, n_segments, starts, stops, leaves, rows, first_scalars, like, sums,
                       found)
    n_update = scalars.size // n_leaves
    for leaf in range(n_leaves):
        base = leaf * FIELDS
        if layout[base + APPLIES]:
            rows[leaf, field_slot] = norms_field(update, sums[leaf, 0], sums[leaf, 1], layout[base + COUNT], rows[leaf])
        for slot in range(n_fields):
            scalars[leaf * n_update + slot] = rows[leaf, slot]
    n_elements = sequence_length(table, n_segments, width)
    for chunk in range(n_chunks):
        _update_chunk(update, table, width, n_segments, n_elements, chunk, chunk_size, scalars, like)
    return missing


def compiled(update, first):
    """The machine code of :func:`factored_step_serial` for the update's and the norms pass's specs
    (see :func:`numadam.targets.cpu.kernels.compiled`)."""
    return _compiled(update, first)


@functools.cache
def _compiled(update, first):
    from numba import typeof

    real = types.float32 if update.real == "float32" else types.float64
    integers, integer, wide = types.int64[::1], types.int64, types.float64[:, ::1]
    signature = (typeof(update), typeof(first), integers, integer, integer, integer, integers, integers, integers,
                 integers, wide, wide, real[::1], real[::1], real, wide, types.boolean[::1], integer, integer)
    fresh_block_labels()
    return factored_step_serial.compile(signature)
