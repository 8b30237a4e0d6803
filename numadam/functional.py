"""The functional steps: one validated, fused, in-place update of single arrays.

Every family's step function (``numadam.adam_step``, ``numadam.nadam_step``,
...) is :func:`step_function` of its class: the same checks as the optimizer
objects (:mod:`numadam.engine.bucket`), the same plan builder and the same kernels, on
arrays the caller keeps.
"""

import inspect

import numpy as np

from .core import validate as _validate
from .targets.dispatch import backend_for
from .engine.dask import functional_step as dask_functional_step, is_dask_array
from .adapters.foreign import adopt
from .core.dtypes import is_supported, real_itemsize, storage_dtype
from .core.pipeline import NO_POLICY, NO_POLICY_SCALARS, POLICY_OPERANDS
from .targets.segments import ADDRESS
from .targets.layout import Operand, segment_rows
from .core.memory import MemoryRanges
from .engine.bucket import check_operands, kernel_spec, operand_rows


def _contiguous_rows(arrays, backend):
    """The one segment row over C-contiguous, aligned, writable NumPy operands (``None``
    where absent) of one dtype and shape whose memory is disjoint; ``None`` for anything
    else: the general checks then accept or explain it."""
    given = [array for array in arrays if array is not None]
    if len(given) < len(arrays) and (arrays[0] is None or arrays[1] is None):
        return None
    first = given[0]
    dtype, shape = first.dtype, first.shape
    for array in given:
        if type(array) is not np.ndarray or array.dtype is not dtype or array.shape != shape:
            return None
        flags = array.flags
        if not (flags.c_contiguous and flags.aligned and flags.writeable):
            return None
    if not is_supported(dtype):
        return None
    itemsize = real_itemsize(dtype)
    addresses = [None if array is None else backend.address(array) for array in arrays]
    ranges = MemoryRanges([(a, a + first.nbytes) for a in addresses if a is not None], given)
    if ranges.first_shared_pair([True] * len(given)) is not None:
        return None
    operands = [None if a is None else Operand(a, (itemsize,), itemsize) for a in addresses]
    return segment_rows((first.nbytes // itemsize,), operands)


def _layout_of(array):
    """``(type, dtype, shape, strides)`` of an array (``None`` for what it lacks)."""
    return type(array), getattr(array, "dtype", None), getattr(array, "shape", None), getattr(array, "strides", None)


def _layout_words(array):
    kind, dtype, shape, strides = _layout_of(array)
    return f"({kind.__name__}, {dtype}, shape {shape}, strides {strides})"


def _out_of_place(rows, sources, arrays, slots, backend):
    """``rows`` with a source column for each operand named in ``sources`` (its old values), and
    the operands' numbers in the order of those columns; every source checked first."""
    numbers = []
    for name, source in sources.items():
        k = slots.index(name) if name in slots else None
        if k is None or k == 1 or arrays[k] is None:
            raise ValueError(f"sources may name the parameter, the state and the master copy of this update; "
                             f"got {name!r}")
        target = arrays[k]
        if _layout_of(source) != _layout_of(target):
            raise ValueError(f"the source of {name} must be an array laid out as {name} is "
                             f"{_layout_words(target)}; got {_layout_words(source)}")
        numbers.append(k)
    present = [k for k, array in enumerate(arrays) if array is not None]
    everything = [arrays[k] for k in present] + list(sources.values())
    paths = [slots[k] for k in present] + [f"the source of {name}" for name in sources]
    infos = [backend.describe(array) for array in everything]
    for info, path in zip(infos[len(present):], paths[len(present):]):
        _validate.check_layout(info, path, False)
    _validate.check_disjoint(infos, paths, everything, [k != 1 for k in present] + [False] * len(sources))
    moved = [rows[:, ADDRESS + k] + (backend.address(source) - backend.address(arrays[k]))
             for k, source in zip(numbers, sources.values())]
    return np.column_stack([rows, *moved]), tuple(numbers)


def _magnitude_kinds(family, arrays):
    """The names of the state kinds given as real arrays for a complex parameter: the family's
    magnitude state (``complex_mode="magnitude"``, one real number per complex element), else none."""
    if arrays[0].dtype.kind != "c":
        return frozenset()
    return frozenset(kind.name for kind, array in zip(family.state, arrays[2:])
                     if kind.magnitude and array is not None and array.dtype.kind != "c")


def run_step(cls, operands, step, hyper, carry, norms=None, passes=("first", "update"), sources=None,
             master=False):
    """Check the arrays of ``operands`` (a dict: ``param``, ``grad``, the state kinds the
    hyperparameters use) and apply step ``step``; return the family's carry after it.

    With ``master`` the update reads and writes the float32 copy ``operands["master"]`` of a
    16-bit parameter and rounds it into the parameter (``master_weights=True``).

    With ``sources`` (a dict naming some of the parameter and state operands)
    the update is out of place: it reads those operands' old values from the
    source arrays, laid out as the operands are and sharing no memory with what
    is written, and writes the new values into the operands; the sources stay
    as they were (a Dask step's new chunks, with no copy first). Not for a
    family with a norms pass.

    ``hyper`` holds checked hyperparameters. For a family with a first pass
    (LAMB's norms), ``passes`` may name one of the two: ``("first",)`` updates
    the state and returns the two float64 sums of squares (the parameter's, the
    update direction's) over these arrays; ``("update",)`` applies the update
    with ``norms``, those sums over the whole parameter (which a Dask step adds
    up over its chunks).
    """
    family = cls.family
    h = family.Hyper(**hyper)
    kinds = family.state_kinds(h)
    slots = ["param", "grad"] + [kind.name for kind in family.state] + list(POLICY_OPERANDS)
    policy = NO_POLICY._replace(master=True) if master else NO_POLICY
    if (operands.get("master") is not None) != master or any(
            operands.get(name) is not None for name in POLICY_OPERANDS if name != "master"):
        raise ValueError(f"operands may hold a master copy (with master=True), and no other policy operand; got "
                         f"{sorted(name for name in operands if name in POLICY_OPERANDS)} with master={master}")
    arrays = [operands.get(name) for name in slots]
    present = [0, 1] + [k for k, array in enumerate(arrays[2:], start=2) if array is not None]
    names = [slots[k] for k in present]
    requested = [arrays[k] for k in present]
    adopted = adopt(requested, names, [name != "grad" for name in names])
    given = adopted.arrays
    if given is not requested:  # torch tensors, DLPack arrays: their NumPy or CuPy arrays
        arrays = [None] * len(slots)
        for k, array in zip(present, given):
            arrays[k] = array
    backend = backend_for(given, names)
    magnitude = _magnitude_kinds(family, arrays)
    rows = _contiguous_rows(arrays, backend) if backend.name == "numpy" else None
    if rows is None:
        infos = [backend.describe(array) for array in given]
        check_operands(infos, names, given, [name != "grad" for name in names], magnitude)
        by_slot = dict(zip(present, infos))
        rows = operand_rows([by_slot.get(k) for k in range(len(slots))], pairs=not magnitude)
    numbers = ()
    if sources:
        if family.norms is not None:
            raise ValueError(f"{family.name} has a norms pass, which reads the state it writes: "
                             "it cannot step out of place")
        rows, numbers = _out_of_place(rows, sources, arrays, slots, backend)
    scalars, carry = family.step_scalars(step, h, carry)
    present = {kind.name for kind in kinds}
    real = given[0].dtype if magnitude else storage_dtype(given[0].dtype)
    plan = backend.plan(rows)
    if family.norms is not None and "first" in passes:  # the state, and this array's norms
        first = kernel_spec(family, family.flags(h), real, present, NO_POLICY._replace(reduction="norms"),
                            storage_dtype(given[2].dtype))
        pieces = np.arange(0, plan.n_elements, backend.chunk_size, dtype=np.int64)
        stops = np.append(pieces[1:], plan.n_elements).astype(np.int64)
        sums = backend.reduce(plan, first, [tuple(scalars) + tuple(NO_POLICY_SCALARS)], pieces, stops)
        norms = tuple(float(total) for total in sums.sum(axis=0)) if len(sums) else (0.0, 0.0)
        if "update" not in passes:
            return norms
    if family.norms is not None:
        param_squares, direction_squares = norms
        scalars = family.norms.scalars(np.array([scalars], np.float64), [h], np.zeros(1, np.intp),
                                       np.array([param_squares]), np.array([direction_squares]))[0]
    state = storage_dtype(given[2].dtype) if len(given) > 2 else None  # real numbers: the same for magnitude state
    if master:
        scalars = tuple(scalars) + tuple(NO_POLICY_SCALARS)
    with adopted.launch():
        backend.run(plan, kernel_spec(family, family.flags(h), real, present, policy, state=state, sources=numbers),
                    [scalars])
    adopted.written()
    return carry


def step_function(cls, name, doc):
    """The functional step of ``cls``'s family: ``name(param, grad, *state, step=..., **hyperparameters)``.

    The state arrays every configuration uses are positional; those only some
    use (``max_exp_avg_sq`` with ``amsgrad``) are keywords. Families with
    running host values (``carry``) take and return them.
    """
    family = cls.family
    defaults = {n: v for n, v in cls._class_defaults.items() if n not in cls.pinned}
    always = [kind.name for kind in family.state if kind.present is None]
    optional = [kind for kind in family.state if kind.present is not None]
    optional_names = {kind.name for kind in optional}
    checked_last = [None, None]  # the last hyperparameters given, and their checked values

    def checked_hyperparameters(given):
        key = tuple((k, type(v), v) for k, v in given.items())
        if checked_last[0] == key:
            return checked_last[1]
        unknown = [k for k in given if k not in defaults]
        if unknown:
            raise TypeError(f"{name}() got unexpected keyword arguments {unknown}; "
                            f"its hyperparameters are {list(defaults)}")
        values = {**defaults, **given, **cls.pinned}
        hyper = {h.name: h.check(h.name, values[h.name]) for h in family.hyperparameters}
        if family.check_combination is not None:
            family.check_combination(family.Hyper(**hyper))
        checked_last[:] = key, hyper
        return hyper

    def step_function(param, grad, *state, step, carry=None, **keywords):
        if len(state) != len(always):
            raise TypeError(f"{name}() takes param, grad, {', '.join(always)} as positional arrays; "
                            f"got {2 + len(state)} positional arguments")
        step = _validate.check_step(step)
        given_optional = {k: keywords.pop(k) for k in list(keywords) if k in optional_names}
        hyper = checked_hyperparameters(keywords)
        kinds = family.state_kinds(family.Hyper(**hyper))
        operands = {"param": param, "grad": grad, **dict(zip(always, state))}
        for kind in optional:
            given = given_optional.get(kind.name) is not None
            if kind in kinds and not given:
                raise ValueError(f"{kind.when} needs {kind.name}, {kind.doc}")
            if given and kind not in kinds:
                raise ValueError(f"{kind.name} is only used with {kind.when}; pass {kind.when} or drop it")
            if given:
                operands[kind.name] = given_optional[kind.name]
        if carry is not None and family.carry is None:
            raise TypeError(f"{name}() takes no carry: {family.title} keeps no running host values")
        carry = family.initial_carry() if carry is None else tuple(carry)
        if is_dask_array(param):  # immutable: the new arrays are the answer
            arrays = dask_functional_step(cls, operands, step, hyper, carry)
            return (*arrays, family.step_scalars(step, family.Hyper(**hyper), carry)[1]) \
                if family.carry is not None else arrays
        carry = run_step(cls, operands, step, hyper, carry)
        return carry if family.carry is not None else None

    P = inspect.Parameter
    parameters = [P(n, P.POSITIONAL_OR_KEYWORD) for n in ["param", "grad"] + always]
    parameters.append(P("step", P.KEYWORD_ONLY))
    parameters += [P(n, P.KEYWORD_ONLY, default=v) for n, v in defaults.items()]
    parameters += [P(kind.name, P.KEYWORD_ONLY, default=None) for kind in optional]
    if family.carry is not None:
        parameters.append(P("carry", P.KEYWORD_ONLY, default=None))
    step_function.__signature__ = inspect.Signature(parameters)
    step_function.__doc__ = doc
    step_function.__name__ = step_function.__qualname__ = name
    step_function.__module__ = cls.__module__
    return step_function
