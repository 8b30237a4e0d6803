"""CuPy and other CUDA arrays, updated by the numba-cuda kernel of :mod:`numadam.targets.cuda.kernels`.

As on the CPU, what depends only on a plan and a kernel spec is done once, when
its launch is made (:meth:`CudaBackend.launcher`, :meth:`CudaBackend.reducer`);
a step then rounds its scalars and launches. The scalar rows of up to
:data:`ARGUMENT_ROWS` groups travel as kernel arguments, so a step copies
nothing to the GPU; more rows, and the device-counted steps' rows (which the
GPU picks and writes), are uploaded with each step.

Segment tables (and those scalar rows) reach the GPU through a ring of
page-locked buffers (:class:`PinnedStaging`), so a step never waits for the
copy, and are read only on the stream that copied them (:class:`StagedTable`).
This module imports neither CuPy nor numba-cuda: it finds CuPy in
``sys.modules`` (an array of it exists only if the user imported it) and loads
the kernels on first use.
"""

import sys
import threading

import numpy as np

from ..layout import c_strides, number_chunks
from ..arrays import ArrayInfo, Plan, checked_rows
from ..backend import Backend
from ..spec import algorithm

_STAGING_LOCK = threading.Lock()

#: At most this many scalar rows (one per group, the optimizer's own included, or one per parameter
#: for a family with norms) reach a kernel as its arguments; more are copied to the GPU at each
#: call. Each count compiles a kernel of its own; four rows of the longest (21 values, float64)
#: take 672 bytes of the 4 KB of a launch's arguments.
ARGUMENT_ROWS = 4


