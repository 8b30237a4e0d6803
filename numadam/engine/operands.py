"""The operands of one update: their checks, their segment rows, and the kernel spec that applies it.

Both engines and the functional steps meet here. An update reads and writes
*operands* in a fixed order: the parameter, its gradient, the family's state
kinds, then the policy operands (:data:`~numadam.core.pipeline.POLICY_OPERANDS`).
:func:`check_operands` runs every check on them before anything is written;
:func:`operand_rows` lays them out as segment rows; :func:`kernel_spec` names
the kernel. :func:`run_on_arrays` does all three for the arrays of one update
and runs it, in place or out of place: the functional steps and each chunk
of a Dask step go through it, with the same generated kernels as the
optimizers' buckets (:mod:`numadam.engine.bucket`). A chunk's update may
also say where its arrays lie in the whole parameter (:class:`Place`: its
stochastic rounding draws each element's bits from that position), and keep
8-bit state: codes, blocked over the chunk's own C order, with their block
scales.
"""

import functools
from typing import NamedTuple

import numpy as np

from ..adapters.rows import checked as checked_rows, is_rows, listed_rows
from ..core import dtypes, validate
from ..core.pipeline import CHUNK_POSITIONS, NO_POLICY, POLICY_OPERANDS, QUANTIZED_STATE, operand_dtype
from ..core.memory import MemoryRanges
from ..targets.dispatch import backend_for
from ..targets.layout import Operand, segment_rows
from ..targets.quantization import BLOCK, code_dtype
from ..targets.segments import ADDRESS
from ..targets.spec import KernelSpec
from ..targets.storage import storage_code

PARAM, GRAD = 0, 1


def slots(algorithm):
    """The names of an update's operands, in the kernels' order."""
    return ("param", "grad") + tuple(kind.name for kind in algorithm.state) + POLICY_OPERANDS


def operand_rows(infos, group=0, follow=None, pairs=True):
    """The segment rows over operands described by ``infos`` (``ArrayInfo``, ``None`` if absent).

    All present operands share the first one's shape; each has its own dtype
    and strides (a stride of 0 repeats one value: a scalar bound). Complex
    numbers count as pairs of reals, or as elements with ``pairs=False``
    (``complex_mode="magnitude"``). ``follow`` names the operand whose memory
    order the rows visit (see :func:`~numadam.targets.layout.segment_rows`).
    """
    param = infos[PARAM]
    if not pairs:
        operands = [None if info is None else Operand(info.address, info.strides, info.dtype.itemsize)
                    for info in infos]
        return segment_rows(param.shape, operands, group, follow)
    shape = dtypes.real_layout(param.shape, param.strides, param.dtype)[0]
    operands = [None if info is None else
                Operand(info.address, dtypes.real_layout(info.shape, info.strides, info.dtype)[1],
                        dtypes.real_itemsize(info.dtype))
                for info in infos]
    return segment_rows(shape, operands, group, follow)


class Place(NamedTuple):
    """Where the arrays of an update lie in a whole parameter: the position of their first element
    (in the sequence of the parameter's bucket, as the local engine lays it out) and the steps
    between positions along each axis (the parameter's C-order strides, in elements)."""

    first: int
    steps: tuple


def placed_rows(infos, place, follow=None):
    """``(rows, positions)``: :func:`operand_rows` over real operands ``infos``, with segments cut
    where the positions of ``place`` do not simply continue, and for each row the position of its
    first element and the step between its elements' positions (two int64 columns)."""
    param = infos[PARAM]
    operands = [None if info is None else Operand(info.address, info.strides, info.dtype.itemsize)
                for info in infos]
    rows = segment_rows(param.shape, operands + [Operand(place.first, tuple(place.steps), 1)], 0, follow)
    n = len(infos)
    position, step = ADDRESS + n, ADDRESS + 2 * n + 1
    kept = [column for column in range(rows.shape[1]) if column not in (position, step)]
    return np.ascontiguousarray(rows[:, kept]), rows[:, [position, step]]


class RowTemplate(NamedTuple):
    """The segment rows of an update's first row (first-axis position 0 of every operand) and each
    operand's first-axis stride in bytes (0 where absent): what :func:`~numadam.adapters.rows.listed_rows` repeats."""

    rows: np.ndarray
    strides: np.ndarray


