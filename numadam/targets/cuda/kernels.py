"""CUDA kernels: a grid-stride loop over the chunks of a segment table.

Blocks stride over chunks (equal runs of the segments laid end to end); the
threads of a block stride over the elements of each segment piece of their
chunk, so neighbouring threads touch neighbouring elements (coalesced access).
The segment table and the arrays are reached through raw device addresses, so
one launch updates any number of arrays. The per-group scalar rows come either
as kernel arguments (a tuple of values in the spec's real dtype, which the
launch packs with the other arguments: nothing is copied to the GPU for them)
or, where there are too many rows for that or the GPU picks them, at a device
address; :func:`scalar_view` reads both the same way. Each piece goes
through the spec's ``run_piece`` (:mod:`numadam.targets.body`): the same
rule, called from the same generated body, as on the CPU.

Under ``NUMBA_ENABLE_CUDASIM=1`` the kernel runs as Python on the host, where
"device" memory is host memory: the address helpers then read and write through
``ctypes`` instead of the LLVM intrinsics used on real hardware.

Importing this module imports numba-cuda; :mod:`numadam.targets.cuda.backend` does so only
for CUDA arrays.
"""

import functools
import os
import sys

import numpy as np
from numba import cuda, float32, float64, int64, njit
from numba.types import UniTuple

from ...core.clip_math import norm_and_scale
from ..control import APPLIED, CONTROL_SIZE, FLAG, SKIPPED
from ..primitives import INTERPRETED, pointer_codegen, register
from ..quantization import BLOCK, inverse_of
from .. import body
from ..block_labels import fresh_block_labels
from ..body import (block_runners, compiled_source, piece_runner, quads_source, quantized_operands,
                    reduction_runner)
from ..segments import piece_of, segment_of_element, sequence_length
from .launcher import SIMULATED, launch_kernel, loaded_function, quiet_grid

if SIMULATED:
    from .simulated_memory import element_pointer, scalar_view, table_view

    PRIMITIVES = INTERPRETED
else:
    from numba.cuda import cgutils, types
    from numba.cuda.extending import intrinsic, lower_builtin, type_callable

    from ...core.element_math import divided

    PRIMITIVES = register(intrinsic, types)
    element_pointer = PRIMITIVES.pointer

    @type_callable(divided)
    def _divided_type(context):
        """The rules' quotients by a step's constants on the GPU (:func:`~numadam.core.element_math.divided`):
        a number of the constant's own float type. Typed and lowered directly (an overload would
        compile for the current device, and ``compile_ptx`` must work without one)."""
        def typer(x, c):
            if isinstance(x, types.Float) and x == c:
                return x
        return typer

    @lower_builtin(divided, types.Float, types.Float)
    def _divided_lowered(context, builder, signature, args):
        """The IEEE division itself, as ``x / c`` compiles."""
        return builder.fdiv(*args)

    @intrinsic
    def table_view(typingctx, address, n_values):
        """The int64 table at device byte ``address`` (``n_values`` long)."""
        return types.CPointer(types.int64)(types.int64, types.int64), pointer_codegen

    def _local_copy_codegen(context, builder, signature, args):
        """The tuple ``args[0]`` stored in the thread's local memory, and a pointer to its first value."""
        copy = cgutils.alloca_once(builder, args[0].type)
        builder.store(args[0], copy)
        return builder.bitcast(copy, context.get_value_type(signature.return_type))

    @intrinsic
    def scalar_view(typingctx, scalars, like):
        """The scalar rows as a pointer to values of ``like``'s type: ``scalars`` is their device
        byte address (int64), or the values themselves (a tuple passed as kernel arguments),
        then copied once into the thread's local memory, where a row is read by its group's
        index as from device memory."""
        if isinstance(scalars, types.UniTuple):
            if scalars.dtype != like:
                return None
            return types.CPointer(like)(scalars, like), _local_copy_codegen
        return types.CPointer(like)(types.int64, like), pointer_codegen


