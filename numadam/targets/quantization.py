r"""8-bit blockwise state: dynamic maps, and the conversions between codes and numbers.

State stored as ``state_dtype="int8"`` is quantized per *block* of
:data:`BLOCK` consecutive elements (in the parameter's C order), in the manner
of Dettmers et al., "8-bit Optimizers via Block-wise Quantization" (ICLR 2022):
each block keeps one float32 scale, the largest magnitude in it, and each
element one byte, the index of the nearest number of a fixed *dynamic map*
to the element divided by that scale.

A dynamic map spends its codes on every *octave* below 1 (a factor of 8, three
binades) rather than spreading them evenly: numbers in
:math:`(8^{-e-1}, 8^{-e}]` get :math:`2^{b-e}` codes, linearly spaced,

.. math::

    8^{-e}\,\Bigl(\frac18 + \frac78\,\frac{k + 1}{2^{b-e}}\Bigr),
    \qquad k = 0, \dots, 2^{b-e} - 1,\quad e = 0, \dots, b,

plus zero: ``b = 7`` for the unsigned map (256 numbers in [0, 1], the smallest
nonzero :math:`8^{-7} = 2^{-21}`, for state that is never negative, such as
Adam's second moment) and ``b = 6`` for the signed map (zero and 127
magnitudes down to :math:`2^{-18}`, with either sign: codes -127..127 as
``int8``, for state of either sign such as the first moment). The largest
magnitude of a block maps to exactly 1. Neighbours in the top octave are
0.7% (unsigned) and 1.4% (signed) of 1 apart.

Every number of the map is a short binary fraction, so decoding is exact
float32 arithmetic on the code's bits, in vector lanes: code :math:`c \ge 1`
lies in octave :math:`d = \lfloor \log_2 c \rfloor` from the bottom (the
exponent of ``float32(c)``), :math:`k = c - 2^d`, and its number is
:math:`8^{d-b-1}\,(1 + 7 (c + 1 - 2^d) / 2^d) = (7 (c + 1) - 6 \cdot 2^d)\, 4^d\, 8^{-b-1}`. (The *decades* map
of states saved before 2026-11-27, with 10 for 8, needed a table; such states are no longer read:
see :data:`MAP_KEY`.)

Encoding needs no table either, so that the loops around it vectorize: the
numbers of one octave (with the top number of the octave below) are evenly
spaced, so the code of a magnitude ``m`` in :math:`(8^{-e-1}, 8^{-e}]` is
``floor(slope * (m - offset))``. The octave comes from the exponent of the float
just below ``m`` (three binades an octave), and its slope
:math:`2^{3b+3-2d}/7` and offset :math:`-(6 \cdot 2^d - 7/2)\, 2^{2d-3b-3}` are
built from its bits: exact float32 numbers, a few integer operations in vector
lanes (octave 0, zero and :math:`8^{-b}`, has a line of its own). That is the nearest number of the map,
halfway cases up, except within about a float32 rounding of a halfway point
(there it may be the other neighbour).
The functions are made per target from its primitives, as the storage
conversions are (:mod:`numadam.targets.storage`).
"""

import functools
from typing import NamedTuple

import numpy as np
from numba import njit

from .primitives import cpu_primitives

#: Elements per block: each block of a parameter's state has its own scale.
BLOCK = 256
#: The factor between a dynamic map's octaves.
BASE = 8
#: The state dict's entry that names the map its 8-bit codes are in, and its value now. 8-bit codes
#: without it were saved with the pre-0.1.0 *decades* map, which is no longer read: loading them
#: raises a ``ValueError`` naming that format (:func:`numadam.engine.state_dict.coded_leaves`).
MAP_KEY, MAP_NAME = "int8_map", "octaves"

class DynamicMap(NamedTuple):
    """One dynamic map: its magnitudes, what each stored code decodes to, and how numbers are encoded."""

    magnitudes: np.ndarray  # float32, ascending, from 0 to 1
    values: np.ndarray      # float32: what each stored code decodes to (signed: index code + 128)
    bounds: np.ndarray      # float32: the octaves' lower ends, 8^-bits .. 8^-1 (ascending)
    slopes: np.ndarray      # float32: per octave (bounds[d - 1] < m), codes per unit of magnitude
    offsets: np.ndarray     # float32: per octave, the magnitude half a code below its first code
    bits: int               # b: the map's octaves are 0..b


def _magnitudes(bits, base):
    """Zero and the map's positive numbers, ascending (see the module docstring)."""
    numbers = [0.0]
    for exponent in range(bits + 1):
        count = 2 ** (bits - exponent)
        numbers += [float(base) ** -exponent * (1 / base + (1 - 1 / base) * (k + 1) / count) for k in range(count)]
    return np.array(sorted(numbers), np.float32)


