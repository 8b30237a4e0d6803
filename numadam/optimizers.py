"""The optimizer objects: what users touch, over an engine that steps.

:class:`Optimizer` is every algorithm's class (see :mod:`numadam.families`,
which derives ``Adam``, ``NAdam``, ... from each algorithm's declaration). From
the declaration the class gets its signature, a validated property per
hyperparameter, per-group hyperparameters (:class:`numadam.Group`),
``state_dict``/``load_state_dict``, saving, copying and pickling. A step is
handed to the engine chosen once, at construction, by the kind of the
parameters (:func:`numadam.engine.engine_for`): the local engine for NumPy,
CuPy, torch and DLPack arrays, the Dask engine for Dask arrays.

A step is serialized per optimizer: two threads stepping one optimizer take
turns (no step is lost); separate optimizers step concurrently.
"""

import inspect
import os
import threading
from collections.abc import Iterator

from .adapters.tree import flatten
from .core import validate
from .core.pipeline import POLICY_DEFAULTS, check_options_for, checked_policies, leaf_bound
from .engine.sampled import check_sampled
from .engine import engine_for
from .engine.settings import Settings
from .engine.state_dict import checked_load, state_dict
from .state_files import load_state, save_state

#: Names that users of other libraries pass, and what numadam calls them.
_OTHER_LIBRARIES_NAMES = {
    "learning_rate": "lr",
    "beta_1": "betas=(beta_1, beta_2)",
    "beta_2": "betas=(beta_1, beta_2)",
    "b1": "betas=(b1, b2)",
    "b2": "betas=(b1, b2)",
    "epsilon": "eps",
    "decay": "weight_decay",
}


class _HyperparameterAttribute:
    """``opt.<name>``: the value of a hyperparameter, checked when set."""

    def __init__(self, hyperparameter, read_only):
        self.name = hyperparameter.name
        self.read_only = read_only
        self.__doc__ = hyperparameter.doc + (" Set at construction (and by ``load_state_dict``)." if read_only else "")

    def __get__(self, optimizer, owner=None):
        if optimizer is None:
            return self
        return optimizer._settings.own[self.name]

    def __set__(self, optimizer, value):
        if self.name in optimizer.pinned:
            raise ValueError(f"{type(optimizer).__name__} always has {self.name}={optimizer.pinned[self.name]!r}; "
                             f"got {value!r}")
        if self.read_only:
            raise AttributeError(
                f"{type(optimizer).__name__}.{self.name} is set at construction (and by load_state_dict); "
                f"make a new optimizer to change it")
        optimizer._set_hyperparameters({self.name: value})