def _no_quads(table, row, start, stop, step, scalars, like, thread):
    """``run_quads`` where vector accesses are off (:data:`~numadam.targets.body.VECTOR_LOADS`):
    every piece goes to ``run_piece``."""
    return False


@functools.cache
def kernel_for(spec, device_step=False):
    """The kernel of ``spec``: ``kernel(table_address, width, n_segments, n_chunks, chunk_size,
    scalars, like, control_address, first_step, block_bytes)``, with ``like`` zero in the spec's
    real dtype and ``scalars`` the rows' values (a tuple in that dtype, as kernel arguments) or
    their device address (see :func:`scalar_view`); numba-cuda compiles one kernel for each.

    With ``device_step``, the step number comes from the control block: every
    block returns at once if the step's flag is set, and otherwise reads its
    scalars ``(applied + 1 - first_step) * block_bytes`` bytes past the address
    ``scalars`` (the host uploads the scalars of every step number the device
    may be at). Without it, the last three arguments are ignored.
    """
    piece = piece_runner(spec, PRIMITIVES, strided_threads=True)
    run_piece = piece if SIMULATED else njit(inline="always")(piece)  # inlined: needs no device to compile
    quads = compiled_source(quads_source(spec), "run_quads", spec, PRIMITIVES) if body.VECTOR_LOADS else _no_quads
    run_quads = quads if SIMULATED else njit(inline="always")(quads)

    @cuda.jit(**register_cap(spec))
    def kernel(table_address, width, n_segments, n_chunks, chunk_size, scalars, like, control_address,
               first_step, block_bytes):
        table = table_view(table_address, n_segments * width)
        if device_step:  # a constant of this kernel: the branch is compiled only into device-counted steps
            control = table_view(control_address, CONTROL_SIZE)
            if control[FLAG] != 0:
                return
            scalars += (control[APPLIED] + 1 - first_step) * block_bytes
        values = scalar_view(scalars, like)
        n_elements = sequence_length(table, n_segments, width)
        for chunk in range(cuda.blockIdx.x, n_chunks, cuda.gridDim.x):
            first = chunk * chunk_size
            last = min(first + chunk_size, n_elements)
            segment = segment_of_element(table, n_segments, first, width)
            while first < last:
                row, start, stop = piece_of(table, segment, first, last, width)
                if not run_quads(table, row, start, stop, cuda.blockDim.x, values, like, cuda.threadIdx.x):
                    run_piece(table, row, start + cuda.threadIdx.x, stop, cuda.blockDim.x, values, like)
                first += stop - start
                segment += 1

    return kernel


def register_cap(spec, cap=None):
    """numba-cuda options of an update kernel: float32 updates capped at ``cap`` registers a thread
    (:data:`MAX_REGISTERS` unless given; 0: none).

    With vector accesses (:data:`~numadam.targets.body.VECTOR_LOADS`) the float32
    Adam kernel keeps four 128-bit loads in flight in 92 registers uncapped; under
    64 it spills (152 bytes). On an H200 (docs/bench/cuda-h200-2026-11-28-launch.txt),
    one element a thread with vector accesses and a cap of 96 stepped Adam at 1e8 in
    0.736 ms against 0.782 at 64 and 1.150 for the former kernel (one element, no
    vector accesses, cap 64), and ten families at a geometric mean of 0.946x
    their same-traffic CuPy kernel (0.951 at 64, 1.347 before).

    The 8-bit state's kernel (:func:`block_kernel_for`, no vector accesses)
    keeps :data:`QUANTIZED_MAX_REGISTERS`: it is latency-bound, a warp's block a
    chain of dependent loads, and at 64 (a few spilled values) its 1e8 Adam step
    took 1.67 ms on an H100 against 2.15 uncapped (72: 1.82, 80: 1.70).
    ``NUMADAM_CUDA_MAX_REGISTERS`` sets another cap for a process, to time it
    (tools/gpu_launch.py).
    """
    cap = MAX_REGISTERS if cap is None else cap
    return {"max_registers": cap} if spec.real == "float32" and cap and not SIMULATED else {}