def _octaves(bits, base):
    r"""``(bounds, slopes, offsets)`` of the encoding (see :class:`DynamicMap`).

    Octave ``d`` holds codes ``2**d .. 2**(d+1) - 1``, numbers up to
    :math:`B^{d - b}` (:math:`B` the ``base``) spaced
    :math:`(1 - 1/B)\, B^{d - b} / 2^d` apart, and code ``2**d - 1`` below them is
    :math:`B^{d - b - 1}`, on the same line. Octave 0 is codes 0 and 1: zero and :math:`B^{-b}`.
    """
    base = float(base)
    slopes = [base**bits] + [2.0**d / ((1 - 1 / base) * base ** (d - bits)) for d in range(1, bits + 1)]
    first_codes = [0.0] + [2.0**d - 1 for d in range(1, bits + 1)]  # and their magnitudes:
    first_numbers = [0.0] + [base ** (d - bits - 1) for d in range(1, bits + 1)]
    offsets = [number - 0.5 / slope - code / slope for number, code, slope in zip(first_numbers, first_codes, slopes)]
    bounds = [base ** (d - bits - 1) for d in range(1, bits + 1)]
    return tuple(np.array(column, np.float32) for column in (bounds, slopes, offsets))


def _signed_values(magnitudes):
    """What each stored signed code decodes to, at index code + 128 (-128 is never written and
    reads as -1)."""
    codes = np.arange(-128, 128)
    return (np.sign(codes) * magnitudes[np.minimum(np.abs(codes), len(magnitudes) - 1)]).astype(np.float32)


def _dynamic_map(bits, signed):
    magnitudes = _magnitudes(bits, BASE)
    return DynamicMap(magnitudes, _signed_values(magnitudes) if signed else magnitudes, *_octaves(bits, BASE), bits)


#: The map of state that takes either sign: codes -127..127 (``int8``).
SIGNED = _dynamic_map(6, signed=True)
#: The map of state that is never negative: codes 0..255 (``uint8``).
UNSIGNED = _dynamic_map(7, signed=False)


def _inlined(primitives):
    return (lambda function: function) if primitives.interpreted else njit(inline="always")


@functools.cache
def codecs(primitives):
    """``(encode_signed, decode_signed, encode_unsigned, decode_unsigned)`` on the target of
    ``primitives``.

    ``encode_*(value, inverse_scale)`` is the code of ``value * inverse_scale`` (a number in
    [-1, 1]; NaN gives the largest code); ``decode_*(code)`` its number in [-1, 1].
    """
    inlined = _inlined(primitives)

    def magnitude_coder(table):
        # Octave d >= 1 has slope 2^(3b+3-2d) / 7 = (8/7) 2^(3b-2d) and offset
        # -(6 * 2^d - 7/2) 2^(2d-3b-3), both exact float32 numbers built from d's bits (the
        # table's, bit for bit: see test_octave_constants_are_built_from_the_octave_alone);
        # octave 0 (zero and 8^-b) has its own line.
        bits = table.bits
        top = np.int32(len(table.magnitudes) - 1)
        # the bits of (8/7) 2^(3b), 2^(-3b-3) and 1, whose exponents d shifts (by -2d, 2d and d)
        slope_bits = np.uint32(int(np.float32(8 / 7).view(np.uint32)) + (3 * bits << 23))
        scale_bits = np.uint32(127 - 3 * bits - 3 << 23)
        one_bits = np.uint32(0x3F800000)
        below = np.int32(127 - 3 * bits - 3)  # a biased exponent less this is E + 3b + 3
        first_slope, first_offset = table.slopes[0], table.offsets[0]
        bitcast = primitives.bitcast

        @inlined
        def magnitude_code(magnitude):
            # float32 whatever the compute dtype; 32-bit integer arithmetic and selects, no table
            # and no branch: the loop vectorizes. The clamp (1, and NaN to 1: the largest code) also
            # keeps a GPU from fusing the caller's product into the subtraction below.
            magnitude = np.float32(magnitude)
            magnitude = magnitude if magnitude <= np.float32(1) else np.float32(1)
            # m is in octave d when 8^(d-b-1) < m <= 8^(d-b): the exponent E of the float below m
            # (zero's bits minus one read as -1) has d = floor((E + 3b + 3) / 3), and
            # floor(x / 3) = (11 x) >> 5 for x = 0..26 (here x <= 3b + 2 = 23)
            below_bits = np.int32(np.int32(bitcast(magnitude, np.uint32(0))) - np.int32(1))
            above = np.int32(np.int32(below_bits >> np.int32(23)) - below)
            above = above if above > np.int32(0) else np.int32(0)
            octave = np.uint32(np.int32(above * np.int32(11)) >> np.int32(5))
            slope = bitcast(np.uint32(slope_bits - (octave << np.uint32(24))), np.float32(0))
            power = bitcast(np.uint32(one_bits + (octave << np.uint32(23))), np.float32(0))  # 2^d
            scale = bitcast(np.uint32(scale_bits + (octave << np.uint32(24))), np.float32(0))  # 2^(2d-3b-3)
            offset = (np.float32(3.5) - np.float32(6) * power) * scale  # exact: small integers, powers of two
            if octave == np.uint32(0):
                slope, offset = first_slope, first_offset
            return min(np.int32(slope * (magnitude - offset)), top)

        return magnitude_code

    def magnitude_decoder(table):
        low = np.float32(float(BASE) ** -(table.bits + 1))  # 8^-(b+1)
        seven, six = np.float32(BASE - 1), np.float32(BASE - 2)
        bitcast = primitives.bitcast

        @inlined
        def magnitude_value(code):
            # exact float32 arithmetic: with p = 2^d, float32(c)'s exponent alone, the number
            # 8^(d-b-1) (1 + 7 (c + 1 - p) / p) is (7 (c + 1) - 6 p) p^2 8^-(b+1), small integers
            # times powers of two; code 0 has p = 0, so 0
            whole = np.float32(np.uint32(code))
            power = bitcast(np.uint32(bitcast(whole, np.uint32(0)) & np.uint32(0x7F800000)), np.float32(0))
            return (seven * whole + seven - six * power) * (power * power) * low

        return magnitude_value

    signed_code, unsigned_code = magnitude_coder(SIGNED), magnitude_coder(UNSIGNED)
    signed_value, unsigned_value = magnitude_decoder(SIGNED), magnitude_decoder(UNSIGNED)

    @inlined
    def encode_signed(value, inverse_scale):
        code = signed_code(abs(value) * inverse_scale)
        return np.int8(code if value >= 0 else -code)

    @inlined
    def decode_signed(code):
        wide = np.int32(code)
        magnitude = signed_value(min(np.uint32(wide if wide >= 0 else -wide), np.uint32(127)))  # -128 reads as -1
        return magnitude if wide >= 0 else -magnitude

    @inlined
    def encode_unsigned(value, inverse_scale):
        magnitude = value * inverse_scale
        magnitude = magnitude - magnitude if magnitude < 0 else magnitude  # never negative (rounding aside)
        return np.uint8(unsigned_code(magnitude))

    @inlined
    def decode_unsigned(code):
        return unsigned_value(code)

    return encode_signed, decode_signed, encode_unsigned, decode_unsigned