class Optimizer:
    """The optimizer of one :class:`~numadam.core.algorithm.Algorithm` (see the subclasses).

    ``params`` is one array or a dict/list/tuple tree of arrays (subtrees may be
    wrapped in :class:`numadam.Group`), all NumPy or all CUDA arrays, writable
    and not sharing memory. They are updated in place; their layout and
    writability are checked here, once.
    """

    algorithm = None
    #: This class's defaults where they differ from the algorithm's.
    defaults = {}
    #: Hyperparameters this class fixes (they are not in its signature).
    pinned = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        algorithm = cls.algorithm
        if algorithm is None:
            return
        cls._class_defaults = {h.name: cls.defaults.get(h.name, h.default) for h in algorithm.hyperparameters}
        parameter = inspect.Parameter
        parameters = [parameter("params", parameter.POSITIONAL_OR_KEYWORD)]
        parameters += [parameter(h.name, parameter.POSITIONAL_OR_KEYWORD, default=cls._class_defaults[h.name])
                       for h in algorithm.hyperparameters if h.name not in cls.pinned]
        parameters.append(parameter("schedule", parameter.KEYWORD_ONLY, default=None))
        parameters += [parameter(name, parameter.KEYWORD_ONLY, default=default)
                       for name, default in POLICY_DEFAULTS.items()]
        cls.__signature__ = inspect.Signature(parameters)
        #: The hyperparameters' names in the signature's order, and every name a call may give by keyword.
        cls._hyperparameter_keywords = tuple(p.name for p in parameters[1:]
                                             if p.kind is parameter.POSITIONAL_OR_KEYWORD)
        cls._keywords = frozenset(p.name for p in parameters[1:])
        for hyper in algorithm.hyperparameters:
            read_only = not hyper.per_group or hyper.name in cls.pinned
            setattr(cls, hyper.name, _HyperparameterAttribute(hyper, read_only))

    def __init__(self, params, *args, **kwargs):
        arguments = self._bound_arguments(params, args, kwargs)
        self._lock = threading.RLock()
        own = self._checked_hyperparameters({**self._class_defaults, **arguments, **self.pinned})
        schedule = validate.check_schedule(kwargs.get("schedule"))
        options = {name: kwargs.get(name, default) for name, default in POLICY_DEFAULTS.items()}
        self._policies = checked_policies(**options)
        self._policy_options = options
        if isinstance(params, Iterator):  # model.parameters(): a generator of tensors
            params = list(params)
        given, self._treedef = flatten(params)
        if not given:
            raise ValueError(f"params must hold at least one array; got {params!r}")
        groups, leaf_groups = self._treedef.groups()
        self._settings = Settings(self.algorithm, own, schedule, groups,
                                  [0 if g is None else g + 1 for g in leaf_groups])
        for group in groups:
            group.attach(self, self._checked_group_overrides(group, group.overrides))
        self._paths = self._treedef.paths("params")
        deferred = {} if getattr(self, "_installs_state", True) else {"install": False}
        self._engine = engine_for(given)(self.algorithm, self._settings, self._policies, self._treedef, given,
                                         self._paths, self._given_bounds(), self._check_options, **deferred)

    @classmethod
    def _checked_without_state(cls, params, **kwargs):
        """``cls(params, **kwargs)`` with every check made but no state or plan yet: they are made by
        :meth:`_install_state` (or a norms kernel's request). For :func:`numadam.minimize`, whose
        compiled solves read only the checked hyperparameters and policies; NumPy parameters."""
        optimizer = cls.__new__(cls)
        optimizer._installs_state = False
        optimizer.__init__(params, **kwargs)
        return optimizer

    def _install_state(self):
        """Make the state and plan an optimizer of :meth:`_checked_without_state` left out (once)."""
        self._engine.install()

    def _check_options(self, parameter_dtypes):
        """The options against the algorithm and the parameters' dtypes (the engine calls it once it
        knows them)."""
        check_options_for(self._policies, self.algorithm, parameter_dtypes, self._paths)
        check_sampled(self.algorithm, self._settings.hyper(self._settings.own), parameter_dtypes, self._paths)

    def _bound_arguments(self, params, args, kwargs):
        """The hyperparameters given (by name), as ``self.__signature__.bind`` binds them; a call that
        names only the signature's own keywords is bound directly (``bind`` took a third of a small
        optimizer's construction)."""
        if not args and self._keywords.issuperset(kwargs):
            return {name: kwargs[name] for name in self._hyperparameter_keywords if name in kwargs}
        try:
            bound = self.__signature__.bind(params, *args, **kwargs)
        except TypeError as error:
            unknown = [name for name in kwargs if name not in self.__signature__.parameters]
            hints = [f"{name} -> {_OTHER_LIBRARIES_NAMES[name]}" for name in unknown if name in _OTHER_LIBRARIES_NAMES]
            pinned = [name for name in unknown if name in self.pinned]
            message = f"{type(self).__name__}{self.__signature__}: {error}"
            if pinned:
                message += f"; {type(self).__name__} fixes {', '.join(f'{n}={self.pinned[n]!r}' for n in pinned)}"
            if hints:
                message += f" (numadam's names: {', '.join(hints)}; see the conventions in docs/algorithm.md)"
            raise TypeError(message) from None
        return {name: value for name, value in bound.arguments.items()
                if name not in ("params", "schedule") and name not in POLICY_DEFAULTS}

    def _given_bounds(self):
        """Each leaf's ``(low, high)`` as given: numbers (infinite for ``None``) or arrays; or ``None``."""
        if self._policies.bounds is None:
            return None
        sides = []
        for side, given in zip(("low", "high"), self._policies.bounds):
            if given is None or not isinstance(given, (dict, list, tuple)):
                values = [given] * len(self._paths)
            else:
                values = self._treedef.flatten_like(given, f"bounds[{0 if side == 'low' else 1}]")
            sides.append([leaf_bound(v, path, side) for v, path in zip(values, self._paths)])
        return list(zip(*sides))

    # -- hyperparameters ---------------------------------------------------------------------

    def _checked_hyperparameters(self, values):
        checked = {h.name: h.check(h.name, values[h.name]) for h in self.algorithm.hyperparameters}
        for name, value in self.pinned.items():
            if checked[name] != value:
                raise ValueError(f"{type(self).__name__} always has {name}={value!r}; got {name}={values[name]!r}")
        self.algorithm.check_combination_of(checked)
        return checked

    def _set_hyperparameters(self, changes):
        with self._lock:
            settings = self._settings
            checked = {name: self.algorithm.checked(name, value) for name, value in changes.items()}
            merged = {**settings.own, **checked}
            self.algorithm.check_combination_of(merged)
            for group in settings.groups:
                self.algorithm.check_combination_of({**merged, **group.overrides})
            settings.assign(merged)

    def _checked_group_overrides(self, group, overrides):
        checked = {}
        for name, value in overrides.items():
            if name not in self.algorithm.names:
                raise TypeError(f"{group!r} sets {name!r}, which {self.algorithm.title} does not have; "
                                f"its per-group hyperparameters are {self._per_group_names()}")
            checked[name] = self.checked_group_value(name, value)
        self.algorithm.check_combination_of({**self._settings.own, **checked})
        return checked

    def _per_group_names(self):
        return [h.name for h in self.algorithm.hyperparameters if h.per_group and h.name not in self.pinned]

    def checked_group_value(self, name, value):
        """``value`` checked as group hyperparameter ``name`` (for :class:`numadam.Group`)."""
        hyper = self.algorithm.hyperparameter(name)
        if not hyper.per_group or name in self.pinned:
            raise ValueError(f"{name} is set per optimizer, not per Group; "
                             f"the per-group hyperparameters are {self._per_group_names()}")
        return hyper.check(name, value)

    def hyperparameters(self):
        """The current hyperparameters (this class's signature's) as a dict."""
        return {name: value for name, value in self._settings.own.items() if name not in self.pinned}

    @property
    def schedule(self):
        """The learning-rate schedule that sets ``lr`` before each step, or ``None``."""
        return self._settings.schedule

    @schedule.setter
    def schedule(self, value):
        self._settings.schedule = validate.check_schedule(value)

    @property
    def groups(self):
        """The :class:`numadam.Group` s of the parameter tree, in tree order."""
        return list(self._settings.groups)

    @property
    def policies(self):
        """The policy options (clipping, non-finite gradients, bounds, EMA, accumulation) as a dict."""
        return dict(self._policy_options)

    # -- the step ------------------------------------------------------------------------------

    def step(self, grads=None):
        """Apply one step with ``grads``, a tree shaped like ``params`` (groups left out).

        Every gradient is checked (structure, backend, dtype, shape, no memory
        shared with what the step writes) before anything is written; on error
        nothing has changed. With a schedule, ``lr`` becomes
        ``schedule(step_count)`` once the gradients have passed their checks.

        A gradient ``None`` leaves its parameter and its state as they are (as
        torch does for a parameter whose ``grad`` is ``None``); a step in which
        every gradient is ``None`` changes nothing and is not counted. For torch
        parameters, ``step()`` with no argument reads each parameter's ``.grad``.

        ``grads`` has the parameters' structure: a dict with their keys, a list
        where they have a list, a tuple where they have a tuple; anything else
        raises before anything is written. The very gradient arrays of the step
        before keep their checked plan; for parameters that are one tuple of
        arrays, the same tuple of them (buffers refilled in place) is recognized
        at once. New NumPy arrays (and torch CPU tensors' new ``.grad``) laid out
        as the step before's (type, dtype, shape, strides), aligned and clear of
        what the step writes, move that plan onto themselves: a few checks, not
        a new plan.
        Over Dask arrays, which cannot be written, a step replaces the
        parameters and returns the new tree (``params``).
        """
        lock = self._lock
        lock.acquire()  # as ``with lock``, whose lookups cost 0.08 us of a 3.5 us step at 1e3
        try:
            replaced = self._engine.step(grads)
        finally:
            lock.release()
        return None if replaced is None else self._treedef.unflatten(replaced)

    @property
    def engine(self):
        """The engine that holds this optimizer's state and takes its steps
        (:class:`numadam.engine.local.LocalEngine`, or :class:`numadam.engine.dask.DaskEngine` for
        Dask arrays), for code that compiles the steps itself: a compiled ``minimize`` solve asks
        it for its norms kernel (:meth:`~numadam.engine.local.LocalEngine.norms_kernel`)."""
        return self._engine

    def zero_grad(self, set_to_none=True):
        """Clear the ``.grad`` of torch parameters, as ``torch.optim.Optimizer.zero_grad``: set it to
        ``None`` (the default), or fill it with zeros in place."""
        self._engine.zero_grad(set_to_none)

    @property
    def step_count(self):
        """Updates taken so far (the next update is number ``step_count + 1``); calls that only
        accumulated a gradient or were skipped do not count. (On CUDA with ``nonfinite="skip"``
        the GPU counts them: reading this waits for it.)"""
        return self._engine.counts()[0]

    @property
    def skipped_steps(self):
        """Calls of :meth:`step` skipped for a non-finite gradient (``nonfinite="skip"``)."""
        return self._engine.counts()[1]

    @property
    def params(self):
        """The parameter arrays as given (torch tensors stay tensors), in their tree (groups as plain subtrees).

        Dask arrays cannot be written: each step replaces them, and this is the current tree."""
        return self._treedef.unflatten(self._engine.params)

    def ema_params(self):
        """The moving average of the parameters (``ema=d``), as new arrays in the tree of ``params``.

        With ``ema_bias_correction``, divided by :math:`1 - d^t` (:math:`t` the
        updates so far); training is not disturbed. Over Dask arrays, lazy Dask
        arrays of the averages held with the parameters.
        """
        policies = self._policies
        if policies.ema is None:
            raise ValueError("ema_params() needs ema=d (the decay of the moving average) at construction")
        with self._lock:
            step = self._engine.counts()[0]
            correction = 1.0 - policies.ema ** step if policies.ema_bias_correction and step else 1.0
            return self._treedef.unflatten(self._engine.ema_params(correction))

    def _with_state(self, name):
        """Each parameter's array, its state ``name`` and its group's hyperparameters (a named tuple):
        what the methods an algorithm adds read (:attr:`numadam.core.algorithm.Algorithm.methods`)."""
        hypers, _ = self._settings.per_group()
        return zip(self._engine.arrays, self._engine.state_leaves(name),
                   [hypers[group] for group in self._settings.leaf_groups])

    def __repr__(self):
        options = ", ".join(f"{name}={value!r}" for name, value in self.hyperparameters().items())
        groups = f", {len(self._settings.groups)} groups" if self._settings.groups else ""
        return (f"{type(self).__name__}({options}; {len(self._paths)} arrays on {self._engine.name}"
                f"{groups}, step {self._engine.counts()[0]})")

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self, lazy=False):
        """Plain data: hyperparameters, step count, and copies of the state arrays.

        Over Dask arrays the state is gathered (computed) to NumPy or CuPy arrays,
        or with ``lazy=True`` given as Dask arrays that read the persisted state (no copy): save a
        state too large for one machine that way, with ``dask.array.to_zarr``.

        The state arrays (for Adam: ``exp_avg``, ``exp_avg_sq`` and, with
        AMSGrad, ``max_exp_avg_sq``) are trees shaped like ``params``, on the
        parameters' backend, in the dtype the state is kept in. With
        ``state_dtype="int8"`` a quantized leaf holds its codes (int8, or uint8
        for state that is never negative) and ``"<name>_scales"`` the float32
        scale of each block of 256 elements in C order (an empty array for a
        leaf kept in float32). :meth:`load_state_dict` converts any of these
        to this optimizer's own ``state_dtype``. Groups add ``"groups"`` (their hyperparameters),
        families with running host values ``"carry"``, schedules with a
        ``state_dict`` method their own. Restore with :meth:`load_state_dict`.
        """
        with self._lock:
            return state_dict(self, lazy)

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict` (NumPy or CuPy arrays alike).

        Everything is checked first; on error the optimizer is unchanged. The
        state is copied into this optimizer's own arrays, so loading needs no
        more memory than the state given. A state without a ``"schedule"`` entry
        leaves this optimizer's schedule as it is.
        """
        with self._lock:
            checked_load(self, state)()

    def save(self, path):
        """Write :meth:`state_dict` to one ``.npz`` file, atomically; or, for a path ending in
        ``.zarr``, to a Zarr store, one file per chunk (Dask state is written by the workers that
        hold it, never gathered; see :func:`numadam.save_state`)."""
        save_state(self.state_dict(lazy=os.fspath(path).endswith(".zarr")), path)

    def load(self, path):
        """Restore the state saved by :meth:`save` (a Zarr store is read chunk by chunk: over Dask
        parameters, straight into their chunks)."""
        self.load_state_dict(load_state(path, lazy=self._engine.lazy_state))

    # -- copies ------------------------------------------------------------------------------

    def __reduce__(self):
        """Pickle and ``copy.deepcopy`` rebuild the optimizer from its arrays: the copy owns
        copies of the parameters and the state, and no address crosses over."""
        with self._lock:
            params = self._treedef.unflatten(self._engine.params, keep_groups=True)
            options = {**self.hyperparameters(), **self._policy_options}
            return _rebuild, (type(self), params, options, self._settings.schedule, self.state_dict())

    def __copy__(self):
        raise TypeError(
            f"copy.copy of a {type(self).__name__} would share its parameter and state arrays with the "
            "original; use copy.deepcopy(optimizer) (or pickle) for an independent optimizer"
        )


def _rebuild(cls, params, options, schedule, state):
    optimizer = cls(params, schedule=schedule, **options)
    optimizer.load_state_dict(state)
    return optimizer
