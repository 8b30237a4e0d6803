"""Stochastic rounding, Kahan's compensation and 8-bit state over Dask arrays, on the two-worker cluster of test_dask.py.

Stochastic rounding draws each element's random bits from its position in the
whole parameter (in its bucket's sequence, as the NumPy path lays the
parameters out), so any chunking rounds as the NumPy path does. 8-bit blocks
follow the chunks: where each chunk is a run of the parameter's C order that
starts at a multiple of 256 they are the NumPy path's blocks; otherwise each
chunk steps as its own NumPy optimizer would.
"""

import numpy as np
import pytest

import numadam
from arrays import random_array
from numadam.engine import chunk_blocks
from numadam.targets import quantization
from test_dask import client  # noqa: F401  (the cluster fixture)

da = pytest.importorskip("dask.array")
ml_dtypes = pytest.importorskip("ml_dtypes")

pytestmark = pytest.mark.dask

SIXTEEN_BITS = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]
#: (shape, chunks) of chunkings that cut a parameter every way: 1-D unevenly, 2-D across both axes and
#: across the columns only (every chunk row its own run), 3-D.
CHUNKINGS = [((1000,), ((300, 450, 250),)), ((40, 30), (20, 15)), ((40, 30), (40, 7)), ((6, 10, 12), (4, 3, 5))]
#: Chunkings whose chunks are runs of the C order starting at multiples of 256: the whole parameter's blocks.
ALIGNED = [((10000,), (2560,)), ((96, 128), (32, 128)), ((96, 128), ((16, 48, 32), (128,)))]
#: Chunkings whose blocks are the chunks' own (each chunk of at least 4096 elements, as a NumPy optimizer
#: of that chunk keeps 8-bit state): across both axes, one run per chunk but not at multiples of 256, uneven.
UNALIGNED = [((128, 140), (64, 70)), ((100, 90), (50, 90)), ((10000,), ((4500, 5500),))]
INT8_FAMILIES = [("Adam", {}), ("AdamW", {"amsgrad": True, "weight_decay": 0.1})]


def bits(array):
    return np.asarray(array).view(np.uint16) if np.asarray(array).itemsize == 2 else np.asarray(array)


def chunked(arrays, chunks):
    return [da.from_array(array, chunks=chunk) for array, chunk in zip(arrays, chunks)]


def chunk_slices(shape, chunks):
    """Each chunk's slices, in the C order of the chunk grid."""
    return list(da.core.slices_from_chunks(da.zeros(shape, chunks=chunks).chunks))


@pytest.mark.parametrize("dtype", SIXTEEN_BITS, ids=str)
@pytest.mark.parametrize("shape, chunks", CHUNKINGS, ids=str)
def test_stochastic_rounding_on_the_cluster_is_the_numpy_one(client, dtype, shape, chunks):  # noqa: F811
    """A parameter chunked every way and a vector after it (whose positions follow the first
    parameter's in their bucket's sequence), several steps of per-step salts: the bits of the NumPy
    optimizer over the same tree; stochastic, not nearest rounding."""
    rng = np.random.default_rng(41)
    starts = [random_array(rng, shape, np.float32).astype(dtype), random_array(rng, (50,), np.float32).astype(dtype)]
    grads = [[random_array(rng, s.shape, np.float32).astype(dtype) for s in starts] for _ in range(4)]
    layout = [chunks, 20]
    options = {"lr": 1e-3, "stochastic_rounding": True, "seed": 5}
    optimizer = numadam.Adam(chunked(starts, layout), **options)
    reference = numadam.Adam([s.copy() for s in starts], **options)
    nearest = numadam.Adam([s.copy() for s in starts], lr=1e-3)
    for step in grads:
        optimizer.step(chunked(step, layout))
        reference.step(step)
        nearest.step(step)
    for actual, expected, rounded in zip(optimizer.params, reference.params, nearest.params):
        np.testing.assert_array_equal(bits(actual.compute()), bits(expected))
        assert not np.array_equal(bits(expected), bits(rounded))


