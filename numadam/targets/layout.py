"""Build segment tables (see :mod:`numadam.targets.segments`) from array layouts.

The operands of one update share a (real) shape but may each have their own
strides (C order, Fortran order, strided views, negative steps) and their own
element size. The elements are visited in the order that walks one operand's
memory fastest (its axes sorted by decreasing stride, like NumPy's
``order="K"``): the parameter's, unless another operand's order gives fewer
segments. Adjacent axes that are contiguous in every operand merge, and what
remains is a set of equal-length runs, one segment each.
"""

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .disk_cache import cached_njit
from .segments import ADDRESS, GROUP, LENGTH, OFFSET, table_width


class Operand(NamedTuple):
    """Where one operand's real elements are: first address, byte strides, element size."""

    address: int
    strides: tuple
    itemsize: int


def iteration_order(shape, strides):
    """Axes sorted so that the last one has the smallest stride (NumPy's "K" order)."""
    return sorted(range(len(shape)), key=lambda axis: -abs(strides[axis]))


def c_strides(shape, itemsize):
    """The byte strides of a C-contiguous array of ``shape``."""
    strides = []
    step = itemsize
    for extent in reversed(shape):
        strides.append(step)
        step *= max(extent, 1)
    return tuple(reversed(strides))


def dense_strides(shape, strides, itemsize):
    """Contiguous byte strides for ``shape`` that keep the memory order of ``strides``."""
    dense = [0] * len(shape)
    step = itemsize
    for axis in reversed(iteration_order(shape, strides)):
        dense[axis] = step
        step *= max(shape[axis], 1)
    return tuple(dense)


def segment_rows(shape, operands, group=0, follow=None):
    """The segment rows of one update (``OFFSET`` left at 0).

    ``operands`` lists an :class:`Operand` per operand, ``None`` for an absent
    one (address and stride 0). Every row uses scalar row ``group``. With
    ``follow`` (an operand's index) the elements are visited in that operand's
    memory order, whatever the others' (8-bit state needs its blocks in order).
    """
    n = len(operands)
    width = table_width(n)
    if len(shape) == 1 and shape[0] and all(o is None or o.strides[0] == o.itemsize for o in operands):
        return _one_run(shape[0], operands, group)
    present = [k for k, operand in enumerate(operands) if operand is not None]
    if 0 in shape:
        return np.zeros((0, width), np.int64)
    strides = [operands[k].strides for k in present]
    leaders = strides if follow is None else [operands[follow].strides]
    orders = {tuple(iteration_order(shape, operand)): None for operand in leaders}
    dims = min((_merged_dims(shape, strides, order) for order in orders),
               key=lambda dims: math.prod(extent for extent, _ in dims[:-1]))
    if dims:
        length, inner_strides = dims.pop()
    else:
        length, inner_strides = 1, [operands[k].itemsize for k in present]
    count = math.prod(extent for extent, _ in dims)
    rows = np.zeros((count, width), np.int64)
    rows[:, LENGTH] = length
    rows[:, GROUP] = group
    address_columns = [ADDRESS + k for k in present]
    stride_columns = [ADDRESS + n + k for k in present]
    rows[:, address_columns] = [operands[k].address for k in present]
    if dims:
        index = np.indices([extent for extent, _ in dims]).reshape(len(dims), count)
        outer_strides = np.array([axis_strides for _, axis_strides in dims], np.int64)
        rows[:, address_columns] += index.T @ outer_strides
    rows[:, stride_columns] = [stride // operands[k].itemsize for stride, k in zip(inner_strides, present)]
    return rows


def _one_run(length, operands, group):
    """The single row over operands that are each ``length`` consecutive elements."""
    addresses = [0 if o is None else o.address for o in operands]
    strides = [0 if o is None else 1 for o in operands]
    return np.array([[0, length, group, *addresses, *strides]], np.int64)


def _merged_dims(shape, strides, order):
    """``(extent, per-operand byte strides)`` per axis in ``order``, outermost first,
    with neighbouring axes merged where every operand is contiguous across them."""
    dims = []
    for axis in order:
        extent = shape[axis]
        if extent == 1:
            continue
        axis_strides = [s[axis] for s in strides]
        if dims and all(outer == inner * extent for outer, inner in zip(dims[-1][1], axis_strides)):
            dims[-1] = (dims[-1][0] * extent, axis_strides)
        else:
            dims.append((extent, axis_strides))
    return dims


def coalesce(rows, itemsizes):
    """Merge each row into its predecessor where every operand simply continues it
    (same strides, next address) and both use the same scalar row: the first rows of
    ``rows`` (which the caller owns: it is rewritten in place) hold the merged table."""
    if len(rows) < 2:
        return rows
    return rows[:_merge_in_place(rows, np.asarray(itemsizes, np.int64), ADDRESS, LENGTH, GROUP)]


@cached_njit()
def _merge_in_place(rows, itemsizes, address, length, group):
    """:func:`coalesce` in one pass, the merged rows written over the first ones; their count (the
    column numbers passed in: a cached kernel keeps no module's globals)."""
    n = len(itemsizes)
    out = rows
    count = 0
    for i in range(rows.shape[0]):
        if count:
            last = count - 1
            continues = rows[i, group] == out[last, group]
            for k in range(n):
                if not continues:
                    break
                stride = out[last, address + n + k]
                continues = (rows[i, address + n + k] == stride and rows[i, address + k]
                             == out[last, address + k] + out[last, length] * stride * itemsizes[k])
            if continues:
                out[last, length] += rows[i, length]
                continue
        if count != i:
            out[count] = rows[i]
        count += 1
    return count


def number_chunks(rows, chunk_size):
    """Fill ``OFFSET`` (the segments laid end to end); return ``(chunks, elements)``.

    ``chunks`` counts the runs of ``chunk_size`` elements, ``elements`` all elements.
    """
    total = _offsets(rows, OFFSET, LENGTH)
    return -(-total // chunk_size), total


@cached_njit()
def _offsets(rows, offset, length):
    """Each row's ``OFFSET``, the segments' lengths before it; the total (the column numbers passed
    in: a cached kernel keeps no module's globals)."""
    total = 0
    for row in range(rows.shape[0]):
        rows[row, offset] = total
        total += rows[row, length]
    return total
