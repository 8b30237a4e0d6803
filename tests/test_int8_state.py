"""8-bit blockwise state (``state_dtype="int8"``), against a reference written from the scheme.

The reference keeps each state as codes and block scales, and takes a step as
the scheme says: decode every code to its number of the dynamic map (octaves of
a factor 8) times its block's scale, take the family's step (tests/reference.py) in the parameters'
compute dtype, then encode each block again: its new scale is its largest
magnitude (NaN if it holds one), stored as float32, and each number's code is
the nearest number of the map to ``number * (1 / scale)``, ties toward zero.
The maps are checked here against their definition, and the encoding against a
brute-force nearest search, so the reference trusts nothing of the kernels.
"""

import numpy as np
import pytest

import numadam
from arrays import in_layout, random_array, tiered
from numadam.targets import quantization
from reference import REFERENCES
from test_families import CASES, case_id, hyperparameters, initial_carry, initial_state

BLOCK = 256
#: The cases whose state 8-bit codes can hold: no norms pass (it rescales the moments it reads), no
#: state that starts at the parameters (an iterate).
def _keeps_state(method, options):
    cls = numadam.families()[method]
    return bool(cls.algorithm.state_kinds(cls.algorithm.Hyper(**{**cls._class_defaults, **cls.pinned, **options})))


#: The cases with state to quantize (plain SGD keeps none).
QUANTIZABLE = [case for case in CASES if numadam.families()[case[0]].algorithm.norms is None
               and not any(isinstance(kind.initial, str) for kind in numadam.families()[case[0]].algorithm.state)
               and _keeps_state(*case)]
LR = 1e-2


def map_numbers(bits, base=8):
    """Zero and 2**(bits - e) evenly spaced numbers in each octave (base**-(e+1), base**-e], e = 0..bits."""
    numbers = {0.0}
    for e in range(bits + 1):
        count = 2 ** (bits - e)
        numbers.update(np.linspace(float(base) ** -(e + 1), float(base) ** -e, count + 1)[1:])
    return np.sort(np.array(list(numbers), np.float64))


def test_maps_hold_the_dynamic_numbers():
    for table, bits, size in [(quantization.SIGNED, 6, 128), (quantization.UNSIGNED, 7, 256)]:
        expected = map_numbers(bits)
        assert table.magnitudes.dtype == np.float32 and table.magnitudes.size == size == expected.size
        np.testing.assert_array_equal(table.magnitudes, expected)  # short binary fractions: float32 exactly
        assert table.magnitudes[0] == 0 and table.magnitudes[-1] == 1 and table.magnitudes[1] == 8.0**-bits
        assert np.all(np.diff(table.magnitudes) > 0)
    values = quantization.SIGNED.values  # the number of code q at q + 128
    np.testing.assert_array_equal(values[128:], quantization.SIGNED.magnitudes)
    np.testing.assert_array_equal(values[1:128], -quantization.SIGNED.magnitudes[::-1][:-1])
    np.testing.assert_array_equal(quantization.UNSIGNED.values, quantization.UNSIGNED.magnitudes)


@pytest.mark.parametrize("signed", [True, False])
def test_decoding_is_the_maps_number_of_every_code(signed):
    """The kernels' arithmetic decoding (no table) gives every code's number; -128 reads as -1."""
    codes = np.arange(-128, 128).astype(np.int8) if signed else np.arange(256).astype(np.uint8)
    table = quantization.SIGNED if signed else quantization.UNSIGNED
    decoded = quantization.dequantize(np.tile(codes, 2), np.array([1, 0.375], np.float32), signed)
    np.testing.assert_array_equal(decoded[:256], table.values)
    np.testing.assert_array_equal(decoded[256:], table.values * np.float32(0.375))
    if signed:
        assert decoded[0] == -1


