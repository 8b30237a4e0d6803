"""The bodies every kernel runs: one segment piece, element by element.

:func:`piece_runner` writes, for one :class:`~numadam.targets.spec.KernelSpec`,
the function that updates elements ``start:stop`` of one segment::

    def run_piece(table, row, start, stop, step, scalars, like):
        h = Scalars(scalars[base + 0], ...)             # this segment's group
        q = PolicyScalars(...)                          # (with a policy) what comes after them
        flags = Flags(True, False, ...)                 # compile-time constants
        o0 = pointer(table[row + ADDRESS + 0], E0)      # one typed pointer per present operand
        s0 = table[row + ADDRESS + n + 0]               # and its stride
        ...
        r0 = pointer(table[row + ADDRESS + 2 * n], E0)  # (out of place) where the old values are read
        if s0 == 1 and s1 == 1 and ...:                 # contiguous: a loop LLVM vectorizes
            for i in range(start, stop):
                param, grad = w0(o0[i]), w1(o1[i])
                (the policy's prologue: accumulation, scaling, clipping of grad)
                param, state = rule(param, grad, (w2(o2[i]), ..., like), h, flags)
                (the policy's epilogue: bounds, moving average)
                o0[i] = n0(param); o2[i] = n2(state[0]); ...
        else:                                           # strided (and, with bounds, a loop
            (the same, at i * s0, i * s1, ...)          #  for scalar bounds: stride 0)

An absent operand is never dereferenced: the rule gets ``like`` (zero in the
real dtype) in its place and its result is dropped. The rule is called, never
copied: the CPU loop (:mod:`~numadam.targets.cpu.kernels`) and the CUDA loop
(:mod:`~numadam.targets.cuda.kernels`) run this one function, generated from the
spec because its arity, storage and policy vary.

:func:`reduction_runner` writes the pre-pass body, which reads the same
operands and returns two float64 sums over a piece: of the effective
gradient, its sum of squares and its count of non-finite numbers; or, for a
family with a norms rule (LAMB), the sums of squares of the parameter and of
the update direction, after updating the state. On the CPU with four
interleaved partial sums (a fixed association, so the sums are the same
whatever the threads), on CUDA one partial sum per thread, combined by the
kernel in a fixed tree.
"""

import functools
import hashlib
import os
import re

import numpy as np

from ..core.clip_math import clamped
from ..core.pipeline import POLICY_OPERANDS, PolicyScalars
from .primitives import four_alignment
from .quantization import BLOCK, codecs, inverse_of
from .segments import ADDRESS, GROUP, OFFSET, position_column
from .spec import algorithm, fingerprint
from .storage import QUANTIZED, STORAGES, conversions, stochastic_rounding

PARAM, GRAD = 0, 1


def _policy_slot(spec, name):
    """The operand index of policy operand ``name``."""
    return spec.n_operands - len(POLICY_OPERANDS) + POLICY_OPERANDS.index(name)


def _element(k, index_of):
    return f"o{k}[{index_of(k)}]"


def _old(spec, k, index_of):
    """Operand ``k``'s element as the update reads it: from its source when the update is out of place."""
    return f"r{k}[{index_of(k)}]" if k in spec.sources else _element(k, index_of)


def _gradient_lines(spec, index_of, update=True):
    """The lines forming the effective gradient ``grad``.

    For the update (``update``) the accumulator is cleared and the gradient
    scaled and clipped; the pre-pass reduces the gradient before both and
    writes nothing.
    """
    policy = spec.policy
    lines = [f"grad = w1({_element(GRAD, index_of)})"]
    if policy.accumulate == "apply":
        slot = _policy_slot(spec, "accumulator")
        lines.append(f"grad = real((w{slot}({_old(spec, slot, index_of)}) + grad) / q.accumulate_count)")
        if update:
            lines.append(f"{_element(slot, index_of)} = n{slot}(zero64)")
    if not update:
        return lines
    if policy.grad_scale:
        lines.append("grad = grad * q.grad_scale")
    if policy.clip_value:  # numadam.core.clip_math.clamped: NaN stays NaN
        lines.append("grad = clamped(grad, q.clip_value)")
    return lines


def _param_load(spec, index_of):
    """The parameter as the rule reads it: from the float32 master copy where there is one."""
    if spec.policy.master:
        master = _policy_slot(spec, "master")
        return f"w{master}({_old(spec, master, index_of)})"
    return f"w0({_old(spec, PARAM, index_of)})"


def _position_step(spec):
    """The step between the positions of the segment's elements, whose random bits (stochastic
    rounding) are those of position ``offset + i * step``."""
    return "offset_step" if spec.positions else "1"


def _param_store(spec, index_of, runs=False):
    """The lines that write the updated ``param``: the master copy, then the parameter, rounded.

    With ``runs`` (see :func:`_runs`) the top half of the element's position is ``position_top``,
    that of its run; else it is computed for each element."""
    lines = []
    if spec.policy.master:
        master = _policy_slot(spec, "master")
        lines.append(f"{_element(master, index_of)} = n{master}(param)")
    if spec.policy.kahan:  # (never with a master copy: the options refuse the two together)
        return lines + _compensated_store(spec, index_of)
    if spec.policy.stochastic:
        step = _position_step(spec)
        top = "position_top" if runs else f"(offset + i * {step}) >> 32"
        lines.append(f"{_element(PARAM, index_of)} = stochastic(param, random_bits(i, offset, {step}, {top}, salt))")
    else:
        lines.append(f"{_element(PARAM, index_of)} = n0(param)")
    return lines


