"""The few machine operations the generated kernels need that Python has no spelling for.

Each is one LLVM instruction (or two), written here once as a code generator
and registered as an intrinsic by each target with its own type system
(:func:`cpu_primitives` for Numba's CPU target; numba-cuda registers the same
code generators in :mod:`numadam.targets.cuda.kernels`); the CUDA simulator gets the
same operations on NumPy scalars (:data:`INTERPRETED`).

- ``pointer(address, like)``: the address as a pointer to elements of ``like``'s type;
- ``bitcast(value, like)``: ``value``'s bits read as ``like``'s type (same size);
- ``half_to_float(bits)``, ``float_to_half(value)``: IEEE half precision (16
  bits, as ``uint16``) to and from float32, rounding to nearest even;
- ``random_bits(index, offset, step, top, salt)``: 32 random bits for the element at
  position ``offset + index * step`` of a parameter, in a step (:func:`random_bits_codegen`),
  in 32-bit integer arithmetic: Numba computes on 32-bit integers in 64 bits,
  which vectorizes half as wide. ``top`` is the position's top 32 bits, which a
  loop may compute once for a run of positions that share them;
- ``load_four(pointer, index)``, ``store_four(pointer, index, a, b, c, d)``: elements
  ``index`` to ``index + 3`` read or written as one vector access (a 128-bit load or store of
  float32 on the GPU), whose address must be a multiple of four elements' size, or of 16 bytes
  where that is less (:func:`four_alignment`)."""

import functools
from typing import NamedTuple

import numpy as np
from llvmlite import ir


class Primitives(NamedTuple):
    """The target's ``pointer``, ``bitcast``, ``half_to_float``, ``float_to_half`` and
    ``random_bits``; ``interpreted`` when they are plain Python (functions built on them stay
    Python too)."""

    pointer: object
    bitcast: object
    half_to_float: object
    float_to_half: object
    random_bits: object
    load_four: object
    store_four: object
    interpreted: bool = False


def pointer_codegen(context, builder, signature, args):
    return builder.inttoptr(args[0], context.get_value_type(signature.return_type))


def bitcast_codegen(context, builder, signature, args):
    return builder.bitcast(args[0], context.get_value_type(signature.return_type))


def half_to_float_codegen(context, builder, signature, args):
    return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())


def float_to_half_codegen(context, builder, signature, args):
    return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))


#: The odd constants of :func:`random_bits_codegen`: the position's low and high 32 bits and the salt
#: are multiplied by the first three; the two rounds of the finalizer by the last two (Wellons'
#: "lowbias32").
HASH_INPUTS = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D)
HASH_ROUNDS = ((16, 0x7FEB352D), (15, 0x846CA68B))


def random_bits_codegen(context, builder, signature, args):
    r"""32 random bits for the element at position ``offset + index * step`` (int64) of a step
    whose ``salt`` (uint64, 24 bits) is given: :math:`x = (l c_0 + h c_1 + s c_2) \bmod 2^{32}`
    over the position's low and high halves ``l``, ``h`` and the salt ``s``, then
    ``x = (x ^ (x >> k)) * c`` for each round and a last ``x ^ (x >> 16)``, every operation on
    32 bits. The same on every target and thread.

    The high half comes as its own argument ``top`` (``position >> 32``), and the low half is
    formed from the index's: ``l = (o + i s) mod 2^32`` over the low halves of ``offset``,
    ``index`` and ``step``. A loop over ``index`` whose positions share their top (computed once
    before it) then steps a 32-bit index in its vector lanes, not 64-bit positions."""
    index, offset, step, top, salt = args
    word = ir.IntType(32)
    constant = lambda value: ir.Constant(word, value - (1 << 32) if value >= 1 << 31 else value)  # noqa: E731
    low = builder.add(builder.trunc(offset, word), builder.mul(builder.trunc(index, word), builder.trunc(step, word)))
    halves = (low, builder.trunc(top, word), builder.trunc(salt, word))
    terms = [builder.mul(half, constant(c)) for half, c in zip(halves, HASH_INPUTS)]
    x = builder.add(builder.add(terms[0], terms[1]), terms[2])
    for shift, multiplier in HASH_ROUNDS:
        x = builder.mul(builder.xor(x, builder.lshr(x, constant(shift))), constant(multiplier))
    return builder.xor(x, builder.lshr(x, constant(16)))


