"""The functional steps: one validated, fused, in-place update of single arrays.

Every algorithm's step function (``numadam.adam_step``, ``numadam.nadam_step``,
...) is :func:`step_function` of its class: the same checks as the optimizer
objects (:mod:`numadam.engine.operands`), the same kernels, on arrays the
caller keeps. The checked plans of the latest calls are kept, one per set of
arrays: the same arrays (the very objects: NumPy, CuPy or other CUDA arrays)
with the hyperparameters they last stepped with step with no check repeated
and, on a GPU, no table uploaded again, so a loop over a few small arrays
costs little more than their kernels' launches. A kept plan trusts that its
arrays keep their shape, strides, dtype and writeability: an array reshaped or
made read-only in place (``a.shape = ...``, ``a.flags.writeable = False``)
must come as a new object (a view) to be checked again.
"""

import inspect
import math
import sys
import weakref
from typing import NamedTuple

import numpy as np

from .adapters.dask import is_dask_array
from .adapters.foreign import adopt, is_foreign
from .adapters.rows import is_rows
from .core import dtypes, factors, validate
from .core.pipeline import NO_POLICY, NO_POLICY_SCALARS, POLICY_OPERANDS
from .engine.operands import chunk_pieces, expected_state_dtype, kernel_spec, pre_pass_totals, prepared, run_on_arrays
from .engine import sampled
from .engine.sampled import check_sampled
from .engine.state_dict import check_factor
from .targets.dispatch import backend_for
from .engine.stepping import with_norms


def run_step(cls, operands, step, hyper, carry, norms=None, passes=("first", "update"), sources=None,
             master=False):
    """Check the arrays of ``operands`` (a dict: ``param``, ``grad``, the state kinds the
    hyperparameters use) and apply step ``step``; return the algorithm's carry after it.

    With ``master`` the update reads and writes the float32 copy ``operands["master"]`` of a
    16-bit parameter and rounds it into the parameter (``master_weights=True``).

    With ``sources`` (a dict naming some of the parameter and state operands)
    the update is out of place: it reads those operands' old values from the
    source arrays, laid out as the operands are and sharing no memory with what
    is written, and writes the new values into the operands; the sources stay
    as they were. Not for an algorithm with a norms pass.

    ``hyper`` holds checked hyperparameters. For an algorithm with a first pass
    (LAMB's norms), ``passes`` may name one of the two: ``("first",)`` updates
    the state and returns the two float64 sums of squares (the parameter's, the
    update direction's) over these arrays; ``("update",)`` applies the update
    with ``norms``, those sums over the whole parameter.
    """
    algorithm = cls.algorithm
    h = algorithm.Hyper(**hyper)
    policy = NO_POLICY._replace(master=True) if master else NO_POLICY
    if (operands.get("master") is not None) != master or any(
            operands.get(name) is not None for name in POLICY_OPERANDS if name != "master"):
        raise ValueError(f"operands may hold a master copy (with master=True), and no other policy operand; got "
                         f"{sorted(name for name in operands if name in POLICY_OPERANDS)} with master={master}")
    if algorithm.norms is not None and is_rows(operands.get("grad")):
        raise ValueError(f"grad is a Rows gradient; {algorithm.title}'s update needs the norms of the whole "
                         "parameter, so it takes dense gradients")
    if sources and algorithm.norms is not None:
        raise ValueError(f"{algorithm.name} has a norms pass, which reads the state it writes: "
                         "it cannot step out of place")
    if master and algorithm.factored:
        raise ValueError(f"{algorithm.name}'s functional step takes no master copy; step "
                         f"numadam.{algorithm.title}(..., master_weights=True)")
    names = [name for name, array in operands.items() if array is not None or name in ("param", "grad")]
    adopted = adopt([operands[name] for name in names], names, [name != "grad" for name in names])
    arrays = dict(zip(names, adopted.arrays))
    scalars, carry = algorithm.step_scalars(step, h, carry)
    flags = algorithm.flags(h)
    if algorithm.factored:
        with adopted.launch():
            _factored_step(algorithm, arrays, scalars, flags, h)
        adopted.written()
        return carry
    if algorithm.sums_every_parameter:
        with adopted.launch():
            carry = _total_step(algorithm, arrays, flags, step, h, scalars, carry, master)
        adopted.written()
        return carry
    with adopted.launch():
        if algorithm.norms is not None and tuple(passes) == ("first", "update") and not master:
            _checked_launch(algorithm, arrays, flags, h)([scalars])  # both passes, as a kept plan makes them
            adopted.written()
            return carry
        if algorithm.norms is not None and "first" in passes:  # the state, and this array's norms
            norms = run_on_arrays(algorithm, arrays, flags, NO_POLICY._replace(reduction="norms"),
                                  tuple(scalars) + tuple(NO_POLICY_SCALARS), reduce=True)
            if "update" not in passes:
                adopted.written()
                return norms
        if algorithm.norms is not None:
            param_squares, direction_squares = norms
            scalars = with_norms(algorithm, np.array([scalars], np.float64), np.array([algorithm.norms.applies(h)]),
                                 [param_squares], [direction_squares])[0]
        if master:
            scalars = tuple(scalars) + tuple(NO_POLICY_SCALARS)
        run_on_arrays(algorithm, arrays, flags, policy, tuple(scalars), sources=sources)
    adopted.written()
    return carry


