"""Dask arrays on a real cluster: a LocalCluster of 2 worker processes, numadam's own kernel on every
chunk, bit for bit the NumPy path's result on the same numbers."""

import contextlib
import functools
import os

import numpy as np
import pytest

import numadam
from arrays import random_array

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
is_dask_collection = pytest.importorskip("dask").is_dask_collection

pytestmark = pytest.mark.dask


#: (class, options) of every registered algorithm whose Dask steps are bit for bit the NumPy ones
#: (those with a norms pass, LAMB, sum their norms in another order: their own tests), and more options.
FAMILIES = [(cls.__name__, {}) for cls in numadam.families().values() if cls.algorithm.norms is None] + [
    ("Adam", {"amsgrad": True, "weight_decay": 0.1}), ("AdamW", {"weight_decay": 0.1})]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def problem(seed, shape=(40, 30), dtype=np.float32, steps=3):
    rng = np.random.default_rng(seed)
    start = random_array(rng, shape, dtype)
    grads = [random_array(rng, shape, dtype) for _ in range(steps)]
    return start, grads


def stepped_on_numpy(cls, options, start, grads):
    params = start.copy()
    optimizer = cls([params], lr=0.01, **options)
    for grad in grads:
        optimizer.step([grad])
    return params, optimizer.state_dict()


@pytest.mark.parametrize("name, options", FAMILIES, ids=lambda v: v if isinstance(v, str) else "-".join(v) or "")
@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_each_family_on_the_cluster_is_bit_identical_to_numpy(client, name, options, dtype):
    """Complex numbers are pairs of reals on both paths, initial state included (Yogi's 1e-6 in each)."""
    cls = getattr(numadam, name)
    start, grads = problem(1, dtype=dtype)
    optimizer = cls([da.from_array(start, chunks=(20, 15))], lr=0.01, **options)
    for grad in grads:
        returned = optimizer.step([da.from_array(grad, chunks=(20, 15))])
    expected, expected_state = stepped_on_numpy(cls, options, start, grads)
    assert returned[0] is optimizer.params[0]  # step returns the new tree
    np.testing.assert_array_equal(optimizer.params[0].compute(), expected)
    state = optimizer.state_dict()
    for kind in cls.algorithm.state_kinds(cls.algorithm.Hyper(**optimizer._settings.own)):
        np.testing.assert_array_equal(state[kind.name][0], expected_state[kind.name][0])


@pytest.mark.parametrize("dtype", [np.float64, np.complex64])
def test_other_dtypes_and_several_arrays(client, dtype):
    start, grads = problem(2, (33,), dtype)
    other, other_grads = problem(3, (7, 9), dtype)
    optimizer = numadam.Adam({"a": da.from_array(start, chunks=10), "b": da.from_array(other, chunks=(3, 9))},
                             lr=0.01)
    for grad, other_grad in zip(grads, other_grads):
        optimizer.step({"a": da.from_array(grad, chunks=10), "b": da.from_array(other_grad, chunks=(3, 9))})
    np.testing.assert_array_equal(optimizer.params["a"].compute(), stepped_on_numpy(numadam.Adam, {}, start, grads)[0])
    np.testing.assert_array_equal(optimizer.params["b"].compute(),
                                  stepped_on_numpy(numadam.Adam, {}, other, other_grads)[0])


def test_global_norm_clipping_and_the_nonfinite_check_are_tree_reductions(client):
    start, grads = problem(4)
    grads = [10 * grad for grad in grads]
    optimizer = numadam.Adam([da.from_array(start, chunks=(20, 15))], lr=0.01, clip_global_norm=1.0,
                             nonfinite="skip")
    bad = grads[0].copy()
    bad[3, 4] = np.nan
    for grad in [grads[0], bad, grads[1]]:
        optimizer.step([da.from_array(grad, chunks=(20, 15))])
    assert optimizer.skipped_steps == 1 and optimizer.step_count == 2
    reference = start.copy()
    numpy_optimizer = numadam.Adam([reference], lr=0.01, clip_global_norm=1.0, nonfinite="skip")
    for grad in [grads[0], bad, grads[1]]:
        numpy_optimizer.step([grad])
    # the float64 norm is summed in another order: the scale may differ in its last bit
    np.testing.assert_allclose(optimizer.params[0].compute(), reference, rtol=1e-6, atol=1e-7)
    raising = numadam.Adam([da.from_array(start, chunks=(20, 15))], nonfinite="raise")
    with pytest.raises(FloatingPointError, match=r"grads\[0\] holds NaN or infinity"):
        raising.step([da.from_array(bad, chunks=(20, 15))])
    assert raising.step_count == 0