def four_alignment(itemsize):
    """The alignment in bytes that :func:`load_four` and :func:`store_four` ask of an address:
    four elements' size, at most 16 (wider accesses are made of 16-byte ones)."""
    return min(16, 4 * itemsize)


def _four_pointer(context, builder, pointer, index):
    """The address of element ``index`` of ``pointer``, as a pointer to a vector of four elements,
    and the vector access's alignment."""
    element = pointer.type.pointee
    vector = ir.VectorType(element, 4)
    address = builder.bitcast(builder.gep(pointer, [index]), vector.as_pointer())
    return address, four_alignment(context.get_abi_sizeof(element))


def load_four_codegen(context, builder, signature, args):
    address, alignment = _four_pointer(context, builder, *args)
    vector = builder.load(address, align=alignment)
    values = [builder.extract_element(vector, ir.Constant(ir.IntType(32), j)) for j in range(4)]
    return context.make_tuple(builder, signature.return_type, values)


def store_four_codegen(context, builder, signature, args):
    address, alignment = _four_pointer(context, builder, args[0], args[1])
    vector = ir.Constant(address.type.pointee, ir.Undefined)
    for j, value in enumerate(args[2:]):
        vector = builder.insert_element(vector, value, ir.Constant(ir.IntType(32), j))
    builder.store(vector, address, align=alignment)
    return context.get_dummy_value()


def register(intrinsic, types):
    """The primitives as intrinsics of a target: ``intrinsic`` and ``types`` are its own."""

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

    @intrinsic
    def random_bits(typingctx, index, offset, step, top, salt):
        integer = types.int64
        return types.uint32(integer, integer, integer, integer, types.uint64), random_bits_codegen

    @intrinsic
    def load_four(typingctx, pointer, index):
        if isinstance(pointer, types.CPointer):
            return types.UniTuple(pointer.dtype, 4)(pointer, types.int64), load_four_codegen

    @intrinsic
    def store_four(typingctx, pointer, index, a, b, c, d):
        if isinstance(pointer, types.CPointer) and all(value == pointer.dtype for value in (a, b, c, d)):
            element = pointer.dtype
            return types.void(pointer, types.int64, element, element, element, element), store_four_codegen

    return Primitives(pointer, bitcast, half_to_float, float_to_half, random_bits, load_four, store_four)


@functools.cache
def cpu_primitives():
    from numba import types
    from numba.extending import intrinsic

    return register(intrinsic, types)


def _interpreted_pointer(address, like):
    from .cuda.simulated_memory import element_pointer

    return element_pointer(address, like)


def _interpreted_bitcast(value, like):
    """``value``'s bits as ``like``'s type; a Python float (what a compiled rule returns to
    Python) is taken as the float of ``like``'s size, a Python int as the unsigned integer."""
    target = np.dtype(type(like))
    kind = "f" if isinstance(value, (float, np.floating)) else "u"
    return np.array([value], dtype=f"{kind}{target.itemsize}").view(target)[0]


def _interpreted_random_bits(index, offset, step, top, salt):
    """:func:`random_bits_codegen` in Python integers."""
    cut = 0xFFFFFFFF
    low, top, salt = (int(offset) + int(index) * int(step)) & cut, int(top) & cut, int(salt)
    x = (low * HASH_INPUTS[0] + top * HASH_INPUTS[1] + (salt & cut) * HASH_INPUTS[2]) & cut
    for shift, multiplier in HASH_ROUNDS:
        x = ((x ^ (x >> shift)) * multiplier) & cut
    return np.uint32(x ^ (x >> 16))


def _aligned_four(pointer, index):
    """Refuse what the GPU would fault on: a vector access at an address off its alignment."""
    size = pointer.dtype.itemsize
    address = pointer.address + int(index) * size
    if address % four_alignment(size):
        raise ValueError(f"a vector access of four {pointer.dtype} at {address:#x}, not a multiple of "
                         f"{four_alignment(size)} bytes")


def _interpreted_load_four(pointer, index):
    _aligned_four(pointer, index)
    return tuple(pointer[index + j] for j in range(4))


def _interpreted_store_four(pointer, index, *values):
    _aligned_four(pointer, index)
    for j, value in enumerate(values):
        pointer[index + j] = value


INTERPRETED = Primitives(
    _interpreted_pointer,
    _interpreted_bitcast,
    lambda bits: np.float32(np.uint16(bits).view(np.float16)),
    lambda value: np.float16(value).view(np.uint16),
    _interpreted_random_bits,
    _interpreted_load_four,
    _interpreted_store_four,
    interpreted=True,
)
