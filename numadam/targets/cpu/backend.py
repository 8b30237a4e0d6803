"""NumPy arrays, updated by the Numba ``prange`` kernels of :mod:`numadam.targets.cpu.kernels`."""

import operator

import numpy as np

from . import threads
from .kernels import LINE
from .sampled_pass import sampled_pass
from ...core.pipeline import PolicyScalars
from ..quantization import BLOCK
from ..layout import number_chunks
from ..arrays import NO_FIXES, ArrayInfo, ListedPlan, Plan, checked_rows
from ..backend import Backend
from ..spec import algorithm


#: A spec's real dtype by name, and zero in it.
_REAL_DTYPES = {name: (np.dtype(name), np.dtype(name).type(0)) for name in ("float32", "float64")}


class CpuBackend(Backend):
    """NumPy arrays, updated by the Numba ``prange`` kernel: every capability of
    :class:`~numadam.targets.backend.Backend` but the device-counted steps."""

    name = "numpy"
    #: Elements per chunk (one ``prange`` iteration).
    chunk_size = 1 << 14
    #: Below this many elements the update runs on the calling thread: waking
    #: the thread pool costs more than it saves.
    serial_below = 1 << 16
    #: Whether the one-call step of a family with factored state takes its norms pass too in a
    #: plain step (:meth:`factored_step_launcher`'s ``first``): here not, since compiling it in
    #: costs seconds for a pass the factors' pass usually makes needless.
    norms_in_factored_step = False
    #: Whether a plan's launches read its rows in place (``device_table`` a view of them): a plan
    #: may then be moved onto new gradient arrays by writing their addresses into its rows
    #: (:meth:`numadam.engine.bucket.Bucket.rebound`, with :meth:`address_function`).
    tables_in_place = True

    #: Prodigy's ``slice_p``: the pass over state kept on a sample, compiled (None where it does not apply).
    sampled_pass = staticmethod(sampled_pass)

    def __init__(self):
        from . import factored_step, kernels as cpu  # (both part of every spec's fingerprint from here on)

        self._kernels = cpu
        self._factored = factored_step

    @staticmethod
    def describe(array):
        address, readonly = array.__array_interface__["data"]
        return ArrayInfo(address, array.shape, array.strides, array.dtype, readonly)

    def address(self, array):
        if type(array) is np.ndarray and array.dtype.itemsize >= 4:  # Numba has no 16-bit floats
            return self._kernels.data_address(array)
        return array.__array_interface__["data"][0]

    def address_function(self, kind, dtype):
        """The function :meth:`address` calls for arrays of type ``kind`` and ``dtype`` (for a caller
        that checked both already: one call less on every step)."""
        return self._kernels.data_address if kind is np.ndarray and dtype.itemsize >= 4 else self.address

    def plan(self, rows):
        n_chunks, n_elements = number_chunks(rows, self.chunk_size)
        return Plan(rows, n_chunks, n_elements, rows.reshape(-1))

    def listed_plan(self, template, strides, reach, index, grad_address, grad_stride, grad, make_rows,
                    fixes=NO_FIXES):
        """The :class:`~numadam.targets.arrays.ListedPlan` of rows ``index`` (int64) of one parameter:
        its launches lay out each row as they update it."""
        return ListedPlan(template, strides, reach, index, grad_address, grad_stride, grad, self.chunk_size,
                          make_rows, fixes)

    def _parallel(self, plan):
        """Whether ``plan`` runs on every core: large enough, and not in a child forked from OpenMP."""
        return plan.n_elements >= self.serial_below and threads.parallel_allowed()

    def launcher(self, plan, spec, blocks=None):
        """``launch(scalars)``: ``spec``'s rule applied over ``plan``, with ``scalars`` one row of
        floats per group (a list of tuples, or a float64 array of rows) rounded at each call, once,
        to the spec's real dtype. Everything that depends only on the plan and the spec is
        decided here, once; a :class:`~numadam.targets.arrays.ListedPlan`, which moves onto other
        rows from step to step, is looked at again at each call. With 8-bit state, ``blocks``
        holds the blocks (each block's first element in the sequence, then its length) and their
        scales, read and written."""
        if plan.n_chunks == 0 and type(plan) is not ListedPlan:
            return lambda scalars: None
        plan.check_fits(spec)
        real, zero = _REAL_DTYPES[spec.real]
        n_scalars = spec.n_scalars
        if type(plan) is ListedPlan and blocks is None:
            return self._listed_launcher(plan, spec, real, zero)
        table, width = plan.device_table, plan.width
        if blocks is not None:
            kernel = self._kernel("blocks", spec, self._parallel(plan))
            starts, per_block, scales = blocks[0], self.chunk_size // BLOCK, blocks[1]

            def launch_blocks(scalars):
                kernel(spec, table, width, starts, per_block, checked_rows(scalars, real, n_scalars), zero, scales)

            return launch_blocks
        kernel = self._kernel("update", spec, self._parallel(plan))
        n_chunks, chunk_size = plan.n_chunks, self.chunk_size

        def launch(scalars):
            # One row, the common case, without a call (this runs every step: 0.2 us of a 4 us step at 1e3)
            if type(scalars) is list and len(scalars) == 1 and len(scalars[0]) == n_scalars:
                rows = np.fromiter(scalars[0], real, n_scalars)
            else:
                rows = checked_rows(scalars, real, n_scalars)
            kernel(spec, table, width, n_chunks, chunk_size, rows, zero)

        return launch

    def _listed_launcher(self, plan, spec, real, zero):
        """:meth:`launcher` of a :class:`~numadam.targets.arrays.ListedPlan`: the index, the values'
        address and the rows' count are the plan's at the call, and so is the choice between the
        serial and the parallel kernel (each found at its first use)."""
        template, strides, reach, grad, n_scalars = plan.template, plan.strides, plan.reach, plan.grad, spec.n_scalars
        serial_below, kernels = self.serial_below, {}

        def launch_listed(scalars):
            if plan.n_chunks == 0:
                return
            wide = plan.n_elements >= serial_below
            kernel = kernels.get(wide)
            if kernel is None:
                kernel = kernels[wide] = self._kernel("listed", spec, wide and threads.parallel_allowed())
            kernel(spec, template, strides, reach, plan.index, plan.grad_address, plan.grad_stride, plan.fixes,
                   grad, checked_rows(scalars, real, n_scalars), zero)

        return launch_listed

    def _kernel(self, kind, spec, parallel):
        """The kernel ``kind`` of ``spec``: the serial one, or (``parallel``) the parallel one, which
        a launch made in a parent and called in a child forked from OpenMP (an optimizer the child
        inherited) replaces by the serial one at the call (:mod:`~numadam.targets.cpu.threads`;
        the same bits)."""
        if not parallel:
            return self._kernels.compiled(kind, spec)
        parallel, kernels = self._kernels.compiled(kind, spec, parallel=True), self._kernels

        def on_every_core_unless_forked(*arguments):
            if threads.parallel_allowed():
                return parallel(*arguments)
            return kernels.compiled(kind, spec)(*arguments)

        return on_every_core_unless_forked

    def reducer(self, plan, spec, starts, stops):
        """``reduce(scalars)``: the pre-pass of ``spec`` over ``plan``, its two float64 sums over each
        piece ``starts[p]:stops[p]`` of the sequence, as a ``(pieces, 2)`` array (refilled at each
        call: copy what is kept)."""
        out = np.zeros((len(starts), 2))
        plan.check_fits(spec)
        if not len(starts):
            return lambda scalars: out
        real, zero = _REAL_DTYPES[spec.real]
        n_scalars, table, width = spec.n_scalars, plan.device_table, plan.width
        kernel = self._kernel("reduce", spec, self._parallel(plan))

        def reduce(scalars):
            kernel(spec, table, width, starts, stops, checked_rows(scalars, real, n_scalars), zero, out)
            return out

        return reduce

    def reducing_launcher(self, plan, spec, starts, stops, leaves, n_leaves, nonfinite, clip):
        """``step(scalars) -> (updated, sums)``: the pre-pass of ``spec`` over ``plan`` (pieces
        ``starts[p]:stops[p]`` of parameters ``leaves[p]``), its decision and the update, in one
        serial call (:func:`~numadam.targets.cpu.kernels.reduce_then_update_serial`); ``None`` where
        that does not apply (a plan for every core). ``sums`` holds each parameter's two sums,
        refilled at each call."""
        if self._parallel(plan) or plan.n_chunks == 0 or not len(starts):
            return None
        plan.check_fits(spec)
        real, zero = _REAL_DTYPES[spec.real]
        n_scalars, table, width, n_chunks = spec.n_scalars, plan.device_table, plan.width, plan.n_chunks
        kernel = self._kernels.compiled("reduce_then_update", spec)
        sums = np.zeros((n_leaves, 2))
        scale_slot = spec.n_scalars - len(PolicyScalars._fields) + PolicyScalars._fields.index("grad_scale")

        def step(scalars):
            skipped = kernel(spec, table, width, starts, stops, leaves, checked_rows(scalars, real, n_scalars), zero,
                             sums, nonfinite, clip, scale_slot, n_scalars, n_chunks, self.chunk_size)
            return not skipped, sums

        return step

    def norms_launcher(self, plan, first, update, starts, stops, leaves, n_leaves, field_slot):
        """``step(first_scalars, scalars, applies) -> sums``: a family's norms pass (``first``), the field
        ``field_slot`` each parameter's sums set where ``applies``, and the update (``update``), in
        one serial call (:func:`~numadam.targets.cpu.kernels.norms_then_update_serial`; ``scalars``:
        a row per parameter, or ``first_scalars`` itself: the update reads the first values of each
        row); ``None`` where that does not apply (a plan for every core)."""
        if self._parallel(plan) or plan.n_chunks == 0 or not len(starts):
            return None
        plan.check_fits(first)
        plan.check_fits(update)
        real, zero = _REAL_DTYPES[first.real]
        table, width, n_chunks = plan.device_table, plan.width, plan.n_chunks
        kernel = self._kernels.compiled("norms_then_update", first, update)
        sums = np.zeros((n_leaves, 2))
        n_first, n_update, chunk_size = first.n_scalars, update.n_scalars, self.chunk_size

        def step(first_scalars, scalars, applies):
            first_values = checked_rows(first_scalars, real, n_first)
            # The same rows serve both passes: the kernel cuts them to the update's and sets the
            # field only after the first pass has read them.
            values = first_values if scalars is first_scalars else checked_rows(scalars, real, n_update)
            kernel(first, update, table, width, starts, stops, leaves, first_values, values, zero, sums, applies,
                   field_slot, n_update, n_chunks, chunk_size)
            return sums

        return step

    def norms_step_launcher(self, plan, first, update, starts, stops, leaves, leaf_groups, applies, policy_scalars,
                            field_slot):
        """``launch(scalars)``: the common step (no policy) of a family with a norms pass over ``plan``,
        with ``scalars`` one row of the family's scalars per group, in one serial call
        (:func:`~numadam.targets.cpu.kernels.norms_step_serial`), which makes each parameter's row:
        its group's (``leaf_groups``), then ``policy_scalars`` (what the first pass reads after the
        family's); its sums set field ``field_slot`` where ``applies``. ``None`` where that does not
        apply (a plan for every core)."""
        if self._parallel(plan) or plan.n_chunks == 0 or not len(starts):
            return None
        plan.check_fits(first)
        plan.check_fits(update)
        real, zero = _REAL_DTYPES[first.real]
        table, width, n_chunks, chunk_size = plan.device_table, plan.width, plan.n_chunks, self.chunk_size
        kernel = self._kernels.compiled("norms_step", first, update)
        layout = np.concatenate([starts, stops, leaves, leaf_groups, applies]).astype(np.int64)
        scalars = np.zeros(len(policy_scalars) + len(leaf_groups) * first.n_scalars, real)
        scalars[:len(policy_scalars)] = policy_scalars  # rounded once, as every row would be
        sums = np.zeros((len(leaf_groups), 2))
        n_fields = first.n_scalars - len(policy_scalars)

        def launch(group_scalars):
            kernel(first, update, table, width, layout, checked_rows(group_scalars, real, n_fields), scalars, zero, sums,
                   field_slot, n_chunks, chunk_size)

        return launch

    def factored_step_launcher(self, plan, update, first, pieces, policy_scalars, grads, params, factor_states,
                               groups, applies, counts, factored_slot, field_slot):
        """``launch(scalars)``: the common step (no policy) of a family with factored state over
        ``plan``, with ``scalars`` one row of the family's scalars per group, in one serial call
        (:meth:`factored_step_arguments`). It returns how many parameters need the norms pass;
        with ``first`` None, where that is not 0 it has moved the factors and written nothing
        else, and ``launch.sums`` and ``launch.found`` hold each parameter's ``(‖p‖², ‖u‖²)`` and
        whether the factors' pass took them, for the host's norms pass and update.
        ``launch.grad_addresses`` is the view of the layout's gradient addresses (one per
        parameter, 0 for an empty one), which a new array in a gradient's place rewrites. ``None``
        where the one call does not apply (a plan for every core, or parameters
        :func:`~numadam.targets.cpu.factored_step.factored_layout` refuses)."""
        if self._parallel(plan):
            return None
        found = self.factored_step_arguments(plan, update, first, pieces, policy_scalars, grads, params,
                                             factor_states, groups, applies, counts, factored_slot, field_slot)
        if found is None:
            return None
        kernel, arguments = found
        shape = arguments[10].shape  # (groups, the family's scalars): the kernel indexes it unchecked

        def launch(group_scalars):
            group_rows = np.array(group_scalars, np.float64)
            if group_rows.shape != shape:
                raise AssertionError(f"scalar rows of shape {group_rows.shape} for {shape}")
            return kernel(*arguments[:10], group_rows, *arguments[11:])

        launch.sums, launch.found = arguments[15], arguments[16]
        launch.grad_addresses = self._factored.grad_addresses(arguments.layout)
        return launch

    def factored_step_arguments(self, plan, update, first, pieces, policy_scalars, grads, params, factor_states,
                                groups, applies, counts, factored_slot, field_slot):
        """The :class:`~numadam.targets.cpu.kernels.KernelCall` of the one-call step of a family with factored state
        (:func:`~numadam.targets.cpu.factored_step.factored_step_serial`, on the calling thread
        whatever the size): the factors' pass; the norms pass (``first``, or ``None``: none) over
        the ``pieces`` (``(starts, stops, leaves)``) of the parameters whose norms that pass could
        not take; the update (``update``: a compiled solve's bounds, say). The rows of both end in
        ``policy_scalars`` where their policy is active; the parameters are as
        :func:`~numadam.targets.cpu.factored_step.factored_layout` takes them. Its arguments
        (:class:`~numadam.targets.cpu.factored_step.FactoredStepArguments`) hold the groups' float64
        scalar rows (``group_scalars``), to be filled before each call. ``None`` where
        that function refuses the parameters, or the plan is empty."""
        if plan.n_chunks == 0:
            return None
        plan.check_fits(update)
        if first is not None:
            plan.check_fits(first)
        real, zero = _REAL_DTYPES[update.real]
        layout = self._factored.factored_layout(grads, params, factor_states, groups, applies, counts, real)
        if layout is None:
            return None
        n_leaves, n_fields = len(grads), len(algorithm(update.rule).Scalars._fields)
        starts, stops, leaves = (np.ascontiguousarray(array, np.int64) for array in pieces)

        def rows(spec):  # each parameter's: the family's (filled at each call), then the policy's
            values = np.zeros((n_leaves, 0 if spec is None else spec.n_scalars), real)
            if spec is not None and spec.policy.active:
                values[:, n_fields:] = policy_scalars  # rounded once, as every row would be
            return values.reshape(-1)

        return self._kernels.KernelCall(self._factored.compiled(update, first), self._factored.FactoredStepArguments(
            update, first, plan.device_table, plan.width, plan.n_chunks, self.chunk_size, layout, starts, stops, leaves,
            np.zeros((max(groups) + 1, n_fields)), np.zeros((n_leaves, n_fields)), rows(first), rows(update), zero,
            np.zeros((n_leaves, 2)), np.zeros(n_leaves, bool), factored_slot, field_slot))

    def reduce(self, plan, spec, scalars, starts, stops):
        """The pre-pass over ``plan`` once (see :meth:`reducer`)."""
        return self.reducer(plan, spec, starts, stops)(scalars).copy()

    # Optimizer state lives in NumPy arrays.
    array_type = np.ndarray

    @staticmethod
    def update_factors(grad, row_var, col_var, row_mean, row_scale, col_scale, weight, floor, grad_scale, clip_value,
                       scratch=None, param=None, estimate_floor=None):
        """One parameter's factors moved toward its gradient (:func:`numadam.core.factors.update_factors`),
        its row and column sums of squares taken in one compiled read of it, on every core (with
        ``scratch``, a dict the caller keeps for the parameter: see
        :func:`~numadam.targets.cpu.factor_sums.row_and_column_squares`). A 16-bit gradient is
        widened to the factors' dtype first (exactly: the update forms its effective gradient there).
        With ``param`` and ``estimate_floor``, returns the norms pass's sums where the same read
        took them (:func:`~numadam.targets.cpu.factor_sums.move_factors`), else ``None``."""
        from .factor_sums import move_factors

        if grad.dtype != row_var.dtype:
            grad = grad.astype(row_var.dtype)
        return move_factors(grad, row_var, col_var, row_mean, row_scale, col_scale, weight, floor, grad_scale,
                            clip_value, {} if scratch is None else scratch, param, estimate_floor)

    @staticmethod
    def zeros(size, dtype):
        """``size`` zeros of ``dtype`` whose first byte starts a cache line (:data:`LINE` bytes; NumPy
        aligns to 16). A row of 16 float32 state values is then one line, not two: a minibatch's
        rows, listed at random, each wait on memory for every line (21875 rows of a 2.2e6 x 16
        table took SparseAdam 0.347 against 0.365 ms, Zen 5), and a 64-byte vector load of a dense
        step never splits across two lines."""
        dtype, size = np.dtype(dtype), operator.index(size)
        if size < 0:
            raise ValueError(f"zeros: a buffer holds a count of elements >= 0; got {size}")
        n_bytes = size * dtype.itemsize
        raw = np.zeros(n_bytes + LINE, np.uint8)
        start = -raw.__array_interface__["data"][0] % LINE
        return raw[start:start + n_bytes].view(dtype)

    @staticmethod
    def broadcast(array, shape):
        """A read-only view of ``array`` repeated to ``shape`` (strides 0 where repeated)."""
        return np.broadcast_to(array, shape)

    @staticmethod
    def view(buffer, offset, shape, strides, dtype):
        """An array of ``shape``/``strides`` over ``buffer`` starting ``offset`` bytes in."""
        return np.ndarray(shape, dtype, buffer=buffer, offset=offset, strides=strides)

    @staticmethod
    def assign(target, source):
        """Copy ``source`` (a NumPy or CuPy array) into the NumPy array ``target``."""
        if not isinstance(source, np.ndarray) and hasattr(source, "get"):
            source = source.get()
        np.copyto(target, source)
