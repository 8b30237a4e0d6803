"""An optimizer's state as plain data, and every check on a state before it is loaded.

:func:`state_dict` gathers what an optimizer holds: its hyperparameters
(each group's too), its counts, its family's running host values (``carry``),
its schedules' own state, and its state arrays in trees shaped like the
parameters. :func:`checked_load` checks a state given back, everything,
before anything is changed, and returns what installs it: a failed load
changes nothing.
"""

import numpy as np

from ..core import dtypes, factors, validate
from ..core.algorithm import StateKind
from ..targets import quantization
from ..targets.dispatch import backend_for
from . import chunk_blocks, sampled
from .bucket import Quantized, on_host


def state_dict(optimizer, lazy=False):
    """The plain data of ``optimizer``'s state (see :meth:`numadam.Adam.state_dict`)."""
    engine, settings, algorithm = optimizer._engine, optimizer._settings, optimizer.algorithm
    step, skipped, micro_step = engine.counts()
    state = {"optimizer": type(optimizer).__name__, "family": algorithm.name, "step": step,
             "hyperparameters": dict(settings.own)}
    arrays = engine.state_arrays(lazy)
    for name, leaves in arrays.items():
        state[name] = optimizer._treedef.unflatten(leaves)
    if any(f"{kind.name}_scales" in arrays for kind in algorithm.state):  # 8-bit codes: name their map
        state[quantization.MAP_KEY] = quantization.MAP_NAME
    groups = settings.groups
    if groups:
        state["groups"] = [group.overrides for group in groups]
        schedules = [_schedule_state(group.schedule) for group in groups]
        if any(s is not None for s in schedules):
            state["group_schedules"] = schedules
    if algorithm.carry is not None:
        state["carry"] = [list(values) for values in engine.carry]
    if optimizer._policies.nonfinite == "skip":
        state["skipped_steps"] = skipped
    if optimizer._policies.accumulate > 1:
        state["micro_step"] = micro_step
    schedule_state = _schedule_state(settings.schedule)
    if schedule_state is not None:
        state["schedule"] = schedule_state
    return state


def checked_load(optimizer, state):
    """Check ``state`` (from :func:`state_dict`) for ``optimizer``; return what installs it.

    Everything is checked first: the family, the counts, the hyperparameters
    (each group's), the carry, and each state array against its parameter.
    """
    algorithm, settings, engine = optimizer.algorithm, optimizer._settings, optimizer._engine
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict from state_dict(); got {type(state).__name__}")
    if state.get("family", algorithm.name) != algorithm.name:
        raise ValueError(f"state is for {state['family']!r} ({state.get('optimizer')}); "
                         f"this is {type(optimizer).__name__} ({algorithm.name!r})")
    missing = [key for key in ("step", "hyperparameters") if key not in state]
    if missing:
        raise ValueError(f"state is missing {missing}")
    step = state["step"]
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"state['step'] must be an integer >= 0; got {step!r}")
    if step < 0:
        raise ValueError(f"state['step'] must be an integer >= 0; got {step!r}")
    own = _checked_hyperparameters(optimizer, state["hyperparameters"])
    groups = _checked_groups(optimizer, state, own)
    carry = _checked_carry(algorithm, state, engine.carry, len(settings.groups) + 1)
    skipped, micro_step = _checked_counts(state, optimizer._policies.accumulate)
    h = settings.hyper(own)
    _check_sample_step(algorithm, h, settings.hyper(settings.own))
    kinds = algorithm.state_kinds(h)
    arrays = engine.checked_arrays(state, kinds, optimizer._treedef)
    schedule_states = [(settings.schedule, state.get("schedule"))]
    if "group_schedules" in state:
        schedule_states += list(zip([g.schedule for g in settings.groups], state["group_schedules"]))

    def install():
        undo = []
        try:
            for schedule, schedule_state in schedule_states:
                undo.append(_load_schedule_state(schedule, schedule_state))
            engine.load_state(arrays, kinds, h)
        except BaseException:
            for restore in undo:
                restore()
            raise
        settings.assign(own)
        for group, overrides in zip(settings.groups, groups):
            group.set_overrides(overrides)
        engine.set_counts(int(step), skipped, micro_step, carry)

    return install