def _compensated_store(spec, index_of):
    r"""The lines that write the updated ``param`` into a 16-bit parameter with Kahan's compensation
    (``compensation="kahan"``): with :math:`p` the old parameter and :math:`c` the compensation (both
    16-bit, widened), :math:`p'` the rule's new value (float32),

    .. math::

        y = (p' - p) + c, \qquad s = \operatorname{round}_{16}(p + y), \qquad
        c \leftarrow \operatorname{round}_{16}\bigl(y - (s - p)\bigr), \qquad p \leftarrow s

    so that what rounding :math:`p + y` lost is added back at the next step. With ``bounds``,
    :math:`p + y` is held in them as the rule's value was (:math:`y` becomes the bound minus
    :math:`p`): what the bound cut off is not owed to later steps."""
    slot = _policy_slot(spec, "compensation")
    lines = [f"previous = {_param_load(spec, index_of)}",
             f"compensated = (param - previous) + w{slot}({_old(spec, slot, index_of)})"]
    if spec.policy.bounds:
        lines += ["if previous + compensated < low:", "    compensated = low - previous",
                  "elif previous + compensated > high:", "    compensated = high - previous"]
    return lines + [
            "stored = n0(previous + compensated)",
            f"{_element(slot, index_of)} = n{slot}(compensated - (w0(stored) - previous))",
            f"{_element(PARAM, index_of)} = stored"]


def _buffered(k, index):
    """State operand ``k``'s element ``index`` of a block, in the block's buffer (8-bit state).

    The index is unsigned: Numba then adds no negative-index branch, which would keep
    LLVM from vectorizing the loops that read and write the buffer.
    """
    return f"buffer[uint64({(k - 2) * BLOCK} + {index})]"


def _state_load(spec, k, index_of):
    """State operand ``k`` as the rule reads it: widened, or (8-bit state) decoded and scaled by
    its block's scale ``c{k}`` (the codecs convert in vector lanes, so the rule's loop vectorizes
    with them)."""
    if not spec.operands[k]:
        return "like"
    if spec.operands[k] in QUANTIZED:
        return f"d{k}({_element(k, index_of)}) * c{k}"
    return f"w{k}({_old(spec, k, index_of)})"


def _state_store(spec, k, index_of, largest=False):
    """The lines that keep state operand ``k``'s new value: narrowed into the operand, or (8-bit
    state) into the block's buffer, to be encoded once the block's new scale is known; with
    ``largest``, the buffer's largest magnitude so far too (``l{k}``, see :func:`settle_source`)."""
    slot = k - 2
    if spec.operands[k] in QUANTIZED:
        lines = [f"{_buffered(k, 'i + shift')} = state[{slot}]"]
        if largest:
            lines.append(f"l{k} = max(l{k}, bitcast(abs(float32(state[{slot}])), uint32(0)))")
        return lines
    return [f"{_element(k, index_of)} = n{k}(state[{slot}])"]


def _update_lines(spec, index_of, bounds_loaded, largest=False, runs=False):
    """The lines that update the element at ``index_of(k)`` of each operand ``k`` (``largest``: see
    :func:`_state_store`; ``runs``: :func:`_param_store`)."""
    policy = spec.policy
    if policy.accumulate == "add":  # this call only adds the micro-batch gradient into the buffer
        slot = _policy_slot(spec, "accumulator")
        return [f"{_element(slot, index_of)} = n{slot}(w{slot}({_old(spec, slot, index_of)}) + w1({_element(GRAD, index_of)}))"]
    n_state = len(algorithm(spec.rule).state)
    state = [_state_load(spec, k, index_of) for k in range(2, 2 + n_state)]
    lines = _gradient_lines(spec, index_of)
    lines.append(f"param, state = rule({_param_load(spec, index_of)}, grad, "
                 f"({', '.join(state)}{',' if n_state == 1 else ''}), h, flags)")
    if policy.bounds:
        low, high = _policy_slot(spec, "low"), _policy_slot(spec, "high")
        if not bounds_loaded:
            lines += [f"low = w{low}({_element(low, index_of)})", f"high = w{high}({_element(high, index_of)})"]
        lines += ["if param < low:", "    param = low", "elif param > high:", "    param = high"]
    if policy.ema:
        slot = _policy_slot(spec, "ema")
        lines.append(f"{_element(slot, index_of)} = n{slot}(q.ema_decay * w{slot}({_old(spec, slot, index_of)})"
                     " + q.one_minus_ema_decay * param)")
    lines += _param_store(spec, index_of, runs)
    lines += [line for k in _written_state(spec) for line in _state_store(spec, k, index_of, largest)]
    return lines


def _written_state(spec):
    """The state operands an update writes: those present that the family's update stores
    (:attr:`~numadam.core.algorithm.Algorithm.state_written_by_update`)."""
    return _state_operands(spec, algorithm(spec.rule).state_written_by_update)


def _state_written_by_norms(spec):
    """The state operands a family's norms pass writes: those present, but the read-only ones."""
    declared = algorithm(spec.rule)
    return _state_operands(spec, set(declared.state_names) - set(declared.read_only_state))