def row_template(infos, group=0, follow=None, pairs=True):
    """The :class:`RowTemplate` of operands ``infos`` (``ArrayInfo``, ``None`` if absent), each
    laid out as :func:`operand_rows` lays out one row of it."""
    one_row = [None if info is None else info._replace(shape=tuple(info.shape[1:]), strides=tuple(info.strides[1:]))
               for info in infos]
    strides = np.array([0 if info is None else info.strides[0] for info in infos], np.int64)
    return RowTemplate(operand_rows(one_row, group, follow, pairs), strides)


def expected_state_dtype(param, first_state=None):
    """The dtype the state arrays of a parameter of dtype ``param`` must have, the first of them
    being ``first_state``: the parameter's compute dtype for float16 and bfloat16, its own dtype
    otherwise, or bfloat16 throughout where that is float32 and the first is bfloat16
    (``state_dtype="bfloat16"``)."""
    own = dtypes.compute_dtype(param) if dtypes.is_low_precision(param) else param
    if first_state is not None and first_state.name == "bfloat16" and own.name == "float32":
        return first_state
    return own


def policy_operand_dtype(name, param):
    """The dtype of policy operand ``name`` beside a parameter of dtype ``param`` (complex
    parameters: complex numbers of the real dtype, as pairs)."""
    real = operand_dtype(name, dtypes.storage_dtype(param), dtypes.compute_dtype(param))
    if name in ("low", "high"):
        return param
    return dtypes.complex_of(real) if param.kind == "c" else real


def check_operands(infos, names, arrays, written, magnitude=frozenset(), listed=False, codes=None):
    """Every check on the operands of one update, before anything is written.

    The gradient has the parameter's dtype and shape; the state has its shape
    and its compute dtype (float32 for float16 and bfloat16 parameters), or is
    all bfloat16 where that is float32 (``state_dtype="bfloat16"``); the state
    named in ``magnitude`` holds the real numbers of complex parameters
    (``complex_mode="magnitude"``); 8-bit state, every state of the update
    then, holds the codes ``codes`` names (its dtype by name) of a real
    parameter; a policy operand has the dtype of :func:`policy_operand_dtype`.
    With ``listed`` the gradient is the values of a
    :class:`~numadam.adapters.rows.Rows`, whose shape its own checks take.
    """
    param = infos[PARAM]
    codes = codes or {}
    validate.check_parameter_dtype(param, names[PARAM])
    states = [info for info, name in zip(infos[GRAD + 1:], names[GRAD + 1:]) if name not in POLICY_OPERANDS]
    if codes:
        _check_codes(param, names, codes)
    state = param._replace(dtype=expected_state_dtype(param.dtype, states[0].dtype if states else None))
    for k, (info, name, writes) in enumerate(zip(infos, names, written)):
        if k == GRAD and listed:
            continue  # checked with its index (numadam.adapters.rows.checked)
        if k in (PARAM, GRAD):
            validate.check_matches(info, name, param, names[PARAM])
        elif name in codes:
            validate.check_matches(info, name, param._replace(dtype=codes[name]), names[PARAM] + "'s 8-bit codes")
        elif name in POLICY_OPERANDS:
            expected = param._replace(dtype=policy_operand_dtype(name, param.dtype))
            what = "'s float32 copy" if name == "master" else f"'s {name}"
            validate.check_matches(info, name, expected, names[PARAM] + what)
        elif name in magnitude:
            real = param._replace(dtype=dtypes.storage_dtype(param.dtype))
            validate.check_matches(info, name, real, names[PARAM] + "'s magnitude state")
        else:
            validate.check_matches(info, name, state, names[PARAM] + (
                f"'s {state.dtype.name} state" if state.dtype != param.dtype else ""))
        validate.check_layout(info, name, writes)
    validate.check_disjoint(infos, names, arrays, written)