def _check_sample_step(algorithm, saved, current):
    """A state whose sampled state (:mod:`numadam.engine.sampled`) keeps another step than this
    optimizer's is refused: its arrays have other lengths, and the step is set once, when made."""
    theirs, ours = algorithm.sample_step(saved), algorithm.sample_step(current)
    if theirs != ours:
        names = [kind.name for kind in algorithm.state if kind.sampled is not None]
        raise ValueError(f"state keeps {names} on one element in every {theirs} (slice_p={theirs}); this optimizer "
                         f"keeps them on one in every {ours}, as it was made: make it with slice_p={theirs}")


def _checked_hyperparameters(optimizer, hyper):
    if not isinstance(hyper, dict):
        raise TypeError(f"state['hyperparameters'] must be a dict; got {type(hyper).__name__}")
    names = optimizer.algorithm.names
    unknown = sorted(set(hyper) - set(names))
    if unknown:
        raise ValueError(f"state['hyperparameters'] must have {optimizer.algorithm.title}'s keys {list(names)}; "
                         f"unexpected {unknown}")
    values = {name: _from_saved(hyper[name]) if name in hyper else optimizer._class_defaults[name] for name in names}
    return optimizer._checked_hyperparameters(values)


def _checked_groups(optimizer, state, own):
    groups = optimizer._settings.groups
    saved = state.get("groups", [])
    if not isinstance(saved, list) or len(saved) != len(groups):
        raise ValueError(f"state has {len(saved) if isinstance(saved, list) else saved!r} groups; "
                         f"this optimizer has {len(groups)}")
    checked = []
    for overrides in saved:
        if not isinstance(overrides, dict):
            raise TypeError(f"state['groups'] must hold dicts of hyperparameters; got {overrides!r}")
        values = {name: _from_saved(value) for name, value in overrides.items()}
        checked.append({name: optimizer.checked_group_value(name, value) for name, value in values.items()})
        optimizer.algorithm.check_combination_of({**own, **checked[-1]})
    return checked


def _checked_carry(algorithm, state, current, groups):
    carry = algorithm.carry
    if carry is None:
        return current
    saved = state.get("carry")
    if (not isinstance(saved, (list, tuple)) or len(saved) != groups
            or any(not isinstance(r, (list, tuple)) or len(r) != len(carry.fields) for r in saved)):
        raise ValueError(f"state['carry'] must hold {groups} rows of {list(carry.fields)}; got {saved!r}")
    return [tuple(validate.check_real(name, v) for name, v in zip(carry.fields, r)) for r in saved]


def _checked_counts(state, accumulate):
    """``(skipped_steps, micro_step)`` of a state (0 where it has none)."""
    skipped = state.get("skipped_steps", 0)
    micro = state.get("micro_step", 0)
    validate.check_count("state['skipped_steps']", skipped, minimum=0)
    validate.check_count("state['micro_step']", micro, minimum=0)
    if micro >= accumulate:
        raise ValueError(f"state['micro_step'] must be below accumulate={accumulate}; got {micro}")
    return int(skipped), int(micro)


# -- the arrays of a local engine -----------------------------------------------------------------


def checked_bucket_arrays(engine, state, kinds, treedef):
    """The state's arrays for a local engine's buckets, by name: each state kind's leaves and each
    held policy operand's, checked against their parameters (any floating dtype numadam keeps,
    converted on loading, or 8-bit codes with their block scales, as :class:`Quantized`)."""
    arrays = {kind.name: _checked_leaves(engine, state, kind, treedef,
                                         engine.buckets[0].sample_step if kind.name in engine.buckets[0].sampled else 1)
              for kind in engine.algorithm.saved_kinds(kinds)}
    for name in engine.buckets[0].policy_buffers:
        arrays[name] = _checked_leaves(engine, state, StateKind(name, ""), treedef)
    return arrays