def _state_operands(spec, names):
    """The numbers of the present state operands named in ``names``, in the rule's order."""
    declared = algorithm(spec.rule)
    return [k for k in range(2, 2 + len(declared.state)) if spec.operands[k] and declared.state_names[k - 2] in names]


def _header(name, spec, extra_arguments="", piece=True):
    """The signature, the scalars and the typed pointers and strides of every present operand.

    A ``piece`` function takes the range it updates (``start, stop, step``) after ``table, row``.
    """
    n = spec.n_operands
    fields = len(algorithm(spec.rule).Scalars._fields)
    lines = [f"def {name}(table, row, {'start, stop, step, ' if piece else ''}scalars, like{extra_arguments}):",
             f"    base = table[row + {GROUP}] * {spec.n_scalars}",
             "    h = Scalars(" + ", ".join(f"scalars[base + {j}]" for j in range(fields)) + ")",
             f"    flags = Flags({', '.join(map(repr, spec.flags))})"]
    if spec.policy.active:
        lines.append("    q = PolicyScalars(" + ", ".join(
            f"scalars[base + {fields + j}]" for j in range(len(PolicyScalars._fields))) + ")")
    if spec.positions:  # a chunk's table: each segment's position in the whole parameter, and its step
        column = position_column(n, len(spec.sources))
        lines += [f"    offset = table[row + {column}]", f"    offset_step = table[row + {column + 1}]"]
    elif spec.policy.stochastic:
        lines.append(f"    offset = table[row + {OFFSET}]")
    if spec.policy.stochastic:
        lines.append("    salt = uint64(q.salt)")
    for k, code in enumerate(spec.operands):
        if code:
            lines.append(f"    o{k} = pointer(table[row + {ADDRESS + k}], e{k})")
            lines.append(f"    s{k} = table[row + {ADDRESS + n + k}]")
    for j, k in enumerate(spec.sources):  # out of place: the old values, laid out like the operand
        lines.append(f"    r{k} = pointer(table[row + {ADDRESS + 2 * n + j}], e{k})")
    return lines


def _operand_pointers(spec, operands):
    n = spec.n_operands
    return [line for k in operands for line in (f"    o{k} = pointer(table[row + {ADDRESS + k}], e{k})",
                                                f"    s{k} = table[row + {ADDRESS + n + k}]")]


def _loop(body, step):
    return [f"        for i in range(start, stop{step}):"] + ["            " + line for line in body]


#: An element that a line of an update reads or writes at index ``i``: an operand's (``o3[i]``) or
#: an out-of-place source's (``r3[i]``).
_ELEMENT_AT_I = re.compile(r"\b([or])(\d+)\[i\]")


def _loads_first(body, count):
    """A loop of a GPU thread over ``count`` of its elements at a time (``start``, ``start + step``,
    ...; the threads of a warp still touch neighbouring elements), before :func:`_loop` takes the
    rest: every element those ``count`` updates of ``body`` (lines at index ``i``) read is loaded
    first, into a register of its own, then each update runs on its loaded values and stores its
    results. One element at a time, a thread waits for each element's loads before it asks for
    the next element's (its stores may reach any address, so no load moves above them); so it
    keeps ``count`` times as many loads in flight, which memory latency, not the arithmetic, bounds.
    The same operations on the same values as one element at a time: the same bits."""
    read = sorted({element for line in body for element in _ELEMENT_AT_I.findall(_read_part(line))})
    lines = [f"        while start + {count - 1} * step < stop:"]
    for unit in range(count):
        at = "start" if unit == 0 else f"start + {unit} * step"
        lines += [f"            {_loaded(kind, k, unit)} = {kind}{k}[{at}]" for kind, k in read]
    for unit in range(count):
        lines.append("            i = start" + (f" + {unit} * step" if unit else ""))
        for line in body:
            read_part = _read_part(line)
            target = line[:len(line) - len(read_part)]  # "o3[i] = " for a store, else nothing
            lines.append("            " + target + _ELEMENT_AT_I.sub(
                lambda match: _loaded(*match.groups(), unit), read_part))
    lines.append(f"            start += {count} * step")
    return lines


def _read_part(line):
    """What a line of an update reads: all of it, or a store's value (``o3[i] = <value>``)."""
    store = _STORE.match(line)
    return line[store.end():] if store else line


#: A line of an update that stores into an element.
_STORE = re.compile(r"[or]\d+\[i\] = ")


def _loaded(kind, k, unit):
    """The register an element read ahead goes into: ``x3_1`` for operand 3's (``o3``), ``y3_1`` for
    its out-of-place source's (``r3``), at the thread's element ``unit``."""
    return f"{'x' if kind == 'o' else 'y'}{k}_{unit}"


def quantized_operands(spec):
    """The operands of ``spec`` kept as 8-bit blockwise codes."""
    return [k for k, code in enumerate(spec.operands) if code in QUANTIZED]


