"""Storage conversions: 16-bit formats widened to float32 exactly and narrowed by rounding to nearest even,
or stochastically.

Compared, every bit pattern of the 16-bit formats and many float32 values, with
NumPy's float16 and ml_dtypes' bfloat16.
"""

import os
import platform
import re
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from numadam.targets.primitives import INTERPRETED, cpu_primitives
from numadam.targets.storage import conversions, stochastic_rounding

ml_dtypes = pytest.importorskip("ml_dtypes")

_compiled_random_bits = cpu_primitives().random_bits


def random_bits(position, salt):
    """The CPU target's ``random_bits`` of a position, callable from Python."""
    return _random_bits_of_index(0, position, 1, salt)


@njit
def _random_bits_of_index(index, offset, step, salt):
    """The CPU target's ``random_bits`` of position ``offset + index * step``, callable from Python."""
    return _compiled_random_bits(np.int64(index), np.int64(offset), np.int64(step),
                                 np.int64(offset + index * step) >> np.int64(32), np.uint64(salt))


def compiled(code):
    widen, narrow = conversions(code, cpu_primitives())

    @njit
    def widen_all(bits):
        out = np.empty(bits.size, np.float32)
        for i in range(bits.size):
            out[i] = widen(bits[i])
        return out

    @njit
    def narrow_all(values):
        out = np.empty(values.size, np.uint16)
        for i in range(values.size):
            out[i] = narrow(values[i])
        return out

    return widen_all, narrow_all


FORMATS = {"f2": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16)}


def float32_cases():
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.standard_normal(200_000) * 10.0 ** rng.integers(-8, 8, 200_000),
        rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65520.0, 65519.99, 6e-8, 3e-8, 2.98e-8,
                  np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1.0 + 2**-8, 1.0 + 3 * 2**-9], np.float32),
    ])
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(np.float32)


@pytest.mark.parametrize("code", FORMATS)
def test_widening_is_exact_for_every_bit_pattern(code):
    bits = np.arange(2**16, dtype=np.uint16)
    expected = bits.view(FORMATS[code]).astype(np.float32)
    widen_all, _ = compiled(code)
    np.testing.assert_array_equal(widen_all(bits), expected)


@pytest.mark.parametrize("code", FORMATS)
def test_narrowing_rounds_to_nearest_even_as_numpy_and_ml_dtypes(code):
    values = float32_cases()
    with np.errstate(over="ignore"):
        expected = values.astype(FORMATS[code])
    _, narrow_all = compiled(code)
    actual = narrow_all(values).view(FORMATS[code])
    nan = np.isnan(values)
    np.testing.assert_array_equal(actual[~nan].view(np.uint16), expected[~nan].view(np.uint16))
    assert np.isnan(actual[nan].astype(np.float32)).all()


@pytest.mark.parametrize("code", FORMATS)
def test_the_simulators_conversions_agree(code):
    """The CUDA simulator converts in Python (numadam.targets.primitives.INTERPRETED)."""
    widen, narrow = conversions(code, INTERPRETED)
    values = float32_cases()[:2000]
    for value in values[np.isfinite(values)]:
        assert narrow(np.float32(value)) == np.float32(value).astype(FORMATS[code]).view(np.uint16)
    for bits in range(0, 2**16, 97):
        widened, expected = widen(np.uint16(bits)), np.uint16(bits).view(FORMATS[code]).astype(np.float32)
        assert widened == expected or (np.isnan(widened) and np.isnan(expected))


#: NaNs as bits: quiet and signalling, both signs, payloads in the kept and in the cut half, and the
#: largest (whose cut half would overflow 32 bits if a rounding bias were added).
NAN_BITS = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FA0FFFF, 0x7F80FFFF, 0x7FFFFFFF,
                     0xFFFFFFFF, 0xFFFF8001], np.uint32)


