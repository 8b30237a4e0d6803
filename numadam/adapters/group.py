"""``numadam.Group``: part of a parameter tree with hyperparameters of its own."""

from ..core import validate


class Group:
    """Wrap a subtree of the parameters to give it its own hyperparameters.

    ``numadam.Group(subtree, lr=..., weight_decay=..., betas=..., schedule=...)``
    stands for ``subtree`` in the tree given to an optimizer; its parameters
    use these values, the others the optimizer's own. A group is transparent
    to gradients and state: they keep the plain structure. The typical use is
    no weight decay on biases::

        params = {"body": numadam.Group([W, b], weight_decay=0.0), "head": H}
        opt = numadam.AdamW(params, lr=1e-3, weight_decay=1e-2)
        opt.step({"body": [gW, gb], "head": gH})

    Any hyperparameter of the optimizer's family that may differ between
    groups can be set (``opt.groups[0].lr = 5e-3`` between steps, too); reading
    one that the group does not set gives the optimizer's value. ``schedule``
    (see :mod:`numadam.schedules`) sets this group's ``lr`` before each step.
    Groups do not nest, and a group belongs to one optimizer.
    """

    def __init__(self, params, schedule=None, **hyperparameters):
        self.params = params
        self.schedule = validate.check_schedule(schedule)
        self._overrides = dict(hyperparameters)
        self._optimizer = None
        #: Counts changes of the overrides, so that the optimizer knows when to recompute.
        self._version = 0

    def __repr__(self):
        options = ", ".join(f"{name}={value!r}" for name, value in self._overrides.items())
        return f"Group({options})" if options else "Group()"

    @property
    def overrides(self):
        """The hyperparameters this group sets, as a dict (a copy)."""
        return dict(self._overrides)

    def attach(self, optimizer, checked):
        """Bind the group to ``optimizer``, with its overrides already ``checked``."""
        if self._optimizer is not None and self._optimizer is not optimizer:
            raise ValueError(f"{self!r} already belongs to another optimizer; give each optimizer its own Groups")
        self._optimizer = optimizer
        self.set_overrides(checked)

    def set_overrides(self, overrides):
        self._overrides = dict(overrides)
        self._version += 1

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        overrides = self.__dict__.get("_overrides", {})
        if name in overrides:
            return overrides[name]
        optimizer = self.__dict__.get("_optimizer")
        if optimizer is not None and name in optimizer.algorithm.names:
            return getattr(optimizer, name)
        raise AttributeError(f"{type(self).__name__} has no hyperparameter {name!r}")

    def __setattr__(self, name, value):
        if name in ("params", "schedule") or name.startswith("_"):
            if name == "schedule":
                value = validate.check_schedule(value)
            object.__setattr__(self, name, value)
            return
        optimizer = self.__dict__.get("_optimizer")
        if optimizer is not None:
            value = optimizer.checked_group_value(name, value)
        self.set_overrides({**self._overrides, name: value})

    def with_params(self, params):
        """A new, unattached group over ``params`` with this group's settings."""
        return Group(params, schedule=self.schedule, **self._overrides)

    def __reduce__(self):
        return _rebuild_group, (self.params, self.schedule, dict(self._overrides))


def _rebuild_group(params, schedule, overrides):
    return Group(params, schedule=schedule, **overrides)