def _check_codes(param, names, codes):
    """8-bit state is all the state of an update, and holds real numbers."""
    if param.dtype.kind == "c":
        raise TypeError(f"{names[PARAM]} is complex; 8-bit state codes hold real numbers")
    numbers = [name for name in names[GRAD + 1:] if name not in POLICY_OPERANDS and name not in codes]
    if numbers:
        raise TypeError(f"{numbers[0]} holds numbers but {next(iter(codes))} holds 8-bit codes: an update keeps "
                        "all its state one way")


def state_codes(algorithm, arrays):
    """The dtype of the 8-bit codes of each state kind that ``arrays`` gives as integers (signed
    codes for state of either sign, unsigned for state that is never negative), by name."""
    return {kind.name: code_dtype(signed=not kind.nonnegative) for kind in algorithm.state
            if arrays.get(kind.name) is not None and np.dtype(arrays[kind.name].dtype).kind in "iu"}


def kernel_spec(algorithm, flags, storage, present_kinds, policy=NO_POLICY, state=None, sources=()):
    """The spec of a kernel over parameters whose numbers are stored as ``storage`` (a real
    dtype; a complex one with ``complex_mode="magnitude"``), with the state kinds present,
    stored as ``state`` (default: the compute dtype), and ``policy``; the operands numbered in
    ``sources`` are updated out of place (see :mod:`numadam.targets.segments`)."""
    return _kernel_spec(algorithm, tuple(flags), storage, frozenset(present_kinds), policy,
                        dtypes.compute_dtype(storage) if state is None else state, tuple(sources))


@functools.lru_cache(maxsize=1024)
def _kernel_spec(algorithm, flags, storage, present_kinds, policy, state, sources):
    compute = dtypes.compute_dtype(storage)
    param = storage_code(storage)
    state_codes = tuple(_state_code(kind, dtypes.complex_of(state) if storage.kind == "c" and not kind.magnitude
                                    else state) if kind.name in present_kinds else "" for kind in algorithm.state)
    used = policy.operands()
    extra = tuple(storage_code(operand_dtype(name, storage, compute)) if name in used else ""
                  for name in POLICY_OPERANDS)
    return KernelSpec(algorithm.name, flags, compute.name, (param, param) + state_codes + extra, policy, sources)


def _state_code(kind, state):
    """The storage code of state ``kind`` kept as ``state`` (int8: 8-bit codes, of the unsigned
    map for state that is never negative)."""
    if state == QUANTIZED_STATE:
        return "u8" if kind.nonnegative else "i8"
    return storage_code(state)


class Prepared(NamedTuple):
    """The checked operands of one update: the backend, the plan of its rows, and what names the kernel."""

    backend: object
    plan: object
    storage: np.dtype
    state: np.dtype
    present: frozenset
    sources: tuple
    #: Arrays the plan reads that nobody else holds (the summed values of repeated rows).
    kept: tuple = ()


def magnitude_kinds(algorithm, arrays):
    """The names of the state kinds given as real arrays for a complex parameter: the family's
    magnitude state (``complex_mode="magnitude"``, one real number per complex element), else none."""
    if arrays["param"].dtype.kind != "c":
        return frozenset()
    return frozenset(kind.name for kind in algorithm.state
                     if kind.magnitude and arrays.get(kind.name) is not None and arrays[kind.name].dtype.kind != "c")