def quieted(bits):
    """A bfloat16 NaN as numadam makes it: the float32's top half with its quiet bit set."""
    return ((bits >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)


def test_bfloat16_nans_keep_their_sign_and_payload_and_turn_quiet():
    _, narrow_all = compiled("bf16")
    _, interpreted = conversions("bf16", INTERPRETED)
    values = NAN_BITS.view(np.float32)
    np.testing.assert_array_equal(narrow_all(values), quieted(NAN_BITS))
    assert [interpreted(value) for value in values] == quieted(NAN_BITS).tolist()


def test_bfloat16_stochastic_rounding_keeps_infinities_and_quiets_nans_whatever_the_random_bits():
    compiled_all = stochastic_all("bf16")
    interpreted = stochastic_rounding("bf16", INTERPRETED)
    specials = np.concatenate([NAN_BITS, np.array([0x7F800000, 0xFF800000], np.uint32)])
    expected = np.where(np.isnan(specials.view(np.float32)), quieted(specials),
                        (specials >> np.uint32(16)).astype(np.uint16))
    for random in (0, 1, 0x8000_0000, 0xFFFF_FFFF):
        randoms = np.full(specials.size, random, np.uint32)
        np.testing.assert_array_equal(compiled_all(specials.view(np.float32), randoms), expected)
        assert [interpreted(value, np.uint32(random)) for value in specials.view(np.float32)] == expected.tolist()


#: What a loop converting bfloat16 through float32 is compiled to, for a CPU named in the environment.
_SCALE_LOOP = """
from numba import njit
from numadam.targets.primitives import cpu_primitives
from numadam.targets.storage import conversions
widen, narrow = conversions("bf16", cpu_primitives())

@njit(error_model="numpy")
def scale(bits, factor):
    for i in range(bits.size):
        bits[i] = narrow(widen(bits[i]) * factor)

scale.compile("void(uint16[::1], float32)")
print(scale.inspect_asm(scale.signatures[0]))
"""


@pytest.mark.subprocess
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="reads x86 assembly")
@pytest.mark.parametrize("cpu", ["sapphirerapids", "znver4", "haswell"])
def test_bfloat16_conversions_vectorize_on_intel_and_amd_cpus(cpu, tmp_path):
    """The same code, compiled by LLVM for an Intel and an AMD CPU with AVX-512 and for one with AVX2:
    widening and narrowing are shifts of whole vectors of 32-bit lanes (ymm or zmm registers)."""
    environment = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": "", "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _SCALE_LOOP], env=environment, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"\bvpslld\s+\$16, %[yz]mm", done.stdout), "widening is not vectorized"
    assert re.search(r"\bvpsrld\s+\$16, %[yz]mm", done.stdout), "narrowing is not vectorized"
    assert not re.search(r"\bvp(add|sll|srl)q\b", done.stdout), "64-bit lanes: half as many elements per vector"


def stochastic_all(code):
    narrow = stochastic_rounding(code, cpu_primitives())

    @njit
    def narrow_all(values, randoms):
        out = np.empty(values.size, np.uint16)
        for i in range(values.size):
            out[i] = narrow(values[i], randoms[i])
        return out

    return narrow_all


def bracketing(values, dtype):
    """The 16-bit numbers just below and just above each value (equal where it is exact)."""
    nearest = values.astype(dtype).astype(np.float32)
    step = np.where(nearest < values, np.inf, -np.inf).astype(np.float32)
    beyond = np.nextafter(nearest.astype(dtype), step.astype(dtype)).astype(np.float32)
    below, above = np.minimum(nearest, beyond), np.maximum(nearest, beyond)
    exact = nearest == values
    return np.where(exact, values, below), np.where(exact, values, above)


@pytest.mark.parametrize("code", FORMATS)
def test_stochastic_rounding_picks_a_neighbour_with_the_probability_that_makes_it_exact_on_average(code):
    """Each value rounds to one of the two 16-bit numbers around it; over the 2**16 random bits that
    matter, it rounds up as often as its distance from the lower one says (within 2**-16)."""
    dtype = FORMATS[code]
    rng = np.random.default_rng(1)
    with np.errstate(over="ignore"):
        values = float32_cases()
        values = values[np.isfinite(values) & np.isfinite(values.astype(dtype).astype(np.float32))]
    values = values[np.abs(values) < (60000 if code == "f2" else 1e38)]
    narrow_all = stochastic_all(code)
    rounded = narrow_all(values, rng.integers(0, 2**32, values.size, dtype=np.uint64).astype(np.uint32))
    low, high = bracketing(values, dtype)
    got = rounded.view(dtype).astype(np.float32)
    assert np.all((got == low) | (got == high))
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0], np.float32)
    for value in specials:
        got = narrow_all(np.full(4, value, np.float32), np.array([0, 1, 2**31, 2**32 - 1], np.uint32))
        expected = np.float32(value).astype(dtype).view(np.uint16)
        assert np.all(got == expected) if value == value else np.isnan(got.view(dtype).astype(np.float32)).all()
    sweep = (np.arange(2**16, dtype=np.uint32) << np.uint32(16)) | np.uint32(0x8000)
    for value in rng.standard_normal(20).astype(np.float32) * np.float32(1e-3):
        low, high = bracketing(np.array([value]), dtype)
        ups = np.count_nonzero(narrow_all(np.full(sweep.size, value), sweep).view(dtype).astype(np.float32) == high)
        expected = (abs(value) - abs(low[0] if value > 0 else high[0])) / abs(high[0] - low[0])
        assert abs(ups / sweep.size - (expected if value > 0 else 1 - expected)) <= 2**-15


@pytest.mark.parametrize("code", FORMATS)
def test_the_simulators_stochastic_rounding_agrees(code):
    compiled_all = stochastic_all(code)
    interpreted = stochastic_rounding(code, INTERPRETED)
    values = float32_cases()[:3000]
    values = values[np.isfinite(values)]
    randoms = np.array([random_bits(k, 12345) for k in range(values.size)], np.uint32)
    expected = compiled_all(values, randoms)
    assert [interpreted(np.float32(v), np.uint32(r)) for v, r in zip(values, randoms)] == expected.tolist()


