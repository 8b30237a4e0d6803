"""Build segment tables (see :mod:`numadam._kernels.segments`) from array layouts.

The operands of one update share a shape but may each have their own strides
(C order, Fortran order, strided views, negative steps). The elements are
visited in the order that walks one operand's memory fastest (its axes sorted
by decreasing stride, like NumPy's ``order="K"``): the parameter's, unless
another operand's order gives fewer segments. Adjacent axes that are contiguous
in every operand merge, and what remains is a set of equal-length runs, one
segment each. A complex array counts as real pairs: an
extra trailing axis of length 2.
"""

import math

import numpy as np

from ._kernels.segments import (
    ADDRESS,
    EXP_AVG_SQ,
    LENGTH,
    MAX_EXP_AVG_SQ,
    NUM_COLUMNS,
    NUM_OPERANDS,
    OFFSET,
    STRIDE,
)


def real_layout(shape, strides, dtype):
    """Shape and byte strides of an array of ``dtype`` seen as real numbers."""
    if dtype.kind == "c":
        return tuple(shape) + (2,), tuple(strides) + (dtype.itemsize // 2,)
    return tuple(shape), tuple(strides)


def iteration_order(shape, strides):
    """Axes sorted so that the last one has the smallest stride (NumPy's "K" order)."""
    return sorted(range(len(shape)), key=lambda axis: -abs(strides[axis]))


def segment_rows(shape, addresses, strides, itemsize):
    """The segment rows of one update (``OFFSET`` left at 0).

    ``shape`` is the common real shape; ``addresses[k]`` and ``strides[k]`` (bytes)
    describe operand k in the order of :mod:`numadam._kernels.segments`. The
    elements are visited in the memory order of one of the operands, the parameter's
    unless another's gives fewer, longer segments. An absent
    ``max_exp_avg_sq`` (``strides[4] is None``) aliases ``exp_avg_sq``, which keeps
    every pointer valid even where the kernel never dereferences it.
    """
    addresses = list(addresses)
    strides = list(strides)
    if strides[MAX_EXP_AVG_SQ] is None:
        addresses[MAX_EXP_AVG_SQ] = addresses[EXP_AVG_SQ]
        strides[MAX_EXP_AVG_SQ] = strides[EXP_AVG_SQ]
    if 0 in shape:
        return np.zeros((0, NUM_COLUMNS), np.int64)
    orders = {tuple(iteration_order(shape, operand)): None for operand in strides}
    dims = min((_merged_dims(shape, strides, order) for order in orders),
               key=lambda dims: math.prod(extent for extent, _ in dims[:-1]))
    if dims:
        length, inner_strides = dims.pop()
    else:
        length, inner_strides = 1, [itemsize] * NUM_OPERANDS
    count = math.prod(extent for extent, _ in dims)
    rows = np.zeros((count, NUM_COLUMNS), np.int64)
    rows[:, LENGTH] = length
    rows[:, ADDRESS:ADDRESS + NUM_OPERANDS] = addresses
    if dims:
        index = np.indices([extent for extent, _ in dims]).reshape(len(dims), count)
        outer_strides = np.array([axis_strides for _, axis_strides in dims], np.int64)
        rows[:, ADDRESS:ADDRESS + NUM_OPERANDS] += index.T @ outer_strides
    rows[:, STRIDE:STRIDE + NUM_OPERANDS] = [s // itemsize for s in inner_strides]
    return rows


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


def contiguous_rows(addresses, length):
    """The segment rows of operands that are each ``length`` consecutive real elements.

    ``addresses`` has four entries, or five with ``max_exp_avg_sq`` (absent, it
    aliases ``exp_avg_sq`` as in :func:`segment_rows`).
    """
    if length == 0:
        return np.zeros((0, NUM_COLUMNS), np.int64)
    row = [0, length, *addresses, *addresses[EXP_AVG_SQ:][: NUM_OPERANDS - len(addresses)]]
    return np.array([row + [1] * NUM_OPERANDS], np.int64)


def real_dtype(dtype):
    """The dtype of the real numbers an array of ``dtype`` holds (float32 for complex64)."""
    return _REAL_DTYPES[dtype]


_REAL_DTYPES = {np.dtype(complex_name): np.dtype(real_name) for complex_name, real_name in
                (("complex64", "float32"), ("complex128", "float64"), ("float32", "float32"),
                 ("float64", "float64"))}


def coalesce(rows, itemsize):
    """Merge each row into its predecessor where every operand simply continues it."""
    if len(rows) < 2:
        return rows
    previous, following = rows[:-1], rows[1:]
    addresses = slice(ADDRESS, ADDRESS + NUM_OPERANDS)
    element_strides = slice(STRIDE, STRIDE + NUM_OPERANDS)
    expected = previous[:, addresses] + previous[:, [LENGTH]] * previous[:, element_strides] * itemsize
    continues = np.all(
        (following[:, addresses] == expected)
        & (following[:, element_strides] == previous[:, element_strides]),
        axis=1,
    )
    if not continues.any():
        return rows
    starts = np.flatnonzero(np.concatenate(([True], ~continues)))
    merged = rows[starts].copy()
    merged[:, LENGTH] = np.add.reduceat(rows[:, LENGTH], starts)
    return merged


def number_chunks(rows, chunk_size):
    """Fill ``OFFSET`` (the segments laid end to end); return ``(chunks, elements)``.

    ``chunks`` counts the runs of ``chunk_size`` elements, ``elements`` all elements.
    """
    if len(rows) == 1:
        rows[0, OFFSET] = 0
        total = int(rows[0, LENGTH])
    else:
        lengths = rows[:, LENGTH]
        ends = np.cumsum(lengths)
        rows[:, OFFSET] = ends - lengths
        total = int(ends[-1]) if len(ends) else 0
    return -(-total // chunk_size), total