def _total_step(algorithm, arrays, flags, step, h, scalars, carry, master):
    """A step of a family whose norms are the whole optimizer's (Prodigy's d), on one array: its
    first pass and two sums, the carry they give (:attr:`~numadam.core.algorithm.Norms.total`),
    then the update with the scalars of that carry. Returns the carry."""
    if master:
        raise ValueError(f"{algorithm.name}'s functional step takes no master copy; step "
                         f"numadam.{algorithm.title}(..., master_weights=True)")
    step_of_sample = algorithm.sample_step(h)
    held = _checked_samples(algorithm, arrays, step_of_sample, h) if step_of_sample > 1 else {}
    first, second = run_on_arrays(algorithm, arrays, flags, NO_POLICY._replace(reduction="norms"),
                                  tuple(scalars) + tuple(NO_POLICY_SCALARS), reduce=True)
    if held:  # the sampled state (every check made: it cannot fail), after the pass that moved the moments
        sampled_first, sampled_second = sampled.sample_pass(
            backend_for([arrays["param"]], ["param"]), algorithm, arrays["param"], arrays["grad"], None,
            list(held.values()), step_of_sample, tuple(scalars), flags, NO_POLICY._replace(reduction="norms"),
            NO_POLICY_SCALARS)
        first, second = first + sampled_first, second + sampled_second
    carry = tuple(algorithm.norms.total(float(first), float(second), carry, [h]))
    run_on_arrays(algorithm, arrays, flags, NO_POLICY, tuple(algorithm.scalars(step, h, carry)))
    return carry


def _checked_samples(algorithm, arrays, step, h):
    """The sampled state of a one-array step (:mod:`numadam.engine.sampled`), taken out of
    ``arrays`` (the kernels' operands, which are checked first, as the step's first pass checks
    them), each checked: given, a NumPy or CuPy array as the parameter, of the dtype of the rest of
    the state, one dimension of one value for every ``step``-th element of a real parameter,
    writable, and sharing no memory with the other arrays of the step."""
    held = {kind.name: arrays.pop(kind.name, None) for kind in algorithm.state if kind.sampled is not None}
    prepared(algorithm, arrays)  # (param, grad and the moments, as the first pass will check them)
    param = arrays["param"]
    check_sampled(algorithm, h, [param.dtype], ["param"])
    if type(param) is not np.ndarray and type(param).__module__.partition(".")[0] != "cupy":
        raise TypeError(f"slice_p={step} takes NumPy or CuPy arrays (its sample is taken with their array "
                        f"operations); param is a {type(param).__module__}.{type(param).__name__}")
    expected = (sampled.sample_size(param.size, step),)
    first_state = next(arrays[kind.name] for kind in algorithm.state if arrays.get(kind.name) is not None)
    dtype = expected_state_dtype(param.dtype, first_state.dtype)
    for name, array in held.items():
        if array is None:
            raise ValueError(f"slice_p={step} keeps {name}: pass it (an array of {expected[0]} values, "
                             f"{dtype}: one per {step} elements of param, in C order)")
        if type(array) is not type(param):
            raise TypeError(f"{name} is a {type(array).__name__}; param is a {type(param).__name__}")
        if array.shape != expected or array.dtype != dtype:
            raise ValueError(f"{name} must be {dtype} of shape {expected} (one value per {step} elements of param, "
                             f"of shape {param.shape}, in C order); got {array.dtype} of shape {array.shape}")
    backend = backend_for([param], ["param"])
    names = list(arrays) + list(held)
    infos = [backend.describe(array) for array in list(arrays.values()) + list(held.values())]
    for name, info in zip(held, infos[len(arrays):]):
        validate.check_layout(info, name, writable=True)
    validate.check_disjoint(infos, names, list(arrays.values()) + list(held.values()),
                            [name != "grad" for name in names])
    return held


