"""What both engines share: the counts, the carry, and one step through the policy pipeline.

:meth:`Engine.policy_step` is the order of the stages
(:mod:`numadam.core.pipeline`) written once: accumulate or update; the
reduction pre-pass and its decision (raise, skip or scale); the family's norms
pass where it has one; then the update. An engine supplies the two things
that differ by where the arrays live: :meth:`Engine._reduce` (the pre-pass's
two sums per parameter) and :meth:`Engine._update` (the kernel over every
parameter). The local engine runs them over its buckets, the Dask engine as
one task per chunk, both with the same generated kernels.
"""

import functools

import numpy as np
from numba import njit

from ..core.factors import factored, with_factored
from ..core.pipeline import skip_or_scale


@functools.cache
def norms_values(value):
    """``fill(param_squares, direction_squares, out)``: ``out[k] = value(param_squares[k],
    direction_squares[k])``, compiled, the family's ``value`` inlined (one source for every path)."""
    value = njit(inline="always")(value)

    @njit
    def fill(param_squares, direction_squares, out):
        for k in range(out.size):
            out[k] = value(param_squares[k], direction_squares[k])

    return fill


def with_norms(algorithm, scalars, applies, param_squares, direction_squares, counts=None):
    """``scalars`` (float64, one row per parameter) with the field the family's norms set
    (:class:`~numadam.core.algorithm.Norms`): its value of each parameter's sums, where it applies.
    A value that depends on the parameter (``per_parameter``) takes each one's number of real
    elements ``counts`` and its scalars."""
    norms = algorithm.norms
    if norms.per_parameter:
        fields = len(algorithm.Scalars._fields)
        values = np.array([norms.value(float(p), float(d), int(n), algorithm.Scalars(*row[:fields].tolist()))
                           for p, d, n, row in zip(param_squares, direction_squares, counts, scalars)])
    else:
        values = np.empty(len(scalars))
        norms_values(norms.value)(np.asarray(param_squares, np.float64), np.asarray(direction_squares, np.float64),
                                  values)
    rows = scalars.copy()
    rows[applies, algorithm.Scalars._fields.index(norms.field)] = values[applies]
    return rows


def with_policy(scalars, policy, policy_scalars):
    """The scalar rows of a kernel with ``policy``: the family's, then the policy's where it is active.

    ``scalars`` is a list of rows, or a float64 array of them (one per parameter, families with norms).
    """
    if not policy.active:
        return scalars
    if isinstance(scalars, np.ndarray):
        extra = np.array(policy_scalars, np.float64)
        return np.hstack([scalars, np.broadcast_to(extra, (len(scalars), len(extra)))])
    return [values + policy_scalars for values in scalars]