def random_bits_written_out(position, salt):
    """The random bits of the element at ``position`` of a step of ``salt``, as
    :func:`numadam.targets.primitives.random_bits_codegen` documents them, in Python integers."""
    cut = 0xFFFFFFFF
    x = ((position & cut) * 0x9E3779B1 + (position >> 32) * 0x85EBCA77 + salt * 0xC2B2AE3D) & cut
    x = ((x ^ (x >> 16)) * 0x7FEB352D) & cut
    x = ((x ^ (x >> 15)) * 0x846CA68B) & cut
    return x ^ (x >> 16)


def test_random_bits_are_uniform_and_differ_between_steps():
    for position, salt in [(0, 0), (5, 123), (2**40 + 7, 2**24 - 1), (2**63 - 1, 99)]:
        expected = random_bits_written_out(position, salt)
        assert random_bits(position, salt) == expected == INTERPRETED.random_bits(0, position, 1, position >> 32, salt)
    # The position given as an index along a segment: offset + index * step, whatever the step.
    for index, offset, step, salt in [(7, 2**32 - 3, 1, 5), (3, 2**33 + 1, 5, 77), (9, 2**40, -3, 2**24 - 1)]:
        position = offset + index * step
        expected = random_bits_written_out(position, salt)
        assert _random_bits_of_index(index, offset, step, salt) == expected
        assert INTERPRETED.random_bits(index, offset, step, position >> 32, salt) == expected
    bits = np.array([random_bits(k, 77) for k in range(1 << 14)], np.uint64)
    other = np.array([random_bits(k, 78) for k in range(1 << 14)], np.uint64)
    top = bits >> np.uint64(16)
    assert abs(top.mean() / 65535 - 0.5) < 0.01
    assert np.histogram(top, bins=16, range=(0, 65536))[0].min() > 0.9 * top.size / 16
    assert np.count_nonzero(bits == other) < 5
    assert len(np.unique(bits)) > 0.99 * bits.size


@pytest.mark.parametrize("positions", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["sequence", "chunk"])
def test_a_piece_whose_positions_cross_a_multiple_of_2_32_rounds_each_element_with_its_own_bits(positions):
    """The random bits' top half changes inside a piece whose positions cross a multiple of 2**32 (a
    sequence of over four billion elements, or a chunk of such a parameter, whose positions step by
    3 here): the piece in one call rounds as its elements called one by one, each its own run."""
    import numadam
    from numadam.core.pipeline import CHUNK_POSITIONS, Policy, PolicyScalars
    from numadam.engine.operands import kernel_spec
    from numadam.targets.cpu.kernels import _compiled_piece
    from numadam.targets.segments import ADDRESS, GROUP, LENGTH, OFFSET, position_column, table_width
    from numadam.targets.spec import algorithm

    family = numadam.Adam.algorithm
    hyper = family.Hyper(**numadam.Adam._class_defaults)
    spec = kernel_spec(family, family.flags(hyper), FORMATS["bf16"], {kind.name for kind in family.state_kinds(hyper)},
                       Policy(stochastic=CHUNK_POSITIONS if positions else True))
    piece = _compiled_piece(spec)
    n, rng = 64, np.random.default_rng(5)
    start = [rng.standard_normal(n).astype(np.float32).astype(FORMATS["bf16"]) for _ in range(2)] + [
        rng.standard_normal(n).astype(np.float32), rng.random(n).astype(np.float32)]
    scalars = rng.random(spec.n_scalars).astype(np.float32)
    scalars[len(algorithm(spec.rule).Scalars._fields) + PolicyScalars._fields.index("salt")] = 4321
    table = np.zeros(table_width(spec.n_operands, 0, positions), np.int64)
    table[OFFSET], table[LENGTH], table[GROUP] = (0 if positions else 2**32 - 20), n, 0
    if positions:
        column = position_column(spec.n_operands, 0)
        table[column], table[column + 1] = 2**32 - 61, 3  # elements 0-20 below 2**32, 21-63 above

    def stepped(calls):
        arrays = [array.copy() for array in start]
        for k, array in enumerate(arrays):
            table[ADDRESS + k], table[ADDRESS + spec.n_operands + k] = array.ctypes.data, 1
        for first, last in calls:
            piece(table, 0, first, last, 1, scalars, np.float32(0))
        return arrays

    whole, one_by_one = stepped([(0, n)]), stepped([(i, i + 1) for i in range(n)])
    assert not np.array_equal(whole[0].view(np.uint16), start[0].view(np.uint16))
    for together, alone in zip(whole, one_by_one):
        np.testing.assert_array_equal(together.view(np.uint16 if together.itemsize == 2 else np.uint32),
                                      alone.view(np.uint16 if alone.itemsize == 2 else np.uint32))
