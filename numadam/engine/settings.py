"""The hyperparameters of an optimizer and of each of its groups, and their schedules.

Group 0 is the optimizer's own hyperparameters; group ``g + 1`` those of its
``g``-th :class:`numadam.Group` (the optimizer's, with the group's overrides).
A kernel reads one row of per-step scalars per group, and each parameter's
segments name its group's row. :class:`Settings` computes those rows from the
hyperparameters (:meth:`Settings.step_scalars`), recomputing what depends
only on the hyperparameters (their named tuples, the kernels' flags) when one
of them changed.
"""


class Settings:
    """The hyperparameters of each group and their learning-rate schedules, versioned.

    ``own`` is a dict of the optimizer's checked hyperparameters, ``groups`` its
    :class:`numadam.Group` s, ``leaf_groups`` each parameter's group (0 for the
    optimizer's own, ``g + 1`` for group ``g``).
    """

    def __init__(self, algorithm, own, schedule, groups, leaf_groups):
        self.algorithm = algorithm
        self.own = own
        self.schedule = schedule
        self.groups = groups
        self.leaf_groups = leaf_groups
        #: The groups some parameter uses (the kernels' flags are the union of theirs).
        self.used = sorted(set(leaf_groups))
        #: Counts changes of ``own``: the named tuples and flags are recomputed after one.
        self.version = 0
        self._cache = None

    def assign(self, own):
        """Replace the optimizer's own hyperparameters by ``own`` (checked)."""
        self.own = own
        self.version += 1

    def _assign_lr(self, lr):
        """Set the optimizer's own ``lr`` (checked by the caller), as a schedule does before every
        step: the named tuples of :meth:`per_group`, if current, take the new ``lr`` where it
        applies (not in a group that sets its own) and the flags stay, since no family's flags
        read ``lr`` (tests/test_schedules.py checks every family's)."""
        cache = self._cache
        current = self._is_current(cache)
        self.assign({**self.own, "lr": lr})
        if current:
            hypers = cache[2]
            at = hypers[0]._fields.index("lr")

            def moved(h):
                values = list(h)
                values[at] = lr
                return type(h)(*values)

            self._cache = self.version, cache[1], [moved(hypers[0])] + [
                h if "lr" in group.overrides else moved(h) for h, group in zip(hypers[1:], self.groups)], cache[3]

    def _is_current(self, cache):
        """Whether ``cache`` (:meth:`per_group`'s) was made from the hyperparameters as they are: no
        change of the optimizer's own or of a group's since."""
        return cache is not None and cache[0] == self.version and (
            not self.groups or cache[1] == [g._version for g in self.groups])

    def hyper(self, values):
        """``values`` (a dict of every hyperparameter) as the algorithm's named tuple."""
        return self.algorithm.Hyper(**values)

    def per_group(self):
        """Each group's hyperparameters as named tuples, and the union of the flags of the groups
        in use; recomputed only after a hyperparameter changed (this runs every step). Flags equal
        to the last ones are the last object: the launches, found by the flags' identity, stay
        (a schedule changes ``lr`` at every step, never the flags)."""
        cache = self._cache
        groups = self.groups
        if cache is not None and not groups and cache[0] == self.version:  # the common case, kept short
            return cache[2], cache[3]
        if not self._is_current(cache):
            own = self.own
            hypers = [self.hyper(own)] + [self.hyper({**own, **group.overrides}) for group in groups]
            flags = self.algorithm.union_flags([hypers[g] for g in self.used])
            if cache is not None and flags == cache[3]:
                flags = cache[3]
            cache = self._cache = self.version, [g._version for g in groups], hypers, flags
        return cache[2], cache[3]

    @property
    def flags(self):
        return self.per_group()[1]

    @property
    def scheduled_any(self):
        """Whether a schedule sets some ``lr`` before each step."""
        return self.schedule is not None or (self.groups and any(group.schedule is not None for group in self.groups))

    def apply_schedules(self, step_count):
        """Set ``lr`` (and each scheduled group's) from the schedules for ``step_count`` updates
        taken, all checked before any is set."""
        if self.schedule is None and not self.groups:
            return
        checked = self.algorithm.checked
        new_lr = None if self.schedule is None else checked("lr", self.schedule(step_count))
        group_lrs = [(group, checked("lr", group.schedule(step_count)))
                     for group in self.groups if group.schedule is not None]
        if new_lr is not None:
            self._assign_lr(new_lr)
        for group, lr in group_lrs:
            group.set_overrides({**group.overrides, "lr": lr})

    def scheduled(self, step_count):
        """Each group's hyperparameters once the schedules have set ``lr`` for ``step_count``,
        without setting them (a device-counted step's scalars for a step it may take)."""
        own = dict(self.own)
        if self.schedule is not None:
            own["lr"] = self.algorithm.checked("lr", self.schedule(step_count))
        hypers = [own]
        for group in self.groups:
            overrides = group.overrides
            if group.schedule is not None:
                overrides["lr"] = self.algorithm.checked("lr", group.schedule(step_count))
            hypers.append({**own, **overrides})
        return [self.hyper(values) for values in hypers]

    def step_scalars(self, step, carry, hypers=None):
        """Each group's scalars of step ``step`` (tuples of floats), and the carry after it.

        ``carry`` holds each group's running host values before the step;
        ``hypers`` each group's hyperparameters (default: the current ones).
        """
        algorithm = self.algorithm
        if hypers is None:
            hypers = self.per_group()[0]
        if len(hypers) == 1:  # no groups: the common case, kept short (this runs every step)
            if algorithm.carry is None:  # nothing to advance: the carry (a list of one empty tuple) stays
                return [algorithm.scalars(step, hypers[0], carry[0])], carry
            values, after = algorithm.step_scalars(step, hypers[0], carry[0])
            return [values], [after]
        scalars, carried = [], []
        for h, group_carry in zip(hypers, carry):
            values, after = algorithm.step_scalars(step, h, group_carry)
            scalars.append(values)
            carried.append(after)
        return scalars, carried