def _checked_leaves(engine, state, kind, treedef, sample_step=1):
    """The leaves of state ``kind``, each checked against its parameter: its shape, or with
    ``sample_step`` > 1 one dimension of one value for every ``sample_step``-th element."""
    root = f"state[{kind.name!r}]"
    if kind.name not in state:
        raise ValueError(f"state has {kind.when or 'these options'} but no {kind.name!r}")
    leaves = treedef.flatten_like(state[kind.name], root)
    paths = treedef.paths(root)
    magnitude = kind.magnitude and engine.policies.complex_mode == "magnitude"
    coded = None
    for k, (leaf, path, info) in enumerate(zip(leaves, paths, engine.infos)):
        backend_for([leaf], [path])
        if kind.factor:
            check_factor(leaf, path, kind, info)
        elif sample_step > 1:
            expected = (sampled.sample_size(np.prod(info.shape, dtype=np.int64), sample_step),)
            if tuple(leaf.shape) != expected:
                raise ValueError(f"{path} has shape {tuple(leaf.shape)}; {kind.name} keeps one element in every "
                                 f"{sample_step} of its parameter of shape {info.shape}: shape {expected}")
        elif leaf.shape != info.shape:
            raise ValueError(f"{path} has shape {leaf.shape} but its parameter has shape {info.shape}")
        if leaf.dtype.kind in "iu":
            if coded is None:
                coded = coded_leaves(state, kind.name, leaves, treedef)
            leaves[k] = _checked_codes(leaf, path, kind, coded[k], info)
            continue
        _check_numbers(leaf, path, kind, complex_parameter=info.dtype.kind == "c" and not magnitude)
    return leaves


def _check_numbers(leaf, path, kind, complex_parameter, codes=True):
    """A state leaf's numbers: a floating dtype numadam keeps (complex for a complex parameter but
    magnitude state), never negative where ``kind`` is not; ``codes``: 8-bit codes may also come."""
    if not dtypes.is_supported(leaf.dtype) or (leaf.dtype.kind == "c") != complex_parameter:
        raise TypeError(f"{path} has dtype {leaf.dtype}; state is loaded from "
                        f"{'complex' if complex_parameter else 'real'} float16, bfloat16, float32 or "
                        f"float64 numbers shaped like its parameter"
                        f"{', or 8-bit codes' if codes and not complex_parameter else ''}")
    if kind.nonnegative and _has_negative_entries(leaf):
        raise ValueError(f"{path} has negative entries; {kind.name} is >= 0")


def checked_factors(state, kind, treedef, params):
    """The leaves of factored state ``kind`` (:mod:`numadam.core.factors`) as NumPy arrays, each checked
    against its parameter (``params``: anything with its ``shape``) as the local engine checks its
    state (real floating numbers, never negative), so that loading them cannot fail half-way."""
    root = f"state[{kind.name!r}]"
    if kind.name not in state:
        raise ValueError(f"state has no {kind.name!r}")
    leaves = [on_host(leaf) for leaf in treedef.flatten_like(state[kind.name], root)]
    for leaf, path, param in zip(leaves, treedef.paths(root), params):
        check_factor(leaf, path, kind, param)
        _check_numbers(leaf, path, kind, complex_parameter=False, codes=False)
    return leaves


def check_factor(leaf, path, kind, info):
    """A factored state's leaf (:mod:`numadam.core.factors`): its factor's shape, and the 1 that stands
    for the columns of a parameter of fewer than two dimensions."""
    shape = factors.factor_shape(kind.factor, info.shape)
    if tuple(leaf.shape) != shape:
        raise ValueError(f"{path} has shape {tuple(leaf.shape)}; {kind.name} of a parameter of shape {info.shape} "
                         f"has shape {shape}")
    if not factors.factored(info.shape) and kind.factor != "rows" and bool((on_host(leaf) != 1).any()):
        raise ValueError(f"{path} must be 1: a parameter of fewer than two dimensions keeps its full second "
                         f"moment in row_var; got {leaf!r}")


def coded_leaves(state, name, leaves, treedef):
    """How each leaf of state ``name`` is blocked where it holds 8-bit codes: a
    :class:`~numadam.engine.chunk_blocks.Blocks` of its ``<name>_scales`` and, if the state has them,
    the chunks its blocks follow (:data:`~numadam.engine.chunk_blocks.LAYOUT_KEY`); ``None`` for a
    leaf of numbers. ``None`` if no leaf holds codes. Codes of a map numadam no longer reads are
    refused (:func:`_check_code_map`)."""
    if not any(np.dtype(getattr(leaf, "dtype", np.float64)).kind in "iu" for leaf in leaves):
        return None
    _check_code_map(state)
    scales_name = f"{name}_scales"
    if scales_name not in state:
        raise ValueError(f"state[{name!r}] holds 8-bit codes but state has no {scales_name!r} (their block scales)")
    scales = treedef.flatten_like(state[scales_name], f"state[{scales_name!r}]")
    scales_paths = treedef.paths(f"state[{scales_name!r}]")
    layout_root = f"state[{chunk_blocks.LAYOUT_KEY!r}]"
    locations = ([None] * len(leaves) if chunk_blocks.LAYOUT_KEY not in state
                 else treedef.flatten_like(state[chunk_blocks.LAYOUT_KEY], layout_root))
    return [chunk_blocks.Blocks(scale, where, scales_path, layout_path)
            if np.dtype(getattr(leaf, "dtype", np.float64)).kind in "iu" else None
            for leaf, scale, where, scales_path, layout_path
            in zip(leaves, scales, locations, scales_paths, treedef.paths(layout_root))]