def reference_codes(table, numbers):
    """Codes of ``numbers`` (magnitudes in [0, 1], or NaN) as the module docstring defines them: in
    float32, on the line through the evenly spaced numbers of their octave, rounded."""
    m = numbers.astype(np.float32)
    m = np.where(m <= 1, m, np.float32(1))
    octave = np.count_nonzero(m[:, None] > table.bounds[None, :], axis=1)
    codes = (table.slopes[octave] * (m - table.offsets[octave])).astype(np.int32)
    return np.minimum(codes, table.magnitudes.size - 1)


@pytest.mark.parametrize("signed", [True, False])
def test_each_octaves_line_runs_through_its_numbers(signed):
    """Code c of octave d sits at slope * (number - offset) = c + 1/2, and its lower end 8^-(b-d+1)
    at the line's first code (``2**d - 1``, the last code of the octave below)."""
    table = quantization.SIGNED if signed else quantization.UNSIGNED
    codes = np.arange(table.magnitudes.size)
    octave = np.count_nonzero(table.magnitudes[:, None] > table.bounds[None, :], axis=1)
    assert np.array_equal(octave, np.floor(np.log2(np.maximum(codes, 1))).astype(int))
    on_line = table.slopes[octave].astype(np.float64) * (table.magnitudes - table.offsets[octave].astype(np.float64))
    np.testing.assert_allclose(on_line, codes + 0.5, atol=1e-3)
    for d in range(1, table.bounds.size + 1):
        lower_end = table.slopes[d] * (np.float64(table.bounds[d - 1]) - table.offsets[d])
        assert abs(lower_end - (2**d - 1 + 0.5)) < 1e-3


@pytest.mark.parametrize("signed", [True, False])
def test_octave_constants_are_built_from_the_octave_alone(signed):
    """The encoder builds octave d's slope and offset from d's bits: (8/7) 2^(3b-2d) and
    -(6 * 2^d - 7/2) 2^(2d-3b-3), the table's float32 numbers exactly (octave 0 has its own)."""
    table = quantization.SIGNED if signed else quantization.UNSIGNED
    b = table.bits
    for d in range(1, b + 1):
        assert np.float32(8 / 7) * np.float32(2.0 ** (3 * b - 2 * d)) == table.slopes[d]
        assert np.float32(-(6 * 2**d - 3.5) * 2.0 ** (2 * d - 3 * b - 3)) == table.offsets[d]
    assert table.slopes[0] == np.float32(8.0**b) and table.offsets[0] == np.float32(-0.5 * 8.0**-b)


