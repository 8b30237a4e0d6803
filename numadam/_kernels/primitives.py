"""The few machine operations the generated kernels need that Python has no spelling for.

Each is one LLVM instruction (or two), written here once as a code generator
and registered as an intrinsic by each target with its own type system
(:func:`cpu_primitives` for Numba's CPU target; numba-cuda registers the same
code generators in :mod:`numadam._kernels.cuda`); the CUDA simulator gets the
same operations on NumPy scalars (:data:`INTERPRETED`).

- ``pointer(address, like)``: the address as a pointer to elements of ``like``'s type;
- ``bitcast(value, like)``: ``value``'s bits read as ``like``'s type (same size);
- ``half_to_float(bits)``, ``float_to_half(value)``: IEEE half precision (16
  bits, as ``uint16``) to and from float32, rounding to nearest even.
"""

import functools
from typing import NamedTuple

import numpy as np
from llvmlite import ir


class Primitives(NamedTuple):
    """The target's ``pointer``, ``bitcast``, ``half_to_float`` and ``float_to_half``;
    ``interpreted`` when they are plain Python (functions built on them stay Python too)."""

    pointer: object
    bitcast: object
    half_to_float: object
    float_to_half: object
    interpreted: bool = False


def pointer_codegen(context, builder, signature, args):
    return builder.inttoptr(args[0], context.get_value_type(signature.return_type))


def bitcast_codegen(context, builder, signature, args):
    return builder.bitcast(args[0], context.get_value_type(signature.return_type))


def half_to_float_codegen(context, builder, signature, args):
    return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())


def float_to_half_codegen(context, builder, signature, args):
    return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))


def register(intrinsic, types):
    """The four primitives as intrinsics of a target: ``intrinsic`` and ``types`` are its own."""

    @intrinsic
    def pointer(typingctx, address, like):
        return types.CPointer(like)(types.int64, like), pointer_codegen

    @intrinsic
    def bitcast(typingctx, value, like):
        return like(value, like), bitcast_codegen

    @intrinsic
    def half_to_float(typingctx, bits):
        return types.float32(types.uint16), half_to_float_codegen

    @intrinsic
    def float_to_half(typingctx, value):
        return types.uint16(types.float32), float_to_half_codegen

    return Primitives(pointer, bitcast, half_to_float, float_to_half)


@functools.cache
def cpu_primitives():
    from numba import types
    from numba.extending import intrinsic

    return register(intrinsic, types)


def _interpreted_pointer(address, like):
    from ._simulated_memory import element_pointer

    return element_pointer(address, like)


def _interpreted_bitcast(value, like):
    """``value``'s bits as ``like``'s type; a Python float (what a compiled rule returns to
    Python) is taken as the float of ``like``'s size, a Python int as the unsigned integer."""
    target = np.dtype(type(like))
    kind = "f" if isinstance(value, (float, np.floating)) else "u"
    return np.array([value], dtype=f"{kind}{target.itemsize}").view(target)[0]


INTERPRETED = Primitives(
    _interpreted_pointer,
    _interpreted_bitcast,
    lambda bits: np.float32(np.uint16(bits).view(np.float16)),
    lambda value: np.float16(value).view(np.uint16),
    interpreted=True,
)