class Engine:
    """The counts of an optimizer's steps, its family's carry, and the policy step over them.

    ``step_count`` counts updates taken, ``skipped`` the calls skipped for a
    non-finite gradient, ``micro_step`` the gradients accumulated since the
    last update; ``carry`` holds each group's running host values.
    """

    #: The engine's name in ``repr``: "numpy", "cuda" or "dask".
    name = ""
    #: Whether a saved state loads best as lazy arrays (Dask: each chunk read where it is needed).
    lazy_state = False

    def __init__(self, algorithm, settings, policies, paths):
        self.algorithm = algorithm
        self.settings = settings
        self.policies = policies
        self.paths = paths
        self.grad_paths = ["grads" + path[len("params"):] for path in paths]
        self.step_count = self.skipped = self.micro_step = 0
        self.carry = [algorithm.initial_carry() for _ in range(len(settings.groups) + 1)]
        #: The kernel policy of a call in each phase ("", "add", "apply"), made once; with a norms pass,
        #: that pass's (no bounds or moving average yet) and the update's after it (the gradient consumed).
        self._policy_of = {phase: policies.policy(phase) for phase in ("", "add", "apply")}
        self._first_pass_of = {phase: policy._replace(bounds=False, ema=False, reduction="norms")
                               for phase, policy in self._policy_of.items()}
        self._leaf_groups = np.asarray(settings.leaf_groups, np.intp)
        #: The groups that hold parameters, in order (a norms total reads their hyperparameters).
        self._used_groups = sorted(set(settings.leaf_groups))
        self._applies = None  # (the hyperparameters, whether each parameter's norms set its field)
        #: The step between the elements the sampled state keeps (Prodigy's slice_p: fixed when made,
        #: and a state of another is refused), found once.
        self._sample_step = algorithm.sample_step(settings.hyper(settings.own))
        # The update after a norms pass reads the state that pass wrote, not the gradient; with factored
        # state (which the norms pass only reads), or a rule that reads the gradient again (Prodigy
        # without a first moment), it steps along the gradient again, scaled and clipped.
        rereads = algorithm.norms is not None and algorithm.norms.update_reads_gradient is not None and any(
            algorithm.norms.update_reads_gradient(h) for h in settings.per_group()[0])
        if rereads and policies.accumulate > 1:
            raise ValueError(f"accumulate={policies.accumulate} sums the micro-batches' gradients for {algorithm.title}'s "
                             f"first pass, and with these hyperparameters its update steps along the gradient "
                             f"again, which only the first pass sees summed: take accumulate=1, or a first moment "
                             f"(betas[0] > 0)")
        consumed = {} if algorithm.factored or rereads else {"grad_scale": False, "clip_value": False}
        self._after_norms_of = {phase: policy._replace(accumulate="", **consumed)
                                for phase, policy in self._policy_of.items()}

    def counts(self):
        """``(step_count, skipped, micro_step)``, exact (an engine whose device counts waits for it)."""
        return self.step_count, self.skipped, self.micro_step

    def set_counts(self, step_count, skipped, micro_step, carry):
        self.step_count, self.skipped, self.micro_step, self.carry = step_count, skipped, micro_step, carry

    def policy_step(self, grads):
        """One call of ``step`` through every stage the options turn on; ``grads`` as the engine's
        :meth:`_reduce` and :meth:`_update` take them."""
        policies = self.policies
        settings = self.settings
        micro_step = self.micro_step + 1
        phase = policies.phase(micro_step)
        step = self.step_count + 1
        if phase != "add" and settings.scheduled_any:
            settings.apply_schedules(self.step_count)  # a function of step_count: again after a skip changes nothing
        hypers, flags = settings.per_group()
        norms = self.algorithm.norms
        if norms is not None and phase != "add":
            self._check_groups(hypers)
        scalars, carry = settings.step_scalars(step, self.carry, hypers)
        if self.algorithm.norms is not None:  # one row per parameter (its group's, until its norms set its field)
            scalars = self._leaf_rows(scalars)
        policy = self._policy_of[phase]
        grad_scale, scalar_rows = 1.0, None
        if policies.needs_reduction(phase):
            scalar_rows = with_policy(scalars, policy, policies.scalars(1.0, step))
            fused = None
            if phase != "add" and self.algorithm.norms is None:
                fused = self._reduce_then_update(grads, flags, policy, scalar_rows)
            if fused is not None:  # the pre-pass, the decision and the update: one call
                updated, squares, bad = fused
                if not updated:
                    skip_or_scale(policies, squares, bad, self.grad_paths)  # raises for nonfinite="raise"
                    self.skipped += 1
                    return
                self.step_count, self.carry, self.micro_step = step, carry, 0
                return
            squares, bad = self._reduce(grads, flags, policy, scalar_rows)
            decision = skip_or_scale(policies, squares, bad, self.grad_paths)
            if decision is None:
                self.skipped += 1
                return
            if phase != "add":
                grad_scale = decision
        extra = known = None
        if self.algorithm.factored and phase != "add":
            known = self._factor_pass(grads, scalars, grad_scale)
        if self.algorithm.norms is not None and phase != "add":
            extra = policies.scalars(grad_scale, step)
            if (not norms.per_parameter and norms.total is None  # (whose values the one call does not compute)
                    and self._norms_then_update(grads, flags, phase, scalars, extra)):  # both passes: one call
                self.step_count, self.carry, self.micro_step = step, carry, 0
                return
            if norms.total is not None:
                scalars, policy, carry = self._total_pass(grads, flags, phase, scalars, extra, step, carry, hypers)
            else:
                scalars, policy = self._norms_pass(grads, flags, phase, scalars, extra, known)
            scalar_rows = None
        if scalar_rows is None or grad_scale != 1.0:  # the pre-pass's rows serve unless the update's differ
            scalar_rows = with_policy(scalars, policy, extra or policies.scalars(grad_scale, step))
        self._update(grads, flags, policy, scalar_rows)
        if phase == "add":  # only accumulated: no update was taken
            self.micro_step = micro_step
            return
        self.step_count, self.carry, self.micro_step = step, carry, 0

    def _leaf_rows(self, scalars):
        """Each parameter's row of the groups' ``scalars``: its group's, with its field ``factored``
        (a family with factored state)."""
        rows = [scalars[group] for group in self.settings.leaf_groups]
        if self.algorithm.factored:
            rows = [with_factored(self.algorithm, row, keeps) for row, keeps in zip(rows, self._keeps_factors)]
        return rows

    def _norms_pass(self, grads, flags, phase, scalars, extra, known=None):
        """The family's first pass (LAMB's moments and norms): it consumes the gradient; returns each
        parameter's scalar row for the update (the field its norms set, where it applies) and the
        policy left for it (bounds, moving average). ``known`` holds, per parameter, the two sums
        where the factors' pass took them (:mod:`numadam.core.factors`), else ``None``: the pass
        runs only where one is missing, and each parameter found there keeps its own."""
        first = self._first_pass_of[phase]
        if known is not None and all(pair is not None for pair in known):
            param_squares, direction_squares = np.array(known, np.float64).T
        else:
            param_squares, direction_squares = (np.array(sums, np.float64) for sums in
                                                self._reduce(grads, flags, first, with_policy(scalars, first, extra)))
            for k, pair in enumerate(known or ()):
                if pair is not None:
                    param_squares[k], direction_squares[k] = pair
        rows = with_norms(self.algorithm, np.array(scalars, np.float64), self._norms_apply(), param_squares,
                          direction_squares, self._counts)
        return rows, self._after_norms_of[phase]

    def _total_pass(self, grads, flags, phase, scalars, extra, step, carry, hypers):
        """A first pass whose sums are the whole optimizer's (:attr:`Norms.total`: Prodigy's d): it
        consumes the gradient; the family's ``total`` of the two sums over every parameter gives the
        carry every group takes, and the update's rows are the family's scalars of that carry.
        Returns the update's rows, the policy left for it and the new carry."""
        algorithm = self.algorithm
        first = self._first_pass_of[phase]
        rows = with_policy(scalars, first, extra)
        # The sampled state's pass first: it reads the accumulated gradient, which the first pass clears.
        sampled = self._sampled_sums(grads, flags, first, extra, rows) if self._sample_step > 1 else None
        firsts, seconds = self._reduce(grads, flags, first, rows)
        if sampled is not None:
            firsts, seconds = firsts + sampled[:, 0], seconds + sampled[:, 1]
        carry, rows = self._carry_of_sums(firsts, seconds, carry, hypers, step)
        return rows, self._after_norms_of[phase], carry

    def _check_groups(self, hypers):
        """The family's rule for the hyperparameters of the groups that hold parameters (Prodigy's:
        one lr for all, or 0), checked at every step before anything moves: a new lr keeps the
        kernels' flags, and so the launches made for them."""
        check = self.algorithm.norms.check_groups
        if check is not None:
            check([hypers[g] for g in self._used_groups])

    def _carry_of_sums(self, firsts, seconds, carry, hypers, step):
        """``(carry, rows)`` after a first pass whose sums over every parameter are the whole
        optimizer's (:attr:`Norms.total`), from each parameter's two sums ``firsts`` and ``seconds``
        (added in parameter order): the carry every group takes, the family's total of the sums and
        of the first used group's ``carry``, and the update's scalar rows of that carry (one per
        parameter) for step ``step``."""
        algorithm = self.algorithm
        used = self._used_groups
        total = algorithm.norms.total(float(firsts[0] if len(firsts) == 1 else firsts.sum()),
                                      float(seconds[0] if len(seconds) == 1 else seconds.sum()),
                                      carry[used[0]], [hypers[g] for g in used])
        after = tuple(total)
        return [after] * len(carry), self._leaf_rows([algorithm.scalars(step, h, after) for h in hypers])

    def _sampled_sums(self, grads, flags, policy, q, rows):
        """Per parameter, in parameter order, the two sums of the family's pass over its sampled
        state (:mod:`numadam.engine.sampled`), that state moved: a ``(parameters, 2)`` array."""
        raise NotImplementedError

    def _norms_apply(self):
        """Whether each parameter's norms set its field (:attr:`Norms.applies` of its group's
        hyperparameters), recomputed only after a hyperparameter changed."""
        hypers, flags = self.settings.per_group()
        found = self._applies
        if found is None or found[0] is not hypers:
            by_group = np.array([bool(self.algorithm.norms.applies(h)) for h in hypers])
            found = self._applies = hypers, by_group[self._leaf_groups]
        return found[1]

    def _reduce(self, grads, flags, policy, scalars):
        """Per parameter, in parameter order, the two float64 sums of the pre-pass ``policy.reduction``."""
        raise NotImplementedError

    def _factor_pass(self, grads, scalars, grad_scale):
        """The factors' pass of a family with factored state (:mod:`numadam.core.factors`): each
        parameter's factors moved toward the squares of its gradient (scaled by ``grad_scale``,
        clipped as the options say), with its scalar row ``scalars[k]``. Returns ``None``, or per
        parameter the norms pass's two sums where the pass took them too, else ``None``."""
        raise NotImplementedError

    def _element_counts(self):
        """Each parameter's number of real elements (a norms value per parameter takes it)."""
        raise NotImplementedError

    def _shapes(self):
        """Each parameter's shape (a family with factored state takes its direction by it)."""
        raise NotImplementedError

    @functools.cached_property
    def _counts(self):
        """Each parameter's number of real elements (found once: shapes do not change)."""
        return self._element_counts()

    @functools.cached_property
    def _keeps_factors(self):
        """Whether each parameter keeps row and column factors (found once: shapes do not change)."""
        return [factored(shape) for shape in self._shapes()]

    def _norms_then_update(self, grads, flags, phase, scalars, extra):
        """The family's norms pass, the field it sets and the update, in one call where the engine has
        one: true if it took the step; else false (the default), and the step takes them one by one."""
        return False

    def _norms_fields(self, phase, scalars, extra):
        """``(first pass's policy, update's policy, first pass's scalar rows, update's scalar rows, the
        field's slot)`` of a norms step in ``phase``."""
        first, after = self._first_pass_of[phase], self._after_norms_of[phase]
        field = self.algorithm.Scalars._fields.index(self.algorithm.norms.field)
        return first, after, with_policy(scalars, first, extra), with_policy(scalars, after, extra), field

    def _reduce_then_update(self, grads, flags, policy, scalars):
        """The gradient pre-pass, the decision of :func:`~numadam.core.pipeline.skip_or_scale` and the
        update, in one call where the engine has one: ``(updated, squares, bad)``; else ``None``
        (the default), and the step takes them one by one."""
        return None

    def _update(self, grads, flags, policy, scalars):
        """The kernel of ``policy`` over every parameter, with the scalar rows ``scalars``."""
        raise NotImplementedError