def prepared(algorithm, arrays, sources=None, written=None, place=None, blocked=False):
    """Check the operands ``arrays`` (a dict by slot name: ``param``, ``grad``, the state kinds and
    policy operands present) of one update, and lay them out.

    ``written`` names the operands the update writes (default: all but the
    gradient and the bounds). With ``sources`` (a dict naming some written
    operands) the update is out of place: it reads those operands' old values
    from the source arrays, laid out as the operands are and sharing no
    memory with what is written, and writes the new values into the operands.
    With ``place`` (a :class:`Place`) the table ends with each segment's
    position in the whole parameter (:func:`placed_rows`). With ``blocked``
    the state may be 8-bit codes (integers; the caller holds their block
    scales), read and written in place, its elements visited in its own order
    (its blocks' order).
    """
    all_slots = slots(algorithm)
    names = [name for name in all_slots if name in ("param", "grad") or arrays.get(name) is not None]
    rows_grad = arrays.get("grad") if is_rows(arrays.get("grad")) else None
    given = [rows_grad.values if name == "grad" and rows_grad is not None else arrays.get(name) for name in names]
    if written is None:
        written = {name for name in names if name not in ("grad", "low", "high")}
    backend = backend_for(given, names)
    magnitude = magnitude_kinds(algorithm, arrays)
    codes = state_codes(algorithm, arrays) if blocked else {}
    rows, kept, positions = None, (), None
    if (backend.name == "numpy" and len(written) == len(names) - 1 and rows_grad is None
            and place is None):  # the common case
        rows = _contiguous_rows([arrays.get(name) for name in all_slots], backend)
    if rows is None:
        infos = [backend.describe(array) for array in given]
        if rows_grad is not None:
            found = checked_rows(rows_grad, infos[PARAM], infos[GRAD], "grad", backend)
            infos[GRAD], kept = backend.describe(found.values), (found.values,)
        check_operands(infos, names, given, [name in written for name in names], magnitude, rows_grad is not None,
                       codes)
        by_name = dict(zip(names, infos))
        ordered = [by_name.get(name) for name in all_slots]
        follow = next((k for k, name in enumerate(all_slots) if name in codes), None)
        if place is not None:
            if magnitude or infos[PARAM].dtype.kind == "c":
                raise TypeError("an update placed in a whole parameter takes a real parameter")
            rows, positions = placed_rows(ordered, place, follow)
        elif rows_grad is None:
            rows = operand_rows(ordered, follow=follow, pairs=not magnitude)
        else:
            values = ordered[GRAD]
            template = row_template([info._replace(address=0) if k == GRAD else info
                                     for k, info in enumerate(ordered)], pairs=not magnitude)
            rows, _ = listed_rows(template, found.index, values.address, values.strides[0], GRAD)
    numbers = ()
    if sources:
        rows, numbers = _out_of_place(rows, sources, arrays, written, backend, algorithm)
    if positions is not None:
        rows = np.column_stack([rows, positions])
    param = arrays["param"]
    storage = param.dtype if magnitude else dtypes.storage_dtype(param.dtype)
    states = [arrays[kind.name] for kind in algorithm.state if arrays.get(kind.name) is not None]
    state = QUANTIZED_STATE if codes else dtypes.storage_dtype(states[0].dtype) if states else None
    present = frozenset(kind.name for kind in algorithm.state if arrays.get(kind.name) is not None)
    return Prepared(backend, backend.plan(rows), storage, state, present, numbers, kept)


def _contiguous_rows(arrays, backend):
    """The one segment row over C-contiguous, aligned, writable NumPy operands (``None`` where
    absent; the parameter and the gradient present) of one dtype and shape whose memory is
    disjoint; ``None`` for anything else: the general checks then accept or explain it."""
    if arrays[PARAM] is None or arrays[GRAD] is None:
        return None
    given = [array for array in arrays if array is not None]
    first = given[0]
    dtype, shape = first.dtype, first.shape
    for array in given:
        if type(array) is not np.ndarray or array.dtype is not dtype or array.shape != shape:
            return None
        flags = array.flags
        if not (flags.c_contiguous and flags.aligned and flags.writeable):
            return None
    if not dtypes.is_supported(dtype):
        return None
    itemsize = dtypes.real_itemsize(dtype)
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


def _out_of_place(rows, sources, arrays, written, backend, algorithm):
    """``rows`` with a source column for each operand named in ``sources`` (its old values), and
    the operands' numbers in the order of those columns; every source checked first."""
    all_slots = slots(algorithm)
    numbers = []
    for name, source in sources.items():
        if name not in written or name not in all_slots:
            raise ValueError(f"sources may name the parameter, the state and the master copy (and the moving "
                             f"average and the accumulator) of this update; got {name!r}")
        target = arrays[name]
        if _layout_of(source) != _layout_of(target):
            raise ValueError(f"the source of {name} must be an array laid out as {name} is "
                             f"{_layout_words(target)}; got {_layout_words(source)}")
        numbers.append(all_slots.index(name))
    present = [name for name in all_slots if arrays.get(name) is not None]
    everything = [arrays[name] for name in present] + list(sources.values())
    paths = present + [f"the source of {name}" for name in sources]
    infos = [backend.describe(array) for array in everything]
    for info, path in zip(infos[len(present):], paths[len(present):]):
        validate.check_layout(info, path, False)
    validate.check_disjoint(infos, paths, everything, [name in written for name in present] + [False] * len(sources))
    moved = [rows[:, ADDRESS + k] + (backend.address(source) - backend.address(arrays[all_slots[k]]))
             for k, source in zip(numbers, sources.values())]
    return np.column_stack([rows, *moved]), tuple(numbers)