def _check_batch_merges(info, name):
    """The factors' passes write a factor of a parameter of more than three dimensions as one batch
    of matrices (a reshape, which must not copy): its batch dimensions must merge into one."""
    batch = [(extent, stride) for extent, stride in zip(info.shape[:-2], info.strides[:-2]) if extent > 1]
    if any(outer != extent * stride for (_, outer), (extent, stride) in zip(batch, batch[1:])):
        raise ValueError(f"{name} of shape {info.shape} must have batch dimensions (all but its last two) that "
                         f"merge into one, as in C order, since the factors' pass writes it as one batch of "
                         f"matrices; got strides {info.strides} (pass a C-contiguous array)")


def _factored_step(algorithm, arrays, scalars, flags, h):
    """A step of a family with factored state (:mod:`numadam.core.factors`) on one array: every
    check first (:func:`_factored_launch`), then the factors' pass, the norms pass and the update."""
    _factored_launch(algorithm, arrays, flags, h)([scalars])


def _factored_launch(algorithm, arrays, flags, h, weakly=False):
    """``launch(rows)``: the step of a family with factored state on one array with the one row of
    ``rows``, every check made here first. The factors are given in their own shapes (``col_var``
    may be ``None`` below two dimensions: one 1); the derived ones are made here and kept by the
    launch. With ``weakly`` the launch holds the caller's arrays by weak references (a kept plan,
    whose caller tells that they still live), else by strong ones."""
    param, grad = arrays["param"], arrays["grad"]
    factors.check_real_parameter(algorithm.title, param.dtype, "param")
    backend = backend_for([param, grad], ["param", "grad"])
    cupy = sys.modules.get("cupy")
    if backend.name == "cuda" and (cupy is None or not isinstance(param, cupy.ndarray)):
        raise TypeError(f"{algorithm.name}_step takes CuPy arrays on CUDA (CuPy holds its row mean and the "
                        f"factors' broadcast views); got {type(param).__module__}.{type(param).__name__} (the "
                        f"optimizer objects take any CUDA array)")
    real = dtypes.compute_dtype(param.dtype)
    own = {}
    for kind in algorithm.state:
        shape = factors.factor_shape(kind.factor, param.shape)
        given = arrays.get(kind.name)
        if kind.derived or (given is None and not factors.factored(param.shape) and kind.factor == "columns"):
            given = backend.zeros(math.prod(shape), real).reshape(shape)
            backend.assign(given, np.full(shape, factors.initial_value(kind.factor, param.shape), real))
        elif given is None:
            raise ValueError(f"{kind.name} ({kind.doc}) must be an array of shape {shape}; got None")
        backend_for([param, given], ["param", kind.name])
        if given.shape != shape or given.dtype != real:
            raise ValueError(f"{kind.name} ({kind.doc}) of a {real.name} computation over param of shape "
                             f"{param.shape} must be {real.name} of shape {shape}; got {given.dtype} of shape "
                             f"{given.shape}")
        info = backend.describe(given)
        validate.check_layout(info, kind.name, writable=True)
        _check_batch_merges(info, kind.name)
        if arrays.get(kind.name) is not None:  # the caller's: a vector's col_var must be the 1 it stands for
            check_factor(given, kind.name, kind, param)
        own[kind.name] = given
    # The factors' pass writes the caller's factors before the norms and the update read the gradient.
    callers = [name for name in own if arrays.get(name) is not None]  # in the state's order
    mine = {"param": param, "grad": grad, **{name: own[name] for name in callers}}
    validate.check_disjoint([backend.describe(array) for array in mine.values()], list(mine), list(mine.values()),
                            [name != "grad" for name in mine])
    views = {name: backend.broadcast(array, param.shape) for name, array in own.items()}
    written = {"param"}
    ready = prepared(algorithm, {**arrays, **views}, written=written)  # every check before anything is written
    then = _norms_launch(algorithm, flags, h, ready, [dtypes.real_size(param.shape, param.dtype)])
    kept = {"grad": grad, **{name: own[name] for name in callers}}
    current = _weak_dict(kept) if weakly else lambda: kept
    derived = {name: own[name] for name in own if name not in callers}  # made here: held by the launch
    kinds, keeps_factors, any_elements = tuple(own), factors.factored(param.shape), param.size > 0

    def launch(rows):
        row = rows[0]
        weight, floor = factors.weights(algorithm, row, real)
        if any_elements:
            given = {**derived, **current()}
            backend.update_factors(given["grad"], *(given[name] for name in kinds), weight, floor, 1.0, None)
        then([factors.with_factored(algorithm, row, keeps_factors)])

    return launch