@pytest.mark.parametrize("signed", [True, False])
def test_the_octave_of_every_bound_and_its_neighbours_is_the_compared_one(signed):
    """The encoder finds the octave from the exponent of the float below a magnitude: each octave's
    lower end (which belongs to the octave below), the floats either side of it, zero, the smallest
    subnormal and 1 are coded as the compare with the bounds codes them."""
    table = quantization.SIGNED if signed else quantization.UNSIGNED
    bounds = table.bounds
    probes = np.concatenate([bounds, np.nextafter(bounds, np.float32(0)), np.nextafter(bounds, np.float32(2)),
                             [0.0, 1e-45, np.float32(2.0**-126), 1.0, np.nextafter(np.float32(1), np.float32(0))]])
    probes = probes.astype(np.float32)
    blocks = -(-probes.size // (BLOCK - 1))
    values = np.ones(blocks * BLOCK, np.float32)  # scale 1
    values.reshape(blocks, BLOCK)[:, 1:].reshape(-1)[:probes.size] = probes
    codes, scales = quantization.quantize(values, signed)
    np.testing.assert_array_equal(scales, 1)
    np.testing.assert_array_equal(codes.astype(np.int32), reference_codes(table, values))


@pytest.mark.parametrize("signed", [True, False])
def test_encoding_picks_the_nearest_number_of_the_map(signed):
    """Every midpoint and its float32 neighbours, every map number, and random numbers of every
    octave, in blocks whose largest magnitude is exactly 1 (scale 1)."""
    table = quantization.SIGNED if signed else quantization.UNSIGNED
    mids = ((table.magnitudes[:-1] + table.magnitudes[1:]) / np.float32(2)).astype(np.float32)
    rng = np.random.default_rng(0)
    probes = np.concatenate([mids, np.nextafter(mids, np.float32(0)), np.nextafter(mids, np.float32(2)),
                             table.magnitudes, np.float32(8.0) ** -rng.uniform(0, 9, 4000).astype(np.float32),
                             [0.0, 1e-40, 1e-30]]).astype(np.float32)
    probes = np.minimum(probes, np.float32(1))
    blocks = -(-probes.size // (BLOCK - 1))
    values = np.ones(blocks * BLOCK, np.float32)  # each block's first number is 1: scale 1
    values.reshape(blocks, BLOCK)[:, 1:].reshape(-1)[:probes.size] = probes
    if signed:
        values[1::2] *= -1
    codes, scales = quantization.quantize(values, signed)
    np.testing.assert_array_equal(scales, 1)
    expected = reference_codes(table, np.abs(values))
    np.testing.assert_array_equal(np.abs(codes.astype(np.int32)), expected)
    if signed:
        assert np.all((codes <= 0) | (values > 0)) and np.all((codes >= 0) | (values < 0))
    # the nearest number (but within two float32 roundings of a halfway point), checked by brute force
    decoded = np.abs(quantization.dequantize(codes, scales, signed)).astype(np.float64)
    distance = np.abs(decoded - np.abs(values))
    best = np.min(np.abs(table.magnitudes[None, :].astype(np.float64) - np.abs(values)[:, None]), axis=1)
    near_a_midpoint = np.min(np.abs(np.abs(values)[:, None] - mids[None, :]) / (2 * np.spacing(mids[None, :])),
                             axis=1) <= 1
    assert np.all((distance == best) | near_a_midpoint)


# --- the reference step -----------------------------------------------------------------------


def _signed(method, name):
    kinds = numadam.families()[method].algorithm.state
    return not next(kind for kind in kinds if kind.name == name).nonnegative


def reference_quantize(values, signed):
    """``(codes, scales)`` of ``values`` (compute dtype), blocks over the C order."""
    table = quantization.SIGNED if signed else quantization.UNSIGNED
    flat = np.ascontiguousarray(values).reshape(-1)
    real = flat.dtype.type
    scales = np.empty(-(-flat.size // BLOCK), np.float32)
    codes = np.empty(flat.size, np.int8 if signed else np.uint8)
    for b in range(scales.size):
        block = flat[b * BLOCK:(b + 1) * BLOCK]
        scales[b] = np.nan if np.isnan(block).any() else np.abs(block).max()
        scale = real(scales[b])
        inverse = real(1) / scale if 0 < scale < np.inf else real(0)
        magnitude = np.abs(block) * inverse
        if not signed:
            magnitude = np.where(block * inverse < 0, real(0), magnitude)
        code = reference_codes(table, magnitude)
        codes[b * BLOCK:(b + 1) * BLOCK] = np.where(block >= 0, code, -code) if signed else code
    return codes.reshape(values.shape), scales


def reference_dequantize(codes, scales, signed, dtype):
    table = quantization.SIGNED if signed else quantization.UNSIGNED
    numbers = table.values[codes.astype(np.int32) + (128 if signed else 0)].reshape(-1)
    block_scales = np.repeat(scales, BLOCK)[:numbers.size]
    return (numbers.astype(dtype) * block_scales.astype(dtype)).reshape(codes.shape)


class Reference:
    """The family's step on decoded state, encoded again; small parameters keep full state."""

    def __init__(self, method, options, params):
        self.method, self.h = method, hyperparameters(method, options)
        self.dtype = params[0].dtype
        self.compute = np.result_type(self.dtype, np.float32)
        self.params = [np.array(p, copy=True) for p in params]
        self.state = []
        for p in self.params:
            state = initial_state(method, p.astype(self.compute), self.h)
            if p.size >= 4096:
                state = {name: reference_quantize(value, _signed(method, name)) for name, value in state.items()}
            self.state.append(state)
        self.carry, self.t = initial_carry(method), 0

    def step(self, grads):
        self.t += 1
        for k, g in enumerate(grads):
            state = {name: reference_dequantize(*value, _signed(self.method, name), self.compute)
                     if isinstance(value, tuple) else value for name, value in self.state[k].items()}
            param = np.ascontiguousarray(self.params[k]).astype(self.compute)
            param, state, carry = REFERENCES[self.method].step(param, np.ascontiguousarray(g).astype(self.compute),
                                                          state, self.t, self.carry, self.h)
            self.params[k] = param.astype(self.dtype)
            self.state[k] = {name: reference_quantize(value, _signed(self.method, name))
                             if isinstance(self.state[k][name], tuple) else value for name, value in state.items()}
        self.carry = carry


def assert_state_matches(opt, reference):
    state = opt.state_dict()
    for name in reference.state[0]:
        for k, expected in enumerate(s[name] for s in reference.state):
            if isinstance(expected, tuple):
                np.testing.assert_array_equal(state[name][k], expected[0], strict=True, err_msg=name)
                np.testing.assert_array_equal(state[name + "_scales"][k], expected[1], strict=True, err_msg=name)
            else:
                np.testing.assert_array_equal(state[name][k], expected, strict=True, err_msg=name)
                assert state[name + "_scales"][k].size == 0


def bits(array):
    return array.view(np.uint16) if array.itemsize == 2 else array


@pytest.mark.parametrize("case", tiered(QUANTIZABLE, lambda case: case == ("adam", {})), ids=case_id)
def test_every_family_matches_the_reference_bit_for_bit(case):
    """Two parameters quantized (one of 22 blocks, the last partial) and one kept in full."""
    method, options = case
    rng = np.random.default_rng(1)
    params = [random_array(rng, shape, np.float32) for shape in [(70, 80), (4096,), (10,)]]
    reference = Reference(method, options, params)
    opt = numadam.families()[method](params, lr=LR, state_dtype="int8", **options)
    for _ in range(6):
        grads = [random_array(rng, p.shape, np.float32) for p in params]
        opt.step(grads)
        reference.step(grads)
    for actual, expected in zip(params, reference.params):
        np.testing.assert_array_equal(actual, expected, strict=True)
    assert_state_matches(opt, reference)


@pytest.mark.slow  # 9 s of compiling each layout's int8 kernels: the full tier's
@pytest.mark.parametrize("layout", ["F", "strided", "transposed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, "bfloat16", np.float16])
def test_layouts_and_dtypes_block_over_the_c_order(dtype, layout):
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    rng = np.random.default_rng(2)
    params = [in_layout(random_array(rng, shape, np.float32).astype(dtype), layout) for shape in [(65, 70), (3, 5)]]
    reference = Reference("adam", {"amsgrad": True}, params)
    opt = numadam.Adam(params, lr=LR, amsgrad=True, state_dtype="int8")
    for _ in range(4):
        grads = [in_layout(random_array(rng, p.shape, np.float32).astype(dtype), layout) for p in params]
        opt.step(grads)
        reference.step(grads)
    for actual, expected in zip(params, reference.params):
        np.testing.assert_array_equal(bits(np.ascontiguousarray(actual)), bits(expected))
    assert_state_matches(opt, reference)


@pytest.mark.slow
def test_small_parameters_keep_full_state():
    params = [np.ones(4095, np.float32), np.ones(4096, np.float32), np.ones((64, 64), np.float64)]
    opt = numadam.Adam(params, state_dtype="int8")
    opt.step([np.ones_like(p) for p in params])
    exp_avg = opt.state_dict()["exp_avg"]
    assert [a.dtype for a in exp_avg] == [np.float32, np.int8, np.int8]


@pytest.mark.slow
def test_state_takes_about_two_bytes_per_element():
    """Adam's two 8-bit moments and their block scales: at most 2.1 bytes per element (8 in float32)."""
    import tracemalloc

    warm = np.zeros(1 << 20, np.float32)  # compiles the kernels (the compiler's memory is not state)
    numadam.Adam(warm, state_dtype="int8").step(np.ones_like(warm))
    param, grad = np.zeros(1 << 20, np.float32), np.ones(1 << 20, np.float32)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    opt = numadam.Adam(param, state_dtype="int8")
    opt.step(grad)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    state = opt.state_dict()
    in_state = sum(state[name][0].nbytes + state[name + "_scales"][0].nbytes for name in ("exp_avg", "exp_avg_sq"))
    assert in_state / param.size <= 2.04
    assert held / param.size <= 2.1, f"{held / param.size:.3f} bytes per element"


# --- state_dict -------------------------------------------------------------------------------


def trained(state_dtype, seed=3, steps=3):
    rng = np.random.default_rng(seed)
    params = [random_array(rng, (70, 80), np.float32), random_array(rng, (7,), np.float32)]
    opt = numadam.Adam(params, lr=LR, amsgrad=True, state_dtype=state_dtype)
    for _ in range(steps):
        opt.step([random_array(rng, p.shape, np.float32) for p in params])
    return opt, params


def twin(state_dtype, params):
    copies = [p.copy() for p in params]
    return numadam.Adam(copies, lr=LR, amsgrad=True, state_dtype=state_dtype), copies


def test_round_trip_continues_bit_for_bit():
    opt, params = trained("int8")
    other, copies = twin("int8", params)
    other.load_state_dict(opt.state_dict())
    rng = np.random.default_rng(4)
    for _ in range(3):
        grads = [random_array(rng, p.shape, np.float32) for p in params]
        opt.step(grads)
        other.step(grads)
    for a, b in zip(params, copies):
        np.testing.assert_array_equal(a, b)
    for name, value in opt.state_dict().items():
        if isinstance(value, list):
            for a, b in zip(value, other.state_dict()[name]):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("target", [None, "bfloat16"])
def test_int8_state_loads_into_wider_state_decoded(target):
    opt, params = trained("int8")
    other, _ = twin(target, params)
    other.load_state_dict(opt.state_dict())
    source, loaded = opt.state_dict(), other.state_dict()
    for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        signed = name == "exp_avg"
        decoded = reference_dequantize(source[name][0], source[name + "_scales"][0], signed, np.float32)
        expected = decoded if target is None else decoded.astype(loaded[name][0].dtype)
        np.testing.assert_array_equal(bits(loaded[name][0]), bits(expected))
        np.testing.assert_array_equal(loaded[name][1], source[name][1].astype(loaded[name][1].dtype))


@pytest.mark.parametrize("source_dtype", [None, "bfloat16"])
def test_wider_state_loads_into_int8_encoded(source_dtype):
    opt, params = trained(source_dtype)
    other, _ = twin("int8", params)
    other.load_state_dict(opt.state_dict())
    source, loaded = opt.state_dict(), other.state_dict()
    for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        codes, scales = reference_quantize(source[name][0].astype(np.float32), name == "exp_avg")
        np.testing.assert_array_equal(loaded[name][0], codes)
        np.testing.assert_array_equal(loaded[name + "_scales"][0], scales)


DECADES_REFUSED = r"8-bit state saved with the pre-0\.1\.0 'decades' code map is no longer read"


@pytest.mark.parametrize("target", ["int8", None])
def test_codes_of_the_decades_map_are_refused_and_change_nothing(tmp_path, target):
    """A state saved before ``int8_map`` named the map (it has none) holds codes of the pre-0.1.0
    decades map, which numadam no longer reads: loading it, as a dict or from a file, into 8-bit or
    float state, raises a ValueError naming that format before anything is written. A map of
    another name is refused too."""
    opt, _ = trained("int8")
    state = opt.state_dict()
    assert state.pop(quantization.MAP_KEY) == quantization.MAP_NAME
    path = tmp_path / "decades.npz"
    numadam.save_state(state, path)
    other, params = trained(target, seed=4)
    before, values = other.state_dict(), [p.copy() for p in params]
    for load in (lambda: other.load_state_dict(state), lambda: other.load(path),
                 lambda: other.load_state_dict(numadam.load_state(path))):
        with pytest.raises(ValueError, match=DECADES_REFUSED + r".*no 'int8_map' entry"):
            load()
    with pytest.raises(ValueError, match=r"state\['int8_map'\] must be 'octaves'.*got 'dynamic'"):
        other.load_state_dict({**state, quantization.MAP_KEY: "dynamic"})
    after = other.state_dict()
    assert after.keys() == before.keys() and after["step"] == before["step"]
    for name, value in before.items():
        if isinstance(value, list):
            for a, b in zip(value, after[name]):
                np.testing.assert_array_equal(a, b, err_msg=name)
    for a, b in zip(params, values):
        np.testing.assert_array_equal(a, b)


def test_bad_codes_or_scales_are_refused_and_change_nothing():
    opt, params = trained("int8")
    state = opt.state_dict()
    before = [p.copy() for p in params]
    for change, message in [({"exp_avg_scales": [np.ones(3, np.float32), state["exp_avg_scales"][1]]}, "scales"),
                            ({"exp_avg_sq": [state["exp_avg_sq"][0].astype(np.int8), state["exp_avg_sq"][1]]},
                             "exp_avg_sq")]:
        with pytest.raises((TypeError, ValueError), match=message):
            opt.load_state_dict({**state, **change})
    after = opt.state_dict()
    for name, value in state.items():
        if isinstance(value, list):
            for a, b in zip(value, after[name]):
                np.testing.assert_array_equal(a, b)
    for a, b in zip(params, before):
        np.testing.assert_array_equal(a, b)


# --- what int8 state refuses, and NaN ---------------------------------------------------------


@pytest.mark.parametrize("cls, reason", [(numadam.LAMB, "norms"), (numadam.ScheduleFreeAdamW, "iterate")])
def test_families_whose_state_cannot_be_8_bit_say_why(cls, reason):
    with pytest.raises(ValueError, match=f"not available for {cls.__name__}.*{reason}.*use 'bfloat16'"):
        cls(np.zeros(5000, np.float32), state_dtype="int8")


def test_complex_parameters_refuse_8_bit_state():
    with pytest.raises(ValueError, match="int8.*real"):
        numadam.Adam(np.zeros(5000, np.complex64), state_dtype="int8")


def test_a_nan_poisons_its_block_and_no_other():
    """As with any shared scale: the NaN's block reads NaN from the next step on, the others go on."""
    param = np.ones(16 * BLOCK, np.float32)
    opt = numadam.Adam([param], lr=LR, state_dtype="int8")
    grad = np.ones_like(param)
    grad[BLOCK + 3] = np.nan
    opt.step([grad])
    scales = opt.state_dict()["exp_avg_scales"][0]
    assert np.isnan(scales[1]) and np.isfinite(np.delete(scales, 1)).all()
    assert np.isnan(param[BLOCK + 3]) and np.isfinite(np.delete(param, BLOCK + 3)).all()
    opt.step([np.ones_like(param)])
    assert np.isnan(param[BLOCK:2 * BLOCK]).all()
    assert np.isfinite(np.delete(param, np.s_[BLOCK:2 * BLOCK])).all()


def test_skip_keeps_8_bit_state_untouched():
    param = np.linspace(-1, 1, 5000).astype(np.float32)
    opt = numadam.Adam([param], lr=LR, state_dtype="int8", nonfinite="skip")
    opt.step([np.ones_like(param)])
    before, saved = param.copy(), opt.state_dict()
    bad = np.ones_like(param)
    bad[7] = np.inf
    opt.step([bad])
    np.testing.assert_array_equal(param, before)
    for name in ("exp_avg", "exp_avg_scales", "exp_avg_sq", "exp_avg_sq_scales"):
        np.testing.assert_array_equal(opt.state_dict()[name][0], saved[name][0])
    assert opt.skipped_steps == 1 and opt.step_count == 1


def test_bfloat16_state_refuses_float64_parameters():
    """Rounding float64 to bfloat16 through float32 would round twice; int8 state takes float64."""
    with pytest.raises(ValueError, match="state_dtype='bfloat16' rounds float32 arithmetic.*float64"):
        numadam.Adam([np.zeros(3, np.float32), np.zeros(3)], state_dtype="bfloat16")


def test_state_of_another_float_dtype_is_cast_on_loading():
    """As torch's load_state_dict casts floating state to its parameter's dtype."""
    p = np.ones(5, np.float32)
    opt = numadam.Adam(p)
    state = opt.state_dict()
    state["exp_avg"] = np.full(5, 0.1)  # float64
    opt.load_state_dict(state)
    loaded = opt.state_dict()["exp_avg"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, np.float32(0.1))


@pytest.mark.slow
def test_accumulation_adds_micro_batches_beside_8_bit_state():
    """accumulate=k with 8-bit state: the micro-batches that only add read no state (their kernel
    carries the codes without decoding them); the k-th steps with the mean, as one step would."""
    rng = np.random.default_rng(7)
    start = random_array(rng, (5000,), np.float32)
    grads = [random_array(rng, start.shape, np.float32) for _ in range(2)]
    accumulated, once = start.copy(), start.copy()
    opt = numadam.Adam([accumulated], lr=LR, state_dtype="int8", accumulate=2)
    for grad in grads:
        opt.step([grad])
    numadam.Adam([once], lr=LR, state_dtype="int8").step([((grads[0].astype(np.float64) + grads[1]) / 2)
                                                          .astype(np.float32)])
    assert opt.step_count == 1
    np.testing.assert_array_equal(accumulated, once)


def _row_segments(array):
    """A view of ``array`` whose rows are runs of memory 600 elements apart: one segment a row."""
    wide = np.zeros((array.shape[0], 600), array.dtype)
    view = wide[:, :array.shape[1]]
    view[...] = array
    return view


POLICY_CASES = [({}, np.float32), ({"bounds": (-0.5, 0.5)}, np.float32), ({"ema": 0.9}, np.float32),
                ({"clip_value": 0.5, "nonfinite": "skip"}, np.float32),
                ({"stochastic_rounding": True, "seed": 3}, "bfloat16"), ({"master_weights": True}, "bfloat16")]


@pytest.mark.parametrize("options, dtype", tiered(POLICY_CASES, lambda case: case[0] == {"bounds": (-0.5, 0.5)}, unpack=True),
                         ids=lambda value: "-".join(value) if isinstance(value, dict) else str(value))
def test_runs_of_blocks_and_blocks_across_segments_take_the_same_steps(options, dtype):
    """A contiguous parameter's blocks run in one call per segment, a parameter whose rows are
    segments of two whole blocks in one call per row, and a Fortran-ordered one's (each block
    across many column segments) block by block, piece by piece: the same numbers, with policies."""
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    rng = np.random.default_rng(11)
    start = random_array(rng, (24, 512), np.float32).astype(dtype)
    grads = [random_array(rng, start.shape, np.float32).astype(dtype) for _ in range(3)]
    results = []
    for layout in (lambda a: a.copy(), _row_segments, np.asfortranarray):
        param = layout(start)
        opt = numadam.Adam([param], lr=LR, state_dtype="int8", **options)
        for grad in grads:
            opt.step([layout(grad)])
        results.append((np.ascontiguousarray(param), opt.state_dict()))
    (first, state), others = results[0], results[1:]
    assert state["exp_avg"][0].dtype == np.int8
    for param, other in others:
        np.testing.assert_array_equal(bits(param), bits(first))
        for name in ("exp_avg", "exp_avg_scales", "exp_avg_sq", "exp_avg_sq_scales"):
            np.testing.assert_array_equal(other[name][0], state[name][0], err_msg=name)
