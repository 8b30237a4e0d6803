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

import numpy as np

from ..core.pipeline import skip_or_scale


def with_policy(scalars, policy, policy_scalars):
    """The scalar rows of a kernel with ``policy``: the family's, then the policy's where it is active.

    ``scalars`` is a list of rows, or a float64 array of them (one per parameter, families with norms).
    """
    if not policy.active:
        return scalars
    extra = tuple(policy_scalars)
    if isinstance(scalars, np.ndarray):
        return np.hstack([scalars, np.broadcast_to(np.array(extra, np.float64), (len(scalars), len(extra)))])
    return [tuple(values) + extra for values in scalars]


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
        if phase != "add":
            settings.apply_schedules(self.step_count)  # a function of step_count: again after a skip changes nothing
        scalars, carry = settings.step_scalars(step, self.carry)
        flags = settings.flags
        if self.algorithm.norms is not None:  # one row per parameter (its group's, for now), as one array
            scalars = np.array(scalars, np.float64)[settings.leaf_groups]
        grad_scale = 1.0
        if policies.needs_reduction(phase):
            reduction = policies.policy(phase)
            squares, bad = self._reduce(grads, flags, reduction,
                                        with_policy(scalars, reduction, policies.scalars(1.0, step)))
            decision = skip_or_scale(policies, squares, bad, self.grad_paths)
            if decision is None:
                self.skipped += 1
                return
            if phase != "add":
                grad_scale = decision
        policy = policies.policy(phase)
        extra = policies.scalars(grad_scale, step)
        if self.algorithm.norms is not None and phase != "add":
            scalars, policy = self._norms_pass(grads, flags, policy, scalars, extra)
        self._update(grads, flags, policy, with_policy(scalars, policy, extra))
        if phase == "add":  # only accumulated: no update was taken
            self.micro_step = micro_step
            return
        self.step_count, self.carry, self.micro_step = step, carry, 0

    def _norms_pass(self, grads, flags, policy, scalars, extra):
        """The family's first pass (LAMB's moments and norms): it consumes the gradient; returns each
        parameter's scalar row for the update and the policy left for it (bounds, moving average)."""
        first = policy._replace(bounds=False, ema=False, reduction="norms")
        param_squares, direction_squares = self._reduce(grads, flags, first, with_policy(scalars, first, extra))
        hypers, _ = self.settings.per_group()
        scalars = self.algorithm.norms.scalars(scalars, hypers, np.asarray(self.settings.leaf_groups, np.intp),
                                               param_squares, direction_squares)
        return scalars, policy._replace(accumulate="", grad_scale=False, clip_value=False)

    def _reduce(self, grads, flags, policy, scalars):
        """Per parameter, in parameter order, the two float64 sums of the pre-pass ``policy.reduction``."""
        raise NotImplementedError

    def _update(self, grads, flags, policy, scalars):
        """The kernel of ``policy`` over every parameter, with the scalar rows ``scalars``."""
        raise NotImplementedError