def piece_source(spec, strided_threads, name="run_piece"):
    """The source of ``run_piece`` for ``spec``.

    ``strided_threads`` (CUDA) makes the loops step by ``step`` (the threads of
    a block share a piece); on the CPU they step by one, which LLVM vectorizes.

    With 8-bit state the function is ``load_piece``, the first half of a block's
    update: it reads the state with the block's scales (``c2 = scales[...]``)
    and leaves the new state in ``buffer`` at ``i + shift`` (the element's
    place in its block) for :func:`store_source`. On the CPU it also takes and
    returns ``largest``, the bits of each state's largest new magnitude in the
    block so far (the float32 magnitudes' bits, whose integer order is theirs,
    every NaN above infinity), found in the update's own loop for
    :func:`settle_source`.
    """
    step = ", step" if strided_threads else ""
    # With 8-bit state, run_piece only adds a micro-batch into the accumulator: it reads no state.
    quantized = quantized_operands(spec) if name == "load_piece" else []
    largest = name == "load_piece" and not strided_threads
    _check_written(spec, quantized)
    extra = ", scales, n_blocks, block, shift, buffer" if name == "load_piece" else ""
    lines = _header(name, spec, extra + (", largest" if largest else ""))
    lines += [f"    c{k} = real(scales[{k - 2} * n_blocks + block])" for k in quantized]
    if largest:
        lines += [f"    l{k} = largest[{j}]" for j, k in enumerate(quantized)]
    lines += _update_loops(spec, step, largest, runs=spec.policy.stochastic and not strided_threads)
    if largest:
        lines.append("    return (" + "".join(f"l{k}, " for k in quantized) + ")")
    return "\n".join(lines) + "\n"


def _check_written(spec, quantized):
    if set(quantized) - set(_written_state(spec)):
        raise ValueError(f"8-bit state must be written by the update: {spec.rule} leaves some unwritten")


#: Elements each GPU thread updates at once in a piece whose operands all lie at stride 1: their
#: loads are all issued before any of their arithmetic (see :func:`_loads_first`); 1: one at a
#: time. 1 until a GPU has timed the others: under the kernels' cap of 64 registers, two or four
#: at a time spill (docs/gpu.md, "Several elements a thread"). ``NUMADAM_CUDA_ELEMENTS_PER_THREAD``
#: sets it for a process (read at import), for that comparison.
ELEMENTS_PER_THREAD = int(os.environ.get("NUMADAM_CUDA_ELEMENTS_PER_THREAD", "1"))


def _update_loops(spec, step, largest, runs):
    """The loops of :func:`piece_source` over ``start:stop``: one per layout of the operands."""
    present = [k for k, code in enumerate(spec.operands) if code]
    unit = lambda k: "i"  # noqa: E731
    strided = lambda k: f"i * s{k}"  # noqa: E731
    loops = ["    if " + " and ".join(f"s{k} == 1" for k in present) + ":"]
    if step and not largest and ELEMENTS_PER_THREAD > 1:
        loops += _loads_first(_update_lines(spec, unit, False, largest, runs), ELEMENTS_PER_THREAD)
    loops += _loop(_update_lines(spec, unit, False, largest, runs), step)
    for condition, index_of, _ in _factored_layouts(spec, present):
        loops.append(f"    elif {condition}:")
        loops += _loop(_update_lines(spec, index_of, False, largest, runs), step)
    if spec.policy.bounds and spec.policy.accumulate != "add":
        low, high = _policy_slot(spec, "low"), _policy_slot(spec, "high")
        others = [k for k in present if k not in (low, high)]
        loops.append(f"    elif s{low} == 0 and s{high} == 0 and " + " and ".join(f"s{k} == 1" for k in others) + ":")
        loops += [f"        low = w{low}(o{low}[0])", f"        high = w{high}(o{high}[0])"]
        loops += _loop(_update_lines(spec, unit, True, largest, runs), step)
    loops.append("    else:")
    loops += _loop(_update_lines(spec, strided, False, largest, runs), step)
    return _runs(spec, loops) if runs else loops


#: Whether the GPU's update kernels read and write four neighbouring elements a thread as one
#: vector access (a 128-bit load or store of float32; see :func:`quads_source`). On: on an H200
#: it took Adam at 1e8 from 1.150 ms to 0.736 (0.92x the same-traffic CuPy kernel, 1.08x faster
#: than torch's fused step; docs/bench/cuda-h200-2026-11-28-launch.txt). ``NUMADAM_CUDA_VECTOR_LOADS=0``
#: turns it off for a process (read at import), to time one element at a time (tools/gpu_launch.py).
VECTOR_LOADS = os.environ.get("NUMADAM_CUDA_VECTOR_LOADS", "1") == "1"


def _vector_operands(spec):
    """``(pointer name, operand code)`` of everything an update reads or writes in place: each
    present operand's ``o{k}`` and each out-of-place source's ``r{k}``."""
    return ([(f"o{k}", code) for k, code in enumerate(spec.operands) if code]
            + [(f"r{k}", spec.operands[k]) for k in spec.sources])


def _four_addresses(spec, element):
    """The byte address of element ``element`` of every pointer of :func:`_vector_operands`, with
    its element size, as source text."""
    n = spec.n_operands
    columns = [ADDRESS + k for k, code in enumerate(spec.operands) if code]
    columns += [ADDRESS + 2 * n + j for j in range(len(spec.sources))]
    sizes = [STORAGES[code].element.itemsize for _, code in _vector_operands(spec)]
    return [(f"table[row + {column}] + {element} * {size}", size) for column, size in zip(columns, sizes)]