class CudaBackend(Backend):
    """CuPy and other CUDA arrays, updated by the numba-cuda kernel (no ``reducing_launcher``,
    ``norms_launcher``, ``factored_step_arguments`` or ``address_function``: see
    :class:`~numadam.targets.backend.Backend`)."""

    name = "cuda"
    #: The one-call step of a family with factored state takes its norms pass too
    #: (:meth:`factored_step_launcher`), so that a step does not wait for its norms' sums.
    norms_in_factored_step = True
    #: A plan's table is a copy on the device: moving it onto new gradients would need an upload,
    #: so a step with new gradient arrays makes a new plan (see the CPU's ``tables_in_place``).
    tables_in_place = False
    #: The device decides skips and counts steps (:meth:`control_block`, :meth:`skip_or_step`,
    #: :meth:`read_control`; :mod:`numadam.engine.device_steps`).
    device_steps = True

    def __init__(self):
        from . import kernels as kernels

        self._kernels = kernels
        self.chunk_size = kernels.CHUNK_SIZE
        self._streams = {}
        self._staging = None

    @staticmethod
    def _cupy():
        return sys.modules.get("cupy")

    def describe(self, array):
        cupy = self._cupy()
        if cupy is not None and isinstance(array, cupy.ndarray):
            return ArrayInfo(array.data.ptr, array.shape, array.strides, array.dtype, False)
        interface = getattr(array, "__cuda_array_interface__", None)
        if interface is None:  # the simulator's arrays live in host memory
            interface = array.__array_interface__
        if interface.get("mask") is not None:
            raise TypeError("masked CUDA arrays are not supported")
        dtype = np.dtype(interface["typestr"])
        if dtype.kind == "V":  # bfloat16 travels as raw bytes in the interface; the array knows better
            dtype = np.dtype(getattr(array, "dtype", dtype))
        shape = tuple(interface["shape"])
        strides = interface.get("strides")
        if strides is None:
            strides = c_strides(shape, dtype.itemsize)
        address, readonly = interface["data"]
        return ArrayInfo(address, shape, tuple(strides), dtype, bool(readonly))

    def address(self, array):
        cupy = self._cupy()
        if cupy is not None and isinstance(array, cupy.ndarray):
            return array.data.ptr
        return self.describe(array).address

    def plan(self, rows):
        n_chunks, n_elements = number_chunks(rows, self.chunk_size)
        return Plan(rows, n_chunks, n_elements, self._upload(rows))

    def _upload(self, rows):
        """``rows`` (int64) in device memory; for CuPy, copied without blocking the host."""
        flat = np.ascontiguousarray(rows.reshape(-1))
        if self._kernels.SIMULATED or flat.size == 0:
            return flat
        cupy = self._cupy()
        if cupy is not None:
            if self._staging is None:
                with _STAGING_LOCK:  # one ring: a second one could be freed while its copies run
                    if self._staging is None:
                        self._staging = PinnedStaging(cupy)
            return StagedTable(self._staging, flat)
        from numba import cuda

        return cuda.to_device(flat)

    def _table_address(self, device_table):
        if isinstance(device_table, np.ndarray):
            return device_table.ctypes.data
        if isinstance(device_table, StagedTable):
            return device_table.address_on_current_stream()
        return self.describe(device_table).address

    def _stream(self):
        cupy = self._cupy()
        if cupy is None or self._kernels.SIMULATED:
            return 0
        pointer = cupy.cuda.get_current_stream().ptr
        if pointer == 0:
            return 0
        stream = self._streams.get(pointer)
        if stream is None:
            from numba import cuda

            stream = self._streams[pointer] = cuda.external_stream(pointer)
        return stream

    def _kernel_scalars(self, scalars, real, n_scalars):
        """The rows of ``scalars`` rounded once to ``real``, as a kernel takes them: a tuple of their
        values (kernel arguments) for at most :data:`ARGUMENT_ROWS` rows, a device copy otherwise
        (held by the caller until its launch is queued; :meth:`_scalars_argument` passes it)."""
        values = checked_rows(scalars, real, n_scalars)
        if 0 < values.size <= ARGUMENT_ROWS * n_scalars:
            return tuple(values)
        return self._upload(_as_int64_words(values))

    def _scalars_argument(self, values):
        """The kernel's ``scalars`` argument for :meth:`_kernel_scalars`' ``values``."""
        return values if type(values) is tuple else self._table_address(values)

    def launcher(self, plan, spec, blocks=None):
        """``launch(scalars)``: ``spec``'s kernel launched over ``plan`` with ``scalars`` (one row of
        floats per group, rounded at each call, once, to the spec's real dtype, and passed as
        kernel arguments: see :meth:`_kernel_scalars`), on CuPy's current stream. Everything that
        depends only on the plan and the spec is decided here, once. With 8-bit state, ``blocks``
        holds the blocks (each block's first element in the sequence, then its length) and their
        scales: one warp per state block."""
        if plan.n_chunks == 0:
            return lambda scalars: None
        plan.check_fits(spec)
        real, n_scalars, kernels = np.dtype(spec.real), spec.n_scalars, self._kernels
        like, table, width, n_segments = real.type(0), plan.device_table, plan.width, len(plan.rows)
        if blocks is None:
            n_chunks = plan.n_chunks

            def launch(scalars):
                values = self._kernel_scalars(scalars, real, n_scalars)
                kernels.launch(spec, self._table_address(table), width, n_segments, n_chunks,
                               self._scalars_argument(values), like, self._stream())
            return launch
        block_starts, scales = blocks  # the bucket's own arrays, made with it: their addresses do not change
        blocks_address, n_blocks = self.describe(block_starts).address, block_starts.size - 1
        scales_address = self.describe(scales).address

        def launch_blocks(scalars):
            values = self._kernel_scalars(scalars, real, n_scalars)
            kernels.launch_blocks(spec, self._table_address(table), width, n_segments, blocks_address, n_blocks,
                                  self._scalars_argument(values), like, scales_address, self._stream())
        return launch_blocks

    def reducer(self, plan, spec, starts, stops):
        """``reduce(scalars)``: the pre-pass of ``spec`` over ``plan``, its two float64 sums over each
        piece ``starts[p]:stops[p]`` of the sequence, as a ``(pieces, 2)`` array on the host (the
        host waits for them; refilled at each call: copy what is kept). The pieces and the
        sums' device memory are uploaded here, once; a call passes its scalars as the update
        does (:meth:`_kernel_scalars`)."""
        plan.check_fits(spec)
        if not len(starts):
            none = np.zeros((0, 2))
            return lambda scalars: none
        real, n_scalars, kernels = np.dtype(spec.real), spec.n_scalars, self._kernels
        like, table, width, n_segments = real.type(0), plan.device_table, plan.width, len(plan.rows)
        n_pieces = len(starts)
        pieces, out = self._piece_buffers(starts, stops)

        def reduce(scalars):
            values = self._kernel_scalars(scalars, real, n_scalars)
            kernels.launch_reduction(spec, self._table_address(table), width, n_segments, self._table_address(pieces),
                                     n_pieces, self._scalars_argument(values), like, self._table_address(out),
                                     self._stream())
            return self._to_host(out).view(np.float64).reshape(-1, 2)

        return reduce

    def norms_step_launcher(self, plan, first, update, starts, stops, leaves, leaf_groups, applies, policy_scalars,
                            field_slot):
        """``launch(scalars)``: the common step (no policy) of a family with a norms pass over ``plan``,
        queued on the current stream without waiting for the GPU; ``scalars`` holds one row of the
        family's scalars per group, each parameter's taken from its group (``leaf_groups``).
        See :meth:`_norms_and_update`; ``None`` where there is nothing to sum (the host's path
        then steps)."""
        if plan.n_chunks == 0 or not len(starts):
            return None
        groups = np.asarray(leaf_groups, np.intp)
        norms_and_update = self._norms_and_update(plan, first, update, (starts, stops, leaves), applies,
                                                  np.zeros(len(groups), np.int64), policy_scalars, field_slot)

        def launch(scalars):
            norms_and_update(np.array(scalars, np.float64)[groups])

        return launch

    def factored_step_launcher(self, plan, update, first, pieces, policy_scalars, grads, params, factor_states,
                               groups, applies, counts, factored_slot, field_slot):
        """``launch(scalars)``: the common step (no policy) of a family with factored state over
        ``plan``, queued on the current stream without waiting for the GPU, with ``scalars`` one row
        of the family's scalars per group (each parameter's taken from its group, ``groups``, its
        field ``factored_slot`` 1 where it keeps row and column factors): each parameter's factors'
        pass (:mod:`numadam.targets.cuda.factors`, the factors ``factor_states[k]`` of
        gradient ``grads[k]``), then the norms pass ``first`` over the ``pieces`` and the
        update, as :meth:`_norms_and_update`, the family's value taking each parameter's number of
        real elements ``counts[k]`` and its row. The launch returns 0: no parameter is left
        for the host's norms pass. ``None`` without ``first``, or where there is nothing to sum."""
        if first is None or plan.n_chunks == 0 or not len(pieces[0]):
            return None
        from ...core import factors

        family = algorithm(update.rule)
        real = np.dtype(update.real)
        groups = np.asarray(groups, np.intp)
        keeps = np.array([1.0 if factors.factored(grad.shape) else 0.0 for grad in grads])
        stepped = [k for k, grad in enumerate(grads) if grad.size]  # an empty gradient leaves its factors
        norms_and_update = self._norms_and_update(plan, first, update, pieces, applies, counts, policy_scalars,
                                                  field_slot, scalars_type=family.Scalars)

        def launch(scalars):
            rows = np.array(scalars, np.float64)[groups]
            rows[:, factored_slot] = keeps
            for k in stepped:
                weight, floor, estimate_floor = factors.pass_constants(family, rows[k], real)
                self.update_factors(grads[k], *factor_states[k], weight, floor, 1.0, None)
            norms_and_update(rows)
            return 0

        return launch

    def _norms_and_update(self, plan, first, update, pieces, applies, counts, policy_scalars, field_slot,
                          scalars_type=None):
        """``run(rows)``: a family's norms pass and update over ``plan``, with ``rows`` each
        parameter's float64 row of the family's scalars, queued on the current stream.

        Three kernels: the norms pass (``first``, each row followed by ``policy_scalars`` where
        its policy is active), which writes two float64 sums for each piece ``starts[p]:stops[p]``
        of ``pieces`` (of parameter ``leaves[p]``, in order);
        :func:`~numadam.targets.cuda.kernels.norms_values_kernel` (with ``scalars_type``, the
        family's NamedTuple of scalars, for a value per parameter, which takes ``counts``), which
        adds them per parameter and writes the family's value into field ``field_slot`` of its
        update row, in device memory, where ``applies``; and the update (``update``), which reads
        those rows. They are the rows the host would make (:func:`~numadam.engine.stepping.with_norms`),
        rounded once to the real dtype, but for the sums of a parameter of more than two pieces,
        added in another order (a few units in the last place of float64). The sums never come
        to the host; a step copies its rows to the GPU (two or three small copies, queued from
        the page-locked ring, which makes the host wait only when it runs about three steps
        ahead of the GPU; without CuPy, ``numba.cuda.to_device`` copies them, waiting).
        """
        plan.check_fits(first)
        plan.check_fits(update)
        starts, stops, leaves = pieces
        kernels, real = self._kernels, np.dtype(first.real)
        like, n_leaves, n_pieces = real.type(0), len(applies), len(starts)
        table, width, n_segments, n_chunks = plan.device_table, plan.width, len(plan.rows), plan.n_chunks
        bounds = np.searchsorted(np.asarray(leaves, np.int64), np.arange(n_leaves + 1))
        layout = self._upload(np.concatenate([bounds, np.asarray(applies, bool), counts]).astype(np.int64))
        pieces, out = self._piece_buffers(starts, stops)
        extra = np.array(policy_scalars if first.policy.active else (), np.float64)
        value = algorithm(first.rule).norms_value

        def run(rows):
            first_rows = np.hstack([rows, np.broadcast_to(extra, (n_leaves, len(extra)))]) if len(extra) else rows
            first_values = self._kernel_scalars(first_rows, real, first.n_scalars)
            update_values = self._upload(_as_int64_words(checked_rows(rows, real, update.n_scalars)))
            family_rows = None if scalars_type is None else self._upload(
                _as_int64_words(np.ascontiguousarray(rows).reshape(-1)))
            rows_address, stream = self._table_address(update_values), self._stream()
            out_address, table_address = self._table_address(out), self._table_address(table)
            kernels.launch_reduction(first, table_address, width, n_segments, self._table_address(pieces), n_pieces,
                                     self._scalars_argument(first_values), like, out_address, stream)
            kernels.launch_norms_values(value, scalars_type, out_address, self._table_address(layout), n_leaves,
                                        0 if family_rows is None else self._table_address(family_rows),
                                        rows.shape[1], rows_address, update.n_scalars, field_slot, like, stream)
            kernels.launch(update, table_address, width, n_segments, n_chunks, rows_address, like, stream)

        return run

    def _piece_buffers(self, starts, stops):
        """``(pieces, out)`` in device memory: the pieces ``starts[p]:stops[p]`` of a pre-pass (their
        starts, then their stops) and room for its two float64 sums of each."""
        pieces = self._upload(np.concatenate([starts, stops]).astype(np.int64))
        return pieces, self._upload(np.zeros(2 * len(starts), np.int64))  # 8-byte words, written as float64

    def reduce(self, plan, spec, scalars, starts, stops):
        """The pre-pass over ``plan`` once (see :meth:`reducer`)."""
        return self.reducer(plan, spec, starts, stops)(scalars).copy()

    # -- device-counted steps (nonfinite="skip" without waiting; see numadam.engine.device_steps) -------------

    def control_block(self, applied, skipped):
        """A new device control block (int64) counting ``applied`` updates and ``skipped`` steps."""
        host = np.zeros(self._kernels.CONTROL_SIZE, np.int64)
        host[self._kernels.APPLIED], host[self._kernels.SKIPPED] = applied, skipped
        if self._kernels.SIMULATED or self._cupy() is None:
            from numba import cuda

            return cuda.to_device(host)
        return self._cupy().asarray(host)

    def skip_or_step(self, plan, spec, blocks, starts, stops, control, first_step, clip_value, scale_slot):
        """One step whose skipping and step number the GPU decides, all queued without waiting.

        ``blocks`` holds, for every step number from ``first_step`` on that the device may be at,
        the scalar rows of that step; the pre-pass sets the control block's flag if a gradient is
        not finite and (``clip_value``) writes the clipping scale into slot ``scale_slot`` of every
        row; the update then reads the block of the device's step, or does nothing if flagged.
        These rows are uploaded at each call, not passed as kernel arguments: the GPU picks the
        block and writes into it.
        """
        plan.check_fits(spec)
        real = np.dtype(spec.real)
        values = np.concatenate([checked_rows(block, real, spec.n_scalars) for block in blocks])
        device_values = self._upload(_as_int64_words(values))
        scalars_address = self._table_address(device_values)
        control_address = self.describe(control).address
        stream = self._stream()
        table = self._table_address(plan.device_table)
        out = self._upload(np.zeros(2 * max(len(starts), 1), np.int64))
        if len(starts):
            pieces = self._upload(np.concatenate([starts, stops]).astype(np.int64))
            self._kernels.launch_reduction(spec, table, plan.width, len(plan.rows), self._table_address(pieces),
                                           len(starts), scalars_address, real.type(0), self._table_address(out),
                                           stream)
        finalize, commit = self._kernels.control_kernels()
        self._kernels.launch_one_block(finalize, (self._table_address(out), len(starts), control_address,
                                                  float(clip_value or 0.0), scalars_address, values.size,
                                                  spec.n_scalars, scale_slot, real.type(0)), stream)
        block_bytes = len(blocks[0]) * spec.n_scalars * real.itemsize
        self._kernels.launch(spec, table, plan.width, len(plan.rows), plan.n_chunks, scalars_address, real.type(0),
                             stream, device_step=(control_address, first_step, block_bytes))
        self._kernels.launch_one_block(commit, (control_address,), stream)

    def read_control(self, control):
        """Start copying the control block to the host; ``(done, values)`` tells when it has arrived."""
        cupy = self._cupy()
        if self._kernels.SIMULATED or cupy is None or not isinstance(control, cupy.ndarray):
            values = control.copy_to_host()
            return lambda: True, lambda: values
        pinned = np.ndarray(control.size, np.int64, buffer=cupy.cuda.alloc_pinned_memory(control.nbytes))
        stream = cupy.cuda.get_current_stream()
        control.get(stream=stream, out=pinned)
        event = cupy.cuda.Event(disable_timing=True)
        event.record(stream)
        return lambda: event.done, lambda: (event.synchronize(), pinned)[1]

    def _to_host(self, device_array):
        if isinstance(device_array, np.ndarray):
            return device_array
        if isinstance(device_array, StagedTable):
            return device_array.array.get()
        return device_array.copy_to_host()

    # Optimizer state lives in CuPy arrays.
    @property
    def array_type(self):
        return self._require_cupy().ndarray

    def _require_cupy(self):
        cupy = self._cupy()
        if cupy is None:
            raise TypeError(
                "the optimizer objects keep CUDA state in CuPy arrays; install and import cupy "
                "(numadam.adam_step works with any __cuda_array_interface__ array)"
            )
        return cupy

    def zeros(self, size, dtype):
        return self._require_cupy().zeros(size, dtype)

    def empty(self, size, dtype):
        """An uninitialized CuPy array of ``size`` elements: for scratch that a kernel writes whole."""
        return self._require_cupy().empty(size, dtype)

    def update_factors(self, grad, row_var, col_var, row_mean, row_scale, col_scale, weight, floor, grad_scale,
                       clip_value, scratch=None, param=None, estimate_floor=None):
        """One parameter's factors moved toward its gradient, by the kernels of
        :mod:`numadam.targets.cuda.factors` on the current stream (``scratch``, ``param`` and
        ``estimate_floor``: unused). Returns ``None``: the norms pass sums the norms."""
        from .factors import update_factors

        if not isinstance(grad, self.array_type):  # another library's CUDA array: viewed by CuPy, not copied
            grad = self._require_cupy().asarray(grad)
        update_factors(self, grad, row_var, col_var, row_mean, row_scale, col_scale, weight, floor, grad_scale,
                       clip_value, self._stream())
        return None

    def broadcast(self, array, shape):
        """A view of ``array`` repeated to ``shape`` (strides 0 where repeated)."""
        return self._require_cupy().broadcast_to(array, shape)

    def view(self, buffer, offset, shape, strides, dtype):
        cupy = self._require_cupy()
        return cupy.ndarray(shape, dtype, memptr=buffer.data + offset, strides=strides)

    def assign(self, target, source):
        """Copy ``source`` (a NumPy or CUDA array) into the CuPy array ``target``."""
        target[...] = self._require_cupy().asarray(source)


