"""CUDA kernel: a grid-stride loop over the chunks of a segment table.

Blocks stride over chunks (equal runs of the segments laid end to end); the
threads of a block stride over the elements of each segment piece of their
chunk, so neighbouring threads touch neighbouring elements (coalesced access). The segment table and the arrays are reached through raw device
addresses, so one launch updates any number of arrays. The element update is
:func:`~numadam._kernels.rules.adam_update`, the same function the CPU loop
inlines.

Under ``NUMBA_ENABLE_CUDASIM=1`` the kernel runs as Python on the host, where
"device" memory is host memory: the address helpers then read and write through
``ctypes`` instead of the LLVM intrinsics used on real hardware.

Importing this module imports numba-cuda; :mod:`numadam._backends.cuda` does so only
for CUDA arrays.
"""

import functools
import warnings

from numba import cuda

from .rules import adam_update
from .segments import (
    ADDRESS,
    EXP_AVG,
    EXP_AVG_SQ,
    GRAD,
    MAX_EXP_AVG_SQ,
    NUM_COLUMNS,
    PARAM,
    STRIDE,
    piece_of,
    segment_of_element,
    sequence_length,
)

SIMULATED = bool(cuda.config.ENABLE_CUDASIM)

if SIMULATED:
    from ._simulated_memory import element_pointer, table_view
else:
    from numba.cuda import types
    from numba.cuda.extending import intrinsic

    @intrinsic
    def element_pointer(typingctx, address, like):
        """A typed pointer to the element at device byte ``address``; ``like`` gives its type."""
        pointer_type = types.CPointer(like)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(pointer_type))

        return pointer_type(types.int64, like), codegen

    @intrinsic
    def table_view(typingctx, address, n_values):
        """The int64 segment table at device byte ``address`` (``n_values`` long)."""
        pointer_type = types.CPointer(types.int64)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(pointer_type))

        return pointer_type(types.int64, types.int64), codegen


@functools.cache
def adam_kernel(amsgrad, l2_decay):
    """The kernel for one variant, with ``amsgrad`` and ``l2_decay`` compiled in."""

    @cuda.jit
    def kernel(table_address, n_segments, n_chunks, chunk_size, hyper):
        table = table_view(table_address, n_segments * NUM_COLUMNS)
        n_elements = sequence_length(table, n_segments)
        like = hyper[0]
        for chunk in range(cuda.blockIdx.x, n_chunks, cuda.gridDim.x):
            first = chunk * chunk_size
            last = min(first + chunk_size, n_elements)
            segment = segment_of_element(table, n_segments, first)
            while first < last:
                row, start, stop = piece_of(table, segment, first, last)
                param = element_pointer(table[row + ADDRESS + PARAM], like)
                grad = element_pointer(table[row + ADDRESS + GRAD], like)
                exp_avg = element_pointer(table[row + ADDRESS + EXP_AVG], like)
                exp_avg_sq = element_pointer(table[row + ADDRESS + EXP_AVG_SQ], like)
                max_exp_avg_sq = element_pointer(table[row + ADDRESS + MAX_EXP_AVG_SQ], like)
                sp = table[row + STRIDE + PARAM]
                sg = table[row + STRIDE + GRAD]
                sm = table[row + STRIDE + EXP_AVG]
                sv = table[row + STRIDE + EXP_AVG_SQ]
                sx = table[row + STRIDE + MAX_EXP_AVG_SQ]
                for i in range(start + cuda.threadIdx.x, stop, cuda.blockDim.x):
                    peak = max_exp_avg_sq[i * sx] if amsgrad else like
                    p, m, v, peak = adam_update(
                        param[i * sp], grad[i * sg], exp_avg[i * sm], exp_avg_sq[i * sv], peak,
                        hyper, amsgrad, l2_decay,
                    )
                    param[i * sp] = p
                    exp_avg[i * sm] = m
                    exp_avg_sq[i * sv] = v
                    if amsgrad:
                        max_exp_avg_sq[i * sx] = peak
                first += stop - start
                segment += 1

    return kernel


#: Threads per block and elements per chunk (each thread handles
#: ``CHUNK_SIZE // THREADS_PER_BLOCK`` elements of a chunk).
THREADS_PER_BLOCK = 32 if SIMULATED else 256
CHUNK_SIZE = 64 if SIMULATED else 2048
_BLOCKS_PER_SM = 16


@functools.cache
def max_blocks():
    """An upper bound on useful blocks: enough to fill every multiprocessor.

    Asked of the driver once per process: the query costs microseconds, a
    noticeable part of a small step. (With GPUs of different sizes, the grid
    is sized for the first one used; the grid-stride loop is correct for any
    number of blocks.)
    """
    if SIMULATED:
        return 2
    return cuda.get_current_device().MULTIPROCESSOR_COUNT * _BLOCKS_PER_SM


@functools.lru_cache(maxsize=256)
def configured_kernel(amsgrad, l2_decay, blocks, stream):
    """The kernel configured for ``blocks`` blocks on ``stream``, made once per configuration.

    A small update gets a small grid on purpose (one block per chunk), so
    numba-cuda's performance warning about grids of fewer than 128 blocks is
    silenced here (matched by its text: its class moved between numba-cuda
    versions).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Grid size")
        return adam_kernel(amsgrad, l2_decay)[blocks, THREADS_PER_BLOCK, stream]


def launch_adam(table_address, n_segments, n_chunks, hyper, amsgrad, l2_decay, stream=0):
    """Launch one kernel over every chunk of the device segment table at ``table_address``."""
    if n_chunks == 0:
        return
    blocks = min(n_chunks, max_blocks())
    configured_kernel(amsgrad, l2_decay, blocks, stream)(table_address, n_segments, n_chunks, CHUNK_SIZE, hyper)