def quads_source(spec):
    r"""The source of ``run_quads(table, row, start, stop, step, scalars, like, thread)``: a GPU
    thread's share of elements ``start:stop`` of a segment in runs of four neighbours, each read
    and written as one vector access (:func:`~numadam.targets.primitives.load_four`), as torch's
    fused kernels read theirs. Thread ``t`` of ``step`` takes elements :math:`h + 4t + 4 \cdot
    step \cdot j` to :math:`h + 4t + 4 \cdot step \cdot j + 3`, where :math:`h` is the first
    element whose address is a multiple of four elements' size (at most 16 bytes); the few
    elements before it and after the last run of four are taken one at a time.

    It returns ``False``, having written nothing, when an operand is complex or strided, or the operands' addresses
    do not all reach their alignment at the same element :math:`h` (a view that starts one element
    in, say), and the caller then runs ``run_piece``. Each element's update is the same operations
    on the same values as ``run_piece``'s: the same bits.
    """
    present = [k for k, code in enumerate(spec.operands) if code]
    update = _update_lines(spec, lambda k: "i", False)
    lines = _header("run_quads", spec, ", thread")
    if any(STORAGES[code].element.kind == "c" for _, code in _vector_operands(spec)):
        return "\n".join(lines + ["    return False"]) + "\n"  # complex numbers: no vector of them
    first, first_size = _four_addresses(spec, "start")[0]
    alignment = four_alignment(first_size)
    lines.append("    if not (" + " and ".join(f"s{k} == 1" for k in present) + "):")
    lines.append("        return False")
    lines.append(f"    head = min(stop, start + ({alignment} - ({first}) % {alignment}) % {alignment} // {first_size})")
    misaligned = [f"({address}) % {four_alignment(size)} != 0" for address, size in _four_addresses(spec, "head")]
    lines.append("    if " + " or ".join(misaligned) + ":")
    lines.append("        return False")
    lines += ["    for i in range(start + thread, head, step):"] + ["        " + line for line in update]
    lines.append("    quad = head + 4 * thread")
    lines += _in_fours(update)
    lines.append("    for i in range(head + (stop - head) // 4 * 4 + thread, stop, step):")
    lines += ["        " + line for line in update]
    lines.append("    return True")
    return "\n".join(lines) + "\n"


def _in_fours(update):
    """The loop of :func:`quads_source` over runs of four elements from ``quad``: every element the
    four updates read loaded first, four at a time (``x3_0, x3_1, x3_2, x3_3 = load_four(o3, quad)``),
    then each update on its loaded values into registers (``z3_1``), then the stores, four at a time."""
    read = sorted({element for line in update for element in _ELEMENT_AT_I.findall(_read_part(line))})
    written = sorted({element for line in update
                      for element in _ELEMENT_AT_I.findall(line[:len(line) - len(_read_part(line))])})
    lines = ["    while quad + 3 < stop:"]
    lines += [f"        {', '.join(_loaded(kind, k, unit) for unit in range(4))} = load_four({kind}{k}, quad)"
              for kind, k in read]
    for unit in range(4):
        lines.append(f"        i = quad + {unit}")
        for line in update:
            read_part = _read_part(line)
            target = line[:len(line) - len(read_part)]
            if target:
                kind, k = _ELEMENT_AT_I.match(target).groups()
                target = f"{_kept(kind, k, unit)} = "
            loaded = _ELEMENT_AT_I.sub(lambda match: _loaded(*match.groups(), unit), read_part)
            lines.append("        " + target + loaded)
    lines += [f"        store_four({kind}{k}, quad, {', '.join(_kept(kind, k, unit) for unit in range(4))})"
              for kind, k in written]
    lines.append("        quad += 4 * step")
    return lines


def _kept(kind, k, unit):
    """The register a new value of operand ``k`` waits in for its vector store (``z3_1``)."""
    return f"z{k}_{unit}"


def blocks_source(spec):
    """The source of ``run_blocks`` (CPU): blocks ``block:end_block`` of 8-bit state whose
    elements all lie in one segment (the segment's own elements ``blocks[b] - segment_offset``
    on), each updated whole: the update (:func:`piece_source`'s ``load_piece`` loops, the new
    state into ``buffer``), its new scales (:func:`settle_source`), then its codes
    (:func:`store_source`'s loops). One call for a run of blocks reads the segment's scalars and
    pointers once, where a call per block would read them for every 256 elements."""
    quantized = quantized_operands(spec)
    _check_written(spec, quantized)
    lines = _header("run_blocks", spec, ", scales, n_blocks, blocks, block, end_block, segment_offset, buffer",
                    piece=False)
    lines += ["    for block in range(block, end_block):",
              "        start = blocks[block] - segment_offset",
              "        stop = blocks[block + 1] - segment_offset",
              "        shift = -start"]
    lines += [f"        c{k} = real(scales[{k - 2} * n_blocks + block])" for k in quantized]
    lines += [f"        l{k} = uint32(0)" for k in quantized]
    lines += ["    " + line for line in _update_loops(spec, "", True, runs=spec.policy.stochastic)]
    for k in quantized:
        lines += ["    " + line for line in _settle_lines(k, f"l{k}", f"v{k}")]
    lines += ["    " + line for line in _store_loops(spec, quantized, "")]
    return "\n".join(lines) + "\n"