class StagedTable:
    """A segment table in CuPy device memory, read only on the stream that copied it.

    CuPy's memory pool gives a freed block to later allocations on the stream
    that allocated it, ordered after that stream's work but not after other
    streams'. So a kernel reads the table only on that stream: a step on
    another stream copies the rows again, on that stream, and the old copy is
    freed where every kernel that read it ran. Holding the stream keeps a
    CuPy-created stream alive, so its handle cannot be reused by a new stream
    while the table lives.
    """

    def __init__(self, staging, rows):
        self._staging = staging
        self._rows = rows
        self.array, self.stream = staging.upload(rows)

    def address_on_current_stream(self):
        """The table's device address, for a kernel on CuPy's current stream."""
        current = self._staging.current_stream()
        if current.ptr != self.stream.ptr:
            self.array, self.stream = self._staging.upload(self._rows)
        return self.array.data.ptr


class PinnedStaging:
    """A ring of page-locked host buffers for copying segment tables to the GPU.

    A copy from pageable memory makes the host wait for the stream; from
    page-locked memory it is queued like a kernel. A slot's buffer is refilled
    only after its previous copy has finished (the slot's event), which it has
    unless the host runs ``slots`` uploads ahead of the GPU; ``waits`` counts the
    times it had not. Threads upload one at a time, so two never fill the same buffer.
    """

    def __init__(self, cupy, slots=8):
        self._cupy = cupy
        self._buffers = [None] * slots
        self._events = [None] * slots
        self._next = 0
        self._lock = threading.Lock()
        self.waits = 0

    def current_stream(self):
        return self._cupy.cuda.get_current_stream()

    def upload(self, flat):
        """Copy the int64 array ``flat`` to a new device array on CuPy's current stream.

        Returns ``(device array, stream)``; the host does not wait for the copy.
        """
        with self._lock:
            return self._upload(flat)

    def _upload(self, flat):
        cupy = self._cupy
        slot = self._next
        self._next = (slot + 1) % len(self._buffers)
        buffer, event = self._buffers[slot], self._events[slot]
        if event is None:
            event = self._events[slot] = cupy.cuda.Event(disable_timing=True)
        elif not event.done:
            self.waits += 1
            event.synchronize()
        if buffer is None or buffer.size < flat.size:
            size = max(flat.size, 2 * (0 if buffer is None else buffer.size))
            memory = cupy.cuda.alloc_pinned_memory(size * flat.itemsize)
            buffer = self._buffers[slot] = np.ndarray(size, np.int64, buffer=memory)
        staged = buffer[: flat.size]
        staged[...] = flat
        stream = self.current_stream()
        device = cupy.empty(flat.size, np.int64)
        device.set(staged, stream=stream)
        event.record(stream)
        return device, stream


def _as_int64_words(values):
    """``values``' bytes as int64 words (padded with zeros), for :class:`PinnedStaging`."""
    padded = np.zeros(-(-values.nbytes // 8) * 8, np.uint8)
    padded[: values.nbytes] = values.view(np.uint8)
    return padded.view(np.int64)
