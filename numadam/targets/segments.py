"""The segment table: how a kernel finds the elements it updates.

An update reads and writes *operands* of the same shape: the parameter, its
gradient, and the family's state arrays (``exp_avg``, ``exp_avg_sq``, ...),
in the order of :attr:`numadam.targets.spec.KernelSpec.operands`. The host
cuts them into *segments*: runs of ``length`` elements in which each operand
advances by a constant stride. A contiguous array is one segment; many arrays
are many segments of one table, so a single kernel launch updates all of them.

The segments, laid end to end, make one sequence of elements. It is cut into
*chunks* of ``chunk_size`` consecutive elements, the unit of parallel work (a
``prange`` iteration, a CUDA thread block): every chunk has the same amount of
work whatever the arrays' sizes, and a chunk may cover the tail of one segment,
many small segments and the head of another.

One row of the int64 table per segment, rows in sequence order, for ``n``
operands (``width = 3 + 2n`` columns):

========================  =====================================================
column                    meaning
========================  =====================================================
``OFFSET``                position of the segment's first element in the sequence
``LENGTH``                number of (real) elements in the segment, > 0
``GROUP``                 the row of the per-group scalars this segment uses
``ADDRESS + k``           byte address of operand k's first element
``ADDRESS + n + k``       operand k's stride, in its own elements (may be negative)
``ADDRESS + 2n + j``      (out of place) the address of the old values of
                          operand ``spec.sources[j]``, laid out like it
``POSITION``, ``+ 1``     (a chunk's stochastic rounding) the position in the
                          whole parameter of the segment's first element, and
                          the step between its elements' positions; after the
                          source columns (:func:`position_column`)
========================  =====================================================

An absent operand has address 0 and stride 0 and is never dereferenced. An
out-of-place update (a spec with ``sources``) reads the old values of those
operands from their source columns and writes the new ones to the operands
themselves: the old arrays are left as they were.

Stochastic rounding draws an element's random bits from its position: the
sequence's (``OFFSET`` plus its index in the segment) where the table covers
whole parameters, or, for the table of a chunk of a parameter (a Dask chunk's,
whose sequence starts at the chunk), the one the two position columns give.
"""

import numpy as np
from numba import njit

OFFSET = 0
LENGTH = 1
GROUP = 2
ADDRESS = 3


def table_width(n_operands, n_sources=0, positions=False):
    """Columns of a table over ``n_operands`` operands, ``n_sources`` of them read from elsewhere, with
    the two position columns where ``positions``."""
    return ADDRESS + 2 * n_operands + n_sources + (2 if positions else 0)


def position_column(n_operands, n_sources):
    """The column of each segment's position in the whole parameter (the next: the step between its
    elements' positions) in a table over ``n_operands`` operands, ``n_sources`` read from elsewhere."""
    return ADDRESS + 2 * n_operands + n_sources


@njit(inline="always")
def sequence_length(table, n_segments, width):
    """The number of elements in all segments together."""
    last = (n_segments - 1) * width
    return table[last + OFFSET] + table[last + LENGTH]


@njit(inline="always")
def piece_of(table, segment, first, last, width):
    """Where ``segment`` meets elements ``first:last`` of the sequence (``first`` in it).

    Returns ``(row, start, stop)``: the segment's row offset in the table and the
    run ``start:stop`` of its own elements.
    """
    row = segment * width
    offset = table[row + OFFSET]
    return row, first - offset, min(last, offset + table[row + LENGTH]) - offset


@njit(inline="always")
def segment_of_element(table, n_segments, element, width):
    """The segment holding ``element`` of the sequence: the last row with OFFSET <= element."""
    low = 0
    high = n_segments - 1
    while low < high:
        middle = (low + high + 1) // 2
        if table[middle * width + OFFSET] <= element:
            low = middle
        else:
            high = middle - 1
    return low


@njit(inline="always")
def listed_address(template_address, k, grad, values_address, row, row_stride):
    """Where operand ``k`` of a segment of a listed row starts (a ``Rows`` gradient's row
    ``row``): the template's address (that of the parameter's row 0, or of the segment within
    one row of the values for the gradient, operand ``grad``) moved to the values' row at
    ``values_address``, or by ``row`` rows of ``row_stride`` bytes (0 for an operand that does
    not move with the row)."""
    return template_address + (values_address if k == grad else row * row_stride)


@njit(inline="always")
def first_fix(fixes, first):
    """``(cursor, skipped)`` at listing ``first`` of a listed plan with ``fixes``
    (:class:`~numadam.targets.arrays.ListedPlan`): its first fix at or after ``first``, and how
    many listings before ``first`` are skipped."""
    cursor = np.searchsorted(fixes[0], first)
    return cursor, fixes[2, cursor]


@njit(inline="always")
def listed_values(grad_address, grad_stride, fixes, cursor, j):
    """``(values, cursor)``: where the values of listing ``j`` start (0: the listing is skipped,
    its row's values added into those of its first listing) and the fix after it. Row ``j`` of
    the values at ``grad_address``, ``grad_stride`` bytes apart, unless a fix at ``cursor``
    names ``j``: then that fix's address."""
    if j == fixes[0, cursor]:
        return fixes[1, cursor], cursor + 1
    return grad_address + j * grad_stride, cursor