def _check_code_map(state):
    """That the state's 8-bit codes are of the map numadam reads and writes, as
    :data:`~numadam.targets.quantization.MAP_KEY` says. A state holding codes without it was saved
    with the pre-0.1.0 *decades* map, which is no longer read."""
    key, name = quantization.MAP_KEY, quantization.MAP_NAME
    if key not in state:
        raise ValueError(f"8-bit state saved with the pre-0.1.0 'decades' code map is no longer read: this state "
                         f"holds 8-bit codes but no {key!r} entry (states saved since have {key!r}: {name!r}); "
                         "load it with the numadam that saved it into an optimizer with float32 state and save "
                         "that (it loads into 8-bit state here), or start the 8-bit state afresh")
    if state[key] != name:
        raise ValueError(f"state[{key!r}] must be {name!r} (the map of the 8-bit codes numadam writes); got "
                         f"{state[key]!r}")


def _checked_codes(codes, path, kind, blocks, info):
    """A leaf of 8-bit codes for a local engine: :class:`Quantized` codes and scales where its blocks
    are the parameter's C order's, else (blocks that follow the chunks of a Dask optimizer's
    parameter) its float32 numbers, decoded."""
    expected = quantization.code_dtype(signed=not kind.nonnegative)
    if codes.dtype != expected:
        raise TypeError(f"{path} holds 8-bit codes of dtype {codes.dtype}; {kind.name} is coded as {expected}")
    if info.dtype.kind == "c":
        raise TypeError(f"{path} holds 8-bit codes, which hold real numbers; its parameter is complex")
    locations = (chunk_blocks.whole(info.shape) if blocks.locations is None
                 else chunk_blocks.checked_locations(on_host(blocks.locations), info.shape, blocks.locations_path))
    count = int(chunk_blocks.block_counts(locations).sum())
    scales = blocks.scales
    if getattr(scales, "shape", None) != (count,) or scales.dtype != np.float32:
        raise ValueError(f"the scales of {path} must be float32 of shape ({count},), one per block of "
                         f"{quantization.BLOCK} of each chunk its blocks follow; got "
                         f"{getattr(scales, 'dtype', type(scales).__name__)} of shape {getattr(scales, 'shape', None)}")
    if chunk_blocks.blocks_whole(locations, info.shape):
        return Quantized(codes, scales)
    return chunk_blocks.decoded(on_host(codes), on_host(scales), locations, not kind.nonnegative)


def _has_negative_entries(array):
    """Whether a real number of ``array`` is below zero (NaN is not); allocates no temporary array."""
    parts = (array.real, array.imag) if array.dtype.kind == "c" else (array,)
    return any(part.size and bool(part.min() < 0) for part in parts)


# -- the arrays of a Dask engine -----------------------------------------------------------------


def checked_held_arrays(engine, state, kinds, treedef):
    """The state's arrays for a Dask engine's holdings, by name, as Dask arrays chunked like the
    parameters: the family's state, then the held policy operands."""
    if [kind.name for kind in kinds] != [kind.name for kind in engine.kinds]:
        raise ValueError(f"state keeps {[k.name for k in kinds]} but this optimizer keeps "
                         f"{[k.name for k in engine.kinds]}: make it with the same hyperparameters")
    arrays = {}
    kind_names = {kind.name for kind in kinds}
    for name in engine.names:
        if name not in state:
            raise ValueError(f"state is missing {name!r}")
        root = f"state[{name!r}]"
        leaves = treedef.flatten_like(state[name], root)
        coded = coded_leaves(state, name, leaves, treedef) if name in kind_names else None
        arrays[name] = engine.checked_state(name, leaves, treedef.paths(root), coded)
    return arrays


# -- schedules ------------------------------------------------------------------------------------


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
