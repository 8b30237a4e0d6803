"""The segment table: how a kernel finds the elements it updates.

An update touches up to five arrays of the same shape: the parameter, its
gradient, ``exp_avg``, ``exp_avg_sq`` and (AMSGrad) ``max_exp_avg_sq``. The
host cuts them into *segments*: runs of ``length`` elements in which each
operand advances by a constant stride. A contiguous array is one segment; many
arrays are many segments of one table, so a single kernel launch updates all of
them. Each segment is cut into chunks of ``chunk_size`` elements; chunks are the
unit of parallel work (a ``prange`` iteration, a CUDA thread block).

One row of the int64 table per segment:

========================  =====================================================
column                    meaning
========================  =====================================================
``FIRST_CHUNK``           global index of the segment's first chunk
``LENGTH``                number of (real) elements in the segment
``ADDRESS + k``           byte address of operand k's first element
``STRIDE + k``            operand k's stride, in elements (may be negative)
========================  =====================================================

with operands k = 0..4 in the order above. An absent operand (no AMSGrad) has
address 0 and is never dereferenced.
"""

from numba import njit

NUM_OPERANDS = 5
PARAM, GRAD, EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ = range(NUM_OPERANDS)

FIRST_CHUNK = 0
LENGTH = 1
ADDRESS = 2
STRIDE = ADDRESS + NUM_OPERANDS
NUM_COLUMNS = STRIDE + NUM_OPERANDS


@njit(inline="always")
def segment_of_chunk(table, n_segments, chunk):
    """The segment holding ``chunk``: the last row with FIRST_CHUNK <= chunk."""
    low = 0
    high = n_segments - 1
    while low < high:
        middle = (low + high + 1) // 2
        if table[middle * NUM_COLUMNS + FIRST_CHUNK] <= chunk:
            low = middle
        else:
            high = middle - 1
    return low