def _runs(spec, loops):
    """``loops`` (over ``start:stop``) run once for each run of elements whose positions share
    their top 32 bits, ``position_top`` (stochastic rounding on the CPU): a piece is one run unless
    its positions cross a multiple of 2^32 (past four billion elements). The random bits' loop then
    steps 32-bit indices in its vector lanes, not 64-bit positions; the bits are each position's."""
    step = _position_step(spec)
    return ["    piece_stop = stop",
            "    while start < piece_stop:",
            f"        first = offset + start * {step}",
            "        position_top = first >> 32",
            f"        if {step} > 0:  # the positions up to the next multiple of 2^32",
            f"            stop = min(piece_stop, start + (((position_top + 1) << 32) - first + {step} - 1) // {step})",
            f"        elif {step} < 0:  # down to the last one",
            f"            stop = min(piece_stop, start + (first - (position_top << 32)) // -{step} + 1)",
            "        else:",
            "            stop = piece_stop"] + ["    " + line for line in loops] + ["        start = stop"]


#: The strides (0 or 1) of the read-only state operands (factored state: row factor, column factor,
#: row mean, row scales, column scales) in the segments of a matrix walked along its rows (C
#: order) or its columns (Fortran order), and of a vector (whose full second moment is the row
#: factor, the rest one number each); and whether the layout is a matrix's.
_FACTORED_STRIDES = (((0, 1, 0, 0, 1), True), ((1, 0, 0, 1, 0), True), ((1, 0, 0, 0, 0), False))


def _factored_layouts(spec, present):
    """``(condition, index_of, matrix)`` of each contiguous layout of a spec with factored state:
    every operand at stride 1 but the factors, each read at stride 0 (its value for the whole
    segment, ``o[0]``) or 1; ``matrix``, whether it is a matrix's. Loops LLVM vectorizes, where the
    strided loop would gather."""
    declared = algorithm(spec.rule)
    factored = [k for k in range(2, 2 + len(declared.state))
                if spec.operands[k] and declared.state_names[k - 2] in declared.read_only_state]
    if not factored:
        return []
    others = [k for k in present if k not in factored]
    layouts = []
    for strides, matrix in _FACTORED_STRIDES:
        if len(strides) != len(factored):
            continue
        zeros = {k for k, stride in zip(factored, strides) if stride == 0}
        condition = " and ".join([f"s{k} == 1" for k in others] + [f"s{k} == {stride}" for k, stride in
                                                                    zip(factored, strides)])
        layouts.append((condition, lambda k, zeros=zeros: "0" if k in zeros else "i", matrix))
    return layouts


def store_source(spec, strided_threads):
    """The source of ``store_piece``: the second half of a block's update, which encodes the
    new state left in ``buffer`` with the block's new ``inverse`` scales."""
    step = ", step" if strided_threads else ""
    quantized = quantized_operands(spec)
    lines = ["def store_piece(table, row, start, stop, step, inverse, shift, buffer):"]
    lines += _operand_pointers(spec, quantized)
    lines += [f"    v{k} = inverse[{k - 2}]" for k in quantized]
    return "\n".join(lines + _store_loops(spec, quantized, step)) + "\n"


def _store_loops(spec, quantized, step):
    """Loops that encode each 8-bit state's new values, in ``buffer``, with its inverse scale ``v{k}``."""
    lines = []
    for k in quantized:  # a loop per state: one map's constants stay in registers
        lines.append(f"    if s{k} == 1:")
        lines += _loop([f"{_element(k, lambda k: 'i')} = q{k}({_buffered(k, 'i + shift')}, v{k})"], step)
        lines.append("    else:")
        lines += _loop([f"{_element(k, lambda k: f'i * s{k}')} = q{k}({_buffered(k, 'i + shift')}, v{k})"], step)
    return lines


def settle_source(spec):
    """The source of ``settle`` (CPU): each 8-bit state's new block scale, the largest magnitude
    of its new state (NaN if any is NaN), stored as float32, and its ``inverse``.

    ``largest`` holds, per state, the bits of the largest float32 magnitude
    that the block's pieces returned (:func:`piece_source`): an integer maximum,
    taken in the update's vectorized loop, since the bits order as the numbers
    do and every NaN's bits lie above infinity's.
    """
    lines = ["def settle(largest, scales, n_blocks, block, inverse, like):"]
    for j, k in enumerate(quantized_operands(spec)):
        lines += _settle_lines(k, f"largest[{j}]", f"inverse[{k - 2}]")
    return "\n".join(lines) + "\n"


def _settle_lines(k, largest_bits, inverse):
    """Lines that store state operand ``k``'s new block scale from ``largest_bits`` (NaN above
    infinity's bits) and set ``inverse`` to what its codes are encoded with."""
    return [f"    scale = float32(nan) if {largest_bits} > uint32(0x7F800000) else bitcast({largest_bits}, float32(0))",
            f"    scales[{k - 2} * n_blocks + block] = scale",
            f"    {inverse} = inverse_of(real(scale), like)"]


def _gradient_squares(spec, index_of):
    """Sum of squares (``a``) of the effective gradient before it is scaled or clipped; nothing is written."""
    return _gradient_lines(spec, index_of, update=False) + ["wide = float64(grad)", "a0 += wide * wide"]


def _gradient_nonfinite(spec, index_of):
    """Count (``b``) of the effective gradient's NaNs and infinities."""
    return _gradient_lines(spec, index_of, update=False) + ["b0 += zero64 if grad - grad == grad - grad else one64"]


