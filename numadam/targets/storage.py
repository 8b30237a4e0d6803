"""How an operand's elements are stored, and how the rule reads and writes them.

Every storage code names the element a kernel's pointer points at and two
inlined conversions: ``widen`` turns a stored element into the real number the
rule computes with, ``narrow`` turns the rule's result back into a stored
element, rounding to nearest even. Arithmetic never runs in the storage format:
half-precision numbers (``"f2"``) and bfloat16 numbers (``"bf16"``, the top 16
bits of a float32; NumPy users have them from ``ml_dtypes``) travel as their 16
bits and are computed on in float32. State kept as 8-bit blockwise codes
(``"i8"``, ``"u8"``) has no per-element conversion: each code is read with its
block's scale (:mod:`numadam.targets.quantization`). Complex numbers are
elements of their own (``"c8"``, ``"c16"``) only with ``complex_mode="magnitude"``;
otherwise they are pairs of reals.

The conversions are made per target (:func:`conversions`), from the target's
primitives (:mod:`numadam.targets.primitives`).
"""

import functools
from typing import NamedTuple

import numpy as np
from numba import njit

_F32 = np.float32(0)
_U32 = np.uint32(0)

# bfloat16 and float32 (:func:`_bfloat16`), as 32-bit integers: the shift between the two halves,
# the lowest bit a bfloat16 keeps, the rounding bias below an even and below an odd kept half, and
# the bit that makes a NaN quiet.
_HALF = np.uint32(16)
_LOWEST_KEPT = np.uint32(0x10000)
_BIAS_EVEN, _BIAS_ODD = np.uint32(0x7FFF), np.uint32(0x8000)
_QUIET = np.uint32(0x400000)


class Storage(NamedTuple):
    """One way of storing an operand's elements: the element, and what computes in it."""

    element: np.dtype
    real: np.dtype


STORAGES = {
    "f4": Storage(np.dtype(np.float32), np.dtype(np.float32)),
    "f8": Storage(np.dtype(np.float64), np.dtype(np.float64)),
    "f2": Storage(np.dtype(np.uint16), np.dtype(np.float32)),
    "bf16": Storage(np.dtype(np.uint16), np.dtype(np.float32)),
    "i8": Storage(np.dtype(np.int8), np.dtype(np.float32)),
    "u8": Storage(np.dtype(np.uint8), np.dtype(np.float32)),
    "c8": Storage(np.dtype(np.complex64), np.dtype(np.float32)),
    "c16": Storage(np.dtype(np.complex128), np.dtype(np.float64)),
}

#: The 8-bit blockwise codes (:mod:`numadam.targets.quantization`), and whether their map is signed.
QUANTIZED = {"i8": True, "u8": False}


def _same(value):
    return value


def _inlined(primitives):
    """How functions built on ``primitives`` are made: inlined into the target's kernels, or
    left in Python where the primitives are (the CUDA simulator)."""
    return (lambda function: function) if primitives.interpreted else njit(inline="always")


def _bfloat16(primitives):
    r"""bfloat16 is the top half of a float32. Widening shifts it up. Narrowing a float32 of bits
    :math:`x` keeps the top half of :math:`x + 2^{15} - 1 + k`, where :math:`k` is the lowest bit
    kept: the nearest bfloat16, ties to even; a NaN keeps its sign and payload and is made quiet
    (its top fraction bit set).

    Every operation is on 32 bits (Numba otherwise computes on 64, which halves the lanes of a
    vector), and the NaN and the rounding bias are selects rather than branches: the loop around a
    conversion vectorizes, and narrowing is seven vector instructions (a test and a select for the
    bias, the add, a compare and a masked OR for a NaN, the shift, the narrowing store). A branch on
    the NaN compiled to eleven, two of them narrowing moves: on one core of an AMD EPYC, with the
    arrays in its caches, a bfloat16 parameter's Adam step took 0.30 ns per element with it, 0.25
    with this (float16, converted by one instruction each way: 0.20).
    """
    bitcast, inlined = primitives.bitcast, _inlined(primitives)

    @inlined
    def widen(bits):
        return bitcast(np.uint32(np.uint32(bits) << _HALF), _F32)

    @inlined
    def narrow(value):
        bits = bitcast(value, _U32)
        bias = _BIAS_ODD if np.uint32(bits & _LOWEST_KEPT) else _BIAS_EVEN
        # A NaN never reaches the sum (whose 32 bits it could overflow).
        top = np.uint32(bits | _QUIET) if value != value else np.uint32(bits + bias)
        return np.uint16(np.uint32(top >> _HALF))

    return widen, narrow