def run_on_arrays(algorithm, arrays, flags, policy, scalars, sources=None, written=None, reduce=False, place=None,
                  scales=None):
    """Check the operands ``arrays`` of one update (see :func:`prepared`) and run its kernel with
    the scalar row ``scalars`` (the family's, then the policy's where ``policy`` is active).

    With ``reduce`` the call is the pre-pass ``policy.reduction`` names, and
    returns its two float64 sums over the arrays (see
    :func:`~numadam.targets.body.reduction_source`), summed chunk by chunk in
    order.

    ``place`` (a :class:`Place`) says where the arrays lie in a whole
    parameter: stochastic rounding draws each element's random bits from its
    position there. With 8-bit state, ``scales`` holds the float32 scales of
    its blocks of :data:`~numadam.targets.quantization.BLOCK` elements (the
    arrays' own C order), one row of them per state kind of the family (its
    order), read and written in place by an update (a pre-pass, or a call
    that only accumulates, reads neither); without ``scales`` the state is
    numbers.
    """
    if reduce or not policy.stochastic:
        place = None
    elif place is not None:
        policy = policy._replace(stochastic=CHUNK_POSITIONS)
    ready = prepared(algorithm, arrays, sources, written, place, blocked=scales is not None)
    spec = kernel_spec(algorithm, flags, ready.storage, ready.present, policy, ready.state, ready.sources)
    backend, plan = ready.backend, ready.plan
    if not reduce:
        blocks = None
        if ready.state == QUANTIZED_STATE and policy.accumulate != "add":
            blocks = _chunk_blocks(backend, plan, scales, len(algorithm.state))
        backend.launcher(plan, spec, blocks)([scalars])
        return None
    sums = backend.reduce(plan, spec, [scalars], *chunk_pieces(backend, plan))
    return pre_pass_totals(sums)


def chunk_pieces(backend, plan):
    """``(starts, stops)``: the pieces of a pre-pass over ``plan``, one per chunk of the backend's
    ``chunk_size`` elements of its sequence (int64 arrays)."""
    starts = np.arange(0, plan.n_elements, backend.chunk_size, dtype=np.int64)
    return starts, np.append(starts[1:], plan.n_elements).astype(np.int64)


def pre_pass_totals(sums):
    """The two totals of a pre-pass's per-piece sums (``(pieces, 2)``), as floats; zeros for no piece."""
    return tuple(float(total) for total in sums.sum(axis=0)) if len(sums) else (0.0, 0.0)


def _chunk_blocks(backend, plan, scales, n_kinds):
    """``(blocks, scales)`` of an update of 8-bit state over ``plan``: each block's first element in
    the sequence (every :data:`~numadam.targets.quantization.BLOCK`-th), then the sequence's length,
    and ``scales``, checked to hold ``n_kinds`` rows of one scale per block."""
    n_elements = plan.n_elements
    starts = np.append(np.arange(0, n_elements, BLOCK), n_elements).astype(np.int64)
    expected = (n_kinds, len(starts) - 1)
    if scales is None or tuple(scales.shape) != expected or scales.dtype != np.float32:
        raise ValueError(f"8-bit state of {n_elements} elements needs float32 block scales of shape {expected}; got "
                         f"{None if scales is None else (scales.dtype, tuple(scales.shape))}")
    if not scales.flags.c_contiguous:
        raise ValueError("the block scales of 8-bit state must be C-contiguous: the update writes them")
    blocks = backend.zeros(len(starts), np.dtype(np.int64))
    backend.assign(blocks, starts)
    return blocks, scales.reshape(-1)
