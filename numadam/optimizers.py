"""The optimizer objects: trees of arrays, updated in place, with owned state.

:class:`Optimizer` is every family's class: a family module only declares its
:class:`~numadam.core.family.Family` and names a subclass (``class NAdam(Optimizer):
family = NADAM``). From the declaration the class gets its signature, a
validated property per hyperparameter, per-group hyperparameters
(:class:`numadam.Group`), ``state_dict``/``load_state_dict``, copying and
pickling.

A step is serialized per optimizer: two threads stepping one optimizer take
turns (no step is lost); separate optimizers step concurrently.
"""

import inspect
import operator
import os
import threading
from collections.abc import Iterator

import numpy as np

from .core import dtypes as _dtypes, validate as _validate
from .engine.device_steps import DeviceSteps
from .targets.dispatch import backend_for
from .core.family import StateKind
from .engine.dask import DaskState, chunk_policy, is_dask_array, skip_or_scale
from .adapters.foreign import adopt, is_tensor
from .core.pipeline import PolicyScalars
from .targets import quantization
from .engine.bucket import QUANTIZED_STATE, Quantized, passes_by_dtype, written_memory
from .core.policies import POLICY_DEFAULTS, checked_policies, global_scale, leaf_bound
from .state_files import load_state, save_state
from .adapters.tree import flatten

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
        self.__doc__ = hyperparameter.doc

    def __get__(self, optimizer, owner=None):
        if optimizer is None:
            return self
        return optimizer._hyper[self.name]

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
    """The optimizer of one :class:`~numadam.core.family.Family` (see the subclasses).

    ``params`` is one array or a dict/list/tuple tree of arrays (subtrees may be
    wrapped in :class:`numadam.Group`), all NumPy or all CUDA arrays, writable
    and not sharing memory. They are updated in place; their layout and
    writability are checked here, once.
    """

    family = None
    #: This class's defaults where they differ from the family's.
    defaults = {}
    #: Hyperparameters this class fixes (they are not in its signature).
    pinned = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        family = cls.family
        if family is None:
            return
        cls._class_defaults = {h.name: cls.defaults.get(h.name, h.default) for h in family.hyperparameters}
        parameters = [inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        parameters += [inspect.Parameter(h.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                         default=cls._class_defaults[h.name])
                       for h in family.hyperparameters if h.name not in cls.pinned]
        parameters.append(inspect.Parameter("schedule", inspect.Parameter.KEYWORD_ONLY, default=None))
        parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
                       for name, default in POLICY_DEFAULTS.items()]
        cls.__signature__ = inspect.Signature(parameters)
        for hyper in family.hyperparameters:
            read_only = not hyper.per_group or hyper.name in cls.pinned
            setattr(cls, hyper.name, _HyperparameterAttribute(hyper, read_only))

    def __init__(self, params, *args, **kwargs):
        family = self.family
        arguments = self._bound_arguments(params, args, kwargs)
        self._lock = threading.RLock()
        self._version = 0
        self._rows_cache = None
        self._assign_hyperparameters(self._checked_hyperparameters({**self._class_defaults, **arguments,
                                                                    **self.pinned}))
        self._schedule = _validate.check_schedule(kwargs.get("schedule"))
        options = {name: kwargs.get(name, default) for name, default in POLICY_DEFAULTS.items()}
        self._policies = checked_policies(**options)
        self._policy_options = options
        if isinstance(params, Iterator):  # model.parameters(): a generator of tensors
            params = list(params)
        given, self._treedef = flatten(params)
        if not given:
            raise ValueError(f"params must hold at least one array; got {params!r}")
        self._groups, leaf_groups = self._treedef.groups()
        self._attach_groups()
        self._paths = self._treedef.paths("params")
        #: The leaves as given (torch tensors, ...) and, when they are not NumPy or CuPy arrays,
        #: what a write through their arrays must tell them (:mod:`numadam.adapters.foreign`).
        self._given = given
        self._dask = None
        if any(map(is_dask_array, given)):
            self._init_dask(given, leaf_groups)
            return
        adopted = adopt(given, self._paths, [True] * len(given))
        self._foreign = adopted if adopted.arrays is not given else None
        self._last_tensor_grads = [], []  # the last .grad tensors read, and their arrays
        #: ``(tensor, address, path)`` of each torch parameter.
        self._tensors = [(leaf, leaf.data_ptr(), path) for leaf, path in zip(given, self._paths) if is_tensor(leaf)]
        leaves = adopted.arrays
        self._backend = backend_for(leaves, self._paths)
        self._infos = [self._backend.describe(leaf) for leaf in leaves]
        for info, path in zip(self._infos, self._paths):
            _validate.check_parameter_dtype(info, path)
            _validate.check_layout(info, path, writable=True)
        _validate.check_disjoint(self._infos, self._paths, leaves, [True] * len(leaves))
        array_type = self._backend.array_type
        for leaf, path in zip(leaves, self._paths):
            if not isinstance(leaf, array_type):
                raise TypeError(
                    f"{path} is a {type(leaf).__name__}; the optimizer objects take "
                    f"{array_type.__module__}.{array_type.__name__} parameters"
                )
        self._leaves = leaves
        #: The scalar row of each leaf: 0 for the optimizer's own, g + 1 for group g.
        self._leaf_rows = np.array([0 if g is None else g + 1 for g in leaf_groups], np.intp)
        self._used_rows = sorted(set(self._leaf_rows.tolist()))
        #: The scalar row each leaf's table rows point at: its group's, or its own (families with norms).
        self._table_rows = list(range(len(leaves))) if family.norms is not None else self._leaf_rows.tolist()
        self._step = 0
        self._micro_step = 0  # gradients accumulated since the last update
        self._skipped = 0
        self._device_steps = None  # CUDA with nonfinite="skip": see numadam.engine.device_steps
        self._carries = {}
        self._carry = [family.initial_carry() for _ in range(len(self._groups) + 1)]
        self._bounds = self._prepared_bounds()
        self._check_storage_options([info.dtype for info in self._infos])
        self._install_passes(self._hyper_tuple(self._hyper))

    def _init_dask(self, leaves, leaf_groups):
        """Parameters that are Dask arrays: a :class:`~numadam.engine.dask.DaskState` steps them."""
        self._check_storage_options([leaf.dtype for leaf in leaves])
        self._dask = DaskState(type(self), leaves, self._paths, self._hyper_tuple(self._hyper), self._policies,
                               self._given_bounds())
        self._step = self._skipped = self._micro_step = 0
        self._device_steps = None
        self._carry = [self.family.initial_carry() for _ in range(len(self._groups) + 1)]
        #: The hyperparameter row of each leaf: 0 for the optimizer's own, g + 1 for group g.
        self._leaf_rows = np.array([0 if g is None else g + 1 for g in leaf_groups], np.intp)
        self._used_rows = sorted(set(self._leaf_rows.tolist()))

    def _dask_step(self, grads):
        dask_state = self._dask
        policies = self._policies
        dask_state.check_alive()
        grad_paths = self._grad_paths()
        leaves = dask_state.checked_grads(self._treedef.flatten_like(grads, "grads"), grad_paths)
        micro_step = self._micro_step + 1
        phase = policies.phase(micro_step)
        grad_scale = 1.0
        if policies.needs_reduction(phase):
            squares, bad = dask_state.reduce(leaves, policies, phase)
            grad_scale = skip_or_scale(policies, squares, bad, grad_paths)
            if grad_scale is None:
                self._skipped += 1
                return self.params
        if phase == "add":  # only accumulated: no update is taken
            dask_state.accumulate(leaves)
            self._micro_step = micro_step
            return self.params
        self._apply_schedules()
        step = self._step + 1
        _, carry, _ = self._step_scalars(step)
        rows = [row._asdict() for row in self._rows()[0]]
        dask_state.step(leaves, step, [rows[r] for r in self._leaf_rows], [self._carry[r] for r in self._leaf_rows],
                        chunk_policy(policies, grad_scale))
        self._step, self._carry, self._micro_step = step, carry, 0
        return self.params

    def _bound_arguments(self, params, args, kwargs):
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

    def _prepared_bounds(self):
        """Each leaf's ``(low, high)`` as arrays of its dtype and shape (stride 0 for a number), or ``None``."""
        given = self._given_bounds()
        return None if given is None else [self._leaf_bounds(k, low, high) for k, (low, high) in enumerate(given)]

    def _check_storage_options(self, dtypes):
        """The precision options and ``complex_mode`` against the parameters' ``dtypes``."""
        self._check_precision_options(dtypes)
        self._check_complex_mode(dtypes)

    def _check_precision_options(self, dtypes):
        """``master_weights`` and ``stochastic_rounding`` round 16-bit parameters; a 16-bit state holds real numbers
        of float32 arithmetic (rounding float64 to bfloat16 through float32 would round twice). ``dtypes``:
        the parameters'."""
        policies = self._policies
        wide = [(path, dtype) for dtype, path in zip(dtypes, self._paths) if not _dtypes.is_low_precision(dtype)]
        for name in ("master_weights", "stochastic_rounding"):
            if getattr(policies, name) and wide:
                raise ValueError(f"{name} rounds float16 and bfloat16 parameters; {wide[0][0]} is {wide[0][1]}")
        if policies.state_dtype is not None and policies.state_dtype.itemsize < 4:
            complex_leaves = [path for dtype, path in zip(dtypes, self._paths) if dtype.kind == "c"]
            if complex_leaves:
                raise ValueError(f"state_dtype={policies.state_dtype.name!r} holds real numbers; "
                                 f"{complex_leaves[0]} is complex")
        if policies.state_dtype is not None and policies.state_dtype.itemsize == 2:
            doubles = [path for dtype, path in zip(dtypes, self._paths) if dtype.itemsize // (
                2 if dtype.kind == "c" else 1) == 8]
            if doubles:
                raise ValueError(f"state_dtype='bfloat16' rounds float32 arithmetic; {doubles[0]} is float64 "
                                 "(keep its float64 state, or take state_dtype='int8')")
        if policies.state_dtype == QUANTIZED_STATE:
            self._check_quantizable()

    def _check_complex_mode(self, dtypes):
        """``complex_mode="magnitude"`` needs a family with magnitude state, and no policy that reads
        or writes complex numbers as pairs of reals. ``dtypes``: the parameters'."""
        policies = self._policies
        complex_leaves = [path for dtype, path in zip(dtypes, self._paths) if dtype.kind == "c"]
        if policies.complex_mode != "magnitude" or not complex_leaves:
            return
        from .families import families

        family = self.family
        if not any(kind.magnitude for kind in family.state) or family.norms is not None:
            takes = [cls.__name__ for cls in families().values()
                     if any(kind.magnitude for kind in cls.family.state) and cls.family.norms is None]
            raise ValueError(f"complex_mode='magnitude' shares a second moment between the parts of a complex "
                             f"number; {family.title} has none to share (it is available for {', '.join(takes)})")
        pairs_only = {"clip_global_norm": policies.clip_global_norm is not None,
                      "clip_value": policies.clip_value is not None,
                      "nonfinite": policies.nonfinite != "propagate", "ema": policies.ema is not None,
                      "accumulate": policies.accumulate > 1, "state_dtype": policies.state_dtype is not None}
        taken = [name for name, used in pairs_only.items() if used]
        if taken:
            raise ValueError(f"complex_mode='magnitude' is not available with {taken[0]}= (it reads complex "
                             f"parameters as pairs of reals); {complex_leaves[0]} is complex")

    def _check_quantizable(self):
        """8-bit state quantizes moments, updated in the one pass that rescales their blocks."""
        family = self.family
        if family.norms is not None:
            raise ValueError(f"state_dtype='int8' is not available for {family.title}: its first pass "
                             "updates the moments to take their norms, and 8-bit moments are rescaled "
                             "block by block in the pass that writes them; use 'bfloat16'")
        iterates = [kind.name for kind in family.state if isinstance(kind.initial, str)]
        if iterates:
            raise ValueError(f"state_dtype='int8' is not available for {family.title}: its state "
                             f"{iterates[0]!r} is an iterate (it starts at the parameters), which 8-bit "
                             "codes cannot carry; use 'bfloat16'")

    def _leaf_bounds(self, k, low, high):
        leaf, path, backend = self._leaves[k], self._paths[k], self._backend
        if leaf.dtype.kind == "c":
            raise TypeError(f"bounds apply to real parameters; {path} is {leaf.dtype}")
        arrays = []
        for side, value in (("low", low), ("high", high)):
            if isinstance(value, float):
                one = backend.zeros(1, leaf.dtype)
                one[...] = value
                arrays.append(backend.broadcast(one.reshape(()), leaf.shape))
                continue
            backend_for([leaf, value], [path, f"the {side} bound of {path}"])
            if value.shape != leaf.shape:
                raise ValueError(f"the {side} bound of {path} must have its shape {leaf.shape}; got {value.shape}")
            own = backend.zeros(leaf.size, leaf.dtype).reshape(leaf.shape)
            backend.assign(own, value)
            if bool((own != own).any()):
                raise ValueError(f"the {side} bound of {path} must not hold NaN")
            arrays.append(own)
        if bool((arrays[0] > arrays[1]).any()):
            raise ValueError(f"the bounds of {path} must have low <= high")
        return tuple(arrays)

    def _attach_groups(self):
        for group in self._groups:
            group.attach(self, self._checked_group_overrides(group, group.overrides))

    def _checked_group_overrides(self, group, overrides):
        family = self.family
        checked = {}
        for name, value in overrides.items():
            if name not in family.names:
                raise TypeError(f"{group!r} sets {name!r}, which {family.title} does not have; "
                                f"its per-group hyperparameters are {self._per_group_names()}")
            checked[name] = self.checked_group_value(name, value)
        self._check_combination({**self._hyper, **checked})
        return checked

    def _per_group_names(self):
        return [h.name for h in self.family.hyperparameters if h.per_group and h.name not in self.pinned]

    def checked_group_value(self, name, value):
        """``value`` checked as group hyperparameter ``name`` (for :class:`numadam.Group`)."""
        hyper = self.family.hyperparameter(name)
        if not hyper.per_group or name in self.pinned:
            raise ValueError(f"{name} is set per optimizer, not per Group; "
                             f"the per-group hyperparameters are {self._per_group_names()}")
        return hyper.check(name, value)

    def _install_passes(self, h):
        kinds = self.family.state_kinds(h)
        self._passes = passes_by_dtype(self._backend, self.family, kinds, self._leaves, self._infos,
                                       self._paths, self._table_rows, h, self._policies, self._bounds)
        self._written = written_memory(self._backend, [a for p in self._passes for a in p.written_arrays()])
        self._locations = [None] * len(self._leaves)
        for dtype_pass in self._passes:
            for local, k in enumerate(dtype_pass.indices):
                self._locations[k] = (dtype_pass, local)

    # -- hyperparameters ---------------------------------------------------------------------

    def _checked_hyperparameters(self, values):
        checked = {h.name: h.check(h.name, values[h.name]) for h in self.family.hyperparameters}
        for name, value in self.pinned.items():
            if checked[name] != value:
                raise ValueError(f"{type(self).__name__} always has {name}={value!r}; got {name}={values[name]!r}")
        self._check_combination(checked)
        return checked

    def _check_combination(self, values):
        if self.family.check_combination is not None:
            self.family.check_combination(self._hyper_tuple(values))

    def _hyper_tuple(self, values):
        return self.family.Hyper(**values)

    def _assign_hyperparameters(self, values):
        self._hyper = values
        self._version += 1

    def _set_hyperparameters(self, changes):
        with self._lock:
            checked = {name: self.family.checked(name, value) for name, value in changes.items()}
            merged = {**self._hyper, **checked}
            self._check_combination(merged)
            for group in self._groups:
                self._check_combination({**merged, **group.overrides})
            self._assign_hyperparameters(merged)

    @property
    def schedule(self):
        """The learning-rate schedule that sets ``lr`` before each step, or ``None``."""
        return self._schedule

    @schedule.setter
    def schedule(self, value):
        self._schedule = _validate.check_schedule(value)

    @property
    def step_count(self):
        """Updates taken so far (the next update is number ``step_count + 1``); calls that only
        accumulated a gradient or were skipped do not count. (On CUDA with ``nonfinite="skip"``
        the GPU counts them: reading this waits for it.)"""
        self._learn_device_steps(wait=True)
        return self._step

    @property
    def skipped_steps(self):
        """Calls of :meth:`step` skipped for a non-finite gradient (``nonfinite="skip"``)."""
        self._learn_device_steps(wait=True)
        return self._skipped

    @property
    def policies(self):
        """The policy options (clipping, non-finite gradients, bounds, EMA, accumulation) as a dict."""
        return dict(self._policy_options)

    @property
    def params(self):
        """The parameter arrays as given (torch tensors stay tensors), in their tree (groups as plain subtrees).

        Dask arrays cannot be written: each step replaces them, and this is the current tree."""
        if self._dask is not None:
            return self._treedef.unflatten(self._dask.params)
        return self._treedef.unflatten(self._given)

    @property
    def groups(self):
        """The :class:`numadam.Group` s of the parameter tree, in tree order."""
        return list(self._groups)

    def hyperparameters(self):
        """The current hyperparameters (this class's signature's) as a dict."""
        return {name: value for name, value in self._hyper.items() if name not in self.pinned}

    def __repr__(self):
        options = ", ".join(f"{name}={value!r}" for name, value in self.hyperparameters().items())
        groups = f", {len(self._groups)} groups" if self._groups else ""
        where = "dask" if self._dask is not None else self._backend.name
        return (f"{type(self).__name__}({options}; {len(self._given)} arrays on {where}"
                f"{groups}, step {self._step})")

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

        The very gradient arrays of the step before keep their checked plan; the
        same tuple of them (buffers refilled in place) is recognized at once.
        """
        with self._lock:
            if self._dask is not None:
                return self._dask_step(grads)
            foreign = self._foreign
            passes = self._passes
            plans = self._bound_plans(grads)
            if any(p.absent for p in passes):
                self._check_gradients_may_be_absent()
                if all(plan is None for plan in plans):
                    return
            if foreign is not None:
                self._check_tensors_in_place()
                with foreign.launch():
                    self._step_plans(plans)
                foreign.written()
            else:
                self._step_plans(plans)

    def _bound_plans(self, grads):
        """Each pass's plan for ``grads`` (every gradient checked), ``None`` for a pass without one.

        A flat list of the last step's very arrays was checked then: one identity pass finds it.
        """
        foreign = self._foreign
        passes = self._passes
        if (len(passes) == 1 and foreign is None and self._treedef.leaves_only
                and type(grads) in (list, tuple) and passes[0].is_bound_to(grads)):
            return [passes[0].last_plan]
        if grads is None:
            leaves = self._tensor_grads()
        else:
            leaves = self._treedef.flatten_like(grads, "grads")
            if foreign is not None:
                leaves = adopt(leaves, self._grad_paths(), [False] * len(leaves)).arrays
        if len(passes) == 1:
            return [passes[0].bind(leaves, self._written)]
        return [p.bind([leaves[k] for k in p.indices], self._written) for p in passes]

    def _step_plans(self, plans):
        policies = self._policies
        if policies.plain and self.family.norms is None:  # the common case, kept short
            self._apply_schedules()
            step = self._step + 1
            scalars, carry, flags = self._step_scalars(step)
            for dtype_pass, plan in zip(self._passes, plans):
                if plan is not None:
                    dtype_pass.run(plan, dtype_pass.spec(flags), scalars)
            self._step = step
            self._carry = carry
            return
        self._step_with_policies(plans)

    def _check_gradients_may_be_absent(self):
        """A gradient may be ``None`` unless a policy reduces or accumulates over every parameter,
        the family has norms, or the state is 8-bit."""
        policies = self._policies
        if (policies.reduces or policies.accumulate > 1 or self.family.norms is not None
                or any(p.quantized for p in self._passes)):
            k = next(p.indices[p.absent[0]] for p in self._passes if p.absent)
            raise ValueError(f"{self._grad_paths()[k]} is None; with clipping, a non-finite policy, accumulation, "
                             "8-bit state or a family with norms every parameter needs a gradient")

    def _tensor_grads(self):
        """Each torch parameter's ``.grad`` (``None`` where it has none), adopted."""
        if len(self._tensors) != len(self._given):
            raise TypeError(f"{type(self).__name__}.step() needs grads: only torch parameters carry their "
                            "gradient (.grad), and these are not all torch tensors; pass a tree of gradients "
                            "shaped like params")
        tensors = [tensor.grad for tensor in self._given]
        last_tensors, last_grads = self._last_tensor_grads
        if len(tensors) == len(last_tensors) and all(map(operator.is_, tensors, last_tensors)):
            return last_grads  # the same gradient tensors (filled in place): the same arrays, the same plan
        present = [k for k, grad in enumerate(tensors) if grad is not None]
        paths = self._paths
        arrays = adopt([tensors[k] for k in present], [f"{paths[k]}.grad" for k in present],
                       [False] * len(present)).arrays
        grads = [None] * len(tensors)
        for k, array in zip(present, arrays):
            grads[k] = array
        self._last_tensor_grads = tensors, grads
        return grads

    def _check_tensors_in_place(self):
        """torch parameters still own the memory the optimizer updates (``p.data = ...`` moves it)."""
        for tensor, address, path in self._tensors:
            if tensor.data_ptr() != address:
                raise ValueError(f"{path} no longer holds the memory this optimizer updates (was p.data "
                                 "reassigned?); copy new values in place with p.data.copy_(...), or make a new "
                                 "optimizer")

    def zero_grad(self, set_to_none=True):
        """Clear the ``.grad`` of torch parameters, as ``torch.optim.Optimizer.zero_grad``: set it to
        ``None`` (the default), or fill it with zeros in place."""
        if not self._tensors:
            raise TypeError(f"{type(self).__name__}.zero_grad() clears torch parameters' .grad; these "
                            "parameters carry no gradient (pass gradients to step instead)")
        for tensor, _, _ in self._tensors:
            if tensor.grad is not None:
                if set_to_none:
                    tensor.grad = None
                else:
                    tensor.grad.detach_().zero_()

    def _grad_paths(self):
        return ["grads" + path[len("params"):] for path in self._paths]

    def _step_with_policies(self, plans):
        """A step through the policies: accumulate, reduce (and raise, skip or clip), the family's
        norms pass where it has one, then the update."""
        policies = self._policies
        if self._device_steps is None and self._counts_on_device():
            self._device_steps = DeviceSteps(self._backend, self._step, self._skipped)
            self._carries = {self._step: self._carry}
        if self._device_steps is not None:
            self._device_step(plans)
            return
        micro_step = self._micro_step + 1
        phase = policies.phase(micro_step)
        step = self._step + 1
        if phase != "add":
            self._apply_schedules()  # a function of step_count: setting it again after a skip changes nothing
        scalars, carry, flags = self._step_scalars(step)
        if self.family.norms is not None:  # one row per leaf (its group's, for now), as one array
            scalars = np.array(scalars, np.float64)[self._leaf_rows]
        grad_scale = 1.0
        if policies.needs_reduction(phase):
            reduction = policies.policy(phase)
            squares, bad = self._reduced(plans, flags, reduction,
                                         _rows_with_policy(scalars, reduction, policies.scalars(1.0, step)))
            if bad.any():
                if policies.nonfinite == "raise":
                    path = "grads" + self._paths[int(np.flatnonzero(bad)[0])][len("params"):]
                    raise FloatingPointError(f"{path} holds NaN or infinity (nonfinite='raise'); nothing was changed")
                if policies.nonfinite == "skip":
                    self._skipped += 1
                    return
            if policies.clip_global_norm is not None and phase != "add":
                grad_scale = global_scale(policies.clip_global_norm, float(sum(squares.tolist())))
        policy = policies.policy(phase)
        extra = policies.scalars(grad_scale, step)
        if self.family.norms is not None and phase != "add":
            scalars, policy = self._norms_pass(plans, flags, policy, scalars, extra)
        scalars = _rows_with_policy(scalars, policy, extra)
        for dtype_pass, plan in zip(self._passes, plans):
            if plan is not None:
                dtype_pass.run(plan, dtype_pass.spec(flags, policy), scalars)
        if phase == "add":  # only accumulated: no update was taken
            self._micro_step = micro_step
            return
        self._step = step
        self._carry = carry
        self._micro_step = 0

    def _counts_on_device(self):
        """Whether the GPU decides skips and counts steps: CUDA, ``nonfinite="skip"``, one dtype,
        no accumulation, no norms pass and no 8-bit state (those skip on the host, which then waits
        for the pre-pass)."""
        policies = self._policies
        return (self._backend.name == "cuda" and policies.nonfinite == "skip" and policies.accumulate == 1
                and self.family.norms is None and len(self._passes) == 1 and not self._passes[0].quantized)

    def _device_step(self, plans):
        """A step whose skipping and step number the GPU decides (see :mod:`numadam.engine.device_steps`)."""
        steps = self._device_steps
        candidates = steps.candidates()
        self._learn_device_steps(wait=False)
        policies = self._policies
        policy = policies.policy("")
        _, flags = self._rows()
        carry = self._carries[steps.known_applied]
        blocks = []
        for step in candidates:
            rows = self._scheduled_rows(step - 1)
            block = []
            for row, (h, row_carry) in enumerate(zip(rows, carry)):
                values, carry_after = self.family.step_scalars(step, h, row_carry)
                block.append(values)
                carry = carry[:row] + [carry_after] + carry[row + 1:]
            self._carries[step] = carry
            blocks.append(_rows_with_policy(block, policy, policies.scalars(1.0, step)))  # the GPU writes the scale
        (dtype_pass,), (plan,) = self._passes, plans
        starts, stops, _ = dtype_pass.pieces(plan)
        scale_slot = len(self.family.Scalars._fields) + PolicyScalars._fields.index("grad_scale")
        dtype_pass.backend.skip_or_step(plan, dtype_pass.spec(flags, policy), blocks, starts, stops,
                                        steps.control, candidates[0], policies.clip_global_norm, scale_slot)
        steps.after_call()

    def _scheduled_rows(self, step_count):
        """The rows' hyperparameters once the schedules have set ``lr`` for ``step_count``, unchanged here."""
        own = dict(self._hyper)
        if self._schedule is not None:
            own["lr"] = self.family.checked("lr", self._schedule(step_count))
        rows = [own]
        for group in self._groups:
            overrides = group.overrides
            if group.schedule is not None:
                overrides["lr"] = self.family.checked("lr", group.schedule(step_count))
            rows.append({**own, **overrides})
        return [self._hyper_tuple(values) for values in rows]

    def _learn_device_steps(self, wait):
        """Take the counts the GPU reported (waiting for exact ones if ``wait``) as the host's own."""
        steps = self._device_steps
        if steps is None:
            return
        if wait:
            steps.synchronize()
        else:
            steps._absorb(wait=False)
        if steps.known_applied != self._step or steps.known_skipped != self._skipped:
            self._step, self._skipped = steps.known_applied, steps.known_skipped
            self._carry = self._carries[self._step]
            self._carries = {step: carry for step, carry in self._carries.items() if step >= self._step}
            self._apply_schedules()

    def _norms_pass(self, plans, flags, policy, scalars, extra):
        """The family's first pass (LAMB's moments and norms): it consumes the gradient; returns each
        leaf's scalar row for the update and the policy left for it (bounds, moving average)."""
        first = policy._replace(bounds=False, ema=False, reduction="norms")
        params, directions = self._reduced(plans, flags, first, _rows_with_policy(scalars, first, extra))
        rows, _ = self._rows()
        scalars = self.family.norms.scalars(scalars, rows, self._leaf_rows, params, directions)
        return scalars, policy._replace(accumulate="", grad_scale=False, clip_value=False)

    def _reduced(self, plans, flags, policy, scalars):
        """Per leaf (in leaf order), the pre-pass's two sums (``policy.reduction`` says which)."""
        if len(self._passes) == 1:  # every leaf, in order
            per_leaf = self._passes[0].reduce(plans[0], flags, policy, scalars)
            return per_leaf[:, 0], per_leaf[:, 1]
        squares = np.zeros(len(self._leaves))
        bad = np.zeros(len(self._leaves))
        for dtype_pass, plan in zip(self._passes, plans):
            per_leaf = dtype_pass.reduce(plan, flags, policy, scalars)
            squares[dtype_pass.indices] = per_leaf[:, 0]
            bad[dtype_pass.indices] = per_leaf[:, 1]
        return squares, bad

    def ema_params(self):
        """The moving average of the parameters (``ema=d``), as new arrays in the tree of ``params``.

        With ``ema_bias_correction``, divided by :math:`1 - d^t` (:math:`t` the
        updates so far); training is not disturbed. Over Dask arrays, lazy Dask
        arrays of the averages held with the parameters.
        """
        if self._policies.ema is None:
            raise ValueError("ema_params() needs ema=d (the decay of the moving average) at construction")
        with self._lock:
            correction = 1.0
            if self._policies.ema_bias_correction and self._step:
                correction = 1.0 - self._policies.ema ** self._step
            if self._dask is not None:  # lazy: Dask arrays over the held averages
                averages = [average / average.dtype.type(correction) for average in self._dask.state["ema"]]
            else:
                averages = [p.policy_state["ema"][local] / p.compute.type(correction) for p, local in self._locations]
            return self._treedef.unflatten(averages)

    def _apply_schedules(self):
        """Set ``lr`` (and each scheduled group's) from the schedules, all checked before any is set."""
        if self._schedule is None and not self._groups:
            return
        step = self._step
        new_lr = None if self._schedule is None else self.family.checked("lr", self._schedule(step))
        group_lrs = [(group, self.family.checked("lr", group.schedule(step)))
                     for group in self._groups if group.schedule is not None]
        if new_lr is not None:
            self._assign_hyperparameters({**self._hyper, "lr": new_lr})
        for group, lr in group_lrs:
            group.set_overrides({**group.overrides, "lr": lr})

    def _rows(self):
        """The hyperparameters of each scalar row (the optimizer's, then each group's) as
        named tuples, and the union of the flags of the rows in use; recomputed only
        after a hyperparameter changed."""
        key = (self._version, tuple(group._version for group in self._groups))
        if self._rows_cache is None or self._rows_cache[0] != key:
            own = self._hyper
            rows = [self._hyper_tuple(own)] + [self._hyper_tuple({**own, **g.overrides}) for g in self._groups]
            flags = self.family.union_flags([rows[r] for r in self._used_rows])
            self._rows_cache = key, rows, flags
        return self._rows_cache[1:]

    def _step_scalars(self, step):
        """Per-row scalars of step ``step``, the carry after it, and the flags of the kernels."""
        rows, flags = self._rows()
        if len(rows) == 1:  # no groups: the common case, kept short (this runs every step)
            values, carry = self.family.step_scalars(step, rows[0], self._carry[0])
            return [values], [carry], flags
        scalars, carry = [], []
        for h, row_carry in zip(rows, self._carry):
            values, row_carry = self.family.step_scalars(step, h, row_carry)
            scalars.append(values)
            carry.append(row_carry)
        return scalars, carry, flags

    # -- state ---------------------------------------------------------------------------------

    def _present_kinds(self):
        return self._passes[0].kinds

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
            self._learn_device_steps(wait=True)
            state = {"optimizer": type(self).__name__, "family": self.family.name, "step": self._step,
                     "hyperparameters": dict(self._hyper)}
            if self._dask is not None:
                for name, leaves in self._dask.gathered_state(lazy).items():
                    state[name] = self._treedef.unflatten(leaves)
            else:
                self._add_pass_state(state)
            if self._groups:
                state["groups"] = [group.overrides for group in self._groups]
                schedules = [_schedule_state(group.schedule) for group in self._groups]
                if any(s is not None for s in schedules):
                    state["group_schedules"] = schedules
            if self.family.carry is not None:
                state["carry"] = [list(values) for values in self._carry]
            if self._policies.nonfinite == "skip":
                state["skipped_steps"] = self._skipped
            if self._policies.accumulate > 1:
                state["micro_step"] = self._micro_step
            schedule_state = _schedule_state(self._schedule)
            if schedule_state is not None:
                state["schedule"] = schedule_state
            return state

    def _add_pass_state(self, state):
        """Copies of the kernel passes' state arrays (and 8-bit scales, policy buffers) into ``state``."""
        for kind in self._present_kinds():
            state[kind.name] = self._treedef.unflatten(
                [p.state[kind.name][local].copy() for p, local in self._locations])
            if any(p.quantized for p in self._passes):
                state[f"{kind.name}_scales"] = self._treedef.unflatten(
                    [p.block_scales(kind.name, local).copy() if p.quantized else np.zeros(0, np.float32)
                     for p, local in self._locations])
        for name in self._passes[0].policy_buffers:  # "accumulator", "ema"
            state[name] = self._treedef.unflatten(
                [p.policy_state[name][local].copy() for p, local in self._locations])

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict` (NumPy or CuPy arrays alike).

        Everything is checked first; on error the optimizer is unchanged. The
        state is copied into this optimizer's own arrays, so loading needs no
        more memory than the state given. A state without a ``"schedule"`` entry
        leaves this optimizer's schedule as it is.
        """
        with self._lock:
            self._load_state_dict(state)

    def _load_state_dict(self, state):
        family = self.family
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(); got {type(state).__name__}")
        if state.get("family", family.name) != family.name:
            raise ValueError(f"state is for {state['family']!r} ({state.get('optimizer')}); "
                             f"this is {type(self).__name__} ({family.name!r})")
        missing = [key for key in ("step", "hyperparameters") if key not in state]
        if missing:
            raise ValueError(f"state is missing {missing}")
        step = state["step"]
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"state['step'] must be an integer >= 0; got {step!r}")
        if step < 0:
            raise ValueError(f"state['step'] must be an integer >= 0; got {step!r}")
        hyper = self._checked_state_hyperparameters(state["hyperparameters"])
        groups = self._checked_state_groups(state, hyper)
        carry = self._checked_state_carry(state)
        counts = self._checked_state_counts(state)
        kinds = family.state_kinds(self._hyper_tuple(hyper))
        install = self._checked_dask_state(state, kinds) if self._dask is not None \
            else self._checked_pass_state(state, kinds, hyper)
        schedule_states = [(self._schedule, state.get("schedule"))]
        if "group_schedules" in state:
            schedule_states += list(zip([g.schedule for g in self._groups], state["group_schedules"]))
        undo = []
        try:
            for schedule, schedule_state in schedule_states:
                undo.append(_load_schedule_state(schedule, schedule_state))
            install()
        except BaseException:
            for restore in undo:
                restore()
            raise
        self._assign_hyperparameters(hyper)
        for group, overrides in zip(self._groups, groups):
            group.set_overrides(overrides)
        self._carry = carry
        self._skipped, self._micro_step = counts
        self._step = int(step)
        self._device_steps = None  # counted on the host again until the next step

    def _checked_pass_state(self, state, kinds, hyper):
        """Check the state's arrays for the kernel passes; return what copies them in."""
        arrays = {kind.name: self._checked_state_arrays(state, kind) for kind in kinds}
        policy_arrays = {name: self._checked_state_arrays(state, StateKind(name, ""))
                         for name in self._passes[0].policy_buffers}

        def install():
            self._reshape_state(kinds, self._hyper_tuple(hyper))
            for name, leaves in arrays.items():
                for (dtype_pass, local), source in zip(self._locations, leaves):
                    dtype_pass.load_state(name, local, source)
            for name, leaves in policy_arrays.items():
                for (dtype_pass, local), source in zip(self._locations, leaves):
                    dtype_pass.backend.assign(dtype_pass.policy_state[name][local], source)
        return install

    def _checked_dask_state(self, state, kinds):
        """Check the state's arrays for Dask parameters; return what scatters them into their chunks."""
        dask_state = self._dask
        if [kind.name for kind in kinds] != [kind.name for kind in dask_state.kinds]:
            raise ValueError(f"state keeps {[k.name for k in kinds]} but this optimizer keeps "
                             f"{[k.name for k in dask_state.kinds]}: make it with the same hyperparameters")
        arrays = {}
        for name in dask_state.names:  # the family's state, then the optimizer's own arrays (ema, ...)
            if name not in state:
                raise ValueError(f"state is missing {name!r}")
            root = f"state[{name!r}]"
            arrays[name] = dask_state.checked_state(name, self._treedef.flatten_like(state[name], root),
                                                    self._treedef.paths(root))
        return lambda: dask_state.load(arrays)

    def _reshape_state(self, kinds, h):
        """Keep exactly the state kinds ``kinds``, allocating only the new ones (initialized for ``h``)."""
        wanted = {kind.name for kind in kinds}
        for dtype_pass in self._passes:
            for name in [n for n in dtype_pass.buffers if n not in wanted]:
                dtype_pass.drop_state(name)
            for kind in kinds:
                if kind.name not in dtype_pass.buffers:
                    dtype_pass.add_state(kind, h)
        self._written = written_memory(self._backend, [a for p in self._passes for a in p.written_arrays()])

    def _checked_state_hyperparameters(self, hyper):
        if not isinstance(hyper, dict):
            raise TypeError(f"state['hyperparameters'] must be a dict; got {type(hyper).__name__}")
        names = self.family.names
        unknown = sorted(set(hyper) - set(names))
        if unknown:
            raise ValueError(f"state['hyperparameters'] must have {self.family.title}'s keys {list(names)}; "
                             f"unexpected {unknown}")
        values = {name: _from_saved(hyper[name]) if name in hyper else self._class_defaults[name] for name in names}
        return self._checked_hyperparameters(values)

    def _checked_state_groups(self, state, hyper):
        saved = state.get("groups", [])
        if not isinstance(saved, list) or len(saved) != len(self._groups):
            raise ValueError(f"state has {len(saved) if isinstance(saved, list) else saved!r} groups; "
                             f"this optimizer has {len(self._groups)}")
        checked = []
        for group, overrides in zip(self._groups, saved):
            if not isinstance(overrides, dict):
                raise TypeError(f"state['groups'] must hold dicts of hyperparameters; got {overrides!r}")
            values = {name: _from_saved(value) for name, value in overrides.items()}
            checked.append({name: self.checked_group_value(name, value) for name, value in values.items()})
            self._check_combination({**hyper, **checked[-1]})
        return checked

    def _checked_state_carry(self, state):
        carry = self.family.carry
        if carry is None:
            return self._carry
        saved = state.get("carry")
        rows = len(self._groups) + 1
        if (not isinstance(saved, (list, tuple)) or len(saved) != rows
                or any(not isinstance(r, (list, tuple)) or len(r) != len(carry.fields) for r in saved)):
            raise ValueError(f"state['carry'] must hold {rows} rows of {list(carry.fields)}; got {saved!r}")
        return [tuple(_validate.check_real(name, v) for name, v in zip(carry.fields, r)) for r in saved]

    def _checked_state_counts(self, state):
        """``(skipped_steps, micro_step)`` of a state (0 where it has none)."""
        skipped = state.get("skipped_steps", 0)
        micro = state.get("micro_step", 0)
        _validate.check_count("state['skipped_steps']", skipped, minimum=0)
        _validate.check_count("state['micro_step']", micro, minimum=0)
        if micro >= self._policies.accumulate:
            raise ValueError(f"state['micro_step'] must be below accumulate={self._policies.accumulate}; got {micro}")
        return int(skipped), int(micro)

    def _checked_state_arrays(self, state, kind):
        """The leaves of state ``kind`` (or of a policy's buffer): arrays shaped like their parameters,
        of any floating dtype numadam stores (converted on loading), or 8-bit codes with their block
        scales in ``state[name + '_scales']`` (as :class:`~numadam.engine.bucket.Quantized`)."""
        root = f"state[{kind.name!r}]"
        if kind.name not in state:
            raise ValueError(f"state has {kind.when or 'these options'} but no {kind.name!r}")
        leaves = self._treedef.flatten_like(state[kind.name], root)
        paths = self._treedef.paths(root)
        scales = None
        for k, (leaf, path, info) in enumerate(zip(leaves, paths, self._infos)):
            backend_for([leaf], [path])
            if leaf.shape != info.shape:
                raise ValueError(f"{path} has shape {leaf.shape} but its parameter has shape {info.shape}")
            if leaf.dtype.kind in "iu":
                if scales is None:
                    scales = self._checked_state_scales(state, kind)
                leaves[k] = self._checked_codes(leaf, path, kind, scales[k], info)
                continue
            complex_parameter = info.dtype.kind == "c" and not (kind.magnitude and self._policies.complex_mode
                                                                 == "magnitude")
            if not _dtypes.is_supported(leaf.dtype) or (leaf.dtype.kind == "c") != complex_parameter:
                raise TypeError(f"{path} has dtype {leaf.dtype}; state is loaded from "
                                f"{'complex' if complex_parameter else 'real'} float16, bfloat16, float32 or "
                                f"float64 numbers shaped like its parameter{'' if complex_parameter else ', or 8-bit codes'}")
            if kind.nonnegative and _has_negative_entries(leaf):
                raise ValueError(f"{path} has negative entries; {kind.name} is >= 0")
        return leaves

    def _checked_state_scales(self, state, kind):
        name = f"{kind.name}_scales"
        if name not in state:
            raise ValueError(f"state[{kind.name!r}] holds 8-bit codes but state has no {name!r} (their block scales)")
        return self._treedef.flatten_like(state[name], f"state[{name!r}]")

    def _checked_codes(self, codes, path, kind, scales, info):
        expected = quantization.code_dtype(signed=not kind.nonnegative)
        if codes.dtype != expected:
            raise TypeError(f"{path} holds 8-bit codes of dtype {codes.dtype}; {kind.name} is coded as {expected}")
        if info.dtype.kind == "c":
            raise TypeError(f"{path} holds 8-bit codes, which hold real numbers; its parameter is complex")
        blocks = quantization.n_blocks(codes.size)
        if getattr(scales, "shape", None) != (blocks,) or scales.dtype != np.float32:
            raise ValueError(f"the scales of {path} must be float32 of shape ({blocks},), one per block of "
                             f"{quantization.BLOCK}; got {getattr(scales, 'dtype', type(scales).__name__)} "
                             f"of shape {getattr(scales, 'shape', None)}")
        return Quantized(codes, scales)

    def save(self, path):
        """Write :meth:`state_dict` to one ``.npz`` file, atomically; or, for a path ending in
        ``.zarr``, to a Zarr store, one file per chunk (Dask state is written by the workers that
        hold it, never gathered; see :func:`numadam.save_state`)."""
        zarr = os.fspath(path).endswith(".zarr")
        save_state(self.state_dict(lazy=True) if zarr and self._dask is not None else self.state_dict(), path)

    def load(self, path):
        """Restore the state saved by :meth:`save` (over Dask parameters, a Zarr store is read chunk
        by chunk into their chunks)."""
        self.load_state_dict(load_state(path, lazy=self._dask is not None))

    # -- copies ------------------------------------------------------------------------------

    def __reduce__(self):
        """Pickle and ``copy.deepcopy`` rebuild the optimizer from its arrays: the copy owns
        copies of the parameters and the state, and no address crosses over."""
        with self._lock:
            params = self._treedef.unflatten(self._given, keep_groups=True)
            options = {**self.hyperparameters(), **self._policy_options}
            return _rebuild, (type(self), params, options, self._schedule, self.state_dict())

    def __copy__(self):
        raise TypeError(
            f"copy.copy of a {type(self).__name__} would share its parameter and state arrays with the "
            "original; use copy.deepcopy(optimizer) (or pickle) for an independent optimizer"
        )


def _rows_with_policy(scalars, policy, policy_scalars):
    """The scalar rows of a kernel with ``policy``: the family's, then the policy's where it is active.

    ``scalars`` is a list of rows, or a float64 array of them (one per parameter, families with norms).
    """
    if not policy.active:
        return scalars
    extra = tuple(policy_scalars)
    if isinstance(scalars, np.ndarray):
        return np.hstack([scalars, np.broadcast_to(np.array(extra, np.float64), (len(scalars), len(extra)))])
    return [tuple(values) + extra for values in scalars]


def _rebuild(cls, params, options, schedule, state):
    optimizer = cls(params, schedule=schedule, **options)
    optimizer.load_state_dict(state)
    return optimizer


def _from_saved(value):
    """A hyperparameter as saved: lists (JSON has no tuples) become tuples."""
    return tuple(value) if isinstance(value, list) else value


def _schedule_state(schedule):
    return schedule.state_dict() if callable(getattr(schedule, "state_dict", None)) else None


def _load_schedule_state(schedule, schedule_state):
    """Load ``schedule_state`` into ``schedule`` (all or nothing); return what undoes it."""
    if schedule_state is None:
        return lambda: None
    if not callable(getattr(schedule, "load_state_dict", None)):
        raise ValueError(
            f"state holds a learning-rate schedule but this optimizer has "
            f"{'none' if schedule is None else 'one without load_state_dict'}; "
            "construct it with the same kind of schedule=..."
        )
    previous = schedule.state_dict()
    schedule.load_state_dict(schedule_state)
    return lambda: schedule.load_state_dict(previous)


def _has_negative_entries(array):
    """Whether a real number of ``array`` is below zero (NaN is not); allocates no temporary array."""
    parts = (array.real, array.imag) if array.dtype.kind == "c" else (array,)
    return any(part.size and bool(part.min() < 0) for part in parts)