#: The float32 update kernels' cap on registers a thread (see :func:`register_cap`).
MAX_REGISTERS = int(os.environ.get("NUMADAM_CUDA_MAX_REGISTERS", "96"))

#: The 8-bit state kernels' cap (see :func:`register_cap`).
QUANTIZED_MAX_REGISTERS = 64


def _block_sums(first_sums, second_sums, thread, first_sum, second_sum):
    """The block's sums of its threads' ``first_sum`` and ``second_sum`` into ``first_sums[0]`` and
    ``second_sums[0]`` (shared arrays of a value per thread), added in a fixed tree: the result
    depends on the block's size alone."""
    first_sums[thread] = first_sum
    second_sums[thread] = second_sum
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if thread < half:
            first_sums[thread] += first_sums[thread + half]
            second_sums[thread] += second_sums[thread + half]
        cuda.syncthreads()
        half //= 2


block_sums = _block_sums if SIMULATED else njit(inline="always")(_block_sums)


@functools.cache
def reduction_kernel_for(spec):
    """The pre-pass kernel of ``spec``: ``kernel(table_address, width, n_segments, pieces_address,
    n_pieces, scalars, like, out_address)`` (``scalars`` as for :func:`kernel_for`).

    ``pieces`` holds the pieces' starts then their stops (int64); ``out`` gets
    each piece's two float64 sums. A block takes a piece; its threads stride
    over it, each summing its own elements, and the block adds the threads'
    sums in a fixed tree: the result does not depend on the grid.
    """
    piece = reduction_runner(spec, PRIMITIVES, strided_threads=True)
    reduce_piece = piece if SIMULATED else njit(inline="always")(piece)

    @cuda.jit
    def kernel(table_address, width, n_segments, pieces_address, n_pieces, scalars, like, out_address):
        table = table_view(table_address, n_segments * width)
        pieces = table_view(pieces_address, 2 * n_pieces)
        values = scalar_view(scalars, like)
        out = element_pointer(out_address, _ZERO64)
        first_sums = cuda.shared.array(THREADS_PER_BLOCK, float64)
        second_sums = cuda.shared.array(THREADS_PER_BLOCK, float64)
        thread = cuda.threadIdx.x
        for index in range(cuda.blockIdx.x, n_pieces, cuda.gridDim.x):
            first = pieces[index]
            last = pieces[n_pieces + index]
            first_sum = _ZERO64
            second_sum = _ZERO64
            segment = segment_of_element(table, n_segments, first, width)
            while first < last:
                row, start, stop = piece_of(table, segment, first, last, width)
                piece_first, piece_second = reduce_piece(table, row, start + thread, stop, cuda.blockDim.x,
                                                         values, like)
                first_sum += piece_first
                second_sum += piece_second
                first += stop - start
                segment += 1
            block_sums(first_sums, second_sums, thread, first_sum, second_sum)
            if thread == 0:
                out[2 * index] = first_sums[0]
                out[2 * index + 1] = second_sums[0]
            cuda.syncthreads()

    return kernel


#: Threads in a warp, which updates a block of 8-bit state by itself.
WARP = 32
_ALL_LANES = 0xFFFFFFFF


def _warp_largest(mine, lane, scratch):
    """The largest of the warp's ``mine`` (NaN wins), in every lane: a butterfly of shuffles
    (``lane`` and ``scratch`` serve :func:`_simulated_warp_largest` alone)."""
    width = WARP // 2
    while width > 0:
        other = cuda.shfl_xor_sync(_ALL_LANES, mine, width)
        if other > mine or other != other:
            mine = other
        width //= 2
    return mine


