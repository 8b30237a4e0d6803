"""A bucket: the parameters of one storage dtype, their state, and the plans that update them.

A :class:`Bucket` holds the parameters of one real dtype (and state dtype),
their optimizer state in one flat buffer per state kind, the policy operands
the optimizer keeps (:func:`~numadam.core.pipeline.held_operands`), and the
segment table that visits every parameter, its gradient and its state. Each
parameter's state is laid out densely in the parameter's own memory order,
so a C- or Fortran-ordered parameter and its state form a single segment.

A bucket's rows are built once per parameter (with the gradient's address left
at zero); a step only adds each gradient's address (:meth:`Bucket.bind`),
which is what makes a step over many arrays cheap, and passing the same
gradient arrays every step (filled in place) reuses the plan as it is.
"""

import functools
import operator
from typing import NamedTuple

import numpy as np

from ..core import dtypes, factors, validate
from ..core.memory import MemoryRanges, memory_bounds
from ..adapters.listing import listed_once
from ..adapters.rows import Spare, checked as checked_rows, is_rows, listed_rows, merges
from ..core.pipeline import NO_POLICY, POLICY_OPERANDS, QUANTIZED_STATE, QUANTIZE_FROM, held_operands, operand_dtype
from ..targets import quantization
from ..targets.arrays import NO_FIXES
from ..targets.dispatch import backend_for
from ..targets.layout import c_strides, coalesce, dense_strides, number_chunks
from ..targets.segments import ADDRESS, LENGTH
from . import sampled
from .operands import GRAD, RowTemplate, kernel_spec, operand_rows, row_template


class Quantized(NamedTuple):
    """One leaf of 8-bit state as saved: its codes and the float32 scale of each block."""

    codes: object
    scales: object


def on_host(array):
    """``array`` as a NumPy array (a CUDA array copied to the host)."""
    return array.get() if not isinstance(array, np.ndarray) and hasattr(array, "get") else np.asarray(array)