@pytest.mark.parametrize("name", ["AdamW", "Lion", "LAMB"])
@pytest.mark.parametrize("shape, chunks", CHUNKINGS[:2], ids=str)
def test_kahan_compensation_on_the_cluster_is_the_numpy_one(client, name, shape, chunks):  # noqa: F811
    """``compensation="kahan"`` over chunks: each chunk holds its part of the compensation from step
    to step; parameters and compensation are the NumPy optimizer's bits (LAMB: through its norms)."""
    rng = np.random.default_rng(43)
    dtype = SIXTEEN_BITS[1]
    starts = [random_array(rng, shape, np.float32).astype(dtype), random_array(rng, (50,), np.float32).astype(dtype)]
    grads = [[random_array(rng, s.shape, np.float32).astype(dtype) for s in starts] for _ in range(4)]
    layout = [chunks, 20]
    cls = getattr(numadam, name)
    optimizer = cls(chunked(starts, layout), lr=1e-3, compensation="kahan")
    reference = cls([s.copy() for s in starts], lr=1e-3, compensation="kahan")
    for step in grads:
        optimizer.step(chunked(step, layout))
        reference.step(step)
    for actual, expected in zip(optimizer.params, reference.params):
        np.testing.assert_array_equal(bits(actual.compute()), bits(expected))
    held, kept = optimizer.state_dict()["compensation"], reference.state_dict()["compensation"]
    for actual, expected in zip(held, kept):
        assert np.any(np.asarray(expected).astype(np.float32) != 0)
        np.testing.assert_array_equal(bits(actual), bits(expected))


@pytest.mark.parametrize("name, options", [("Lion", {"weight_decay": 0.1}), ("NAdam", {"bounds": (-1.0, 1.0)})])
def test_stochastic_rounding_with_groups_and_other_families(client, name, options):  # noqa: F811
    """Two groups of bfloat16 parameters, each with its own hyperparameters, in one bucket sequence."""
    cls = getattr(numadam, name)
    rng = np.random.default_rng(43)
    dtype = SIXTEEN_BITS[1]
    a, b = random_array(rng, (30, 20), np.float32).astype(dtype), random_array(rng, (70,), np.float32).astype(dtype)
    grads = [tuple(random_array(rng, p.shape, np.float32).astype(dtype) for p in (a, b)) for _ in range(3)]

    def make(first, second):
        return cls({"body": first, "head": numadam.Group([second], lr=2e-3)}, lr=1e-3, stochastic_rounding=True,
                   seed=9, **options)

    optimizer = make(da.from_array(a, chunks=(7, 9)), da.from_array(b, chunks=30))
    reference = make(a.copy(), b.copy())
    for grad_a, grad_b in grads:
        optimizer.step({"body": da.from_array(grad_a, chunks=(7, 9)), "head": [da.from_array(grad_b, chunks=30)]})
        reference.step({"body": grad_a, "head": [grad_b]})
    np.testing.assert_array_equal(bits(optimizer.params["body"].compute()), bits(reference.params["body"]))
    np.testing.assert_array_equal(bits(optimizer.params["head"][0].compute()), bits(reference.params["head"][0]))


def stepped_int8(cls, options, starts, grads, layout):
    optimizer = cls(chunked(starts, layout), lr=0.01, state_dtype="int8", **options)
    for step in grads:
        optimizer.step(chunked(step, layout))
    return optimizer


def int8_problem(seed, shape, steps=3):
    """A parameter of ``shape`` (8-bit state) and a small one (full state), with their gradients."""
    rng = np.random.default_rng(seed)
    starts = [random_array(rng, shape, np.float32), random_array(rng, (30,), np.float32)]
    grads = [[random_array(rng, s.shape, np.float32) for s in starts] for _ in range(steps)]
    return starts, grads


