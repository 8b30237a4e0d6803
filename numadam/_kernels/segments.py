"""The segment table: how a kernel finds the elements it updates.

An update touches up to five arrays of the same shape: the parameter, its
gradient, ``exp_avg``, ``exp_avg_sq`` and (AMSGrad) ``max_exp_avg_sq``. The
host cuts them into *segments*: runs of ``length`` elements in which each
operand advances by a constant stride. A contiguous array is one segment; many
arrays are many segments of one table, so a single kernel launch updates all of
them.

The segments, laid end to end, make one sequence of elements. It is cut into
*chunks* of ``chunk_size`` consecutive elements, the unit of parallel work (a
``prange`` iteration, a CUDA thread block): every chunk has the same amount of
work whatever the arrays' sizes, and a chunk may cover the tail of one segment,
many small segments and the head of another.

One row of the int64 table per segment, rows in sequence order:

========================  =====================================================
column                    meaning
========================  =====================================================
``OFFSET``                position of the segment's first element in the sequence
``LENGTH``                number of (real) elements in the segment, > 0
``ADDRESS + k``           byte address of operand k's first element
``STRIDE + k``            operand k's stride, in elements (may be negative)
========================  =====================================================

with operands k = 0..4 in the order above. An absent operand (no AMSGrad) has
address 0 and is never dereferenced.
"""

from numba import njit

NUM_OPERANDS = 5
PARAM, GRAD, EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ = range(NUM_OPERANDS)

OFFSET = 0
LENGTH = 1
ADDRESS = 2
STRIDE = ADDRESS + NUM_OPERANDS
NUM_COLUMNS = STRIDE + NUM_OPERANDS


@njit(inline="always")
def sequence_length(table, n_segments):
    """The number of elements in all segments together."""
    last = (n_segments - 1) * NUM_COLUMNS
    return table[last + OFFSET] + table[last + LENGTH]


@njit(inline="always")
def piece_of(table, segment, first, last):
    """Where ``segment`` meets elements ``first:last`` of the sequence (``first`` in it).

    Returns ``(row, start, stop)``: the segment's row offset in the table and the
    run ``start:stop`` of its own elements.
    """
    row = segment * NUM_COLUMNS
    offset = table[row + OFFSET]
    return row, first - offset, min(last, offset + table[row + LENGTH]) - offset


@njit(inline="always")
def segment_of_element(table, n_segments, element):
    """The segment holding ``element`` of the sequence: the last row with OFFSET <= element."""
    low = 0
    high = n_segments - 1
    while low < high:
        middle = (low + high + 1) // 2
        if table[middle * NUM_COLUMNS + OFFSET] <= element:
            low = middle
        else:
            high = middle - 1
    return low