def test_state_gathers_to_numpy_or_stays_lazy_and_loads_into_the_parameters_chunks(client):
    start, grads = problem(5)
    optimizer = numadam.Adam([da.from_array(start, chunks=(20, 15))], lr=0.01)
    optimizer.step([da.from_array(grads[0], chunks=(20, 15))])
    gathered, lazy = optimizer.state_dict(), optimizer.state_dict(lazy=True)
    assert isinstance(gathered["exp_avg"][0], np.ndarray)
    assert isinstance(lazy["exp_avg"][0], da.Array) and lazy["exp_avg"][0].chunks == ((20, 20), (15, 15))
    resumed = numadam.Adam([da.from_array(optimizer.params[0].compute(), chunks=(10, 30))], lr=0.01)
    resumed.load_state_dict(gathered)  # scattered into (10, 30) chunks
    assert resumed.state_dict(lazy=True)["exp_avg_sq"][0].chunks == ((10, 10, 10, 10), (30,))
    for opt in (optimizer, resumed):
        opt.step([da.from_array(grads[1], chunks=(20, 15))])
    np.testing.assert_array_equal(resumed.params[0].compute(), optimizer.params[0].compute())


def test_the_functional_step_returns_new_arrays(client):
    start, grads = problem(6)
    operands = [da.from_array(a, chunks=(20, 15)) for a in (start, grads[0], np.zeros_like(start),
                                                           np.zeros_like(start))]
    param, exp_avg, exp_avg_sq = numadam.adam_step(*operands, step=1, lr=0.01)
    expected = [start.copy(), np.zeros_like(start), np.zeros_like(start)]
    numadam.adam_step(expected[0], grads[0], expected[1], expected[2], step=1, lr=0.01)
    for got, want in zip((param, exp_avg, exp_avg_sq), expected):
        np.testing.assert_array_equal(got.compute(), want)
    np.testing.assert_array_equal(operands[0].compute(), start)  # the inputs are unchanged


def test_minimize_on_the_cluster(client):
    target = da.from_array(np.linspace(-1.0, 1.0, 600), chunks=150)

    def value_and_gradient(x):
        residual = x - target
        return (residual * residual).sum(), 2 * residual

    result = numadam.minimize(value_and_gradient, da.zeros(600, chunks=150), jac=True, lr=0.05, maxiter=400,
                              gtol=1e-6)
    assert result.success and isinstance(result.fun, float) and result.history.dtype == np.float64
    assert float(abs(result.x - target).max().compute()) < 1e-6


def test_a_lost_cluster_fails_clearly_never_silently(client):
    start, grads = problem(7)
    optimizer = numadam.Adam([da.from_array(start, chunks=(20, 15))], lr=0.01)
    optimizer.step([da.from_array(grads[0], chunks=(20, 15))])
    client.restart()  # every worker's memory is gone: the persisted parameters and state with it
    with pytest.raises(RuntimeError, match="on the Dask cluster are cancelled .* load_state_dict"):
        optimizer.step([da.from_array(grads[1], chunks=(20, 15))])
    assert optimizer.step_count == 1


def test_a_killed_worker_either_recovers_the_exact_step_or_raises(client):
    start, grads = problem(8)
    optimizer = numadam.Adam([da.from_array(start, chunks=(10, 15))], lr=0.01)
    optimizer.step([da.from_array(grads[0], chunks=(10, 15))])
    victim = sorted(client.scheduler_info()["workers"])[0]
    with contextlib.suppress(Exception):  # the call dies with the worker, holding chunks
        client.run(os._exit, 1, workers=[victim])
    client.wait_for_workers(2, timeout=60)  # its nanny starts another
    try:
        optimizer.step([da.from_array(grads[1], chunks=(10, 15))])
        result = optimizer.params[0].compute()
    except Exception as error:  # lost data that cannot be recomputed: an error, which is fine
        assert str(error)
        return
    np.testing.assert_array_equal(result, stepped_on_numpy(numadam.Adam, {}, start, grads[:2])[0])


@pytest.mark.parametrize("options", [{"weight_decay": 0.1}, {"convention": "apex", "weight_decay": 0.0}])
def test_lamb_takes_its_norms_per_parameter_over_the_chunks(client, options):
    """Per chunk the state and two sums of squares; per parameter their total; per chunk the update. The
    sums add up in another order than one process's, so the trust ratio may differ in its last bits."""
    start, grads = problem(11, (40, 30))
    other, other_grads = problem(12, (25,))
    optimizer = numadam.LAMB([da.from_array(start, chunks=(20, 15)), da.from_array(other, chunks=10)], lr=0.02,
                             **options)
    reference = numadam.LAMB([start.copy(), other.copy()], lr=0.02, **options)
    for grad, other_grad in zip(grads, other_grads):
        optimizer.step([da.from_array(grad, chunks=(20, 15)), da.from_array(other_grad, chunks=10)])
        reference.step([grad, other_grad])
    for actual, expected in zip(optimizer.params, reference.params):
        np.testing.assert_allclose(actual.compute(), expected, rtol=2e-6, atol=1e-7)
    state = optimizer.state_dict()
    for name in ("exp_avg", "exp_avg_sq"):
        for actual, expected in zip(state[name], reference.state_dict()[name]):
            np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=1e-9)


@pytest.mark.parametrize("options", [{}, {"weight_decay": 0.1, "maximize": True},
                                     {"clip_value": 0.3, "clip_global_norm": 2.0, "nonfinite": "skip"}])