def _weak_dict(arrays):
    """``current()``: the dict ``arrays`` again, from weak references to its arrays."""
    refs = {name: weakref.ref(array) for name, array in arrays.items()}
    return lambda: {name: ref() for name, ref in refs.items()}


class _Checked(NamedTuple):
    """A step function's checked hyperparameters, as given (``keys``, ``values``, their ``types``)."""

    keys: tuple
    values: tuple
    types: tuple
    hyper: dict
    h: tuple
    flags: tuple
    kinds: tuple


MOST_PLANS = 1024  # plans a step function keeps (see _forget_plans)


class _Plan(NamedTuple):
    """The checked plan of a call's arrays under ``checked``: weak references that tell whether
    those arrays still live (the ids it is kept under are only theirs while they do), and its launch."""

    checked: _Checked
    refs: list
    launch: object


def step_function(cls, name, doc):
    """The functional step of ``cls``'s algorithm: ``name(param, grad, *state, step=..., **hyperparameters)``.

    The state arrays every configuration uses are positional; those only some
    use (``max_exp_avg_sq`` with ``amsgrad``) are keywords. Algorithms with
    running host values (``carry``) take and return them.
    """
    algorithm = cls.algorithm
    defaults = {n: v for n, v in cls._class_defaults.items() if n not in cls.pinned}
    always = [kind.name for kind in algorithm.state if kind.present is None and not kind.derived]
    optional = [kind for kind in algorithm.state if kind.present is not None]
    optional_names = [kind.name for kind in optional]
    last = [None]  # the last _Checked, replaced whole (threads may share the function)
    plans = {}  # the _Plan of each recent call's arrays, by their ids (a dict's get and set are atomic)

    def checked_hyperparameters(given):
        """``given`` checked (with the class's defaults for the others), kept for the next calls."""
        keys, values = tuple(given), tuple(given.values())
        types = tuple(map(type, values))
        unknown = [k for k in given if k not in defaults]
        if unknown:
            raise TypeError(f"{name}() got unexpected keyword arguments {unknown}; "
                            f"its hyperparameters are {list(defaults)}")
        merged = {**defaults, **given, **cls.pinned}
        hyper = {h.name: h.check(h.name, merged[h.name]) for h in algorithm.hyperparameters}
        algorithm.check_combination_of(hyper)
        h = algorithm.Hyper(**hyper)
        checked = last[0] = _Checked(keys, values, types, hyper, h, algorithm.flags(h), algorithm.state_kinds(h))
        return checked

    def operands_of(param, grad, state, given_optional, kinds):
        operands = {"param": param, "grad": grad, **dict(zip(always, state))}
        for kind in optional:
            given = given_optional.get(kind.name) is not None
            if kind in kinds and not given:
                raise ValueError(f"{kind.when} needs {kind.name}, {kind.doc}")
            if given and kind not in kinds:
                raise ValueError(f"{kind.name} is only used with {kind.when}; pass {kind.when} or drop it")
            if given:
                operands[kind.name] = given_optional[kind.name]
        return operands

    def planned(checked, operands, key, step, carry):
        """The step of NumPy, CuPy or other CUDA arrays through their checked plan, made here and kept
        while the same arrays come with the same hyperparameters (for a family with a norms pass,
        both passes: :func:`_norms_launch`; for a family with factored state, the factors' pass
        too: :func:`_factored_launch`); ``None`` for operands that are adopted at each call (torch
        tensors, DLPack arrays, row-sparse gradients)."""
        if any(is_foreign(array) or is_rows(array) for array in operands.values()) or whole_sums:
            return None  # (a step whose sums set the carry: :func:`run_step`, every call)
        try:
            refs = [weakref.ref(array) for array in operands.values() if array is not None]
        except TypeError:  # a CUDA array object that takes no weak reference: checked at every call
            return None
        if algorithm.factored:
            launch = _factored_launch(algorithm, operands, checked.flags, checked.h, weakly=True)
        else:
            launch = _checked_launch(algorithm, operands, checked.flags, checked.h)
        plan = _Plan(checked, refs, launch)
        scalars, carry = algorithm.step_scalars(step, checked.h, carry)
        plan.launch([scalars])
        if len(plans) >= MOST_PLANS:
            _forget_plans(plans)
        plans[key] = plan
        return carry

    n_state = len(always)
    whole_sums = algorithm.sums_every_parameter
    initial_carry = algorithm.initial_carry()
    carried = algorithm.carry is not None
    scalars_of = algorithm.scalars

    def step_function(param, grad, *state, step, carry=None, **keywords):
        if len(state) != n_state:
            raise TypeError(f"{name}() takes param, grad, {', '.join(always)} as positional arrays; "
                            f"got {2 + len(state)} positional arguments")
        if type(step) is not int or step < 1:
            step = validate.check_step(step)
        given_optional = {}
        for optional_name in optional_names:
            array = keywords.pop(optional_name, None)
            if array is not None:
                given_optional[optional_name] = array
        if carry is None:
            carry = initial_carry
        elif carried:
            carry = tuple(carry)
        else:
            raise TypeError(f"{name}() takes no carry: {algorithm.title} keeps no running host values")
        key = (id(param), id(grad), *map(id, state), *map(id, given_optional.values()))
        plan = plans.get(key)
        # The hyperparameters these arrays last stepped with, else the last call's, if these are they.
        checked = last[0] if plan is None else plan.checked
        values = tuple(keywords.values())
        if (checked is None or checked.values != values or checked.keys != tuple(keywords)
                or checked.types != tuple(map(type, values))):
            checked = checked_hyperparameters(keywords)
        if plan is not None and plan.checked is checked and _alive(plan.refs):  # the same arrays: their plan
            if not carried:  # (this runs every step: without the carry's step, 0.1 us of 4.3 at 1e3)
                plan.launch([scalars_of(step, checked.h, carry)])
                return None
            scalars, carry = algorithm.step_scalars(step, checked.h, carry)
            plan.launch([scalars])
            return carry
        operands = operands_of(param, grad, state, given_optional, checked.kinds)
        if is_dask_array(param) and whole_sums:
            raise TypeError(f"{name}() takes NumPy, CuPy and torch arrays; over Dask arrays step "
                            f"numadam.{algorithm.title}, whose sums over every chunk set the next step")
        if is_dask_array(param) and algorithm.factored:
            raise TypeError(f"{name}() takes NumPy, CuPy and torch arrays; over Dask arrays step "
                            f"numadam.{algorithm.title}, whose factors this process holds while the chunks' "
                            "tasks sum their rows and columns")
        if is_dask_array(param):  # immutable: the new arrays are the answer
            from .engine.dask import step_dask_arrays

            scalars, after = algorithm.step_scalars(step, checked.h, carry)
            arrays = step_dask_arrays(algorithm, operands, checked.flags, tuple(scalars))
            return (*arrays, after) if carried else arrays
        after = planned(checked, operands, key, step, carry)
        if after is None:
            after = run_step(cls, operands, step, checked.hyper, carry)
        return after if carried else None

    P = inspect.Parameter
    parameters = [P(n, P.POSITIONAL_OR_KEYWORD) for n in ["param", "grad"] + always]
    parameters.append(P("step", P.KEYWORD_ONLY))
    parameters += [P(n, P.KEYWORD_ONLY, default=v) for n, v in defaults.items()]
    parameters += [P(kind.name, P.KEYWORD_ONLY, default=None) for kind in optional]
    if algorithm.carry is not None:
        parameters.append(P("carry", P.KEYWORD_ONLY, default=None))
    step_function.__signature__ = inspect.Signature(parameters)
    step_function.__doc__ = doc
    step_function.__name__ = step_function.__qualname__ = name
    step_function.__module__ = cls.__module__
    return step_function