def _norms_rule(spec, index_of):
    """The family's norms rule (LAMB's first pass): it updates the state and leaves the update
    ``direction`` and the ``param`` it read."""
    n_state = len(algorithm(spec.rule).state)
    state = [_state_load(spec, k, index_of) for k in range(2, 2 + n_state)]
    lines = _gradient_lines(spec, index_of) + [
        f"param = {_param_load(spec, index_of)}",
        f"state, direction = norms(param, grad, ({', '.join(state)}{',' if n_state == 1 else ''}), h, flags)"]
    lines += [f"{_element(k, index_of)} = n{k}(state[{k - 2}])" for k in _state_written_by_norms(spec)]
    if algorithm(spec.rule).norms.terms:  # the two terms the pass sums, where the squares' would be
        lines.append("param, direction = direction")
    return lines


def _added(spec, name, sum_name):
    """:func:`norms_sum_lines` for ``spec``'s family."""
    return norms_sum_lines(algorithm(spec.rule).norms.terms, name, sum_name)


def norms_sum_lines(terms, name, sum_name):
    """The lines that add ``name`` to the float64 sum ``sum_name`` (``float64`` in their namespace):
    its square, or itself where the family's norms rule returns the terms to sum (``terms``:
    :attr:`numadam.core.algorithm.Norms.terms`)."""
    if terms:
        return [f"{sum_name} += float64({name})"]
    return [f"wide = float64({name})", f"{sum_name} += wide * wide"]


def _norm_sums(spec, index_of):
    """:func:`_norms_rule`, then the sums of squares of the parameter (``a``) and of the direction
    (``b``), or of the rule's two terms, in the same loop (CUDA's: see :func:`_tiled_norm_loops`
    for the CPU's)."""
    return _norms_rule(spec, index_of) + _added(spec, "param", "a0") + _added(spec, "direction", "b0")


#: Elements of a tile of the CPU's norms pass (see :func:`_tiled_norm_loops`).
NORMS_TILE = 512


def _tiled_norm_loops(spec):
    """The CPU's norms pass over ``start:stop``, a tile of :data:`NORMS_TILE` elements at a time:
    a loop applies :func:`_norms_rule` and keeps each parameter and direction in ``tile``, a
    second adds their float64 squares. Apart, each loop vectorizes at its own width: the rule's
    divisions and root at the compute dtype's (8 float32 lanes on AVX2), the float64 sums at theirs
    (4); in one loop LLVM took 4 lanes for both. The sums' order is fixed by the tiles. A matrix's
    layouts go untiled where the family says its direction there is products only
    (:attr:`numadam.core.algorithm.Norms.tiled_matrices`): the tile costs more than it saves."""
    present = [k for k, code in enumerate(spec.operands) if code]
    untiled_matrices = not algorithm(spec.rule).norms_tiled_matrices
    layouts = ([("if " + " and ".join(f"s{k} == 1" for k in present) + ":", lambda k: "i", False)]
               + [(f"elif {condition}:", index_of, matrix)
                  for condition, index_of, matrix in _factored_layouts(spec, present)]
               + [("else:", lambda k: f"i * s{k}", False)])
    held = ["tile[uint64(i - first)] = param", f"tile[uint64({NORMS_TILE} + i - first)] = direction"]
    lines = []
    for condition, index_of, matrix in layouts:
        if matrix and untiled_matrices:  # products only: one loop at the sums' width is faster
            lines += ["    " + condition, "        for i in range(start, stop):"]
            lines += ["            " + line for line in _norm_sums(spec, index_of)]
            continue
        lines += ["    " + condition, f"        tile = empty({2 * NORMS_TILE}, real)",
                  f"        for first in range(start, stop, {NORMS_TILE}):",
                  f"            last = min(first + {NORMS_TILE}, stop)",
                  "            for i in range(first, last):"]
        lines += ["                " + line for line in _norms_rule(spec, index_of) + held]
        lines += ["            for i in range(first, last):"]
        lines += ["                " + line for line in _added(spec, "tile[uint64(i - first)]", "a0")
                  + _added(spec, f"tile[uint64({NORMS_TILE} + i - first)]", "b0")]
    return lines


def _reduction_loops(spec, body, strided_threads, indent="    "):
    """Loops running ``body(spec, index_of)`` over elements ``start:stop``: one per layout on the
    CPU, which compiles them with reassociation (vectorized sums); on CUDA, one strided loop
    that picks the layout per element."""
    present = [k for k, code in enumerate(spec.operands) if code]
    contiguous = "if " + " and ".join(f"s{k} == 1" for k in present) + ":"
    unit = [indent + "        " + line for line in body(spec, lambda k: "i")]
    strided = [indent + "        " + line for line in body(spec, lambda k: f"i * s{k}")]
    factored = [(f"elif {condition}:", [indent + "        " + line for line in body(spec, index_of)])
                for condition, index_of, _ in _factored_layouts(spec, present)]
    if strided_threads:
        return ([indent + "for i in range(start, stop, step):", indent + "    " + contiguous] + unit
                + [line for condition, lines in factored for line in [indent + "    " + condition] + lines]
                + [indent + "    else:"] + strided)
    return ([indent + contiguous, indent + "    for i in range(start, stop):"] + unit
            + [line for condition, lines in factored
               for line in [indent + condition, indent + "    for i in range(start, stop):"] + lines]
            + [indent + "else:", indent + "    for i in range(start, stop):"] + strided)