def _simulated_warp_largest(mine, lane, scratch):
    """:func:`_warp_largest` in the simulator, which has no shuffles: a tree in ``scratch``
    (a value per lane), the simulated block being one warp (``THREADS_PER_BLOCK`` is ``WARP``
    there)."""
    scratch[lane] = mine
    cuda.syncthreads()
    half = WARP // 2
    while half > 0:
        if lane < half:
            other = scratch[lane + half]
            if other > scratch[lane] or other != other:
                scratch[lane] = other
        cuda.syncthreads()
        half //= 2
    mine = scratch[0]
    cuda.syncthreads()
    return mine


def _sync_warp():
    """Wait for every lane of the warp (its shared memory written is then seen by all)."""
    cuda.syncwarp(_ALL_LANES)


def _simulated_sync_warp():
    cuda.syncthreads()  # the simulated block is one warp


if SIMULATED:
    warp_largest, sync_warp = _simulated_warp_largest, _simulated_sync_warp
else:
    warp_largest, sync_warp = njit(inline="always")(_warp_largest), njit(inline="always")(_sync_warp)


@functools.cache
def block_kernel_for(spec):
    """The kernel of a spec with 8-bit state: ``kernel(table_address, width, n_segments,
    blocks_address, n_blocks, scalars, like, scales_address)`` (``scalars`` as for :func:`kernel_for`).

    A warp takes a block of the state (``blocks`` holds each block's first
    element in the sequence, then the sequence's length) and updates it in
    three steps, as the CPU does: its lanes stride over the block's elements,
    updating the parameter and leaving the new state in the warp's part of
    shared memory; the lanes find each state's largest magnitude by shuffles
    (NaN wins); then they encode the state with the new scale. The warps of a
    thread block never wait for each other.
    """
    load, store, _ = block_runners(spec, PRIMITIVES, strided_threads=True)
    if not SIMULATED:
        load, store = njit(inline="always")(load), njit(inline="always")(store)
    slots = tuple(k - 2 for k in quantized_operands(spec))
    n_slots = max(slots) + 1
    buffer_size = n_slots * BLOCK
    warps = THREADS_PER_BLOCK // WARP
    buffers_size, inverses_size = warps * buffer_size, warps * n_slots
    real = np.dtype(spec.real).type
    numba_real = float64 if spec.real == "float64" else float32

    @cuda.jit(**register_cap(spec, QUANTIZED_MAX_REGISTERS))
    def kernel(table_address, width, n_segments, blocks_address, n_blocks, scalars, like, scales_address):
        table = table_view(table_address, n_segments * width)
        blocks = table_view(blocks_address, n_blocks + 1)
        values = scalar_view(scalars, like)
        scales = element_pointer(scales_address, _ZERO32)
        lane = cuda.threadIdx.x % WARP
        warp = cuda.threadIdx.x // WARP
        buffers = cuda.shared.array(buffers_size, numba_real)
        inverses = cuda.shared.array(inverses_size, numba_real)
        scratch = cuda.shared.array(WARP, numba_real)
        buffer = buffers[warp * buffer_size:(warp + 1) * buffer_size]
        inverse = inverses[warp * n_slots:(warp + 1) * n_slots]
        for block in range(cuda.blockIdx.x * warps + warp, n_blocks, cuda.gridDim.x * warps):
            first = blocks[block]
            last = blocks[block + 1]
            segment = segment_of_element(table, n_segments, first, width)
            position = first
            while position < last:
                row, start, stop = piece_of(table, segment, position, last, width)
                load(table, row, start + lane, stop, WARP, values, like, scales, n_blocks, block,
                     position - first - start, buffer)
                position += stop - start
                segment += 1
            sync_warp()
            for slot in slots:
                mine = like
                for j in range(lane, last - first, WARP):
                    magnitude = abs(buffer[slot * BLOCK + j])
                    if magnitude > mine or magnitude != magnitude:
                        mine = magnitude
                largest = warp_largest(mine, lane, scratch)
                if lane == 0:
                    scale = np.float32(largest)
                    scales[slot * n_blocks + block] = scale
                    inverse[slot] = inverse_of(real(scale), like)
            sync_warp()
            segment = segment_of_element(table, n_segments, first, width)
            position = first
            while position < last:
                row, start, stop = piece_of(table, segment, position, last, width)
                store(table, row, start + lane, stop, WARP, inverse, position - first - start, buffer)
                position += stop - start
                segment += 1
            sync_warp()

    return kernel