class Bucket:
    """Parameters whose numbers share a storage dtype, their state, and the table that updates them.

    The state is kept in ``state_dtype`` (the compute dtype by default: float32
    for float16 and bfloat16 parameters). With 8-bit state (``quantized``) each
    state buffer holds codes, laid out in each parameter's C order and cut into
    blocks of :data:`~numadam.targets.quantization.BLOCK` (``blocks``), with
    one float32 scale per block and state kind (``scales``); :meth:`run` then
    updates block by block. With ``magnitude`` (complex parameters under
    ``complex_mode="magnitude"``) the table's elements are complex numbers, and
    the state kinds marked ``magnitude`` hold one real number per element.

    Besides the family's state, a bucket keeps the policy operands the
    optimizer holds (:mod:`numadam.core.pipeline`: a float64 gradient
    accumulator, the moving average of the parameters, a float32 master copy
    of 16-bit parameters), and each parameter's bounds (its own copy: an
    array, or one value read with stride 0).
    """

    def __init__(self, backend, family, kinds, indices, params, infos, paths, rows_group, h, policies, bounds,
                 state_dtype, magnitude=False):
        self.backend = backend
        self.algorithm = family
        self.kinds = kinds  # the StateKinds present, in the rule's order
        self.indices = indices
        self.params = params
        self.infos = infos
        self.paths = paths
        self.rows_group = rows_group  # scalar row of each parameter
        #: Complex parameters whose state of ``magnitude`` kinds is one real number per element.
        self.magnitude = magnitude
        self.storage = infos[0].dtype if magnitude else dtypes.storage_dtype(infos[0].dtype)
        self.compute = dtypes.compute_dtype(infos[0].dtype)
        self.state_dtype = state_dtype
        self.quantized = state_dtype == QUANTIZED_STATE
        self._itemsize = self.storage.itemsize
        sizes = [dtypes.real_size(info.shape, info.dtype) // (2 if magnitude else 1) for info in infos]
        #: Where each parameter starts among the real numbers of the bucket (and of its table's sequence).
        self.offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        if self.quantized:
            self._init_blocks(sizes)
        #: Where each parameter's factored state starts in its buffer (:mod:`numadam.core.factors`), by factor.
        self.factor_offsets = {
            factor: np.concatenate(([0], np.cumsum([factors.factor_size(factor, info.shape) for info in infos])))
            .astype(np.int64) for factor in {kind.factor for kind in family.state if kind.factor}}
        self._factor_of = {kind.name: kind.factor for kind in family.state}
        #: The state kept on every ``sample_step``-th element (:mod:`numadam.engine.sampled`), which the
        #: kernels never see; where each parameter's sample starts in its buffer.
        self.sample_step = family.sample_step(h)
        self.sampled = {kind.name for kind in kinds if kind.sampled is not None} if self.sample_step > 1 else set()
        self.sample_offsets = np.concatenate(([0], np.cumsum([sampled.sample_size(size, self.sample_step)
                                                              for size in sizes]))).astype(np.int64)
        self.buffers = {kind.name: self._initial_buffer(kind, h) for kind in kinds}
        self.state = {name: [self._kind_view(name, k) for k in range(len(params))] for name in self.buffers}
        #: The policy operands the optimizer keeps (:func:`~numadam.core.pipeline.held_operands`), by name.
        self.policy_buffers = {}
        for operand in held_operands(policies):
            dtype = operand_dtype(operand.name, self.storage, self.compute)
            buffer = self.policy_buffers[operand.name] = backend.zeros(int(self.offsets[-1]), dtype)
            if operand.initial == "param":
                for k, param in enumerate(params):
                    backend.assign(self._state_view(buffer, k), param)
        self.policy_state = {name: [self._state_view(buffer, k) for k in range(len(params))]
                             for name, buffer in self.policy_buffers.items()}
        self.bounds = bounds  # None, or per parameter a (low, high) pair of arrays
        self._param_rows = [self._rows(k, self.infos[k].strides, 0) for k in range(len(params))]
        self._fast_rows = np.concatenate(self._param_rows)
        self._fast_leaf = np.repeat(np.arange(len(params)), [len(r) for r in self._param_rows])
        extents = [memory_bounds(info) for info in infos]
        self._param_low = np.array([low - i.address for (low, _), i in zip(extents, infos)], np.int64)
        self._param_high = np.array([high - i.address for (_, high), i in zip(extents, infos)], np.int64)
        #: Each gradient's name in messages, and its values' where it is a ``Rows`` (made once: a
        #: step formats no text unless it raises).
        self._grad_paths = ["grads" + path[len("params"):] for path in paths]
        self._values_paths = [f"{path}.values" for path in self._grad_paths]
        #: What a gradient looks like when it has its parameter's type and layout.
        self._expected = [(type(param), info.dtype, info.shape, info.strides) for param, info in zip(params, infos)]
        self._bound_grads = None
        self._plan = None
        self._rebinding = None  # how the last plan moves onto new gradient arrays (see rebound)
        self._pieces = None
        self._plan_offsets, self._kept = None, []
        self.listed = []
        self._templates = {}  # (parameter, strides of a row of Rows values) -> RowTemplate
        self._scratch = None  # the table of the last plan of one parameter's Rows, written over by the next
        self._listed_layout = None  # how listed_plan takes the next Rows like the last one bound (_ListedLayout)
        self._direct_plan = None  # the plan of listed_plan's last step, moved onto the next's rows
        self._spare = Spare()  # where the one parameter's repeated rows are summed and listed, step after step
        self._factor_scratch = {}  # parameter -> the memory of its factors' pass (factored state)
        self._specs = {}
        self._reducers = {}  # id(policy) -> (plan, flags, policy, its pre-pass summed by parameter)
        self._by_identity = {}  # id(policy) -> (plan, flags, policy, launch): see launcher
        self._fused = {}  # id(policy) -> (plan, flags, policy, fused step or None): see reduce_and_update
        #: The parameters (local indices) whose gradient was ``None`` in the last :meth:`bind`.
        self.absent = []

    def _init_blocks(self, sizes):
        """8-bit state: the blocks (each parameter's runs of ``BLOCK`` elements, as the sequence's
        first element of each, then its length) and their float32 scales, one row per state kind."""
        starts = [offset + np.arange(0, size, quantization.BLOCK) for offset, size in zip(self.offsets, sizes)]
        blocks = np.append(np.concatenate(starts), self.offsets[-1]).astype(np.int64)
        #: Each parameter's first block, then the number of blocks.
        self.first_block = np.concatenate(([0], np.cumsum([len(s) for s in starts]))).astype(np.int64)
        self.n_blocks = int(self.first_block[-1])
        self.blocks = self.backend.zeros(len(blocks), np.dtype(np.int64))
        self.backend.assign(self.blocks, blocks)
        self.scales = self.backend.zeros(len(self.algorithm.state) * self.n_blocks, np.dtype(np.float32))

    def block_scales(self, name, k):
        """The scales of parameter ``k``'s blocks of 8-bit state ``name`` (a view)."""
        row = [kind.name for kind in self.algorithm.state].index(name) * self.n_blocks
        return self.scales[row + int(self.first_block[k]):row + int(self.first_block[k + 1])]

    def _initial_buffer(self, kind, h):
        """A new buffer of state ``kind``, holding its initial value for hyperparameters ``h``."""
        initial = kind.initial_for(h)
        if kind.name in self.sampled:  # one value for every sample_step-th element (refused with 8-bit state)
            buffer = self.backend.zeros(int(self.sample_offsets[-1]), self.state_dtype)
            for k, param in enumerate(self.params):
                view = self._sample_view(buffer, k)
                if isinstance(initial, str):  # "param"
                    self.backend.assign(view, sampled.sample(param, self.sample_step, self.state_dtype))
                elif initial != 0:
                    view[...] = initial
            return buffer
        if kind.factor:
            offsets = self.factor_offsets[kind.factor]
            buffer = self.backend.zeros(int(offsets[-1]), self.state_dtype)
            for k, info in enumerate(self.infos):
                if factors.initial_value(kind.factor, info.shape) != 0.0:
                    buffer[int(offsets[k]):int(offsets[k + 1])] = factors.initial_value(kind.factor, info.shape)
            return buffer
        if self.quantized:  # every code 1 (or 0) times a scale of the initial value
            signed = not kind.nonnegative
            buffer = self.backend.zeros(int(self.offsets[-1]), quantization.code_dtype(signed))
            if initial != 0:
                buffer[...] = quantization.code_of_one(signed)
            for k in range(len(self.params)):
                self.block_scales(kind.name, k)[...] = initial
            return buffer
        dtype = dtypes.complex_of(self.state_dtype) if self.magnitude and not kind.magnitude else self.state_dtype
        buffer = self.backend.zeros(int(self.offsets[-1]), dtype)
        if isinstance(initial, str):  # "param"
            for k, param in enumerate(self.params):
                self.backend.assign(self._state_view(buffer, k), param)
        elif initial != 0:
            buffer[...] = initial
        return buffer

    def add_state(self, kind, h):
        """Allocate state of ``kind``, which was not kept before, at its initial value."""
        self.kinds = tuple(k for k in self.algorithm.state if k.name in self.buffers or k is kind)
        self.buffers[kind.name] = self._initial_buffer(kind, h)
        self.state[kind.name] = [self._kind_view(kind.name, k) for k in range(len(self.params))]
        self._rebuild_rows()

    def drop_state(self, name):
        """Free the state ``name``, which the hyperparameters no longer use."""
        del self.buffers[name], self.state[name]
        self.kinds = tuple(k for k in self.kinds if k.name != name)
        self._rebuild_rows()

    def _rebuild_rows(self):
        self._param_rows = [self._rows(k, self.infos[k].strides, 0) for k in range(len(self.params))]
        self._templates = {}
        self._listed_layout = self._direct_plan = None
        self._fast_rows = np.concatenate(self._param_rows)
        self._bound_grads = self._plan = self._pieces = self._rebinding = None
        self._specs, self._reducers, self._by_identity, self._fused = {}, {}, {}, {}

    def _view_dtype(self, buffer, k):
        """The dtype of parameter ``k``'s part of ``buffer``: the buffer's, complex for complex parameters
        (as pairs of reals)."""
        if self.magnitude:
            return buffer.dtype
        return dtypes.complex_of(buffer.dtype) if self.infos[k].dtype.kind == "c" else buffer.dtype

    def _dense_strides(self, k, itemsize):
        """The strides of parameter ``k``'s state: dense in the parameter's memory order, or in
        C order for 8-bit state (whose blocks run over the parameter's C order)."""
        info = self.infos[k]
        if self.quantized:
            return c_strides(info.shape, itemsize)
        return dense_strides(info.shape, info.strides, itemsize)

    def _kind_view(self, name, k):
        """Parameter ``k``'s part of the buffer of state ``name``."""
        if name in self.sampled:
            return self._sample_view(self.buffers[name], k)
        return self._state_view(self.buffers[name], k, self._factor_of[name])

    def _sample_view(self, buffer, k):
        """Parameter ``k``'s sample in the buffer of sampled state: one dimension."""
        start, stop = (int(offset) for offset in self.sample_offsets[k:k + 2])
        return self.backend.view(buffer, start * buffer.dtype.itemsize, (stop - start,), (buffer.dtype.itemsize,),
                                 buffer.dtype)

    def _state_view(self, buffer, k, factor=""):
        """Parameter ``k``'s part of ``buffer``, shaped like the parameter (see :meth:`_dense_strides`),
        or for ``factor`` state, like that factor of it (C order)."""
        info = self.infos[k]
        if factor:
            shape = factors.factor_shape(factor, info.shape)
            offset = int(self.factor_offsets[factor][k]) * buffer.dtype.itemsize
            return self.backend.view(buffer, offset, shape, c_strides(shape, buffer.dtype.itemsize), buffer.dtype)
        dtype = self._view_dtype(buffer, k)
        offset = int(self.offsets[k]) * buffer.dtype.itemsize
        return self.backend.view(buffer, offset, info.shape, self._dense_strides(k, dtype.itemsize), dtype)

    def _buffer_info(self, buffer, k, factor=""):
        """How a kernel reads parameter ``k``'s part of ``buffer``: shaped like the parameter (a
        factor's values repeated along the dimensions it does not keep)."""
        info = self.infos[k]
        if factor:
            itemsize = buffer.dtype.itemsize
            address = self.backend.address(buffer) + int(self.factor_offsets[factor][k]) * itemsize
            return info._replace(address=address, strides=factors.broadcast_strides(factor, info.shape, itemsize),
                                 dtype=buffer.dtype, readonly=False)
        dtype = self._view_dtype(buffer, k)
        address = self.backend.address(buffer) + int(self.offsets[k]) * buffer.dtype.itemsize
        return info._replace(address=address, strides=self._dense_strides(k, dtype.itemsize), dtype=dtype,
                             readonly=False)

    def _operand_infos(self, k, grad):
        """The operands of parameter ``k``'s update, in the kernels' order, with gradient ``grad``
        (an ``ArrayInfo``); ``None`` for those absent."""
        operands = self._operands
        state = [self._buffer_info(self.buffers[kind.name], k, kind.factor) if kind.name in operands else None
                 for kind in self.algorithm.state]
        extra = {name: self._buffer_info(buffer, k) for name, buffer in self.policy_buffers.items()}
        if self.bounds is not None:
            extra["low"], extra["high"] = (self.backend.describe(bound) for bound in self.bounds[k])
        return [self.infos[k], grad] + state + [extra.get(name) for name in POLICY_OPERANDS]

    def _rows(self, k, grad_strides, grad_address):
        """Segment rows of parameter ``k`` with a gradient of the given layout."""
        grad = self.infos[k]._replace(address=grad_address, strides=grad_strides)
        infos = self._operand_infos(k, grad)
        # 8-bit state needs its blocks in order; factored state is read with stride 0 (which would
        # make a column of a matrix the shorter walk): both follow an array's own memory order.
        follow = (2 + next(j for j, s in enumerate(infos[2:]) if s is not None) if self.quantized
                  else 0 if self.factor_offsets else None)
        return operand_rows(infos, self.rows_group[k], follow, pairs=not self.magnitude)

    def _listed_rows(self, k, listed, values, alone):
        """Segment rows of the rows of parameter ``k`` that a :class:`~numadam.adapters.rows.Rows`
        gradient lists (``listed``: its checked ``Coalesced``; ``values``: the ``ArrayInfo`` of
        its values). One row's layout is made once per parameter and layout of the values. The
        rows of a plan of that parameter ``alone`` are written over the last such plan's: a plan of
        ``Rows`` is never used again once the next step has bound its gradients."""
        template = self._template(k, values)
        rows, scratch = listed_rows(template, listed.index, values.address, values.strides[0], GRAD,
                                    self._scratch if alone else None)
        if alone:
            self._scratch = scratch
        return rows

    def _template(self, k, values):
        """The :class:`~numadam.engine.operands.RowTemplate` of parameter ``k``'s rows beside values
        laid out as ``values`` (an ``ArrayInfo``), made once per parameter and layout."""
        key = k, values.strides[1:]
        template = self._templates.get(key)
        if template is None:
            infos = self._operand_infos(k, values._replace(address=0))
            template = self._templates[key] = row_template(infos, self.rows_group[k], pairs=not self.magnitude)
        return template

    def _listed_plan(self, template, index, grad_address, grad_stride, fixes=NO_FIXES):
        """The backend's :class:`~numadam.targets.arrays.ListedPlan` of rows ``index`` of this
        bucket's one parameter, values row ``j`` at ``grad_address + j * grad_stride`` but where
        ``fixes`` say otherwise."""
        chunk_size = self.backend.chunk_size

        def make_rows(plan):  # (the table of every row, for a step with a policy)
            rows, _ = listed_rows(RowTemplate(plan.template, plan.strides), plan.index, plan.grad_address,
                                  plan.grad_stride, GRAD, fixes=plan.fixes)
            number_chunks(rows, chunk_size)
            return rows

        # Each operand's bytes from a row's first element to its end where the row's first segment
        # is contiguous in it, else one element: what the kernel asks the cache for ahead.
        n = len(template.strides)
        itemsizes = np.array(self._itemsizes()[:n], np.int64)
        reach = itemsizes.copy()
        if len(template.rows):  # (a row of no elements has no segment: its plan launches nothing)
            first = template.rows[0]
            contiguous = first[ADDRESS + n:ADDRESS + 2 * n] == 1
            reach[contiguous] = first[LENGTH] * itemsizes[contiguous]
        return self.backend.listed_plan(template.rows, template.strides, reach, index, grad_address, grad_stride,
                                        GRAD, make_rows, fixes)

    def spec(self, flags, policy=NO_POLICY):
        """The kernel spec for the rule's ``flags``, the state this bucket keeps and ``policy``."""
        key = flags, policy
        found = self._specs.get(key)
        if found is None:
            found = self._specs[key] = kernel_spec(self.algorithm, flags, self.storage, self._operands, policy,
                                                   self.state_dtype)
        return found

    @property
    def _operands(self):
        """The names of the state the kernels read and write: all but the sampled."""
        return [name for name in self.buffers if name not in self.sampled]

    def sampled_sums(self, rows, flags, policy, q):
        """Per parameter, what its sampled state's pass adds to the first pass's sums, that state
        moved (see :func:`numadam.engine.sampled.sampled_sums`)."""
        return sampled.sampled_sums(self, self.sample_step, rows, flags, policy, q)

    def written_arrays(self):
        """Every array this bucket writes: the parameters, the state (and its scales) and the policies' buffers."""
        scales = [self.scales] if self.quantized else []
        return list(self.params) + list(self.buffers.values()) + scales + list(self.policy_buffers.values())

    def load_state(self, name, k, source):
        """Copy ``source`` (numbers, or :class:`Quantized` codes) into parameter ``k``'s state ``name``,
        converting it to the state's storage: quantized (on the host) for 8-bit state, decoded
        (on the host) from 8-bit codes, cast otherwise."""
        signed = not self.algorithm.state[[kind.name for kind in self.algorithm.state].index(name)].nonnegative
        target = self.state[name][k]
        if self.quantized:
            codes, scales = source if isinstance(source, Quantized) else quantization.quantize(on_host(source), signed)
            self.backend.assign(target, codes)
            self.backend.assign(self.block_scales(name, k), scales)
        elif isinstance(source, Quantized):
            self.backend.assign(target, quantization.dequantize(on_host(source.codes), on_host(source.scales), signed))
        else:
            self.backend.assign(target, source)

    def update_factors(self, rows, grad_scale, clip_value):
        """The factors' pass (:mod:`numadam.core.factors`) over the gradients of the last :meth:`bind`,
        with each parameter's scalar row ``rows[k]`` (floats): its row and column sums of squares,
        then its factors' moving averages and row means, in place. Returns, per parameter, the
        norms pass's ``(‖p‖², ‖u‖²)`` where the pass summed them too (see
        :mod:`numadam.core.factors`), else ``None``."""
        family = self.algorithm
        names = [kind.name for kind in family.state if kind.factor]
        found = []
        for k, grad in enumerate(self._bound_grads):
            if grad.size == 0:  # no squares to take the means of: the factors stay as they are
                found.append((0.0, 0.0))
                continue
            weight, floor, estimate_floor = factors.pass_constants(family, rows[k], self.compute)
            param = self._stepped_param(k) if estimate_floor is not None else None
            found.append(self.backend.update_factors(grad, *(self.state[name][k] for name in names), weight, floor,
                                                     grad_scale, clip_value, self._factor_scratch.setdefault(k, {}),
                                                     param=param, estimate_floor=estimate_floor))
        return found

    def factored_step_launcher(self, plan, flags, update, first, policy_scalars, groups, applies, counts,
                               factored_slot, field_slot, arguments=False):
        """The backend's one-call common step of a family with factored state over ``plan``
        (:meth:`numadam.targets.cpu.backend.CpuBackend.factored_step_launcher`; with ``arguments``,
        the kernel and its arguments instead, :meth:`~numadam.targets.cpu.backend.CpuBackend.factored_step_arguments`),
        with the update's policy ``update``, the norms pass's ``first`` (or ``None``: the host's; its
        policy scalars ``policy_scalars``), each parameter's group, whether its norms set its field and its real
        elements (global lists, in parameter order); ``None`` where the backend has none or it does
        not apply (8-bit state, a parameter not in the dtype the step computes in).

        The launch reads the gradients' addresses from its own copy of them (its
        ``grad_addresses``, one per parameter, 0 for an empty one), which :meth:`rebound` moves
        with the plan's table; a launch without one keeps the plan on these very arrays."""
        make = self.backend.factored_step_arguments if arguments else self.backend.factored_step_launcher
        params = [self._stepped_param(k) for k in range(len(self.params))]
        if make is None or self.quantized or any(param is None for param in params):
            return None
        names = [kind.name for kind in self.algorithm.state if kind.factor]
        made = make(plan, self.spec(flags, update), None if first is None else self.spec(flags, first),
                    self.pieces(plan), policy_scalars,
                    self._bound_grads, params,
                    [tuple(self.state[name][k] for name in names) for k in range(len(self.params))],
                    [groups[k] for k in self.indices], [applies[k] for k in self.indices],
                    [counts[k] for k in self.indices], factored_slot, field_slot)
        if made is not None and not arguments and plan is self._plan and self._rebinding is not None:
            column = getattr(made, "grad_addresses", None)
            if column is None:
                self._rebinding = None
            else:  # (the engine launches the last one made: new flags, a new launch, which replaces it)
                address_of = self._rebinding.address_of
                self._rebinding.followers["factored step"] = _follower(
                    column, [address_of(grad) for grad in self._bound_grads])
        return made

    def _stepped_param(self, k):
        """Parameter ``k`` as the rule reads it, where an array holds it so: its float32 master copy,
        or itself in the dtype the step computes in; else ``None`` (a 16-bit parameter read widened)."""
        if "master" in self.policy_state:
            return self.policy_state["master"][k]
        return self.params[k] if self.infos[k].dtype == self.compute else None

    def launcher(self, plan, flags, policy=NO_POLICY):
        """``launch(scalars)``: the update with the rule's ``flags`` and ``policy`` over ``plan``, found
        by identity (the steps of one optimizer pass the same flags and policy objects)."""
        found = self._by_identity.get(id(policy))
        if found is None or found[0] is not plan or found[1] is not flags or found[2] is not policy:
            spec = self.spec(flags, policy)
            launch = self.backend.launcher(plan, spec, self._blocks(spec))
            found = self._by_identity[id(policy)] = plan, flags, policy, launch
        return found[3]

    def _blocks(self, spec):
        """The blocks and scales a kernel of ``spec`` updates block by block (8-bit state), or ``None``."""
        return (self.blocks, self.scales) if self.quantized and spec.policy.accumulate != "add" else None

    def bind(self, grads, written):
        """Check this bucket's gradients and return the plan that applies them.

        ``written`` is the optimizer's :class:`~numadam.core.memory.MemoryRanges` of
        what it writes: no gradient may reach into a parameter or a state buffer.
        A gradient ``None`` leaves its parameter and state out of the plan (as
        torch does for ``p.grad is None``); the plan is ``None`` if every one is.
        A :class:`~numadam.adapters.rows.Rows` gradient puts only the rows it
        lists into the plan (``listed`` names those parameters); such a plan is
        made anew at every step. New arrays laid out as the last gradients move the last
        plan onto themselves instead (:meth:`rebound`).
        """
        if self.moves_onto(grads, written):
            return self._plan
        if len(grads) == 1 and is_rows(grads[0]):
            return self._bind_rows_alone(grads[0], written)
        addresses = np.zeros(len(grads), np.int64)
        odd_layouts = {}
        listed = {}
        absent = []
        address_of = self.backend.address
        for k, (grad, (kind, dtype, shape, strides)) in enumerate(zip(grads, self._expected)):
            if type(grad) is kind and grad.dtype is dtype and grad.shape == shape and grad.strides == strides:
                addresses[k] = address_of(grad)
            elif grad is None:
                absent.append(k)
            elif is_rows(grad):
                listed[k], odd_layouts[k] = self._checked_rows(k, grad)
                addresses[k] = odd_layouts[k].address
            else:
                addresses[k], odd_layouts[k] = self._checked_grad(k, grad)
        present = np.ones(len(grads), bool)
        present[absent] = False
        misaligned = np.flatnonzero(addresses % self._itemsize)
        if len(misaligned):
            k = int(misaligned[0])
            validate.check_layout(self.backend.describe(grads[k]), self._grad_path(k), writable=False)
        odd_layouts = {k: info for k, info in odd_layouts.items() if info is not None}
        self._check_grads_disjoint([grad.values if k in listed else grad for k, grad in enumerate(grads)],
                                   addresses, odd_layouts, written, present)
        offsets = None
        if not present.any():
            plan = None
        else:
            if odd_layouts:
                alone = len(listed) == 1 and present.sum() == 1
                pieces = [
                    self._listed_rows(k, listed[k], odd_layouts[k], alone) if k in listed
                    else self._rows(k, odd_layouts[k].strides, odd_layouts[k].address) if k in odd_layouts
                    else _with_grad_address(self._param_rows[k], addresses[k])
                    for k in range(len(grads))
                ]
                if listed:  # where each parameter's listed rows start in the plan's sequence
                    lengths = [int(rows[:, LENGTH].sum()) if present[k] else 0 for k, rows in enumerate(pieces)]
                    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
                kept = [rows for k, rows in enumerate(pieces) if present[k]]
                rows = kept[0] if len(kept) == 1 else np.concatenate(kept)
            else:
                rows, leaf_of_row = self._fast_rows, self._fast_leaf
                if absent:
                    kept = present[leaf_of_row]
                    rows, leaf_of_row = rows[kept], leaf_of_row[kept]
                else:
                    rows = rows.copy()
                rows[:, ADDRESS + GRAD] += addresses[leaf_of_row]
            if all(found.ascending and merges(found.index) for found in listed.values()):  # else not worth a pass
                rows = coalesce(rows, self._itemsizes())
            plan = self.backend.plan(rows)
            if not (odd_layouts or absent):
                self._rebinding = self._rebinding_of(plan, addresses)
        self._bound_grads = None if listed else list(grads)
        if odd_layouts or absent or plan is None:
            self._rebinding = None
        self._plan, self._pieces, self.absent = plan, None, absent
        #: The parameters (local indices) whose gradient in the last :meth:`bind` was a ``Rows``.
        self.listed = sorted(listed)
        #: Where each parameter starts in the last plan's sequence, when that differs from
        #: ``offsets`` (``Rows`` gradients), and the summed values that plan reads.
        self._plan_offsets, self._kept = offsets, [found.values for found in listed.values()]
        return plan

    def _bind_rows_alone(self, grad, written):
        """:meth:`bind` of the one parameter of this bucket, whose gradient ``grad`` is a ``Rows``:
        the same checks and the same plan, in fewer steps (a minibatch's rows come every step)."""
        listed, values = self._checked_rows(0, grad)
        low, high = memory_bounds(values)
        if written.may_meet(low, high) and written.overlapping([listed.values], np.array([low]), np.array([high])):
            raise ValueError(f"{self._grad_path(0)} shares memory with a parameter or the optimizer state; "
                             "gradients must be separate arrays")
        merged = listed.ascending and merges(listed.index)
        if self.backend.listed_plan is not None and not merged:
            plan = self._listed_plan(self._template(0, values), listed.index, values.address, values.strides[0])
            length = plan.n_elements
        else:
            rows = self._listed_rows(0, listed, values, True)
            length = int(rows[:, LENGTH].sum())
            if merged:
                rows = coalesce(rows, self._itemsizes())
            plan = self.backend.plan(rows)
        self._bound_grads = self._rebinding = self._pieces = None
        self._plan, self.absent, self.listed = plan, [], [0]
        self._plan_offsets, self._kept = np.array([0, length], np.int64), [listed.values]
        given = values if listed.values is grad.values else self.backend.describe(grad.values)  # (not the sums')
        layout = self._listed_layout
        if layout is None or layout.row_strides != tuple(given.strides[1:]):  # (made once per layout)
            self._listed_layout, self._direct_plan = self._listed_layout_of(given), None  # (its template)
        return plan

    def _listed_layout_of(self, values):
        """How :meth:`listed_plan` takes a ``Rows`` whose values (``ArrayInfo``) are laid out as
        ``values``, of this bucket's one parameter; ``None`` where it never does: a backend without
        listed plans, factored state, or parameters other than float32 and float64."""
        param = self.infos[0]
        if (self.backend.listed_plan is None or self.algorithm.factored or param.dtype.name not in ("float32", "float64")
                or type(self.params[0]) is not np.ndarray):
            return None
        row_strides = tuple(values.strides[1:])
        row_low, row_high = memory_bounds(values._replace(address=0, shape=tuple(values.shape[1:]),
                                                         strides=row_strides))
        template = self._template(0, values)
        return _ListedLayout(template, param.dtype, tuple(param.shape[1:]), row_strides, row_low, row_high,
                             param.dtype.itemsize, param.shape[0], self.backend.address_function(np.ndarray, param.dtype),
                             row_strides == tuple(c_strides(param.shape[1:], param.dtype.itemsize)))

    def listed_plan(self, rows, written):
        """The plan of a step whose only gradient, of this bucket's only parameter, is the ``Rows``
        ``rows``, not in ascending order (a minibatch's rows): what :meth:`bind` makes of it, with
        every check, from one compiled pass over the index (and a second where rows repeat:
        :func:`~numadam.adapters.listing.listed_once`): a
        :class:`~numadam.targets.arrays.ListedPlan`, the plan of the last such step moved onto
        these rows (which then keeps its launch). ``None``, having changed nothing, where ``rows``
        needs :meth:`bind`: an index other than a C-contiguous int64 NumPy vector, values laid out
        otherwise than the last ``Rows`` bound, values whose memory may meet what the step writes
        (``written``), or an index that :func:`~numadam.adapters.listing.listed_once` refuses."""
        layout = self._listed_layout
        if layout is None:
            return None
        index, values = rows.index, rows.values
        if (type(index) is not np.ndarray or type(values) is not np.ndarray or index.dtype != _INT64
                or index.ndim != 1 or not index.flags.c_contiguous or values.dtype != layout.dtype
                or values.shape[1:] != layout.row_shape or values.strides[1:] != layout.row_strides
                or len(values) != len(index) or not len(index)):
            return None
        address, stride = layout.address_of(values), values.strides[0]
        reach = stride * (len(index) - 1)
        low, high = address + layout.row_low + min(reach, 0), address + layout.row_high + max(reach, 0)
        if address % layout.itemsize or stride % layout.itemsize or written.may_meet(low, high):
            return None
        fixes = listed_once(index, layout.n_rows, values, self._spare if layout.dense_rows else None)
        if fixes is None:
            return None
        plan = self._direct_plan
        if plan is not None and plan.template is layout.template.rows:
            plan.move(index, address, stride, fixes)
        else:
            plan = self._direct_plan = self._listed_plan(layout.template, index, address, stride, fixes)
        self._bound_grads = self._rebinding = self._pieces = None
        self._plan, self.absent, self.listed = plan, [], [0]
        self._plan_offsets, self._kept = np.array([0, plan.n_elements], np.int64), [values]
        return plan

    def _checked_rows(self, k, rows):
        """Every check of ``Rows`` gradient ``k``; ``(Coalesced, info of the values it reads)``."""
        path = self._grad_path(k)
        if self.quantized:
            raise ValueError(f"{path} is a Rows gradient; 8-bit state (state_dtype='int8') scales blocks that "
                             "span rows, so it needs dense gradients")
        backend_for([self.params[k], rows.values], [self.paths[k], self._values_paths[k]])
        given = self.backend.describe(rows.values)
        found = checked_rows(rows, self.infos[k], given, path, self.backend,
                             self._spare if len(self.params) == 1 else None)
        return found, given if found.values is rows.values else self.backend.describe(found.values)

    @property
    def bound_grads(self):
        """The gradients of the last :meth:`bind` (a list, or the very tuple passed again)."""
        return self._bound_grads

    @property
    def last_plan(self):
        """The plan of the last :meth:`bind`."""
        return self._plan

    def is_bound_to(self, grads):
        """Whether ``grads`` (a sequence of leaves) are the very arrays of the last :meth:`bind`,
        whose plan then still applies: checked in one pass, for it runs on every step.

        A tuple found bound is kept in their place: it cannot change, so the same tuple
        again needs no look at its leaves (1000 arrays: ~16 us less a step).
        """
        bound = self._bound_grads
        if grads is bound:
            return True
        if bound is None or len(grads) != len(bound) or any(map(operator.is_not, grads, bound)):
            return False
        if type(grads) is tuple:
            self._bound_grads = grads
        return True

    def moves_onto(self, grads, written):
        """Whether the last plan applies to ``grads``: the very arrays of the last :meth:`bind`, or new
        arrays laid out as them, onto which it has now moved (:meth:`rebound`)."""
        return self.is_bound_to(grads) or (self._rebinding is not None and self.rebound(grads, written) is not None)

    def _rebinding_of(self, plan, addresses):
        """How :meth:`rebound` moves ``plan`` (made by :meth:`bind` from each parameter's own rows,
        every gradient of its parameter's layout at ``addresses``) onto other gradient arrays: each
        row's gradient address less its gradient's, and its gradient; ``None`` where the backend's
        launches do not read the plan's rows in place (``tables_in_place``; those that do have
        ``address_function``: the CPU's), where rows of two parameters were merged (a merge that
        holds only for these gradients' addresses). For factored state, the one-call step's own
        gradient addresses follow (:meth:`factored_step_launcher` adds them)."""
        rows = plan.rows
        if not self.backend.tables_in_place or len(rows) == 0:  # (an empty plan: nothing to move)
            return None
        table = plan.device_table
        if not (isinstance(table, np.ndarray) and np.shares_memory(table, rows)):
            raise AssertionError("a backend with tables_in_place launches a copy of the plan's rows")
        if len(self.params) == 1:
            leaf_of_row = np.zeros(len(rows), np.int64)
        elif len(rows) == len(self._fast_rows):
            leaf_of_row = self._fast_leaf
        else:
            return None
        column = rows[:, ADDRESS + GRAD]
        base = column - addresses[leaf_of_row]
        extents = list(zip(self._param_low.tolist(), self._param_high.tolist()))
        kind, dtype = self._expected[0][:2]  # (one type and dtype for the bucket's NumPy arrays)
        address_of = self.backend.address_function(kind, dtype)
        one_row = int(base[0]) if len(base) == 1 else None
        followers = {}
        move_one = None if len(self.params) != 1 else _one_array_mover(
            self._expected[0], self._itemsize, extents[0], address_of, column, one_row, base, followers)
        return _Rebinding(column, base, leaf_of_row, one_row, extents, address_of, move_one, followers)

    def keep_plan(self):
        """Never move the last plan onto other gradient arrays (:meth:`rebound`): code outside the
        engine holds its table (a compiled solve's kernel arguments)."""
        self._rebinding = None

    def rebound(self, grads, written):
        """The last plan, moved onto ``grads`` where each is a new array of its parameter's type,
        dtype, shape and strides, aligned, whose memory certainly meets nothing in ``written``:
        its rows' gradient addresses rewritten in place, nothing else made. ``None``, having
        changed nothing, where any gradient needs :meth:`bind`'s checks."""
        rebinding = self._rebinding
        if rebinding is None or len(grads) != len(self._expected):
            return None
        addresses = []
        address_of, itemsize, may_meet = rebinding.address_of, self._itemsize, written.may_meet
        for grad, (kind, dtype, shape, strides), (low, high) in zip(grads, self._expected, rebinding.extents):
            if type(grad) is not kind or grad.dtype is not dtype or grad.shape != shape or grad.strides != strides:
                return None
            address = address_of(grad)
            if address % itemsize or may_meet(address + low, address + high):
                return None
            addresses.append(address)
        if rebinding.one_row is not None:  # one array of one row: the common case, kept short
            rebinding.column[0] = rebinding.one_row + addresses[0]
        elif len(addresses) == 1:
            np.add(rebinding.base, addresses[0], out=rebinding.column)
        else:
            np.add(rebinding.base, np.array(addresses, np.int64)[rebinding.leaf_of_row], out=rebinding.column)
        for follow in rebinding.followers.values():
            follow(addresses)
        self._bound_grads = list(grads)
        return self._plan

    def rebound_one(self, grad, written):
        """:meth:`rebound` of a one-array tree's gradient ``grad``, written short (it runs on every
        step)."""
        rebinding = self._rebinding
        if rebinding is None or rebinding.move_one is None:
            return self.rebound((grad,), written)
        if not rebinding.move_one(grad, written):
            return None
        self._bound_grads = [grad]
        return self._plan

    def _itemsizes(self):
        """The element size of each operand of the table, in order."""
        state = [self.buffers[kind.name].dtype.itemsize if kind.name in self.buffers else self.state_dtype.itemsize
                 for kind in self.algorithm.state]
        return [self._itemsize] * 2 + state + [operand_dtype(name, self.storage, self.compute).itemsize
                                               for name in POLICY_OPERANDS]

    def pieces(self, plan):
        """``(starts, stops, leaves)``: the reduction's pieces of ``plan``'s sequence.

        Each chunk of ``chunk_size`` elements is cut where a parameter ends, so
        a piece belongs to one parameter and one chunk: the sums over pieces do
        not depend on how many threads run them.
        """
        if self._pieces is None or self._pieces[0] is not plan:
            offsets = self.offsets if self._plan_offsets is None or plan is not self._plan else self._plan_offsets
            cuts = np.union1d(np.arange(0, plan.n_elements, self.backend.chunk_size), offsets[:-1])
            cuts = cuts[cuts < plan.n_elements].astype(np.int64)
            stops = np.append(cuts[1:], plan.n_elements).astype(np.int64)
            leaves = np.searchsorted(offsets, cuts, side="right") - 1
            self._pieces = plan, (cuts, stops, leaves)
        return self._pieces[1]

    def reduce(self, plan, flags, policy, scalars):
        """Per parameter, the pre-pass's two sums (``policy.reduction`` says which), as a
        ``(parameters, 2)`` array refilled at each call; the pieces' sums are added in piece order.
        The pre-pass of a plan, flags and policy is made once and found by identity."""
        found = self._reducers.get(id(policy))
        if found is None or found[0] is not plan or found[1] is not flags or found[2] is not policy:
            starts, stops, leaves = self.pieces(plan)
            reduce = self.backend.reducer(plan, self.spec(flags, policy), starts, stops)
            n = len(self.params)
            if len(leaves) != n or not np.array_equal(leaves, np.arange(n)):  # pieces of one parameter, or
                # none (an empty Rows, a parameter of no elements): their sums added up per parameter, in order
                reduce = functools.partial(_by_leaf, reduce, leaves, n)
            found = self._reducers[id(policy)] = plan, flags, policy, reduce
        return found[3](scalars)

    def reduce_and_update(self, plan, flags, policy, scalars, nonfinite, clip):
        """The gradient pre-pass, its decision and the update, in one call where the backend has one
        for ``plan`` (a serial CPU plan; not 8-bit state): ``(updated, sums)``, each parameter's two
        sums (see :func:`numadam.targets.cpu.kernels.reduce_then_update_serial`); ``None`` elsewhere."""
        found = self._fused.get(id(policy))
        if found is None or found[0] is not plan or found[1] is not flags or found[2] is not policy:
            step = None
            make = self.backend.reducing_launcher
            if make is not None and not self.quantized:
                starts, stops, leaves = self.pieces(plan)
                step = make(plan, self.spec(flags, policy), starts, stops, np.ascontiguousarray(leaves, np.int64),
                            len(self.params), nonfinite, clip)
            found = self._fused[id(policy)] = plan, flags, policy, step
        return None if found[3] is None else found[3](scalars)

    def norms_and_update(self, plan, flags, first, update, first_scalars, scalars, applies, field_slot):
        """A family's norms pass (policy ``first``), the field its sums set and its update (policy
        ``update``), in one call where the backend has one for ``plan`` (a serial CPU plan): each
        parameter's two sums (see :func:`numadam.targets.cpu.kernels.norms_then_update_serial`);
        ``None`` elsewhere."""
        step = self.norms_stepper(plan, flags, first, update, field_slot)
        return None if step is None else step(first_scalars, scalars, applies)

    def norms_stepper(self, plan, flags, first, update, field_slot):
        """``step(first_scalars, scalars, applies)`` of :meth:`norms_and_update`, made once per plan,
        flags and policy; ``None`` where the backend has no such call for ``plan``."""
        found = self._fused.get(id(first))
        if found is None or found[0] is not plan or found[1] is not flags or found[2] is not first:
            step = None
            make = self.backend.norms_launcher
            if make is not None:
                starts, stops, leaves = self.pieces(plan)
                step = make(plan, self.spec(flags, first), self.spec(flags, update), starts, stops,
                            np.ascontiguousarray(leaves, np.int64), len(self.params), field_slot)
            found = self._fused[id(first)] = plan, flags, first, step
        return found[3]

    def _checked_grad(self, k, grad):
        """Every check of gradient ``k``; ``(address, info)``, info ``None`` for the parameter's layout."""
        info = self.infos[k]
        backend_for([self.params[k], grad], [self.paths[k], self._grad_path(k)])
        grad_info = self.backend.describe(grad)
        validate.check_matches(grad_info, self._grad_path(k), info, "its parameter")
        validate.check_layout(grad_info, self._grad_path(k), writable=False)
        same_layout = grad_info.strides == info.strides
        return grad_info.address, (None if same_layout else grad_info)

    def _grad_path(self, k):
        return self._grad_paths[k]

    def _check_grads_disjoint(self, grads, addresses, odd_layouts, written, present):
        low = addresses + self._param_low
        high = addresses + self._param_high
        for k, grad_info in odd_layouts.items():
            low[k], high[k] = memory_bounds(grad_info)
        high[~present] = low[~present] = 0  # an empty range: no gradient
        if len(grads) <= _FEW_GRADIENTS and not any(map(written.may_meet, low.tolist(), high.tolist())):
            return  # (the exact search below costs about 10 us whatever the count)
        for k in written.overlapping(grads, low, high):
            raise ValueError(
                f"{self._grad_path(k)} shares memory with a parameter or the optimizer state; "
                "gradients must be separate arrays"
            )


#: Up to this many gradients, their ranges are first tested one by one against the written ones
#: (:meth:`~numadam.core.memory.MemoryRanges.may_meet`), before any exact search.
_FEW_GRADIENTS = 16


def _by_leaf(reduce, leaves, n, scalars):
    """``reduce(scalars)``'s sums of pieces added up per parameter (``leaves``: each piece's), in piece order."""
    sums = reduce(scalars)
    return np.stack([np.bincount(leaves, sums[:, 0], n), np.bincount(leaves, sums[:, 1], n)], axis=1)


_INT64 = np.dtype(np.int64)


class _ListedLayout(NamedTuple):
    """What :meth:`Bucket.listed_plan` needs of a ``Rows`` like the last one bound: its row
    template, the parameter's dtype and shape of a row, the values' strides of a row and the
    bytes ``[row_low, row_high)`` of a row from its first element, the parameter's itemsize and
    rows, and how an array's address is found."""

    template: object
    dtype: np.dtype
    row_shape: tuple
    row_strides: tuple
    row_low: int
    row_high: int
    itemsize: int
    n_rows: int
    address_of: object
    dense_rows: bool


class _Rebinding(NamedTuple):
    """What :meth:`Bucket.rebound` rewrites and checks: the plan's column of gradient addresses (a
    view of its rows), each row's address less its gradient's, the parameter of each row, that
    difference as an int where the plan has one row, each parameter's byte range less its
    address (``[low, high)``, ints), how a gradient's address is found, and the other copies of
    the addresses that follow the table's."""

    column: np.ndarray
    base: np.ndarray
    leaf_of_row: np.ndarray
    one_row: int | None
    extents: list
    address_of: object  # the address of a gradient array (the backend's, or the function it calls)
    move_one: object  # for a one-array bucket: ``move_one(grad, written)`` (:func:`_one_array_mover`)
    #: Other copies of the gradients' addresses that launches of the plan read, each moved with the
    #: table by a call ``follow(addresses)`` (the new gradients' addresses, a list of ints;
    #: :func:`_follower`), by what holds them (one launch each: a new one replaces the last).
    followers: dict


#: Addresses of new gradient arrays a one-array plan remembers as clear of what the step writes.
MOST_CLEAR_ADDRESSES = 64


def _one_array_mover(expected, itemsize, extent, address_of, column, one_row, base, followers):
    """``move_one(grad, written) -> bool``: :meth:`Bucket.rebound` of one array, with what it reads
    bound once (it runs on every step of a new gradient array; the attribute lookups of the
    general path took a third of it): the plan's gradient ``column`` is ``one_row`` plus the
    address where the plan has one row, else ``base`` plus it; then the ``followers``."""
    kind, dtype, shape, strides = expected
    low, high = extent
    clear = [None, set()]  # the written ranges checked against, and the addresses found clear of them

    def move_one(grad, written):
        if type(grad) is not kind or grad.dtype is not dtype or grad.shape != shape or grad.strides != strides:
            return False
        address = address_of(grad)
        if address not in clear[1] or clear[0] is not written:  # users' new arrays come back to few addresses
            if address % itemsize or written.may_meet(address + low, address + high):
                return False
            if clear[0] is not written or len(clear[1]) >= MOST_CLEAR_ADDRESSES:
                clear[:] = [written, set()]
            clear[1].add(address)
        if one_row is not None:
            column[0] = one_row + address
        else:
            np.add(base, address, out=column)
        if followers:  # (factored state's launch)
            for follow in followers.values():
                follow((address,))
        return True

    return move_one


def _follower(column, addresses):
    """``follow(new_addresses)``: rewrites ``column``, a launch's copy of the gradients' addresses
    (``addresses`` their arrays' now; 0 for an empty gradient, which stays 0), for gradients at
    ``new_addresses`` (a list of ints, one per parameter)."""
    leaves = np.flatnonzero(column)
    base = column[leaves] - np.array(addresses, np.int64)[leaves]
    if len(column) == 1 and len(leaves) == 1:  # one array: the common case, kept short
        offset = int(base[0])

        def follow_one(new_addresses):
            column[0] = offset + new_addresses[0]

        return follow_one

    def follow(new_addresses):
        column[leaves] = base + np.array(new_addresses, np.int64)[leaves]

    return follow


def _with_grad_address(rows, address):
    rows = rows.copy()
    rows[:, ADDRESS + GRAD] += address
    return rows


def state_dtype_of(info, policies):
    """The dtype a parameter's state is kept in: ``state_dtype`` (int8 only from
    :data:`QUANTIZE_FROM` elements on), else the parameter's compute dtype."""
    wanted = policies.state_dtype
    if wanted is None or (wanted == QUANTIZED_STATE
                          and dtypes.real_size(info.shape, info.dtype) < QUANTIZE_FROM):
        return dtypes.compute_dtype(info.dtype)
    return wanted


def bucket_key(info, policies):
    """What puts a parameter (anything with a ``shape`` and a ``dtype``) in its bucket: ``(its
    numbers' storage dtype, its state dtype, whether its complex numbers are whole elements)``."""
    magnitude = policies.complex_mode == "magnitude" and info.dtype.kind == "c"
    return info.dtype if magnitude else dtypes.storage_dtype(info.dtype), state_dtype_of(info, policies), magnitude


def sequence_starts(infos, policies):
    """Where each parameter's first element lies in the sequence of its bucket's table: the
    elements of the parameters before it in the same bucket (complex numbers as pairs of reals,
    or whole under ``complex_mode="magnitude"``). Stochastic rounding draws an element's bits
    from its place in that sequence."""
    starts, filled = [], {}
    for info in infos:
        key = bucket_key(info, policies)
        size = dtypes.real_size(info.shape, info.dtype) // (2 if key[2] else 1)
        starts.append(filled.get(key, 0))
        filled[key] = starts[-1] + size
    return starts


def buckets_by_dtype(backend, family, kinds, leaves, infos, paths, rows_group, h, policies, bounds):
    """One :class:`Bucket` per real dtype and state dtype, in order of first appearance (state
    initialized for ``h``).

    ``bounds`` holds each leaf's ``(low, high)`` arrays, or is ``None``.
    """
    by_dtype = {}
    for k, info in enumerate(infos):
        by_dtype.setdefault(bucket_key(info, policies), []).append(k)
    return [
        Bucket(backend, family, kinds, indices, [leaves[k] for k in indices], [infos[k] for k in indices],
                  [paths[k] for k in indices], [rows_group[k] for k in indices], h, policies,
                  None if bounds is None else [bounds[k] for k in indices], state, magnitude)
        for (_, state, magnitude), indices in by_dtype.items()
    ]


def written_memory(backend, arrays):
    """The :class:`~numadam.core.memory.MemoryRanges` of ``arrays``, which an update writes."""
    return MemoryRanges([memory_bounds(backend.describe(array)) for array in arrays], arrays)