def reduction_source(spec, strided_threads):
    """The source of ``reduce_piece`` for ``spec``: two float64 sums over elements
    ``start:stop`` of one segment, as ``spec.policy.reduction`` says: ``"gradient"``
    (the gradient's sum of squares and its count of non-finite numbers) or
    ``"norms"`` (:func:`_norm_sums`).

    The count is taken only where the sum of squares is not finite, since a NaN
    or an infinity makes it so (as does a finite float64 whose square
    overflows, which the count then finds clean): the common step only sums
    squares.
    """
    lines = _header("reduce_piece", spec) + ["    a0 = b0 = zero64"]
    if spec.policy.reduction == "norms" and not strided_threads:
        lines += _tiled_norm_loops(spec)
    elif spec.policy.reduction == "norms":
        lines += _reduction_loops(spec, _norm_sums, strided_threads)
    else:
        lines += _reduction_loops(spec, _gradient_squares, strided_threads)
        lines.append("    if a0 - a0 != a0 - a0:")
        lines += _reduction_loops(spec, _gradient_nonfinite, strided_threads, indent="        ")
    lines.append("    return a0, b0")
    return "\n".join(lines) + "\n"


def piece_name(spec, kind="run_piece"):
    """A name for ``kind`` of ``spec`` that no other spec's shares.

    Numba names machine code after the function and its argument types, which
    are the same for every spec; code loaded from Numba's disk cache in one
    process would otherwise link one spec's call to another spec's body.
    """
    digest = hashlib.sha256(repr((spec, fingerprint(spec.rule))).encode()).hexdigest()[:16]
    return f"{kind}_{spec.rule}_{digest}"


def _namespace(spec, primitives):
    declared = algorithm(spec.rule)
    real = np.dtype(spec.real).type
    namespace = {"rule": declared.rule, "norms": declared.norms_rule, "Scalars": declared.Scalars,
                 "Flags": declared.Flags, "PolicyScalars": PolicyScalars, "pointer": primitives.pointer,
                 "real": real, "float64": np.float64, "zero64": np.float64(0), "one64": np.float64(1),
                 "uint64": np.uint64, "uint32": np.uint32, "bitcast": primitives.bitcast,
                 "random_bits": primitives.random_bits, "load_four": primitives.load_four,
                 "store_four": primitives.store_four,
                 "float32": np.float32, "nan": np.nan, "inverse_of": inverse_of, "empty": np.empty}
    if spec.policy.stochastic:
        namespace["stochastic"] = stochastic_rounding(spec.operands[PARAM], primitives)
    if spec.policy.clip_value:  # interpreted (the simulator): in Python, so grad keeps its NumPy dtype
        namespace["clamped"] = clamped.py_func if primitives.interpreted else clamped
    encode_signed, decode_signed, encode_unsigned, decode_unsigned = codecs(primitives)
    for k, code in enumerate(spec.operands):
        if code in QUANTIZED:
            signed = QUANTIZED[code]
            namespace.update({f"e{k}": STORAGES[code].element.type(0), f"d{k}": decode_signed if signed else decode_unsigned,
                              f"q{k}": encode_signed if signed else encode_unsigned})
        elif code:
            widen, narrow = conversions(code, primitives)
            namespace.update({f"e{k}": STORAGES[code].element.type(0), f"w{k}": widen, f"n{k}": narrow})
    return namespace


def compiled_source(source, kind, spec, primitives):
    """The function ``kind`` that ``source`` defines for ``spec``, under a name of its own
    (:func:`piece_name`), with the target's ``primitives``."""
    name = piece_name(spec, kind)
    namespace = _namespace(spec, primitives)
    exec(compile(source.replace(f"def {kind}(", f"def {name}(", 1), f"<numadam {name}>", "exec"), namespace)
    return namespace[name]


@functools.cache
def piece_runner(spec, primitives, strided_threads=False):
    """``run_piece`` for ``spec`` as a Python function, for the target of ``primitives``
    (:mod:`numadam.targets.primitives`).

    Interpreted primitives (the CUDA simulator) keep the storage conversions in
    Python, so that elements reach the compiled rule as NumPy scalars of their own
    dtype (a compiled conversion would return a Python float, which is float64).
    """
    return compiled_source(piece_source(spec, strided_threads), "run_piece", spec, primitives)


@functools.cache
def reduction_runner(spec, primitives, strided_threads=False):
    """``reduce_piece`` for ``spec`` as a Python function (see :func:`piece_runner`)."""
    return compiled_source(reduction_source(spec, strided_threads), "reduce_piece", spec, primitives)


@functools.cache
def blocks_runner(spec, primitives):
    """``run_blocks`` for a spec with 8-bit state, on the CPU (see :func:`blocks_source`)."""
    return compiled_source(blocks_source(spec), "run_blocks", spec, primitives)


@functools.cache
def block_runners(spec, primitives, strided_threads=False):
    """``(load_piece, store_piece, settle)`` for a spec with 8-bit state (see :func:`piece_source`,
    :func:`store_source` and :func:`settle_source`; ``settle`` is the CPU's, serial)."""
    return (compiled_source(piece_source(spec, strided_threads, "load_piece"), "load_piece", spec, primitives),
            compiled_source(store_source(spec, strided_threads), "store_piece", spec, primitives),
            compiled_source(settle_source(spec), "settle", spec, primitives))