def launch_blocks(spec, table_address, width, n_segments, blocks_address, n_blocks, scalars, like,
                  scales_address, stream=0):
    """Launch the 8-bit state's kernel (:func:`block_kernel_for`), one warp per state block."""
    _launch_over(block_kernel_for(spec), -(-n_blocks // (THREADS_PER_BLOCK // WARP)), stream, table_address, width,
                 n_segments, blocks_address, n_blocks, scalars, like, scales_address)


def _launch_over(kernel, n_work, stream, *arguments):
    """Launch ``kernel`` with a block per unit of work (at most :func:`max_blocks`), none for no work."""
    if n_work:
        launch_kernel(kernel, min(n_work, max_blocks()), THREADS_PER_BLOCK, stream, *arguments)


_ZERO64 = np.float64(0)
_ZERO32 = np.float32(0)

#: Threads per block and elements per chunk (each thread handles
#: ``CHUNK_SIZE // THREADS_PER_BLOCK`` elements of a chunk). The simulator's block is one warp,
#: which :func:`_simulated_warp_largest` relies on.
THREADS_PER_BLOCK = WARP if SIMULATED else 256
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


@functools.cache
def control_kernels():
    """``(finalize, commit)``: the one-block kernels around a device-counted step.

    ``finalize(out_address, n_pieces, control_address, clip_value, scalars_address, n_values,
    row_size, scale_slot, like)`` adds the pre-pass's per-piece sums in order, sets the flag where
    a gradient is not finite, and, with ``clip_value > 0``, writes the global-norm clipping scale
    (:func:`~numadam.core.clip_math.norm_and_scale`) into slot ``scale_slot`` of every scalar
    row. ``commit(control_address)`` counts the step as applied or skipped.
    """

    @cuda.jit
    def finalize(out_address, n_pieces, control_address, clip_value, scalars_address, n_values, row_size,
                 scale_slot, like):
        if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
            return
        out = element_pointer(out_address, _ZERO64)
        control = table_view(control_address, CONTROL_SIZE)
        squares = _ZERO64
        bad = _ZERO64
        for index in range(n_pieces):
            squares += out[2 * index]
            bad += out[2 * index + 1]
        control[FLAG] = 1 if bad > 0 else 0
        if clip_value > 0:
            scale = norm_and_scale(clip_value, 1.0, squares)[1]
            scalars = element_pointer(scalars_address, like)
            for index in range(scale_slot, n_values, row_size):
                scalars[index] = scale

    @cuda.jit
    def commit(control_address):
        if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
            return
        control = table_view(control_address, CONTROL_SIZE)
        skipped = control[FLAG]
        control[APPLIED] += 1 - skipped
        control[SKIPPED] += skipped

    return finalize, commit


@functools.lru_cache(maxsize=256)
def configured_kernel(spec, blocks, stream, device_step=False):
    """The kernel of ``spec`` configured for ``blocks`` blocks on ``stream``, made once per configuration."""
    return quiet_grid(kernel_for(spec, device_step), blocks, THREADS_PER_BLOCK, stream)


def launch(spec, table_address, width, n_segments, n_chunks, scalars, like, stream=0, device_step=None):
    """Launch one kernel over every chunk of the device segment table at ``table_address``.

    ``scalars`` is a tuple of the rows' values in ``like``'s dtype (kernel
    arguments), or their device address (see :func:`kernel_for`);
    ``device_step`` is ``(control_address, first_step, block_bytes)`` for a
    device-counted step, whose scalars are at an address.
    """
    if n_chunks == 0:
        return
    blocks = min(n_chunks, max_blocks())
    step_arguments = (0, 0, 0) if device_step is None else device_step
    cupy = None if SIMULATED else sys.modules.get("cupy")
    in_arguments = type(scalars) is tuple
    loaded = None if cupy is None else cupy_loaded(spec, device_step is not None, cupy.cuda.Device().id,
                                                   len(scalars) if in_arguments else 0)
    if loaded is None:
        configured_kernel(spec, blocks, stream, device_step is not None)(
            table_address, width, n_segments, n_chunks, CHUNK_SIZE, scalars, like, *step_arguments)
        return
    # CuPy packs each argument by its dtype, a tuple's values one by one: the compiled kernel's
    # parameters, in whose list numba-cuda lays a tuple out value by value.
    values = scalars if in_arguments else (np.int64(scalars),)
    typed = (*map(np.int64, (table_address, width, n_segments, n_chunks, CHUNK_SIZE)), *values, like,
             *map(np.int64, step_arguments))
    loaded[1]((blocks,), (THREADS_PER_BLOCK,), typed, stream=cupy.cuda.get_current_stream())


@functools.cache  # never evicted: unloading a module could pull code from under queued launches
def cupy_loaded(spec, device_step, device_id, n_values=0):
    """``(module, function)``: the update kernel of ``spec``, compiled by numba-cuda, loaded by CuPy
    into the context of GPU ``device_id`` (the current one), for ``n_values`` scalars passed as
    kernel arguments (0: the scalars at a device address).

    numba-cuda's launcher types and converts the ten arguments on every launch
    (25-40 µs of host time on an H100's host, against 5 µs for CuPy's
    launcher), the larger part of a small step; the same compiled code
    launched by CuPy gave the same bits (docs/gpu.md). ``None`` where numba-cuda
    keeps its compiled code in another form: then numba-cuda launches.
    The launch goes on CuPy's current stream, the one :mod:`numadam.targets.cuda.backend`
    wraps for numba-cuda.
    """
    fresh_block_labels()
    return loaded_function(kernel_for(spec, device_step).compile(update_signature(spec, n_values)))


def update_signature(spec, n_values=0):
    """The argument types of :func:`kernel_for`'s kernel of ``spec`` with ``n_values`` scalars
    passed as arguments (0: at a device address)."""
    real = float32 if spec.real == "float32" else float64
    scalars = int64 if n_values == 0 else UniTuple(real, n_values)
    return (int64,) * 5 + (scalars, real) + (int64,) * 3


def launch_one_block(kernel, arguments, stream=0):
    """Launch a one-thread-matters kernel (:func:`control_kernels`) on one block."""
    launch_kernel(kernel, 1, 1, stream, *arguments)


def launch_reduction(spec, table_address, width, n_segments, pieces_address, n_pieces, scalars, like,
                     out_address, stream=0):
    """Launch the pre-pass over ``n_pieces`` pieces, one block each (at most :func:`max_blocks`)."""
    _launch_over(reduction_kernel_for(spec), n_pieces, stream, table_address, width, n_segments, pieces_address,
                 n_pieces, scalars, like, out_address)


@functools.cache
def norms_values_kernel(value, scalars_type=None):
    """The kernel that turns the norms pass's per-piece sums into each parameter's update row,
    on the GPU: ``kernel(out_address, layout_address, n_leaves, family_rows_address, n_fields,
    rows_address, row_size, field_slot, like)``.

    ``out`` holds the pass's two float64 sums of each piece (:func:`reduction_kernel_for`);
    ``layout`` (int64, ``3 n_leaves + 1`` values) the first piece of each parameter and the
    end of the last one (a parameter's pieces are consecutive), whether each parameter's
    norms apply, and its number of real elements. A block takes a parameter: its threads
    add every ``blockDim``-th piece, the block adds the threads' sums in a fixed tree, so
    that with :math:`S_p = \\sum \\|p\\|^2` and :math:`S_u = \\sum \\|u\\|^2` over its
    pieces, field ``field_slot`` of its row (``row_size`` values of ``like``'s dtype at
    ``rows_address``) becomes ``value(S_p, S_u)``, the family's
    :attr:`~numadam.core.algorithm.Norms.value` compiled for the device, rounded once to
    the row's dtype, where its norms apply. With ``scalars_type`` (the family's NamedTuple of
    scalars: a value ``per_parameter``) it is ``value(S_p, S_u, n, s)``, ``n`` the
    parameter's real elements and ``s`` its row of ``n_fields`` float64 scalars at
    ``family_rows_address``, as the host computes it. A parameter of one or two pieces
    gets the sums the host's ``bincount`` would; more pieces are added in another order
    (the host's sums then differ in the last places of float64).
    """
    on_device = value if SIMULATED else njit(inline="always")(value)
    per_parameter = scalars_type is not None
    make_scalars = _scalars_maker(scalars_type) if per_parameter else None

    @cuda.jit
    def kernel(out_address, layout_address, n_leaves, family_rows_address, n_fields, rows_address, row_size,
               field_slot, like):
        out = element_pointer(out_address, _ZERO64)
        layout = table_view(layout_address, 3 * n_leaves + 1)
        family_rows = element_pointer(family_rows_address, _ZERO64)
        rows = element_pointer(rows_address, like)
        first_sums = cuda.shared.array(THREADS_PER_BLOCK, float64)
        second_sums = cuda.shared.array(THREADS_PER_BLOCK, float64)
        thread = cuda.threadIdx.x
        for leaf in range(cuda.blockIdx.x, n_leaves, cuda.gridDim.x):
            first_sum = _ZERO64
            second_sum = _ZERO64
            for index in range(layout[leaf] + thread, layout[leaf + 1], cuda.blockDim.x):
                first_sum += out[2 * index]
                second_sum += out[2 * index + 1]
            block_sums(first_sums, second_sums, thread, first_sum, second_sum)
            if thread == 0 and layout[n_leaves + 1 + leaf] != 0:
                if per_parameter:
                    found = on_device(first_sums[0], second_sums[0], layout[2 * n_leaves + 1 + leaf],
                                      make_scalars(family_rows, leaf * n_fields))
                else:
                    found = on_device(first_sums[0], second_sums[0])
                rows[leaf * row_size + field_slot] = found
            cuda.syncthreads()

    return kernel


def _scalars_maker(scalars_type):
    """``make(values, first)``: ``scalars_type(values[first], values[first + 1], ...)``, one value
    per field of the NamedTuple class ``scalars_type``, for device code (written out field by
    field: a NamedTuple is built from its values, not from a sequence)."""
    fields = ", ".join(f"values[first + {k}]" for k in range(len(scalars_type._fields)))
    namespace = {"scalars": scalars_type}
    exec(f"def make(values, first):\n    return scalars({fields})\n", namespace)  # noqa: S102 (generated here)
    return namespace["make"] if SIMULATED else njit(inline="always")(namespace["make"])


def launch_norms_values(value, scalars_type, out_address, layout_address, n_leaves, family_rows_address, n_fields,
                        rows_address, row_size, field_slot, like, stream=0):
    """Launch :func:`norms_values_kernel` of ``value`` (and ``scalars_type``): a block per parameter
    (at most :func:`max_blocks`)."""
    _launch_over(norms_values_kernel(value, scalars_type), n_leaves, stream, out_address, layout_address, n_leaves,
                 family_rows_address, n_fields, rows_address, row_size, field_slot, like)