def code_dtype(signed):
    """The dtype of the codes of a map."""
    return np.dtype(np.int8 if signed else np.uint8)


def code_of_one(signed):
    """The code of 1: a block of equal numbers is this code times a scale of their value."""
    return len(SIGNED.magnitudes) - 1 if signed else len(UNSIGNED.magnitudes) - 1


@njit(inline="always")
def inverse_of(scale, zero):
    """What codes are encoded with: ``1 / scale``, or ``zero`` where the scale is 0, infinite or
    NaN (then every code is 0, and the scale alone carries infinity or NaN into the values)."""
    if scale > zero and scale < np.inf:
        return (zero + np.float32(1)) / scale  # an int 1 would promote float32 to float64
    return zero


def _host_codecs():
    encode_signed, decode_signed, encode_unsigned, decode_unsigned = codecs(cpu_primitives())

    @njit(cache=False)
    def quantize(values, codes, scales, signed):
        """Blocks of ``values`` (1-D float32) into ``codes`` and ``scales``."""
        for block in range(scales.size):
            start, stop = block * BLOCK, min((block + 1) * BLOCK, values.size)
            largest, poisoned = np.float32(0), False
            for i in range(start, stop):
                magnitude = abs(values[i])
                largest = max(largest, magnitude)
                poisoned |= magnitude != magnitude
            scale = np.float32(np.nan) if poisoned else largest
            scales[block] = scale
            inverse = inverse_of(scale, np.float32(0))
            for i in range(start, stop):
                if signed:
                    codes[i] = encode_signed(values[i], inverse)
                else:
                    codes[i] = encode_unsigned(values[i], inverse)

    @njit(cache=False)
    def dequantize(codes, scales, values, signed):
        for i in range(values.size):
            code = decode_signed(codes[i]) if signed else decode_unsigned(codes[i])
            values[i] = code * scales[i // BLOCK]

    return quantize, dequantize


def n_blocks(size):
    """The blocks of a state of ``size`` elements."""
    return -(-size // BLOCK)


def quantize(values, signed):
    """``(codes, scales)`` of ``values`` (any real array; blocks over its C order)."""
    flat = np.ascontiguousarray(values, np.float32).reshape(-1)
    codes = np.empty(flat.size, code_dtype(signed))
    scales = np.empty(n_blocks(flat.size), np.float32)
    _host()[0](flat, codes, scales, signed)
    return codes.reshape(np.shape(values)), scales


def dequantize(codes, scales, signed):
    """The float32 numbers of ``codes`` (blocks over their C order) with block ``scales``."""
    flat = np.ascontiguousarray(codes).reshape(-1)
    values = np.empty(flat.size, np.float32)
    _host()[1](flat, np.ascontiguousarray(scales, np.float32), values, signed)
    return values.reshape(np.shape(codes))


@functools.cache
def _host():
    return _host_codecs()