def assert_quantized_chunk_by_chunk(state, decoded, chunks):
    """The first leaf's ``exp_avg_sq`` in ``state`` is ``decoded`` (float32 numbers of a (128, 140)
    parameter) quantized over each chunk of ``chunks`` (18 blocks a chunk)."""
    for k, where in enumerate(chunk_slices((128, 140), chunks)):
        codes, scales = quantization.quantize(decoded[where], signed=False)
        np.testing.assert_array_equal(state["exp_avg_sq"][0][where], codes)
        np.testing.assert_array_equal(state["exp_avg_sq_scales"][0][k * 18:(k + 1) * 18], scales)


def assert_states_equal(actual, expected, names):
    for name in names:
        for a, e in zip(actual[name], expected[name]):
            np.testing.assert_array_equal(a, e, strict=True, err_msg=name)


@pytest.mark.parametrize("name, options", INT8_FAMILIES, ids=lambda v: v if isinstance(v, str) else "-".join(v))
@pytest.mark.parametrize("shape, chunks", ALIGNED, ids=str)
def test_int8_state_over_aligned_chunks_is_the_whole_numpy_one(client, name, options, shape, chunks):  # noqa: F811
    """Chunks that are runs of the C order starting at multiples of 256 hold the NumPy path's blocks:
    the parameters, the codes and the scales are the NumPy optimizer's, bit for bit."""
    cls = getattr(numadam, name)
    starts, grads = int8_problem(45, shape)
    optimizer = stepped_int8(cls, options, starts, grads, [chunks, 10])
    reference = cls([s.copy() for s in starts], lr=0.01, state_dtype="int8", **options)
    for step in grads:
        reference.step(step)
    for actual, expected in zip(optimizer.params, reference.params):
        np.testing.assert_array_equal(actual.compute(), expected)
    state, expected = optimizer.state_dict(), reference.state_dict()
    kinds = [kind for kind in expected if isinstance(expected[kind], list)]
    assert {kind.removesuffix("_scales") for kind in kinds} <= {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert state["exp_avg"][0].dtype == np.int8 and state["exp_avg_sq"][0].dtype == np.uint8
    assert state["exp_avg"][1].dtype == np.float32  # a parameter below 4096 elements keeps full state
    assert_states_equal(state, expected, kinds)
    assert chunk_blocks.blocks_whole(state[chunk_blocks.LAYOUT_KEY][0], shape)


@pytest.mark.parametrize("name, options", INT8_FAMILIES, ids=lambda v: v if isinstance(v, str) else "-".join(v))
@pytest.mark.parametrize("shape, chunks", UNALIGNED, ids=str)
def test_int8_state_over_other_chunks_is_each_chunk_s_numpy_one(client, name, options, shape, chunks):  # noqa: F811
    """Each chunk's blocks run over its own C order: the parameters, codes and scales (chunk after
    chunk in the grid's C order) are those of a NumPy optimizer per chunk, not the whole one's."""
    cls = getattr(numadam, name)
    starts, grads = int8_problem(47, shape)
    optimizer = stepped_int8(cls, options, starts, grads, [chunks, 10])
    state = optimizer.state_dict()
    param, expected_codes = np.empty(shape, np.float32), {}
    expected_scales = {"exp_avg": [], "exp_avg_sq": [], "max_exp_avg_sq": []}
    for where in chunk_slices(shape, chunks):
        part = np.ascontiguousarray(starts[0][where])
        alone = cls([part], lr=0.01, state_dtype="int8", **options)
        for step in grads:
            alone.step([np.ascontiguousarray(step[0][where])])
        param[where] = part
        alone_state = alone.state_dict()
        for kind, scales in expected_scales.items():
            if kind in state:
                expected_codes.setdefault(kind, np.empty(shape, state[kind][0].dtype))[where] = alone_state[kind][0]
                scales.append(alone_state[f"{kind}_scales"][0])
    np.testing.assert_array_equal(optimizer.params[0].compute(), param)
    for kind, codes in expected_codes.items():
        np.testing.assert_array_equal(state[kind][0], codes, strict=True)
        np.testing.assert_array_equal(state[f"{kind}_scales"][0], np.concatenate(expected_scales[kind]), strict=True)
    whole = cls([starts[0].copy()], lr=0.01, state_dtype="int8", **options)
    for step in grads:
        whole.step([step[0]])
    assert not np.array_equal(whole.state_dict()["exp_avg_sq_scales"][0], state["exp_avg_sq_scales"][0])
    np.testing.assert_array_equal(state[chunk_blocks.LAYOUT_KEY][0],
                                  [[(w.start, w.stop) for w in where] for where in chunk_slices(shape, chunks)])


def test_int8_state_with_groups_and_policies_on_the_cluster_is_the_numpy_one(client):  # noqa: F811
    """Groups with their own hyperparameters, value clipping, a skipped non-finite step and a moving
    average, over aligned chunks: the NumPy optimizer's parameters and 8-bit state, bit for bit."""
    rng = np.random.default_rng(49)
    a, b = random_array(rng, (64, 96), np.float32), random_array(rng, (5120,), np.float32)
    grads = [(random_array(rng, a.shape, np.float32), random_array(rng, b.shape, np.float32)) for _ in range(4)]
    grads[2][1][7] = np.nan
    options = {"clip_value": 0.5, "nonfinite": "skip", "ema": 0.9, "state_dtype": "int8"}

    def make(first, second):
        return numadam.AdamW({"body": first, "head": numadam.Group([second], lr=0.05, weight_decay=0.3)}, lr=0.01,
                             **options)

    optimizer = make(da.from_array(a, chunks=(32, 96)), da.from_array(b, chunks=1024))
    reference = make(a.copy(), b.copy())
    for grad_a, grad_b in grads:
        optimizer.step({"body": da.from_array(grad_a, chunks=(32, 96)), "head": [da.from_array(grad_b, chunks=1024)]})
        reference.step({"body": grad_a, "head": [grad_b]})
    assert optimizer.skipped_steps == reference.skipped_steps == 1
    np.testing.assert_array_equal(optimizer.params["body"].compute(), reference.params["body"])
    np.testing.assert_array_equal(optimizer.params["head"][0].compute(), reference.params["head"][0])
    state, expected = optimizer.state_dict(), reference.state_dict()
    assert state["exp_avg"]["body"].dtype == np.int8
    for name in ("exp_avg", "exp_avg_scales", "exp_avg_sq", "exp_avg_sq_scales", "ema"):
        np.testing.assert_array_equal(state[name]["body"], expected[name]["body"], strict=True)
        np.testing.assert_array_equal(state[name]["head"][0], expected[name]["head"][0], strict=True)


def test_int8_state_with_accumulation_and_master_weights_is_the_numpy_one(client):  # noqa: F811
    """float16 parameters with a float32 copy, 8-bit state and accumulate=2 over aligned chunks: the
    micro-batches that only add carry the codes and scales on; the NumPy optimizer's bits."""
    rng = np.random.default_rng(50)
    dtype = SIXTEEN_BITS[0]
    start = random_array(rng, (96, 128), np.float32).astype(dtype)
    grads = [random_array(rng, start.shape, np.float32).astype(dtype) for _ in range(6)]
    options = {"lr": 1e-2, "state_dtype": "int8", "accumulate": 2, "master_weights": True}
    optimizer = numadam.Adam([da.from_array(start, chunks=(32, 128))], **options)
    reference = numadam.Adam([start.copy()], **options)
    for grad in grads:
        optimizer.step([da.from_array(grad, chunks=(32, 128))])
        reference.step([grad])
    assert optimizer.step_count == reference.step_count == 3
    np.testing.assert_array_equal(bits(optimizer.params[0].compute()), bits(reference.params[0]))
    assert_states_equal(optimizer.state_dict(), reference.state_dict(),
                        ["exp_avg", "exp_avg_scales", "exp_avg_sq", "exp_avg_sq_scales", "master"])


def test_int8_state_and_stochastic_rounding_together_are_the_numpy_ones(client):  # noqa: F811
    """float16 parameters with 8-bit state and stochastic rounding, over aligned chunks."""
    rng = np.random.default_rng(51)
    dtype = SIXTEEN_BITS[0]
    start = random_array(rng, (96, 128), np.float32).astype(dtype)
    grads = [random_array(rng, start.shape, np.float32).astype(dtype) for _ in range(3)]
    options = {"lr": 1e-3, "state_dtype": "int8", "stochastic_rounding": True, "seed": 2}
    optimizer = numadam.Adam([da.from_array(start, chunks=(32, 128))], **options)
    reference = numadam.Adam([start.copy()], **options)
    for grad in grads:
        optimizer.step([da.from_array(grad, chunks=(32, 128))])
        reference.step([grad])
    np.testing.assert_array_equal(bits(optimizer.params[0].compute()), bits(reference.params[0]))
    assert_states_equal(optimizer.state_dict(), reference.state_dict(), ["exp_avg", "exp_avg_scales"])


def test_int8_state_dict_round_trips_and_continues_exactly(client, tmp_path):  # noqa: F811
    """Codes, per-chunk scales and the chunks they follow, gathered or lazy (a Zarr store): loaded into
    the same chunks the steps continue bit for bit; other chunks and NumPy optimizers decode them and
    quantize again over their own blocks; a NumPy optimizer's state loads into aligned chunks as it is."""
    pytest.importorskip("zarr")
    cls, options = numadam.AdamW, {"amsgrad": True, "weight_decay": 0.1}
    starts, grads = int8_problem(53, (128, 140), steps=6)
    layout = [(64, 70), 10]
    optimizer = stepped_int8(cls, options, starts, grads[:3], layout)
    saved = optimizer.state_dict()
    lazy = optimizer.state_dict(lazy=True)
    assert lazy["exp_avg_scales"][0].chunks == ((18, 18, 18, 18),)  # one chunk of scales per chunk
    assert isinstance(saved[chunk_blocks.LAYOUT_KEY][0], np.ndarray)
    path = tmp_path / "state.zarr"
    optimizer.save(path)

    def fresh(chunks=(64, 70)):
        return cls(chunked([p.compute() for p in optimizer.params], [chunks, 10]), lr=0.01, state_dtype="int8",
                   **options)

    resumed, from_store = fresh(), fresh()
    resumed.load_state_dict(saved)
    from_store.load(path)
    names = [key for key, value in saved.items() if isinstance(value, list)]
    for other in (resumed, from_store):
        assert_states_equal(other.state_dict(), saved, names)
    for step in grads[3:]:
        for opt in (optimizer, resumed, from_store):
            opt.step(chunked(step, layout))
    for opt in (resumed, from_store):
        for actual, expected in zip(opt.params, optimizer.params):
            np.testing.assert_array_equal(actual.compute(), expected.compute())
        assert_states_equal(opt.state_dict(), optimizer.state_dict(), names)

    decoded = chunk_blocks.decoded(saved["exp_avg_sq"][0], saved["exp_avg_sq_scales"][0],
                                   saved[chunk_blocks.LAYOUT_KEY][0], signed=False)
    rechunked = fresh((32, 140))
    rechunked.load(path)
    assert_quantized_chunk_by_chunk(rechunked.state_dict(), decoded, (32, 140))
    on_numpy = cls([p.compute().copy() for p in optimizer.params], lr=0.01, state_dtype="int8", **options)
    on_numpy.load(path)
    codes, scales = quantization.quantize(decoded, signed=False)
    np.testing.assert_array_equal(on_numpy.state_dict()["exp_avg_sq"][0], codes)
    np.testing.assert_array_equal(on_numpy.state_dict()["exp_avg_sq_scales"][0], scales)
    in_float = cls(chunked([p.compute() for p in optimizer.params], layout), lr=0.01, **options)
    in_float.load_state_dict(saved)
    np.testing.assert_array_equal(in_float.state_dict()["exp_avg_sq"][0], decoded)

    numpy_state = on_numpy.state_dict()
    aligned = fresh((64, 140))  # 8960 elements a chunk: 35 whole blocks
    aligned.load_state_dict(numpy_state)
    assert_states_equal(aligned.state_dict(), numpy_state, [name for name in names if name != chunk_blocks.LAYOUT_KEY])
    for step in grads[3:]:
        aligned.step(chunked(step, [(64, 140), 10]))
        on_numpy.step(step)
    np.testing.assert_array_equal(aligned.params[0].compute(), on_numpy.params[0])


def test_int8_codes_of_the_decades_map_are_refused_and_change_nothing(client, tmp_path):  # noqa: F811
    """A state saved before ``int8_map`` named the map holds codes of the pre-0.1.0 decades map, which
    numadam no longer reads: loading it, gathered or lazy from a Zarr store, raises a ValueError
    naming that format before any chunk is loaded."""
    pytest.importorskip("zarr")
    starts, grads = int8_problem(57, (128, 140), steps=2)
    layout = [(64, 70), 10]
    optimizer = stepped_int8(numadam.Adam, {}, starts, grads, layout)
    state, lazy = optimizer.state_dict(), optimizer.state_dict(lazy=True)
    for saved in (state, lazy):
        assert saved.pop(quantization.MAP_KEY) == quantization.MAP_NAME
    path = tmp_path / "decades.zarr"
    numadam.save_state(lazy, path)
    before, params = optimizer.state_dict(), [p.compute() for p in optimizer.params]
    match = r"8-bit state saved with the pre-0\.1\.0 'decades' code map is no longer read.*no 'int8_map' entry"
    for load in (lambda: optimizer.load_state_dict(state), lambda: optimizer.load(path)):
        with pytest.raises(ValueError, match=match):
            load()
    assert_states_equal(optimizer.state_dict(), before, [key for key in before if isinstance(before[key], list)])
    for param, value in zip(optimizer.params, params):
        np.testing.assert_array_equal(param.compute(), value)


@pytest.mark.parametrize("key, change, error, match", [
    ("exp_avg_scales", lambda leaf: leaf[:-1], ValueError,
     r"state\['exp_avg_scales'\]\[0\] must be float32 of shape \(72,\)"),
    (chunk_blocks.LAYOUT_KEY, lambda leaf: leaf[::-1], ValueError, r"state\['int8_chunks'\]\[0\] must list the chunks"),
    (chunk_blocks.LAYOUT_KEY, lambda leaf: leaf[:, :1], ValueError, r"state\['int8_chunks'\]\[0\] must be an integer"),
    ("exp_avg_sq", lambda leaf: leaf.astype(np.int8), TypeError,
     r"state\['exp_avg_sq'\]\[0\] holds 8-bit codes of dtype int8"),
    ("exp_avg", lambda leaf: leaf[:, :-1], ValueError, r"state\['exp_avg'\]\[0\] must have shape \(128, 140\)"),
    ("exp_avg_scales", None, ValueError, r"state\['exp_avg'\] holds 8-bit codes but state has no 'exp_avg_scales'"),
])
def test_int8_state_loading_refuses_bad_input_and_changes_nothing(client, key, change, error, match):  # noqa: F811
    """Each leaf's codes, scales and chunks are checked, every one before anything is loaded: a good
    leaf given beside the bad one is not loaded either."""
    starts, grads = int8_problem(55, (128, 140), steps=2)
    optimizer = stepped_int8(numadam.AdamW, {"amsgrad": True}, starts, grads, [(64, 70), 10])
    before = optimizer.state_dict()
    state = optimizer.state_dict()
    state["max_exp_avg_sq"][1] = state["max_exp_avg_sq"][1] + 1.0  # a good leaf
    if change is None:
        del state[key]
    else:
        state[key] = [change(state[key][0]), *state[key][1:]]
    with pytest.raises(error, match=match):
        optimizer.load_state_dict(state)
    assert_states_equal(optimizer.state_dict(), before, [key for key in before if isinstance(before[key], list)])
