"""The local engine: parameters in this process's memory (NumPy, CuPy, torch tensors, DLPack).

The parameters are sorted into buckets (:mod:`numadam.engine.bucket`), one per
storage dtype, each updated by one kernel launch. A step binds the gradients
to each bucket's plan, every check made before anything is written, and
applies it: through the policy pipeline (:class:`~numadam.engine.stepping.Engine`),
or, for the common step with no policy, straight through the plan's launch.

A plan is checked once and reused while nothing changes: the same gradient
arrays (the very objects, filled in place) and the same hyperparameters find
it by identity, and the step is then the scalars of this step and one call
of the compiled kernel (see :meth:`LocalEngine.step`).
"""

import operator

import numpy as np

from ..adapters.foreign import adopt, is_tensor
from ..adapters.rows import Rows
from ..core import dtypes, validate
from ..core.pipeline import PolicyScalars
from ..targets.dispatch import backend_for
from .bounds import checked_bounds
from .bucket import buckets_by_dtype, written_memory
from .state_dict import checked_bucket_arrays
from .device_steps import DeviceSteps
from .stepping import Engine, with_policy


class LocalEngine(Engine):
    """The engine of parameters in this process's memory (see the module docstring).

    ``given`` are the leaves as the user gave them, ``paths`` their names,
    ``bounds`` each leaf's ``(low, high)`` as given (numbers or arrays) or ``None``.
    """

    def __init__(self, algorithm, settings, policies, treedef, given, paths, bounds, check_options, install=True):
        super().__init__(algorithm, settings, policies, paths)
        self.treedef = treedef
        self._one_leaf = treedef.kind == "leaf"
        #: ``list`` or ``tuple`` where the parameters are one list or tuple of arrays: a gradient
        #: container of that very type holding the last step's arrays reuses its plan at once.
        self._flat_sequence = {"list": list, "tuple": tuple}.get(treedef.kind) if treedef.leaves_only else None
        self._launch = None, None, None  # the common step's (plan, flags, launch)
        #: Whether the common step's launch takes and returns the carry (:meth:`_total_launcher`).
        self._total_step = algorithm.sums_every_parameter
        adopted = adopt(given, paths, [True] * len(given))
        #: What a write through the leaves' arrays must tell torch (None for NumPy and CuPy).
        self.foreign = adopted if adopted.arrays is not given else None
        self.given = given
        self._last_tensor_grads = [], []  # the last .grad tensors read, and their arrays
        #: ``(tensor, address, path)`` of each torch parameter.
        self.tensors = [(leaf, leaf.data_ptr(), path) for leaf, path in zip(given, paths) if is_tensor(leaf)]
        leaves = adopted.arrays
        self.backend = backend_for(leaves, paths)
        self.name = self.backend.name
        self.infos = [self.backend.describe(leaf) for leaf in leaves]
        for info, path in zip(self.infos, paths):
            validate.check_parameter_dtype(info, path)
            validate.check_layout(info, path, writable=True)
        validate.check_disjoint(self.infos, paths, leaves, [True] * len(leaves))
        array_type = self.backend.array_type
        for leaf, path in zip(leaves, paths):
            if not isinstance(leaf, array_type):
                raise TypeError(f"{path} is a {type(leaf).__name__}; the optimizer objects take "
                                f"{array_type.__module__}.{array_type.__name__} parameters")
        self.leaves = leaves
        #: The scalar row each leaf's segments read: its group's, or its own (families with norms).
        self._table_rows = list(range(len(leaves))) if algorithm.norms is not None else list(settings.leaf_groups)
        self._device_steps = None  # CUDA with nonfinite="skip": see numadam.engine.device_steps
        self._carries = {}
        self._bounds = None if bounds is None else self._bound_arrays(bounds)
        check_options([info.dtype for info in self.infos])
        self.buckets = None
        if install:
            self.install()

    def install(self):
        """Make the buckets (the state and the step's plan), once. The constructor does, unless told
        not to (``install=False``): every check has run by then, and making buckets raises nothing,
        so a user of the optimizer that never steps it (:func:`numadam.minimize`'s compiled solves,
        which read its checked hyperparameters) need not pay for them."""
        if self.buckets is None:
            h = self.settings.hyper(self.settings.own)
            self._install(self.algorithm.state_kinds(h), h)

    def _bound_arrays(self, given):
        """Each leaf's ``(low, high)`` as arrays of its dtype and shape: its own copies of array
        bounds, and a number repeated with stride 0."""
        backend = self.backend

        def own_copy(value, leaf, side, path):
            backend_for([leaf, value], [path, f"the {side} bound of {path}"])
            own = backend.zeros(leaf.size, leaf.dtype).reshape(leaf.shape)
            backend.assign(own, value)
            return own

        def repeated(value, leaf):
            one = backend.zeros(1, leaf.dtype)
            one[...] = value
            return backend.broadcast(one.reshape(()), leaf.shape)

        checked = checked_bounds(given, self.leaves, self.paths, own_copy, lambda checks: [bool(c) for c in checks])
        return [tuple(repeated(side, leaf) if isinstance(side, float) else side for side in pair)
                for pair, leaf in zip(checked, self.leaves)]

    def _install(self, kinds, h):
        self.buckets = buckets_by_dtype(self.backend, self.algorithm, kinds, self.leaves, self.infos, self.paths,
                                        self._table_rows, h, self.policies, self._bounds)
        self._written = written_memory(self.backend, [a for b in self.buckets for a in b.written_arrays()])
        self.locations = [None] * len(self.leaves)
        for bucket in self.buckets:
            for local, k in enumerate(bucket.indices):
                self.locations[k] = (bucket, local)
        #: The only bucket, when there is one and no torch tensors (the steps of the same gradients
        #: then reuse its plan at once); ``_plain``: no policy (the rule alone, or a family's norms and rule).
        self._single = self.buckets[0] if len(self.buckets) == 1 and self.foreign is None else None
        self._plain = self.policies.plain
        #: Whether a one-array tree's ``Rows`` gradient may take the common step's launch
        #: (:meth:`~numadam.engine.bucket.Bucket.listed_plan`): no policy, no norms.
        self._listed_directly = self._one_leaf and self._plain and self.algorithm.norms is None

    # -- the step ---------------------------------------------------------------------------------

    def step(self, grads):
        """Bind ``grads`` (a tree like the parameters) and step; see :meth:`numadam.Adam.step`.

        The common step (one bucket, no policy) of the very gradients of the last
        step goes straight to its plan's launch, the scalars of this step and one
        call of the compiled kernel: the same array of a one-array tree, or, where
        the parameters are one list (tuple) of arrays, a list (tuple) of the same
        arrays. New arrays in their place, each of its parameter's type, dtype,
        shape and strides, aligned and clear of what the step writes, move the
        plan onto themselves (their addresses written into its table) and take
        the same path. Any other container takes the checks of the tree.
        """
        bucket = self._single
        if bucket is not None:
            if type(grads) is Rows and self._listed_directly:  # a minibatch's rows, every step new
                plan = bucket.listed_plan(grads, self._written)
                if plan is not None and self._direct_step(bucket, plan):
                    return None
            bound = bucket.bound_grads
            if bound is not None and ((self._one_leaf and grads is bound[0])
                                      or (type(grads) is self._flat_sequence and bucket.is_bound_to(grads))
                                      or (bucket.rebound_one(grads, self._written) is not None if self._one_leaf
                                          else self._rebound(bucket, grads))):
                plan = bucket.last_plan
                if (plan is not None and self._plain and not (bucket.absent and self.algorithm.norms is not None)
                        and self._direct_step(bucket, plan)):  # a family with norms needs every gradient
                    return None
                if plan is not None and not bucket.absent:
                    self._step_plans([plan])
                    return None
        elif type(grads) is self._flat_sequence and self.foreign is None and self._rebound_every_bucket(grads):
            self._step_plans([bucket.last_plan for bucket in self.buckets])
            return None
        if self.foreign is None:
            plans = self._bound_plans(grads)
        else:  # on the tensors' stream: a Rows gradient's index and sums are read and written there
            with self.foreign.launch():
                plans = self._bound_plans(grads)
        if any(b.listed for b in self.buckets):
            self._check_rows_allowed()
        if any(b.absent for b in self.buckets):
            self._check_gradients_may_be_absent()
            if all(plan is None for plan in plans):
                return None
        if self.foreign is not None:
            self._check_tensors_in_place()
            with self.foreign.launch():
                self._step_plans(plans)
            self.foreign.written()
        else:
            self._step_plans(plans)
        return None

    def _direct_launcher(self, bucket, plan, flags):
        """``launch(scalars)`` of the common step (no policy) over ``plan``, with each group's scalar
        row: the rule's kernel, or for a family with norms its one-call norms pass and update;
        ``None`` where there is no one call (a norms plan for every core)."""
        if self.algorithm.norms is None:
            return bucket.launcher(plan, flags)
        if self.algorithm.sums_every_parameter:  # the whole optimizer's sums, then its carry: on the host
            return self._total_launcher(bucket, plan, flags)
        if self.algorithm.factored:  # the factors' pass comes first
            return self._factored_launcher(bucket, plan, flags)
        make = bucket.backend.norms_step_launcher
        if make is None:
            return None
        first, update = self._first_pass_of[""], self._after_norms_of[""]
        starts, stops, leaves = bucket.pieces(plan)
        # New hyperparameters come with new flags (Settings.per_group), and new flags with a new launch;
        # no policy: its scalars are the same every step (as with_policy appends them).
        return make(plan, bucket.spec(flags, first), bucket.spec(flags, update), starts, stops, leaves,
                    self.settings.leaf_groups, self._norms_apply(),
                    tuple(self.policies.scalars(1.0)) if first.active else (),
                    self.algorithm.Scalars._fields.index(self.algorithm.norms.field))

    def _total_launcher(self, bucket, plan, flags):
        """``launch(scalars, carry, hypers, step) -> carry``: the common step (no policy) of a family
        whose norms are the whole optimizer's (:attr:`~numadam.core.algorithm.Norms.total`: Prodigy's
        d) over the only ``bucket``: its first pass (:meth:`_total_pass`), whose sums move ``carry``,
        and the update with the scalars of the moved carry, as :meth:`policy_step` takes them (the
        same bits), with the update's launch found once for the plan and ``flags`` and without the
        policy stages' Python: 9.6 against 14.1 us a step at 1e3 float32 (a Zen 5; with
        ``slice_p=11``, 24-25 against 31-33)."""
        update = bucket.launcher(plan, flags, self._after_norms_of[""])
        extra = self.policies.scalars(1.0)  # no policy: its scalars are the same every step

        def launch(scalars, carry, hypers, step):
            self._check_groups(hypers)
            rows, after, carry = self._total_pass([plan], flags, "", self._leaf_rows(scalars), extra, step, carry,
                                                  hypers)
            update(with_policy(rows, after, extra))
            return carry

        return launch

    def _factored_launcher(self, bucket, plan, flags, arguments=False):
        """``launch(scalars)`` of the common step of a family with factored state: the backend's one
        call (:meth:`~numadam.engine.bucket.Bucket.factored_step_launcher`), and where its factors'
        pass did not take some parameter's norms, the norms pass and the update here, as
        :meth:`policy_step` takes them (a norms pass compiled into the one call would cost seconds
        of compiling, for a step that rarely needs it), unless the backend's one call takes its
        norms pass too (``norms_in_factored_step``: CUDA's); ``None`` where there is no one call.
        With ``arguments``, the kernel and its arguments for compiled code, its norms pass compiled in."""
        fields = self.algorithm.Scalars._fields
        first, update = self._first_pass_of[""], self._after_norms_of[""]
        norms_too = arguments or bucket.backend.norms_in_factored_step
        step = bucket.factored_step_launcher(plan, flags, update, first if norms_too else None,
                                             tuple(self.policies.scalars(1.0)),  # no policy: the same every step
                                             self.settings.leaf_groups, self._norms_apply(), self._counts,
                                             fields.index("factored"), fields.index(self.algorithm.norms.field),
                                             arguments)
        if step is None or arguments:
            return step

        def launch(scalars):
            if not step(scalars):
                return
            rows = self._leaf_rows(scalars)
            known = [tuple(pair) if ok else None for pair, ok in zip(step.sums.tolist(), step.found)]
            extra = self.policies.scalars(1.0, self.step_count + 1)
            rows, policy = self._norms_pass([plan], flags, "", rows, extra, known)
            self._update([plan], flags, policy, with_policy(rows, policy, extra))

        return launch

    def norms_kernel(self, grads):
        """The CPU's one-call norms kernel of the common step (no policy) over ``grads`` as data, for
        compiled code that steps a family with norms itself (:mod:`numadam.solver.compiled`): a
        :class:`~numadam.targets.cpu.kernels.KernelCall` of
        :func:`~numadam.targets.cpu.kernels.norms_then_update_serial`, whose arguments
        (:class:`~numadam.targets.cpu.kernels.NormsStepArguments`) hold the two scalar rows to fill
        each step (``first_scalars`` and ``scalars``: the family's fields first; the policy's, after
        them, already filled). For a family with factored state,
        :func:`~numadam.targets.cpu.factored_step.factored_step_serial` with the groups' float64 rows
        (``group_scalars`` of :class:`~numadam.targets.cpu.factored_step.FactoredStepArguments`) to
        fill each step instead.
        ``None`` unless one NumPy bucket of full-precision state holds every parameter, and for a
        family whose norms are the whole optimizer's (its carry moves on the host)."""
        self.install()
        if (self.name != "numpy" or len(self.buckets) != 1 or self.foreign is not None or self.buckets[0].quantized
                or self.algorithm.sums_every_parameter):
            return None
        from ..targets.cpu import kernels  # the CPU's: this engine holds NumPy arrays

        bucket = self.buckets[0]
        plan = bucket.bind(self.treedef.flatten_like(grads, "grads", exact_sequences=True), self._written)
        bucket.keep_plan()  # compiled code reads its table: no later step may move it onto other arrays
        if self.algorithm.factored:  # its factors' pass, norms and update: one call of its own
            return self._factored_launcher(bucket, plan, self.settings.flags, arguments=True)
        first, update = self._first_pass_of[""], self._after_norms_of[""]
        flags = self.settings.flags
        first_spec, update_spec = bucket.spec(flags, first), bucket.spec(flags, update)
        starts, stops, leaves = bucket.pieces(plan)
        real = np.dtype(first_spec.real)
        extra = np.array(tuple(self.policies.scalars(1.0)), np.float64)  # no policy: the same every step

        def rows(spec, policy):
            row = np.zeros(spec.n_scalars, real)
            if policy.active:
                row[len(row) - len(extra):] = extra
            return row

        field = self.algorithm.Scalars._fields.index(self.algorithm.norms.field)
        arguments = kernels.NormsStepArguments(
            first_spec, update_spec, plan.device_table, plan.width, starts, stops, np.ascontiguousarray(leaves, np.int64),
            rows(first_spec, first), rows(update_spec, update), real.type(0), np.zeros((len(bucket.params), 2)),
            np.ascontiguousarray(self._norms_apply()), field, update_spec.n_scalars, plan.n_chunks,
            self.backend.chunk_size)
        return kernels.KernelCall(kernels.norms_then_update_serial, arguments)

    def _rebound(self, bucket, grads):
        """Whether ``grads``, new arrays laid out as the last step's, moved the only bucket's plan onto
        themselves (:meth:`~numadam.engine.bucket.Bucket.rebound`): a list (tuple) of arrays where
        the parameters are one, or a one-array tree's array of more than one row; anything else
        takes the tree's checks. (A one-array tree's array of one row: ``rebound_one``, in
        :meth:`step`.)"""
        if type(grads) is self._flat_sequence:
            return bucket.rebound(grads, self._written) is not None
        return False

    def _rebound_every_bucket(self, grads):
        """Whether ``grads``, a flat list (tuple) of arrays over several buckets, are each bucket's
        last gradients or new arrays laid out as them, onto which its plan moved
        (:meth:`~numadam.engine.bucket.Bucket.rebound`). Where some bucket's are not, the buckets
        before it have moved onto theirs, and :meth:`_bound_plans` keeps those plans and binds the
        rest."""
        for bucket in self.buckets:
            leaves = [grads[k] for k in bucket.indices]
            if bucket.last_plan is None or bucket.absent or bucket.listed:
                return False
            if not bucket.moves_onto(leaves, self._written):
                return False
        return True

    def _bound_plans(self, grads):
        """Each bucket's plan for ``grads`` (every gradient checked), ``None`` for a bucket without one."""
        buckets = self.buckets
        if grads is None:
            leaves = self._tensor_grads()
        else:
            leaves = self.treedef.flatten_like(grads, "grads", exact_sequences=True)
            if self.foreign is not None:
                leaves = adopt(leaves, self.grad_paths, [False] * len(leaves)).arrays
        if len(buckets) == 1:
            return [buckets[0].bind(leaves, self._written)]
        return [b.bind([leaves[k] for k in b.indices], self._written) for b in buckets]

    def _direct_step(self, bucket, plan):
        """The common step (no policy) of the only ``bucket`` over ``plan``: this step's scalars and
        the launch made once for the plan and flags. False, having done nothing, where there is
        no such launch (see :meth:`_direct_launcher`)."""
        settings = self.settings
        if settings.scheduled_any:
            settings.apply_schedules(self.step_count)
        hypers, flags = settings.per_group()
        launch = self._launch
        if launch[0] is not plan or launch[1] is not flags:
            launch = self._launch = plan, flags, self._direct_launcher(bucket, plan, flags)
        if launch[2] is None:
            return False
        step = self.step_count + 1
        scalars, carry = settings.step_scalars(step, self.carry, hypers)
        if self._total_step:  # the first pass's sums move the carry
            carry = launch[2](scalars, carry, hypers, step)
        else:
            launch[2](scalars)
        self.step_count, self.carry = step, carry
        return True

    def _step_plans(self, plans):
        if self._plain and len(plans) == 1 and plans[0] is not None and self._direct_step(self.buckets[0], plans[0]):
            return
        if self.policies.plain and self.algorithm.norms is None:
            self.settings.apply_schedules(self.step_count)
            step = self.step_count + 1
            scalars, carry = self.settings.step_scalars(step, self.carry)
            flags = self.settings.flags
            for bucket, plan in zip(self.buckets, plans):
                if plan is not None:
                    bucket.launcher(plan, flags)(scalars)
            self.step_count, self.carry = step, carry
            return
        if self._device_steps is None and self._counts_on_device():
            self._device_steps = DeviceSteps(self.backend, self.step_count, self.skipped)
            self._carries = {self.step_count: self.carry}
        if self._device_steps is not None:
            self._device_step(plans)
            return
        self.policy_step(plans)

    def _reduce(self, plans, flags, policy, scalars):
        if len(self.buckets) == 1:  # every leaf, in order
            per_leaf = self.buckets[0].reduce(plans[0], flags, policy, scalars)
            return per_leaf[:, 0], per_leaf[:, 1]
        first, second = np.zeros(len(self.leaves)), np.zeros(len(self.leaves))
        for bucket, plan in zip(self.buckets, plans):
            per_leaf = bucket.reduce(plan, flags, policy, scalars)
            first[bucket.indices] = per_leaf[:, 0]
            second[bucket.indices] = per_leaf[:, 1]
        return first, second

    def _sampled_sums(self, plans, flags, policy, q, rows):
        sums = np.zeros((len(self.leaves), 2))
        for bucket in self.buckets:
            sums[bucket.indices] = bucket.sampled_sums([rows[k] for k in bucket.indices], flags, policy, q)
        return sums

    def _reduce_then_update(self, plans, flags, policy, scalars):
        if len(self.buckets) != 1 or plans[0] is None:
            return None
        fused = self.buckets[0].reduce_and_update(plans[0], flags, policy, scalars,
                                                  self.policies.nonfinite != "propagate",
                                                  self.policies.clip_global_norm or 0.0)
        if fused is None:
            return None
        updated, sums = fused
        return updated, sums[:, 0], sums[:, 1]

    def _norms_then_update(self, plans, flags, phase, scalars, extra):
        if len(self.buckets) != 1 or plans[0] is None:
            return False
        first, after, first_rows, update_rows, field = self._norms_fields(phase, scalars, extra)
        sums = self.buckets[0].norms_and_update(plans[0], flags, first, after, first_rows, update_rows,
                                                self._norms_apply(), field)
        return sums is not None

    def _factor_pass(self, plans, scalars, grad_scale):
        found = [None] * len(self.leaves)
        for bucket, plan in zip(self.buckets, plans):
            if plan is not None:
                sums = bucket.update_factors([scalars[k] for k in bucket.indices], grad_scale, self.policies.clip_value)
                for k, pair in zip(bucket.indices, sums):
                    found[k] = pair
        return found

    def _shapes(self):
        return [info.shape for info in self.infos]

    def _element_counts(self):
        return [dtypes.real_size(info.shape, info.dtype) for info in self.infos]

    def _update(self, plans, flags, policy, scalars):
        for bucket, plan in zip(self.buckets, plans):
            if plan is not None:
                bucket.launcher(plan, flags, policy)(scalars)

    def _check_rows_allowed(self):
        """A :class:`~numadam.adapters.rows.Rows` gradient leaves the other rows alone: refused where
        the step needs every element of a parameter (a family with norms: the whole parameter's;
        accumulation: a dense sum of gradients)."""
        bucket = next(b for b in self.buckets if b.listed)
        path = self.grad_paths[bucket.indices[bucket.listed[0]]]
        if self.algorithm.norms is not None:
            raise ValueError(f"{path} is a Rows gradient; {self.algorithm.title}'s update needs the norms of "
                             "every parameter's whole update, so it takes dense gradients")
        if self.policies.accumulate > 1:
            raise ValueError(f"{path} is a Rows gradient; accumulate={self.policies.accumulate} sums dense "
                             "gradients, so it takes dense gradients")

    def _check_gradients_may_be_absent(self):
        """A gradient may be ``None`` unless a policy reduces or accumulates over every parameter,
        the family has norms, or the state is 8-bit."""
        policies = self.policies
        if (policies.reduces or policies.accumulate > 1 or self.algorithm.norms is not None
                or any(b.quantized for b in self.buckets)):
            k = next(b.indices[b.absent[0]] for b in self.buckets if b.absent)
            raise ValueError(f"{self.grad_paths[k]} is None; with clipping, a non-finite policy, accumulation, "
                             "8-bit state or a family with norms every parameter needs a gradient")

    # -- torch parameters ---------------------------------------------------------------------------

    def _tensor_grads(self):
        """Each torch parameter's ``.grad`` (``None`` where it has none), adopted."""
        if len(self.tensors) != len(self.given):
            raise TypeError(f"{self.algorithm.title}.step() needs grads: only torch parameters carry their "
                            "gradient (.grad), and these are not all torch tensors; pass a tree of gradients "
                            "shaped like params")
        tensors = [tensor.grad for tensor in self.given]
        last_tensors, last_grads = self._last_tensor_grads
        if len(tensors) == len(last_tensors) and all(map(operator.is_, tensors, last_tensors)):
            return last_grads  # the same gradient tensors (filled in place): the same arrays, the same plan
        present = [k for k, grad in enumerate(tensors) if grad is not None]
        arrays = adopt([tensors[k] for k in present], [f"{self.paths[k]}.grad" for k in present],
                       [False] * len(present)).arrays
        grads = [None] * len(tensors)
        for k, array in zip(present, arrays):
            grads[k] = array
        self._last_tensor_grads = tensors, grads
        return grads

    def _check_tensors_in_place(self):
        """torch parameters still own the memory the optimizer updates (``p.data = ...`` moves it)."""
        for tensor, address, path in self.tensors:
            if tensor.data_ptr() != address:
                raise ValueError(f"{path} no longer holds the memory this optimizer updates (was p.data "
                                 "reassigned?); copy new values in place with p.data.copy_(...), or make a new "
                                 "optimizer")

    def zero_grad(self, set_to_none):
        if not self.tensors:
            raise TypeError(f"{self.algorithm.title}.zero_grad() clears torch parameters' .grad; these "
                            "parameters carry no gradient (pass gradients to step instead)")
        for tensor, _, _ in self.tensors:
            if tensor.grad is not None:
                if set_to_none:
                    tensor.grad = None
                else:
                    tensor.grad.detach_().zero_()

    # -- steps counted on the GPU (nonfinite="skip" on CUDA) ----------------------------------------

    def _counts_on_device(self):
        """Whether the GPU decides skips and counts steps: CUDA, ``nonfinite="skip"``, one dtype,
        no accumulation, no norms pass and no 8-bit state (those skip on the host, which then waits
        for the pre-pass)."""
        policies = self.policies
        return (self.backend.device_steps and policies.nonfinite == "skip" and policies.accumulate == 1
                and self.algorithm.norms is None and len(self.buckets) == 1 and not self.buckets[0].quantized)

    def _device_step(self, plans):
        """A step whose skipping and step number the GPU decides (see :mod:`numadam.engine.device_steps`)."""
        steps = self._device_steps
        candidates = steps.candidates()
        self._learn_device_steps(wait=False)
        policies = self.policies
        policy = policies.policy("")
        flags = self.settings.flags
        carry = self._carries[steps.known_applied]
        blocks = []
        for step in candidates:
            scalars, carry = self.settings.step_scalars(step, carry, self.settings.scheduled(step - 1))
            self._carries[step] = carry
            blocks.append(with_policy(scalars, policy, policies.scalars(1.0, step)))  # the GPU writes the scale
        (bucket,), (plan,) = self.buckets, plans
        starts, stops, _ = bucket.pieces(plan)
        scale_slot = len(self.algorithm.Scalars._fields) + PolicyScalars._fields.index("grad_scale")
        bucket.backend.skip_or_step(plan, bucket.spec(flags, policy), blocks, starts, stops,
                                    steps.control, candidates[0], policies.clip_global_norm, scale_slot)
        steps.after_call()

    def _learn_device_steps(self, wait):
        """Take the counts the GPU reported (waiting for exact ones if ``wait``) as the host's own."""
        steps = self._device_steps
        if steps is None:
            return
        if wait:
            steps.synchronize()
        else:
            steps.absorb(wait=False)
        if steps.known_applied != self.step_count or steps.known_skipped != self.skipped:
            self.step_count, self.skipped = steps.known_applied, steps.known_skipped
            self.carry = self._carries[self.step_count]
            self._carries = {step: carry for step, carry in self._carries.items() if step >= self.step_count}
            self.settings.apply_schedules(self.step_count)

    def counts(self):
        self._learn_device_steps(wait=True)
        return super().counts()

    def set_counts(self, step_count, skipped, micro_step, carry):
        super().set_counts(step_count, skipped, micro_step, carry)
        self._device_steps = None  # counted on the host again until the next step

    # -- state ----------------------------------------------------------------------------------------

    @property
    def params(self):
        """The leaves as given (torch tensors stay tensors)."""
        return self.given

    @property
    def arrays(self):
        """The parameters' NumPy or CuPy arrays (over a torch tensor's memory, for a tensor)."""
        return self.leaves

    def state_names(self):
        """The names of the state arrays this engine keeps: the family's kinds, then the held policy operands."""
        return [kind.name for kind in self.buckets[0].kinds] + list(self.buckets[0].policy_buffers)

    def state_leaves(self, name):
        """Views of each leaf's state ``name`` (a family kind or a held policy operand)."""
        return [(b.state[name] if name in b.state else b.policy_state[name])[local] for b, local in self.locations]

    def state_arrays(self, lazy=False):
        """Copies of every state array, by name (8-bit state adds ``<name>_scales``)."""
        arrays = {}
        for kind in self.algorithm.saved_kinds(self.buckets[0].kinds):
            arrays[kind.name] = [b.state[kind.name][local].copy() for b, local in self.locations]
            if any(b.quantized for b in self.buckets):
                arrays[f"{kind.name}_scales"] = [
                    b.block_scales(kind.name, local).copy() if b.quantized else np.zeros(0, np.float32)
                    for b, local in self.locations]
        for name in self.buckets[0].policy_buffers:
            arrays[name] = [b.policy_state[name][local].copy() for b, local in self.locations]
        return arrays

    def ema_params(self, correction):
        return [b.policy_state["ema"][local] / b.compute.type(correction) for b, local in self.locations]

    def reshape_state(self, kinds, h):
        """Keep exactly the state kinds ``kinds``, allocating only the new ones (initialized for ``h``)."""
        wanted = {kind.name for kind in kinds}
        for bucket in self.buckets:
            for name in [n for n in bucket.buffers if n not in wanted]:
                bucket.drop_state(name)
            for kind in kinds:
                if kind.name not in bucket.buffers:
                    bucket.add_state(kind, h)
        self._written = written_memory(self.backend, [a for b in self.buckets for a in b.written_arrays()])

    def load_state(self, arrays, kinds, h):
        """Copy the checked state ``arrays`` (by name: leaves) into this engine's own arrays."""
        self.reshape_state(kinds, h)
        for name, leaves in arrays.items():
            for (bucket, local), source in zip(self.locations, leaves):
                if name in bucket.policy_buffers:
                    bucket.backend.assign(bucket.policy_state[name][local], source)
                else:
                    bucket.load_state(name, local, source)

    def checked_arrays(self, state, kinds, treedef):
        """The state's arrays, checked against the parameters (see :mod:`numadam.engine.state_dict`)."""
        return checked_bucket_arrays(self, state, kinds, treedef)