def _float16(primitives):
    half_to_float, float_to_half = primitives.half_to_float, primitives.float_to_half
    inlined = _inlined(primitives)

    @inlined
    def widen(bits):
        return half_to_float(bits)

    @inlined
    def narrow(value):
        return float_to_half(value)

    return widen, narrow


@functools.cache
def conversions(code, primitives):
    """``(widen, narrow)`` of storage ``code`` on the target of ``primitives``."""
    if code == "bf16":
        return _bfloat16(primitives)
    if code == "f2":
        return _float16(primitives)
    same = _inlined(primitives)(_same)
    return same, same


def storage_code(dtype):
    """The storage code of a ``dtype`` numadam keeps (float16, bfloat16, float32, float64, and
    complex64 and complex128 as elements)."""
    dtype = np.dtype(dtype)
    if dtype.name == "bfloat16":
        return "bf16"
    return {np.dtype(np.float32): "f4", np.dtype(np.float64): "f8", np.dtype(np.float16): "f2",
            np.dtype(np.complex64): "c8", np.dtype(np.complex128): "c16"}[dtype]


_UNIT = np.float32(2.0**-24)


@functools.cache
def stochastic_rounding(code, primitives):
    """``narrow(value, random)`` of 16-bit storage ``code`` rounding to one of the two nearest
    numbers at random, with probabilities that make the result exact on average: the number
    beyond ``value``'s nearer-to-zero neighbour ``low`` is taken with probability
    ``(|value| - |low|) / (|high| - |low|)``.

    ``random`` holds 32 random bits. bfloat16 is the top half of a float32, whose magnitude grows
    linearly with its bits within a binade: adding 16 random bits below the top half and cutting
    it off rounds up with exactly that probability. float16 makes a uniform u in [0, 1) of the top
    24 bits and moves from the nearest number ``nearest`` to its neighbour on the value's side when
    ``u * |neighbour - nearest| < |value - nearest|``. NaN and infinities round to nearest.
    """
    widen, narrow = conversions(code, primitives)
    bitcast = primitives.bitcast

    @_inlined(primitives)
    def bfloat16_stochastically(value, random):
        # An infinity's low half is zero: adding 16 bits to it leaves its top half as it is.
        bits = bitcast(value, _U32)
        top = np.uint32(bits | _QUIET) if value != value else np.uint32(bits + np.uint32(random >> _HALF))
        return np.uint16(np.uint32(top >> _HALF))

    @_inlined(primitives)
    def narrow_stochastically(value, random):
        # Selects, not branches: the loop around it vectorizes.
        nearest = narrow(value)
        back = widen(nearest)
        away = abs(value) > abs(back)  # the neighbour on the value's side is the next magnitude
        next_magnitude = np.uint16(nearest + np.uint16(1)) if nearest & np.uint16(0x7FFF) else (
            np.uint16(0x8001) if value < 0 else np.uint16(1))
        neighbour = next_magnitude if away else np.uint16(nearest - np.uint16(1))
        u = np.float32(random >> np.uint32(8)) * _UNIT
        rounds_away = u * abs(widen(neighbour) - back) < abs(value - back)  # false if exact, NaN or infinite
        return neighbour if rounds_away else nearest

    return bfloat16_stochastically if code == "bf16" else narrow_stochastically
