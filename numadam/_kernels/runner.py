"""The body every kernel runs: one segment piece, element by element, through the rule.

:func:`piece_runner` writes, for one :class:`~numadam._kernels.spec.KernelSpec`,
the function that updates elements ``start:stop`` of one segment::

    def run_piece(table, row, start, stop, step, scalars, like):
        h = Scalars(scalars[base + 0], ...)             # this segment's group
        flags = Flags(True, False, ...)                 # compile-time constants
        o0 = pointer(table[row + ADDRESS + 0], E0)      # one typed pointer per present operand
        s0 = table[row + ADDRESS + n + 0]               # and its stride
        ...
        if s0 == 1 and s1 == 1 and ...:                 # contiguous: a loop LLVM vectorizes
            for i in range(start, stop):
                param, state = rule(widen(o0[i]), widen(o1[i]), (widen(o2[i]), ..., like), h, flags)
                o0[i] = narrow(param); o2[i] = narrow(state[0]); ...
        else:                                           # strided
            (the same, at i * s0, i * s1, ...)

An absent operand is never dereferenced: the rule gets ``like`` (zero in the
real dtype) in its place and its result is dropped. The rule is called, never
copied: the CPU loop (:mod:`~numadam._kernels.cpu`) and the CUDA loop
(:mod:`~numadam._kernels.cuda`) run this one function, generated from the
spec because its arity and storage vary by family.
"""

import functools
import hashlib

from .segments import ADDRESS, GROUP
from .spec import fingerprint, rule
from .storage import STORAGES


def _element_access(k, index):
    return f"o{k}[{index}]"


def _body(spec, index_of):
    """The lines that update the element at ``index_of(k)`` of each operand ``k``."""
    operands = spec.operands
    load = [f"w{k}({_element_access(k, index_of(k))})" if code else "like" for k, code in enumerate(operands)]
    state = ", ".join(load[2:]) + ("," if len(load) == 3 else "")
    lines = [f"param, state = rule({load[0]}, {load[1]}, ({state}), h, flags)",
             f"{_element_access(0, index_of(0))} = n0(param)"]
    for k in range(2, len(operands)):
        if operands[k]:
            lines.append(f"{_element_access(k, index_of(k))} = n{k}(state[{k - 2}])")
    return lines


def piece_source(spec, strided_threads):
    """The source of ``run_piece`` for ``spec``.

    ``strided_threads`` (CUDA) makes the loops step by ``step`` (the threads of
    a block share a piece); on the CPU they step by one, which LLVM vectorizes.
    """
    present = [k for k, code in enumerate(spec.operands) if code]
    n = spec.n_operands
    step = ", step" if strided_threads else ""
    fields = rule(spec.rule).scalars._fields
    lines = ["def run_piece(table, row, start, stop, step, scalars, like):",
             f"    base = table[row + {GROUP}] * {len(fields)}",
             "    h = Scalars(" + ", ".join(f"scalars[base + {j}]" for j in range(len(fields))) + ")",
             f"    flags = Flags({', '.join(map(repr, spec.flags))})"]
    for k in present:
        lines.append(f"    o{k} = pointer(table[row + {ADDRESS + k}], e{k})")
        lines.append(f"    s{k} = table[row + {ADDRESS + n + k}]")
    lines.append("    if " + " and ".join(f"s{k} == 1" for k in present) + ":")
    lines.append(f"        for i in range(start, stop{step}):")
    lines += ["            " + line for line in _body(spec, lambda k: "i")]
    lines.append("    else:")
    lines.append(f"        for i in range(start, stop{step}):")
    lines += ["            " + line for line in _body(spec, lambda k: f"i * s{k}")]
    return "\n".join(lines) + "\n"


@functools.cache
def piece_runner(spec, pointer, strided_threads=False, interpreted=False):
    """``run_piece`` for ``spec`` as a Python function; ``pointer(address, like)``
    makes a typed pointer on the target that compiles it.

    ``interpreted`` (the CUDA simulator) keeps the storage conversions in Python,
    so that elements reach the compiled rule as NumPy scalars of their own dtype
    (a compiled conversion would return a Python float, which is float64).
    """
    registered = rule(spec.rule)
    namespace = {"rule": registered.function, "Scalars": registered.scalars,
                 "Flags": registered.flags, "pointer": pointer}
    for k, code in enumerate(spec.operands):
        if code:
            storage = STORAGES[code]
            widen, narrow = storage.widen, storage.narrow
            if interpreted:
                widen, narrow = widen.py_func, narrow.py_func
            namespace.update({f"e{k}": storage.element.type(0), f"w{k}": widen, f"n{k}": narrow})
    source = piece_source(spec, strided_threads).replace("def run_piece(", f"def {piece_name(spec)}(", 1)
    exec(compile(source, f"<numadam {piece_name(spec)}>", "exec"), namespace)
    return namespace[piece_name(spec)]


def piece_name(spec):
    """A name for ``run_piece`` of ``spec`` that no other spec's shares.

    Numba names machine code after the function and its argument types, which
    are the same for every spec; code loaded from Numba's disk cache in one
    process would otherwise link one spec's call to another spec's body.
    """
    digest = hashlib.sha256(repr((spec, fingerprint(spec.rule))).encode()).hexdigest()[:16]
    return f"run_piece_{spec.rule}_{digest}"