def test_adafactor_adds_its_row_and_column_sums_across_chunks(client, options):
    """Chunks cut across the rows and the columns of a matrix, a batch of matrices and a vector: each
    chunk's task sums its rows' and columns' squares, this process adds them in chunk order and moves
    the factors, each chunk reads its part of them. The sums add up in another order than one
    process's: equal to a few ulps. The state continues on NumPy arrays."""
    shapes = [((40, 30), (15, 20)), ((3, 20, 12), (2, 7, 5)), ((25,), (10,))]
    rng = np.random.default_rng(31)
    starts = [random_array(rng, shape, np.float32) for shape, _ in shapes]
    grads = [[3 * random_array(rng, shape, np.float32) for shape, _ in shapes] for _ in range(4)]
    grads[2][0][3, 4] = np.nan if options.get("nonfinite") else grads[2][0][3, 4]
    optimizer = numadam.Adafactor([da.from_array(s, chunks=c) for s, (_, c) in zip(starts, shapes)], lr=0.05,
                                  **options)
    reference = numadam.Adafactor([s.copy() for s in starts], lr=0.05, **options)
    for step in grads[:3]:
        optimizer.step([da.from_array(g, chunks=c) for g, (_, c) in zip(step, shapes)])
        reference.step(step)
    assert optimizer.step_count == reference.step_count
    for actual, expected in zip(optimizer.params, reference.params):
        np.testing.assert_allclose(actual.compute(), expected, rtol=1e-6, atol=1e-7)
    state, expected_state = optimizer.state_dict(), reference.state_dict()
    for name in ("row_var", "col_var"):
        for actual, expected in zip(state[name], expected_state[name]):
            assert actual.shape == expected.shape
            np.testing.assert_allclose(actual, expected, rtol=1e-6)
    resumed = numadam.Adafactor([np.array(p.compute(), copy=True) for p in optimizer.params], lr=0.05, **options)
    resumed.load_state_dict(state)
    on_cluster = numadam.Adafactor([da.from_array(p, chunks=c) for p, (_, c) in zip(reference.params, shapes)],
                                   lr=0.05, **options)
    on_cluster.load_state_dict(reference.state_dict())
    resumed.step(grads[3])
    on_cluster.step([da.from_array(g, chunks=c) for g, (_, c) in zip(grads[3], shapes)])
    reference.step(grads[3])
    for actual, again, expected in zip(resumed.params, on_cluster.params, reference.params):
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(again.compute(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("leaf, match, error", [
    (-np.ones((1, 5), np.float32), r"state\['col_var'\]\[0\] has negative entries; col_var is >= 0", ValueError),
    (np.ones((1, 5), np.complex64), r"state\['col_var'\]\[0\] has dtype complex64", TypeError),
    (np.ones((1, 5), np.int64), r"state\['col_var'\]\[0\] has dtype int64", TypeError),
    (np.full((1, 5), "a"), r"state\['col_var'\]\[0\] has dtype <U1", TypeError),
])
def test_adafactor_refuses_factors_the_local_engine_refuses_and_changes_nothing(client, leaf, match, error):
    """The factors the client holds are checked as the local engine checks its state (dtype, sign),
    all of them before any is written: a bad col_var leaves the row_var given beside it unloaded."""
    params = [da.from_array(np.ones((4, 5), np.float32), chunks=(2, 5))]
    optimizer = numadam.Adafactor(params, lr=0.05)
    optimizer.step([da.from_array(np.full((4, 5), 0.5, np.float32), chunks=(2, 5))])
    before = optimizer.state_dict()
    state = optimizer.state_dict()
    state["row_var"][0] = state["row_var"][0] + 1.0  # a good row factor, loaded first
    state["col_var"][0] = leaf
    with pytest.raises(error, match=match):
        optimizer.load_state_dict(state)
    after = optimizer.state_dict()
    for name in ("row_var", "col_var"):
        np.testing.assert_array_equal(after[name][0], before[name][0])


@pytest.mark.parametrize("options", [{"clip_value": 0.3}, {"bounds": (-0.2, 0.25)}, {"nonneg": True},
                                     {"bounds": (None, 0.1), "clip_value": 0.5, "clip_global_norm": 2.0}])
def test_elementwise_policies_on_the_cluster_are_the_numpy_ones(client, options):
    """clip_value and number bounds (nonneg too) inside each chunk's task, bit for bit with the kernels' policies."""
    start, grads = problem(13)
    optimizer = numadam.Adam([da.from_array(start, chunks=(20, 15))], lr=0.05, **options)
    reference = numadam.Adam([start.copy()], lr=0.05, **options)
    for grad in grads:
        optimizer.step([da.from_array(3 * grad, chunks=(20, 15))])
        reference.step([3 * grad])
    np.testing.assert_array_equal(optimizer.params[0].compute(), reference.params[0])
    np.testing.assert_array_equal(optimizer.state_dict()["exp_avg_sq"][0], reference.state_dict()["exp_avg_sq"][0])


@pytest.mark.parametrize("name", ["Adam", "LAMB", "Adafactor"])
def test_array_bounds_on_the_cluster_are_the_numpy_ones(client, name):
    """bounds=(low, high) with arrays (NumPy or Dask, chunked otherwise) beside numbers and None, per
    parameter: each chunk's task projects onto its chunks of the bounds, as the kernels do."""
    cls = getattr(numadam, name)
    start, grads = problem(25)
    other, other_grads = problem(26, (50,))
    rng = np.random.default_rng(27)
    low = -0.3 - rng.random((40, 30)).astype(np.float32)
    high = 0.2 + rng.random((40, 30)).astype(np.float32)
    bounds = ([da.from_array(low, chunks=(40, 10)), None], [high, 0.25])
    optimizer = cls([da.from_array(start, chunks=(20, 15)), da.from_array(other, chunks=25)], lr=0.05, bounds=bounds)
    reference = cls([start.copy(), other.copy()], lr=0.05, bounds=([low, None], [high, 0.25]))
    for grad, other_grad in zip(grads, other_grads):
        optimizer.step([da.from_array(4 * grad, chunks=(20, 15)), da.from_array(4 * other_grad, chunks=25)])
        reference.step([4 * grad, 4 * other_grad])
    compare = np.testing.assert_array_equal if name not in ("LAMB", "Adafactor") else functools.partial(
        np.testing.assert_allclose, rtol=2e-6, atol=1e-7)  # LAMB's norms (Adafactor's sums): in another order
    stepped = [p.compute() for p in optimizer.params]
    for actual, expected in zip(stepped, reference.params):
        compare(actual, expected)
    assert (stepped[0] == low).any() and (stepped[0] == high).any() and (stepped[1] == 0.25).any()


@pytest.mark.parametrize("name", ["Adam", "NAdam", "LAMB", "Adafactor"])
def test_groups_on_the_cluster_step_with_their_own_hyperparameters(client, name):
    """numadam.Group over Dask arrays: each parameter with its group's hyperparameters (and NAdam's
    carry per group), as over NumPy arrays; a group's lr set between steps applies at the next."""
    cls = getattr(numadam, name)
    start, grads = problem(14, (30, 20))
    other, other_grads = problem(15, (50,))

    def make(a, b):
        return cls({"body": a, "head": numadam.Group([b], lr=0.05, weight_decay=0.2)}, lr=0.01)

    optimizer = make(da.from_array(start, chunks=(15, 10)), da.from_array(other, chunks=25))
    reference = make(start.copy(), other.copy())
    for t, (grad, other_grad) in enumerate(zip(grads, other_grads)):
        if t == 1:
            for opt in (optimizer, reference):
                opt.groups[0].lr = 0.02
        optimizer.step({"body": da.from_array(grad, chunks=(15, 10)), "head": [da.from_array(other_grad, chunks=25)]})
        reference.step({"body": grad, "head": [other_grad]})
    compare = np.testing.assert_array_equal if name not in ("LAMB", "Adafactor") else functools.partial(
        np.testing.assert_allclose, rtol=2e-6, atol=1e-7)  # LAMB's norms (Adafactor's sums): in another order
    compare(optimizer.params["body"].compute(), reference.params["body"])
    compare(optimizer.params["head"][0].compute(), reference.params["head"][0])
    assert optimizer.state_dict()["groups"] == reference.state_dict()["groups"]


@pytest.mark.parametrize("name, group", [("LAMB", {"betas": (0.5, 0.6), "weight_decay": 0.3}),
                                         ("Adafactor", {"beta2_decay": -0.3, "eps": (1e-3, 1e-2), "maximize": True})])
def test_a_family_with_norms_takes_each_parameter_s_own_group_in_its_first_pass(client, name, group):
    """The first pass (LAMB's moments, Adafactor's factors and direction) of a parameter whose
    position is not its group's number (the group's parameter first, two of the defaults after it)
    steps with its own group's hyperparameters."""
    cls = getattr(numadam, name)
    rng = np.random.default_rng(16)
    starts = [random_array(rng, (6, 4), np.float32) for _ in range(3)]
    grads = [[random_array(rng, (6, 4), np.float32) for _ in range(3)] for _ in range(3)]

    def make(a, b, c):
        return cls({"a": numadam.Group(a, lr=0.1, **group), "b": b, "c": c}, lr=0.01)

    optimizer = make(*(da.from_array(s, chunks=(3, 4)) for s in starts))
    reference = make(*(s.copy() for s in starts))
    for step in grads:
        optimizer.step({key: da.from_array(g, chunks=(3, 4)) for key, g in zip("abc", step)})
        reference.step(dict(zip("abc", step)))
    for key in "abc":
        np.testing.assert_allclose(optimizer.params[key].compute(), reference.params[key], rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name, options, dtype", [
    ("Adam", {"ema": 0.9}, np.float32), ("NAdam", {"ema": 0.9}, np.complex64),
    ("Adam", {"ema": 0.8, "ema_bias_correction": True, "bounds": (-0.3, 0.3)}, np.float64),
    ("LAMB", {"ema": 0.9, "weight_decay": 0.1}, np.float32),
])
def test_the_moving_average_on_the_cluster_is_the_numpy_one(client, name, options, dtype):
    """ema=d over Dask arrays: the average is held with each chunk, taken in the chunk's task (LAMB:
    after its update pass), bit for bit the kernels' fused average; saved, loaded into other chunks."""
    cls = getattr(numadam, name)
    start, grads = problem(21, dtype=dtype)
    optimizer = cls([da.from_array(start, chunks=(20, 15))], lr=0.05, **options)
    reference = cls([start.copy()], lr=0.05, **options)
    for grad in grads:
        optimizer.step([da.from_array(grad, chunks=(20, 15))])
        reference.step([grad])
    average = optimizer.ema_params()[0]
    assert isinstance(average, da.Array)
    compare = np.testing.assert_array_equal if name not in ("LAMB", "Adafactor") else functools.partial(
        np.testing.assert_allclose, rtol=2e-6, atol=1e-7)  # LAMB's norms (Adafactor's sums): in another order
    compare(average.compute(), reference.ema_params()[0])
    compare(optimizer.params[0].compute(), reference.params[0])
    state = optimizer.state_dict()
    compare(state["ema"][0], reference.state_dict()["ema"][0])
    reloaded = cls([da.from_array(start, chunks=(10, 30))], lr=0.05, **options)
    reloaded.load_state_dict(state)
    np.testing.assert_array_equal(reloaded.ema_params()[0].compute(), average.compute())
    del state["ema"]
    with pytest.raises(ValueError, match="state is missing 'ema'"):
        reloaded.load_state_dict(state)


@pytest.mark.parametrize("name, options, dtype", [
    ("Adam", {"accumulate": 3}, np.float32), ("Yogi", {"accumulate": 2, "ema": 0.9}, np.complex64),
    ("Adam", {"accumulate": 3, "clip_global_norm": 0.5, "nonfinite": "skip"}, np.float64),
    ("LAMB", {"accumulate": 2, "weight_decay": 0.1}, np.float32),
])
def test_gradient_accumulation_on_the_cluster_is_the_numpy_one(client, name, options, dtype):
    """accumulate=k over Dask arrays: k - 1 micro-batches add into a float64 accumulator held with
    each chunk, the k-th updates with the mean (and clears it), as over NumPy arrays: same step
    count, same skipped micro-batches, the same numbers; a state saved mid-accumulation resumes."""
    cls = getattr(numadam, name)
    start, grads = problem(23, dtype=dtype, steps=8)
    if options.get("nonfinite") == "skip":
        grads[1][3, 4] = np.nan  # a micro-batch that only adds, then one that updates
        grads[5][0, 0] = np.inf
    optimizer = cls([da.from_array(start, chunks=(20, 15))], lr=0.05, **options)
    reference = cls([start.copy()], lr=0.05, **options)
    compare = np.testing.assert_array_equal
    if name == "LAMB":  # its norms are summed in another order
        compare = functools.partial(np.testing.assert_allclose, rtol=2e-6, atol=1e-7)
    if "clip_global_norm" in options:  # so is the global norm: its scale may differ in the last bit
        compare = functools.partial(np.testing.assert_allclose, rtol=1e-13, atol=1e-16)
    for t, grad in enumerate(grads):
        optimizer.step([da.from_array(grad, chunks=(20, 15))])
        reference.step([grad])
        assert optimizer.step_count == reference.step_count
        if t == 4:  # between micro-batches: the accumulator travels with the state
            state = optimizer.state_dict()
            compare(state["accumulator"][0], reference.state_dict()["accumulator"][0])
            assert optimizer.state_dict(lazy=True)["accumulator"][0].dtype == state["accumulator"][0].dtype
            optimizer = cls([da.from_array(optimizer.params[0].compute(), chunks=(10, 30))], lr=0.05, **options)
            optimizer.load_state_dict(state)
    assert optimizer.state_dict()["micro_step"] == reference.state_dict()["micro_step"]
    compare(optimizer.params[0].compute(), reference.params[0])
    if options.get("nonfinite") == "skip":
        assert optimizer.skipped_steps == reference.skipped_steps == 2


@pytest.mark.parametrize("name", ["Adam", "Yogi", "ScheduleFreeAdamW", "LAMB"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_bfloat16_state_on_the_cluster_is_the_numpy_one(client, name, dtype):
    """state_dtype="bfloat16" over Dask arrays: bfloat16 state chunks, rounded in each chunk's task
    as the kernels round them; the state dict holds bfloat16, and loads into float32 state."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = np.dtype(getattr(ml_dtypes, dtype, None) or dtype)
    cls = getattr(numadam, name)
    start, grads = problem(24)
    start, grads = start.astype(dtype), [grad.astype(dtype) for grad in grads]
    optimizer = cls([da.from_array(start, chunks=(20, 15))], lr=0.05, state_dtype="bfloat16")
    reference = cls([start.copy()], lr=0.05, state_dtype="bfloat16")
    for grad in grads:
        optimizer.step([da.from_array(grad, chunks=(20, 15))])
        reference.step([grad])
    compare = np.testing.assert_array_equal if name != "LAMB" else functools.partial(
        np.testing.assert_allclose, rtol=1e-2, atol=1e-6)  # LAMB's norms: summed in another order
    compare(optimizer.params[0].compute().astype(np.float32), reference.params[0].astype(np.float32))
    state, expected = optimizer.state_dict(), reference.state_dict()
    for kind in cls.algorithm.state_kinds(cls.algorithm.Hyper(**optimizer._settings.own)):
        assert state[kind.name][0].dtype.name == "bfloat16"
        compare(state[kind.name][0].astype(np.float32), expected[kind.name][0].astype(np.float32))
    if name == "Adam":  # the functional step takes bfloat16 state arrays too
        m, v = (da.zeros(start.shape, dtype=ml_dtypes.bfloat16, chunks=(20, 15)) for _ in range(2))
        stepped = numadam.adam_step(da.from_array(start, chunks=(20, 15)), da.from_array(grads[0], chunks=(20, 15)),
                                    m, v, step=1, lr=0.05)
        once = cls([start.copy()], lr=0.05, state_dtype="bfloat16")
        once.step([grads[0]])
        assert stepped[2].dtype == ml_dtypes.bfloat16
        np.testing.assert_array_equal(stepped[0].compute().astype(np.float32), once.params[0].astype(np.float32))
        np.testing.assert_array_equal(stepped[2].compute().astype(np.float32),
                                      once.state_dict()["exp_avg_sq"][0].astype(np.float32))
    wide = cls([da.from_array(optimizer.params[0].compute(), chunks=(10, 30))], lr=0.05)
    wide.load_state_dict(state)  # bfloat16 numbers, kept in float32 from now on
    assert wide.state_dict(lazy=True)["exp_avg_sq"][0].dtype == np.float32
    np.testing.assert_array_equal(wide.state_dict()["exp_avg_sq"][0], state["exp_avg_sq"][0].astype(np.float32))


@pytest.mark.parametrize("options", [{}, {"amsgrad": True, "weight_decay": 0.1}])
def test_complex_magnitude_mode_on_the_cluster_is_the_numpy_one(client, options):
    """complex_mode="magnitude" over Dask arrays: a real second moment per complex element, held in
    real chunks, bit for bit the NumPy path; lazy views carry each item's own dtype."""
    start, grads = problem(28, dtype=np.complex64, steps=4)
    optimizer = numadam.Adam([da.from_array(start, chunks=(20, 15))], lr=0.05, complex_mode="magnitude", **options)
    reference = numadam.Adam([start.copy()], lr=0.05, complex_mode="magnitude", **options)
    for grad in grads:
        optimizer.step([da.from_array(grad, chunks=(20, 15))])
        reference.step([grad])
    np.testing.assert_array_equal(optimizer.params[0].compute(), reference.params[0])
    lazy, state, expected = optimizer.state_dict(lazy=True), optimizer.state_dict(), reference.state_dict()
    for name in [key for key in expected if isinstance(expected[key], list)]:
        assert lazy[name][0].dtype == state[name][0].dtype == expected[name][0].dtype
        np.testing.assert_array_equal(state[name][0], expected[name][0])
    assert state["exp_avg_sq"][0].dtype == np.float32
    functional = [da.from_array(array, chunks=(20, 15)) for array in (start, np.zeros_like(start))] + [
        da.zeros(start.shape, dtype=np.float32, chunks=(20, 15))]
    param, m, v = numadam.adam_step(functional[0], da.from_array(grads[0], chunks=(20, 15)), *functional[1:],
                                    step=1, lr=0.05)
    once = numadam.Adam([start.copy()], lr=0.05, complex_mode="magnitude")
    once.step([grads[0]])
    np.testing.assert_array_equal(param.compute(), once.params[0])
    np.testing.assert_array_equal(v.compute(), once.state_dict()["exp_avg_sq"][0])


@pytest.mark.parametrize("name, options", [("Adam", {}), ("NAdam", {"bounds": (-0.2, 0.3)}),
                                           ("ScheduleFreeAdamW", {"state_dtype": "bfloat16"}), ("LAMB", {"weight_decay": 0.1})])
def test_master_weights_on_the_cluster_are_the_numpy_ones(client, name, options):
    """master_weights=True over Dask arrays of bfloat16: a float32 copy held with each chunk, read and
    written out of place by the kernel, rounded into the parameter (projected first), as over NumPy."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    cls = getattr(numadam, name)
    start, grads = problem(29, steps=4)
    start, grads = start.astype(ml_dtypes.bfloat16), [grad.astype(ml_dtypes.bfloat16) for grad in grads]
    optimizer = cls([da.from_array(start, chunks=(20, 15))], lr=0.05, master_weights=True, **options)
    reference = cls([start.copy()], lr=0.05, master_weights=True, **options)
    for grad in grads:
        optimizer.step([da.from_array(grad, chunks=(20, 15))])
        reference.step([grad])
    np.testing.assert_array_equal(optimizer.params[0].compute().view(np.uint16), reference.params[0].view(np.uint16))
    state = optimizer.state_dict()
    np.testing.assert_array_equal(state["master"][0], reference.state_dict()["master"][0])
    assert optimizer.state_dict(lazy=True)["master"][0].dtype == np.float32
    resumed = cls([da.from_array(start, chunks=(10, 30))], lr=0.05, master_weights=True, **options)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.state_dict()["master"][0], state["master"][0])


@pytest.mark.parametrize("name, options", [
    ("Adam", {"ema": 0.9, "clip_value": 0.2}), ("Adam", {"accumulate": 2, "clip_global_norm": 0.5}),
    ("LAMB", {"accumulate": 2, "ema": 0.9, "master_weights": True})])
def test_sixteen_bit_parameters_take_every_policy_on_the_cluster_as_over_numpy(client, name, options):
    """Each chunk runs the fused kernel, so the policies that act on the step's float32 values take
    float16 parameters on Dask too, bit for bit the NumPy path (the global norm: to its last bit)."""
    cls = getattr(numadam, name)
    start, grads = problem(31, steps=4)
    start, grads = start.astype(np.float16), [grad.astype(np.float16) for grad in grads]
    optimizer = cls([da.from_array(start, chunks=(20, 15))], lr=0.05, **options)
    reference = cls([start.copy()], lr=0.05, **options)
    for grad in grads:
        optimizer.step([da.from_array(grad, chunks=(20, 15))])
        reference.step([grad])
    assert optimizer.step_count == reference.step_count == 4 // options.get("accumulate", 1)
    compare = np.testing.assert_array_equal
    if name == "LAMB" or "clip_global_norm" in options:  # sums in another order: the last bit may differ
        compare = functools.partial(np.testing.assert_allclose, rtol=1e-3, atol=1e-3)
    compare(optimizer.params[0].compute(), reference.params[0])
    for key, value in reference.state_dict().items():
        if isinstance(value, list):
            compare(optimizer.state_dict()[key][0], value[0])


def test_refusals_name_the_rule():
    """Dask arrays take every option, with the checks the NumPy path makes (tests/test_dask_precision.py)."""
    with pytest.raises(ValueError, match=r"stochastic_rounding rounds float16 and bfloat16 parameters; params\[0\] "
                                         "is float32"):
        numadam.Adam([da.zeros(10, chunks=5, dtype=np.float32)], stochastic_rounding=True)
    with pytest.raises(ValueError, match="state_dtype='int8' is not available for LAMB"):
        numadam.LAMB([da.zeros(5000, chunks=500)], state_dtype="int8")
    with pytest.raises(ValueError, match="state_dtype='bfloat16' holds real numbers; params\\[0\\] is complex"):
        numadam.Adam([da.zeros(10, chunks=5, dtype=np.complex64)], state_dtype="bfloat16")
    with pytest.raises(ValueError, match=r"the low bound of params\[0\] must have its shape \(10,\); got \(9,\)"):
        numadam.Adam([da.zeros(10, chunks=5)], bounds=(np.zeros(9), 1.0))
    with pytest.raises(ValueError, match=r"the bounds of params\[0\] must have low <= high"):
        numadam.Adam([da.zeros(10, chunks=5)], bounds=(da.full(10, 2.0, chunks=2), 1.0))
    with pytest.raises(ValueError, match=r"the high bound of params\[0\] must not hold NaN"):
        numadam.Adam([da.zeros(10, chunks=5)], bounds=(None, np.full(10, np.nan)))
    with pytest.raises(TypeError, match=r"params\[1\] is a ndarray but other parameters are Dask arrays"):
        numadam.Adam([da.zeros(10, chunks=5), np.zeros(3)])


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["Adam", "Yogi"])
def test_cupy_chunks_step_on_the_cuda_kernel_like_numpy(name):
    """Dask arrays of CuPy chunks (as dask-cuda makes them): each chunk's task runs the CUDA kernel,
    the state stays in CuPy chunks, and the result is the NumPy path's within a few ulps (FMA)."""
    import cupy
    import dask

    cls = getattr(numadam, name)
    start, grads = problem(9)
    with dask.config.set(scheduler="threads"):  # this process's GPU, not the cluster's workers
        on_gpu = lambda array: da.from_array(cupy.asarray(array), chunks=(20, 15), asarray=False)  # noqa: E731
        optimizer = cls([on_gpu(start)], lr=0.01)
        for grad in grads:
            optimizer.step([on_gpu(grad)])
        result = optimizer.params[0].compute()
        state = optimizer.state_dict(lazy=True)
        assert isinstance(state["exp_avg"][0]._meta, cupy.ndarray)
    assert isinstance(result, cupy.ndarray)
    expected = stepped_on_numpy(cls, {}, start, grads)[0]
    np.testing.assert_allclose(cupy.asnumpy(result), expected, rtol=64 * np.finfo(np.float32).eps,
                               atol=64 * np.finfo(np.float32).eps * float(np.abs(expected).max()))


def test_state_saved_to_zarr_chunk_by_chunk_and_loaded_into_other_chunks(client, tmp_path):
    pytest.importorskip("zarr")
    start, grads = problem(10)
    optimizer = numadam.Adam([da.from_array(start, chunks=(20, 15))], lr=0.01)
    optimizer.step([da.from_array(grads[0], chunks=(20, 15))])
    path = tmp_path / "state.zarr"
    optimizer.save(path)
    chunk_files = [f for f in (path / "array0" / "c").rglob("*") if f.is_file()]
    assert len(chunk_files) == 4  # one file per chunk, written by the workers
    resumed = numadam.Adam([da.from_array(optimizer.params[0].compute(), chunks=(10, 30))], lr=0.01)
    resumed.load(path)
    assert resumed.step_count == 1 and resumed.state_dict(lazy=True)["exp_avg"][0].chunks == ((10,) * 4, (30,))
    for opt in (optimizer, resumed):
        opt.step([da.from_array(grads[1], chunks=(20, 15))])
    np.testing.assert_array_equal(resumed.params[0].compute(), optimizer.params[0].compute())
    on_numpy = numadam.Adam([optimizer.params[0].compute().copy()], lr=0.01)  # aligned, unlike network buffers
    on_numpy.load(path)  # a NumPy optimizer reads the store too
    np.testing.assert_array_equal(on_numpy.state_dict()["exp_avg_sq"][0],
                                  numadam.load_state(path)["exp_avg_sq"][0])


def test_the_moving_average_is_saved_to_zarr_and_loaded_by_dask_and_numpy(client, tmp_path):
    pytest.importorskip("zarr")
    start, grads = problem(22)
    optimizer = numadam.Adam([da.from_array(start, chunks=(20, 15))], lr=0.01, ema=0.9)
    for grad in grads:
        optimizer.step([da.from_array(grad, chunks=(20, 15))])
    path = tmp_path / "state.zarr"
    optimizer.save(path)
    for resumed in (numadam.Adam([da.from_array(start, chunks=(10, 30))], lr=0.01, ema=0.9),
                    numadam.Adam([start.copy()], lr=0.01, ema=0.9)):
        resumed.load(path)
        average = resumed.ema_params()[0]
        np.testing.assert_array_equal(getattr(average, "compute", lambda: average)(),
                                      optimizer.ema_params()[0].compute())


def test_an_interrupted_zarr_save_is_refused(tmp_path):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "torn.zarr"
    zarr.open_group(path, mode="w").create_array("array0", data=np.zeros(3))  # arrays, but no document yet
    with pytest.raises(ValueError, match="not a numadam state store .* interrupted save"):
        numadam.load_state(path)


def test_minimize_on_the_cluster_with_bounds_and_clipping(client):
    """Projected Adam on a Dask x: the iterates stay in the box, the stop rule measures the projected
    gradient, and the result is the NumPy solve's."""
    from scipy.optimize import Bounds

    target = np.linspace(-1.0, 1.0, 600)

    def on_dask(x):
        residual = x - da.from_array(target, chunks=150)
        return (residual * residual).sum(), 2 * residual

    def on_numpy(x):
        residual = x - target
        return residual @ residual, 2 * residual

    options = dict(jac=True, lr=0.1, maxiter=150, gtol=1e-4, bounds=Bounds(-0.5, 0.75), clip=("value", 0.4))
    result = numadam.minimize(on_dask, da.zeros(600, chunks=150), **options)
    expected = numadam.minimize(on_numpy, np.zeros(600), **options)
    x = result.x.compute()
    assert (result.status, result.nit, result.message) == (expected.status, expected.nit, expected.message)
    assert x.min() >= -0.5 and x.max() <= 0.75
    np.testing.assert_array_equal(x, expected.x)
    np.testing.assert_allclose(x, np.clip(target, -0.5, 0.75), atol=0.02)
    with pytest.raises(ValueError, match="bounds are scipy.optimize.Bounds\\(lb, ub\\) with numbers"):
        numadam.minimize(on_dask, da.zeros(600, chunks=150), jac=True, bounds=[(0, 1)] * 600)


def test_minimize_on_the_cluster_draws_again_after_a_nonfinite_value(client):
    """nonfinite='skip': a stochastic objective that returns NaN now and then is evaluated again at the same
    point, as on NumPy arrays; 'stop' returns the last finite iterate."""
    target = da.from_array(np.linspace(-1.0, 1.0, 200), chunks=50)
    calls = [0]

    def flaky(x):
        calls[0] += 1
        residual = x - target
        value = (residual * residual).sum()
        return (value * np.nan if calls[0] % 5 == 0 else value), 2 * residual

    result = numadam.minimize(flaky, da.zeros(200, chunks=50), jac=True, lr=0.05, maxiter=40, nonfinite="skip")
    assert result.nit == 40 and result.skipped >= 7 and result.nfev == 41 + result.skipped
    calls[0] = 0
    stopped = numadam.minimize(flaky, da.zeros(200, chunks=50), jac=True, lr=0.05, maxiter=40)
    assert stopped.status == 4 and stopped.nit == 3 and np.isfinite(stopped.fun)


def test_schedule_free_eval_params_over_dask_parameters_is_the_numpy_average(client):
    """``eval_params`` reads the parameters and ``z`` through the engine, whichever it is: lazy Dask
    arrays here, with each group's beta1, equal to the NumPy optimizer's."""
    start, grads = problem(37, steps=3)
    params = {"a": numadam.Group([da.from_array(start, chunks=(20, 15))], betas=(0.8, 0.999)),
              "b": da.from_array(start * 2, chunks=(20, 15))}
    optimizer = numadam.ScheduleFreeAdamW(params, lr=0.05)
    reference = numadam.ScheduleFreeAdamW({"a": numadam.Group([start.copy()], betas=(0.8, 0.999)),
                                           "b": start * 2}, lr=0.05)
    for grad in grads:
        optimizer.step({"a": [da.from_array(grad, chunks=(20, 15))], "b": da.from_array(grad, chunks=(20, 15))})
        reference.step({"a": [grad], "b": grad})
    averaged, expected = optimizer.eval_params(), reference.eval_params()
    assert is_dask_collection(averaged["b"])
    np.testing.assert_array_equal(averaged["a"][0].compute(), expected["a"][0])
    np.testing.assert_array_equal(averaged["b"].compute(), expected["b"])