def _checked_launch(algorithm, arrays, flags, h):
    """``launch(rows)``: the common step (no policy) of ``arrays`` (a dict of operands, checked
    and laid out here) with the one row of ``rows``: the update's kernel, after the norms pass
    for a family with one (:func:`_norms_launch`)."""
    ready = prepared(algorithm, arrays)
    if algorithm.norms is not None:
        return _norms_launch(algorithm, flags, h, ready)
    return ready.backend.launcher(ready.plan, kernel_spec(algorithm, flags, ready.storage, ready.present, NO_POLICY,
                                                          ready.state))


def _norms_launch(algorithm, flags, h, ready, counts=None):
    """``launch(rows)``: the step of a family with a norms pass over ``ready``'s plan with the one
    row of ``rows``: the norms pass (then no policy's scalars), the field its two sums set where
    the hyperparameters ``h`` apply it (:func:`~numadam.engine.stepping.with_norms`, with the
    parameter's real element ``counts`` for a value per parameter), then the update.

    Where the backend makes it all in one call (``norms_step_launcher``: a serial plan on the
    CPU, any plan on CUDA, which then never waits for the GPU) and the value is not per parameter,
    that call, as the optimizer objects make it; else the host adds the pass's sums chunk by
    chunk, in order, and launches the update."""
    backend, plan = ready.backend, ready.plan
    first, update_spec = (kernel_spec(algorithm, flags, ready.storage, ready.present, policy, ready.state)
                          for policy in (NO_POLICY._replace(reduction="norms"), NO_POLICY))
    applies = np.array([algorithm.norms.applies(h)])
    starts, stops = chunk_pieces(backend, plan)
    one_call = backend.norms_step_launcher
    if one_call is not None and not algorithm.norms.per_parameter:
        launch = one_call(plan, first, update_spec, starts, stops, np.zeros(len(starts), np.int64), [0], applies,
                          tuple(NO_POLICY_SCALARS), algorithm.Scalars._fields.index(algorithm.norms.field))
        if launch is not None:
            return launch
    reduce = backend.reducer(plan, first, starts, stops)
    update = backend.launcher(plan, update_spec)

    def launch(rows):
        param_squares, direction_squares = pre_pass_totals(reduce([tuple(rows[0]) + tuple(NO_POLICY_SCALARS)]))
        update([with_norms(algorithm, np.array(rows, np.float64), applies, [param_squares], [direction_squares],
                           counts)[0]])

    return launch


def _forget_plans(plans):
    """Make room in a step function's full dict of plans: drop those whose arrays are gone, and if
    none is, every plan (a loop over more sets of arrays than that plans each call again)."""
    for key, plan in list(plans.items()):  # a copy: other threads may add plans meanwhile
        if not _alive(plan.refs):
            plans.pop(key, None)
    if len(plans) >= MOST_PLANS:
        plans.clear()


def _alive(refs):
    """Whether every weak reference of ``refs`` still has its array."""
    for ref in refs:
        if ref() is None:
            return False
    return True
