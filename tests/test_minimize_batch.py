"""numadam.minimize_batch: each problem as numadam.minimize solves it alone (bit for bit), compiled
over threads or in Python; the stacked result; bad input refused before anything runs."""

import numba
import numpy as np
import pytest
from numba import njit
from scipy.optimize import Bounds

import numadam
from arrays import tiered
from numadam import schedules
from numadam.bench.batch import decay  # (a @njit decay fit: mean squared residual, gradient)


@njit
def bowl(x, centre, scale):
    """:math:`s \\|x - c\\|^2` over any shape, its gradient; ``scale`` a per-problem number."""
    r = x - centre
    return scale * np.sum(r * r), 2.0 * scale * r


@njit
def bowl_value(x, centre, scale):
    r = x - centre
    return scale * np.sum(r * r)


@njit
def bowl_gradient(x, centre, scale):
    return 2.0 * scale * (x - centre)


def decay_problems(count, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 5.0, 40)
    truth = np.column_stack([rng.uniform(1, 2, count), rng.uniform(0.5, 1.5, count), rng.uniform(-0.2, 0.2, count)])
    y = truth[:, :1] * np.exp(-truth[:, 1:2] * t) + truth[:, 2:] + 0.01 * rng.standard_normal((count, t.size))
    return t, y


def assert_same_as_alone(batch, alone, i):
    """Problem ``i`` of ``batch`` against ``alone`` (its own minimize), every field, bit for bit."""
    np.testing.assert_array_equal(batch.x[i], alone.x)
    np.testing.assert_array_equal(batch.jac[i], alone.jac)
    assert (batch.fun[i], batch.nit[i], batch.nfev[i], batch.njev[i], batch.status[i], batch.success[i],
            batch.skipped[i], batch.message[i]) == (alone.fun, alone.nit, alone.nfev, alone.njev, alone.status,
                                                    alone.success, alone.skipped, alone.message)
    np.testing.assert_array_equal(batch.history[i, :alone.nit + 1], alone.history)
    assert np.isnan(batch.history[i, alone.nit + 1:]).all()


OPTIONS = {
    "adam": dict(method="adam", lr=0.05),
    "amsgrad-bounds": dict(method="adam", lr=0.05, amsgrad=True, bounds=Bounds([0.0, 0.0, -1.0], [3.0, 1.2, 1.0])),
    "lion-cosine-clip": dict(method="lion", lr=0.01, schedule=schedules.CosineDecay(0.01, 200),
                             clip=("norm", 1.0)),
    "ftol-xtol": dict(method="nadam", lr=0.05, ftol=1e-9, xtol=1e-9, patience=3),
    "schedule_free": dict(method="schedule_free_adamw", lr=0.05),
    "prodigy": dict(method="prodigy"),  # (no lr: its d is its own, carried by each problem)
}


@pytest.mark.parametrize("name", tiered(list(OPTIONS), lambda name: name == "amsgrad-bounds"))
def test_each_problem_of_a_compiled_batch_is_its_compiled_solve_alone(name):
    t, y = decay_problems(9, seed=1)
    starts = np.random.default_rng(2).uniform(0.5, 1.5, (9, 3))
    options = dict(OPTIONS[name], maxiter=200, gtol=1e-4)
    batch = numadam.minimize_batch(decay, starts, args=(t,), batched_args=(y,), jac=True, compiled=True, **options)
    assert batch.compiled and batch.x.shape == (9, 3) and batch.history.shape == (9, batch.nit.max() + 1)
    for i in range(9):
        alone = numadam.minimize(decay, starts[i], args=(t, y[i]), jac=True, compiled=True, **options)
        assert_same_as_alone(batch, alone, i)


def test_problems_stop_on_their_own_rules_and_histories_are_padded():
    """Bowls of different steepness: each stops at its own iteration, the rest of its history NaN."""
    centres = np.linspace(-2.0, 2.0, 7).reshape(7, 1) * np.ones((7, 4))
    scales = np.geomspace(0.1, 10.0, 7)
    batch = numadam.minimize_batch(bowl, np.zeros(4), batched_args=(centres, scales), jac=True, lr=0.1,
                                   maxiter=5000, gtol=1e-6)
    assert batch.success.all() and len(set(batch.nit.tolist())) > 1
    for i in range(7):
        alone = numadam.minimize(bowl, np.zeros(4), args=(centres[i], scales[i]), jac=True, lr=0.1, maxiter=5000,
                                 gtol=1e-6, compiled=True)
        assert_same_as_alone(batch, alone, i)


def test_the_result_does_not_depend_on_the_number_of_threads():
    t, y = decay_problems(40, seed=3)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, before):
            numba.set_num_threads(threads)
            results.append(numadam.minimize_batch(decay, np.ones(3), args=(t,), batched_args=(y,), jac=True, lr=0.05,
                                                  maxiter=150, gtol=0.0))
    finally:
        numba.set_num_threads(before)
    for name in ("x", "jac", "fun", "nit", "history"):
        np.testing.assert_array_equal(results[0][name], results[1][name])


@pytest.mark.slow  # 8 s of compiling a batch of its own: the full tier's
def test_the_python_batch_gives_the_compiled_batch_s_bits():
    """compiled=False solves each problem with minimize's Python loop, whose iterates the compiled
    solve reproduces bit for bit; a separate jac as well."""
    centres = np.random.default_rng(4).standard_normal((5, 3))
    scales = np.linspace(0.5, 2.0, 5)
    runs = [numadam.minimize_batch(bowl_value, np.ones(3), batched_args=(centres, scales), jac=bowl_gradient,
                                   lr=0.05, maxiter=300, compiled=compiled) for compiled in (True, False)]
    assert runs[0].compiled and not runs[1].compiled
    for name in ("x", "jac", "fun", "nit", "nfev", "status", "success", "history"):
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
    assert runs[0].message == runs[1].message


@pytest.mark.slow  # 9 s of compiling a batch of its own: the full tier's
def test_matrix_shaped_problems_keep_their_shape():
    centres = np.random.default_rng(5).standard_normal((4, 2, 3))
    batch = numadam.minimize_batch(bowl, np.zeros((4, 2, 3)), batched_args=(centres, np.ones(4)), jac=True, lr=0.1,
                                   maxiter=3000, gtol=1e-6)
    assert batch.x.shape == batch.jac.shape == (4, 2, 3)
    np.testing.assert_allclose(batch.x, centres, atol=1e-5)


def test_a_family_with_norms_runs_each_problem_alone():
    """LAMB's compiled solve steps its optimizer's own state: compiled=True says so; the default solves
    the problems in turn, each as minimize does (its trust ratio its own)."""
    centres = np.random.default_rng(6).standard_normal((3, 4))
    with pytest.raises(TypeError, match="LAMB's compiled solve steps its optimizer's own state"):
        numadam.minimize_batch(bowl, np.ones(4), batched_args=(centres, np.ones(3)), jac=True, method="lamb",
                               compiled=True)
    batch = numadam.minimize_batch(bowl, np.ones(4), batched_args=(centres, np.ones(3)), jac=True, method="lamb",
                                   lr=0.01, maxiter=200)
    for i in range(3):
        alone = numadam.minimize(bowl, np.ones(4), args=(centres[i], 1.0), jac=True, method="lamb", lr=0.01,
                                 maxiter=200)
        assert_same_as_alone(batch, alone, i)


def test_a_callback_sees_each_problem_in_python_and_is_refused_compiled():
    centres = np.arange(6.0).reshape(2, 3)
    seen = []

    def callback(intermediate_result):
        seen.append(intermediate_result.problem)

    with pytest.raises(TypeError, match="cannot call a callback inside its threads"):
        numadam.minimize_batch(bowl, np.zeros(3), batched_args=(centres, np.ones(2)), jac=True, callback=callback,
                               compiled=True)
    assert seen == []
    batch = numadam.minimize_batch(bowl, np.zeros(3), batched_args=(centres, np.ones(2)), jac=True, lr=0.1,
                                   maxiter=4, gtol=0.0, callback=callback)
    assert not batch.compiled and seen == [0] * 4 + [1] * 4


def test_a_progress_bar_counts_the_finished_problems(capsys):
    pytest.importorskip("tqdm")
    t, y = decay_problems(20)
    numadam.minimize_batch(decay, np.ones(3), args=(t,), batched_args=(y,), jac=True, maxiter=20, progress=True)
    assert "20/20" in capsys.readouterr().err


@pytest.mark.slow  # 8 s of compiling a batch of its own: the full tier's
def test_a_gradient_of_the_wrong_shape_names_the_problem():
    @njit
    def wrong(x, centre):
        r = x - centre
        return r @ r, np.zeros(x.size + 1)

    with pytest.raises(ValueError, match=r"problem 0: the gradient must have x's shape \(3,\); got shape \(4,\)"):
        numadam.minimize_batch(wrong, np.zeros(3), batched_args=(np.ones((2, 3)),), jac=True, compiled=True)


def test_each_problem_steps_with_its_own_copy_of_a_schedule_that_observes():
    """ReduceOnPlateau observes each problem's own values (a copy each); the one given is left as it is."""
    centres = np.random.default_rng(14).standard_normal((3, 2)) * [[1.0], [5.0], [0.1]]
    plateau = schedules.ReduceOnPlateau(0.5, factor=0.5, patience=3)
    before = plateau.state_dict()
    batch = numadam.minimize_batch(bowl, np.zeros(2), batched_args=(centres, np.ones(3)), jac=True,
                                   schedule=plateau, maxiter=300, gtol=1e-8)
    assert plateau.state_dict() == before
    for i in range(3):
        alone = numadam.minimize(bowl, np.zeros(2), args=(centres[i], 1.0), jac=True,
                                 schedule=schedules.ReduceOnPlateau(0.5, factor=0.5, patience=3), maxiter=300,
                                 gtol=1e-8)
        assert_same_as_alone(batch, alone, i)


@pytest.mark.slow
def test_histories_are_as_long_as_the_solves_not_as_maxiter():
    """The batch keeps each problem's history as its solve returns it: no room taken for maxiter
    iterations up front, and none cut past the compiled solve's first history block (2**20)."""
    from numadam.solver.compiled import HISTORY_CAPACITY

    centres = np.ones((3, 2)) * [[1.0], [2.0], [3.0]]
    early = numadam.minimize_batch(bowl, np.zeros(2), batched_args=(centres, np.ones(3)), jac=True, lr=0.1,
                                   maxiter=10**9, gtol=1e-6)
    assert early.history.shape == (3, early.nit.max() + 1)
    long = numadam.minimize_batch(bowl, np.zeros(2), batched_args=(centres[:1], np.ones(1)), jac=True, lr=1e-9,
                                  maxiter=HISTORY_CAPACITY + 50, gtol=0.0)
    alone = numadam.minimize(bowl, np.zeros(2), args=(centres[0], 1.0), jac=True, lr=1e-9,
                             maxiter=HISTORY_CAPACITY + 50, gtol=0.0)
    assert long.history.shape == (1, HISTORY_CAPACITY + 51)
    np.testing.assert_array_equal(long.history[0], alone.history)


@pytest.mark.slow
def test_a_forked_child_runs_its_own_batch():
    """The threads kept between batches do not exist in a forked child: it starts its own."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform cannot fork")
    centres = np.random.default_rng(15).standard_normal((8, 3))
    numadam.minimize_batch(bowl, np.zeros(3), batched_args=(centres, np.ones(8)), jac=True, maxiter=50)
    child = multiprocessing.get_context("fork").Process(target=numadam.minimize_batch, args=(bowl, np.zeros(3)),
                                                        kwargs=dict(batched_args=(centres, np.ones(8)), jac=True,
                                                                    maxiter=50))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


def test_compile_time_counts_a_new_compilation_for_new_argument_types():
    centres = np.random.default_rng(16).standard_normal((4, 3))
    numadam.minimize_batch(bowl, np.zeros(3), batched_args=(centres, np.ones(4)), jac=True, maxiter=5)
    again = numadam.minimize_batch(bowl, np.zeros(3), batched_args=(centres, np.ones(4)), jac=True, maxiter=5)
    other = numadam.minimize_batch(bowl, np.zeros(3), batched_args=(centres.astype(np.float32), np.ones(4)),
                                   jac=True, maxiter=5)
    assert again.compile_time < 0.05 < other.compile_time


def counting_fun():
    calls = []

    def fun(x, *args):
        calls.append(1)
        return float(x @ x), 2 * x

    return fun, calls


@pytest.mark.parametrize("call, error, message", [
    (dict(x0=np.zeros(3)), ValueError, r"x0 of shape \(3,\) is one start for every problem, and without "
                                       "batched_args nothing says how many problems"),
    (dict(x0=np.zeros((4, 3)), batched_args=(np.ones(5),)), ValueError, "x0 has 4 starts .* batched_args have 5"),
    (dict(x0=np.zeros(3), batched_args=(np.ones(4), np.ones((5, 2)))), ValueError,
     r"every array of batched_args must have one entry per problem .* got lengths \[4, 5\]"),
    (dict(x0=np.zeros(3), batched_args=(2.0,)), ValueError, r"batched_args\[0\] must be an array .* got a scalar"),
    (dict(x0=np.zeros(3), batched_args=(np.ones(3), np.ones(2)), maxiter=-1), ValueError, "lengths"),
    (dict(x0=np.zeros(3), batched_args=np.ones(4)), TypeError, "batched_args must be a tuple of arrays"),
    (dict(x0=np.zeros((0, 3))), ValueError, r"at least one problem; x0 has shape \(0, 3\)"),
    (dict(x0=np.zeros(3), batched_args=(np.ones((0, 2)),)), ValueError, "at least one problem; batched_args have no"),
    (dict(x0=[[1.0, 2.0], [3.0]]), ValueError, "x0 must be an array of numbers; NumPy cannot make one of it"),
    (dict(x0=np.zeros(3), batched_args=([[1.0], [1.0, 2.0]],)), ValueError, r"batched_args\[0\] must be an array of"),
    (dict(x0=np.zeros(3), batched_args=(np.ones(2),), jac=None), TypeError, "jac must be True"),
    (dict(x0=np.zeros(3), batched_args=(np.ones(2),), compiled="yes"), TypeError, "compiled must be None"),
    (dict(x0=np.zeros(3), batched_args=(np.ones(2),), nonfinite="retry"), ValueError, "nonfinite must be"),
    (dict(x0=np.zeros(3), batched_args=(np.ones(2),), method="adamm"), ValueError, "adamm"),
    (dict(x0=np.zeros(3), batched_args=(np.ones(2),), progress="yes"), TypeError, "progress"),
])
def test_bad_input_is_refused_before_any_problem_runs(call, error, message):
    fun, calls = counting_fun()
    call = {"jac": True, **call}
    with pytest.raises(error, match=message):
        numadam.minimize_batch(fun, **call)
    assert calls == []


@pytest.mark.dask
@pytest.mark.parametrize("where", ["x0 and batched_args", "batched_args", "x0"])
def test_dask_arrays_of_problems_are_solved_a_chunk_a_task_in_problem_order(client, where):  # noqa: F811
    """Chunks of problems on the workers (two processes), each chunk a batch of its own: every problem as
    the NumPy batch solves it, the results in problem order."""
    da = pytest.importorskip("dask.array")
    t, y = decay_problems(23, seed=7)
    starts = np.random.default_rng(8).uniform(0.5, 1.5, (23, 3))
    x0 = da.from_array(starts, chunks=(7, 3)) if "x0" in where else starts
    batched = da.from_array(y, chunks=(5, 20)) if "batched" in where else y
    on_dask = numadam.minimize_batch(decay, x0, args=(t,), batched_args=(batched,), jac=True, lr=0.05, maxiter=150,
                                     gtol=1e-4)
    local = numadam.minimize_batch(decay, starts, args=(t,), batched_args=(y,), jac=True, lr=0.05, maxiter=150,
                                   gtol=1e-4)
    assert on_dask.compiled and isinstance(on_dask.x, np.ndarray)
    for name in ("x", "jac", "fun", "nit", "nfev", "status", "success"):
        np.testing.assert_array_equal(on_dask[name], local[name])
    np.testing.assert_array_equal(on_dask.history, local.history)
    assert on_dask.message == local.message


@pytest.mark.dask
def test_dask_batches_refuse_what_workers_cannot_do_before_anything_runs():
    da = pytest.importorskip("dask.array")
    fun, calls = counting_fun()
    y = da.ones((6, 4), chunks=(3, 4))
    with pytest.raises(TypeError, match="cannot call a callback"):
        numadam.minimize_batch(fun, np.zeros(4), batched_args=(y,), jac=True, callback=print)
    with pytest.raises(ValueError, match="Dask's own progress bar"):
        numadam.minimize_batch(fun, np.zeros(4), batched_args=(y,), jac=True, progress=True)
    with pytest.raises(ValueError, match=r"got lengths \[6, 5\]"):
        numadam.minimize_batch(fun, np.zeros(4), batched_args=(y, np.ones(5)), jac=True)
    with pytest.raises(ValueError, match="x0 has 4 starts"):
        numadam.minimize_batch(fun, da.zeros((4, 4), chunks=2), batched_args=(y,), jac=True)
    assert calls == []


@pytest.mark.dask
def test_a_shared_dask_start_alone_runs_in_this_process_and_unknown_sizes_are_named():
    da = pytest.importorskip("dask.array")
    centres = np.random.default_rng(17).standard_normal((5, 3))
    shared = numadam.minimize_batch(bowl, da.zeros(3, chunks=3), batched_args=(centres, np.ones(5)), jac=True,
                                    maxiter=40)
    local = numadam.minimize_batch(bowl, np.zeros(3), batched_args=(centres, np.ones(5)), jac=True, maxiter=40)
    np.testing.assert_array_equal(shared.x, local.x)
    unknown = da.from_array(np.zeros((5, 3)), chunks=(2, 3))
    unknown = unknown[unknown[:, 0] == 0]
    with pytest.raises(ValueError, match=r"x0 has an unknown shape \(nan, 3\): compute its chunk sizes first"):
        numadam.minimize_batch(bowl, unknown, batched_args=(centres, np.ones(5)), jac=True)


from test_dask import client  # noqa: E402,F401  (the cluster fixture)


# -- vectorized=True: one call for every problem, the batch stepped as one array ---------------------


def decay_all(X, t, Y):
    """Every problem's mean squared residual and gradient at once (rows of ``X`` and ``Y``)."""
    xp = np if isinstance(X, np.ndarray) else __import__("cupy")
    a, k, c = X[:, :1], X[:, 1:2], X[:, 2:3]
    e = xp.exp(-k * t)
    r = a * e + c - Y
    n = t.size
    G = xp.stack([2 * (r * e).sum(1) / n, 2 * (r * (-a * t * e)).sum(1) / n, 2 * r.sum(1) / n], axis=1)
    return (r * r).sum(1) / n, G


def decay_one(x, t, y):
    """:func:`decay_all` on one problem: the same arithmetic in the same order."""
    values, grads = decay_all(x[None], t, y[None])
    return values[0], grads[0]


VECTORIZED = {
    "adam": dict(lr=0.05),
    "bounds": dict(lr=0.05, bounds=Bounds([0.0, 0.0, -1.0], [3.0, 0.9, 1.0])),
    "clip-norm": dict(lr=0.05, clip=("norm", 0.05)),
    "clip-value": dict(method="rmsprop", lr=0.01, clip=("value", 0.1)),
    "ftol-xtol": dict(method="yogi", lr=0.05, ftol=1e-10, xtol=1e-8, patience=2),
    "cosine": dict(method="adamw", lr=0.05, weight_decay=0.01, schedule=schedules.CosineDecay(0.05, 400)),
}


@pytest.mark.parametrize("name", tiered(list(VECTORIZED), lambda name: name == "clip-norm"))
@pytest.mark.slow
def test_a_vectorized_batch_steps_each_problem_as_its_own_solve(name):
    """Each problem's iterates, stop and history are its own minimize's; stopped problems stay frozen."""
    t, y = decay_problems(12, seed=9)
    options = dict(VECTORIZED[name], maxiter=400, gtol=1e-5)
    batch = numadam.minimize_batch(decay_all, np.array([1.0, 1.0, 0.0]), args=(t,), batched_args=(y,), jac=True,
                                   vectorized=True, **options)
    assert len(set(batch.nit.tolist())) > 1 or name == "cosine"  # problems stop apart
    for i in range(12):
        alone = numadam.minimize(decay_one, np.array([1.0, 1.0, 0.0]), args=(t, y[i]), jac=True, compiled=False,
                                 **options)
        np.testing.assert_allclose(batch.x[i], alone.x, rtol=1e-12, atol=1e-14)
        assert (batch.nit[i], batch.status[i], batch.message[i]) == (alone.nit, alone.status, alone.message)
        np.testing.assert_allclose(batch.history[i, :alone.nit + 1], alone.history, rtol=1e-12)
        assert np.isnan(batch.history[i, alone.nit + 1:]).all()


@pytest.mark.slow  # 8 s of compiling a batch of its own: the full tier's
def test_a_vectorized_problem_that_meets_nan_stops_alone_at_its_last_finite_iterate():
    def poisoned(X, t, Y):
        values, grads = decay_all(X, t, Y)
        values = values.copy()
        values[X[:, 1] > 1.05] = np.nan  # problem 0 starts at k = 1.04 and walks up
        return values, grads

    t, y = decay_problems(3, seed=10)
    y[0] = 1.5 * np.exp(-1.3 * t)
    starts = np.array([[1.0, 1.04, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    batch = numadam.minimize_batch(poisoned, starts, args=(t,), batched_args=(y,), jac=True, lr=0.01, maxiter=300,
                                   vectorized=True)
    assert batch.status[0] == 4 and "returning the last finite iterate" in batch.message[0]
    assert batch.x[0, 1] <= 1.05 and np.isfinite(batch.fun[0])
    assert batch.nit[1] > batch.nit[0] and batch.status[1] in (0, 1)


def test_a_vectorized_callback_sees_the_running_problems_and_can_stop_them():
    t, y = decay_problems(4, seed=11)
    seen = []

    def callback(intermediate_result):
        seen.append(intermediate_result.running.copy())
        if len(seen) == 5:
            raise StopIteration

    batch = numadam.minimize_batch(decay_all, np.ones(3), args=(t,), batched_args=(y,), jac=True, maxiter=50,
                                   vectorized=True, callback=callback)
    assert len(seen) == 5 and seen[0].all() and (batch.status == 99).all() and (batch.nit == 5).all()
    assert batch.message[0] == "stopped: callback raised StopIteration"


@pytest.mark.parametrize("options, error, message", [
    (dict(method="lamb"), ValueError, "LAMB takes norms over each parameter"),
    (dict(method="adafactor"), ValueError, "Adafactor takes norms"),
    (dict(nonfinite="skip"), ValueError, "vectorized=True takes nonfinite='stop'"),
    (dict(clip=lambda g: g), ValueError, "a callable clips one problem's gradient"),
    (dict(schedule=schedules.ReduceOnPlateau(0.1)), ValueError, "observes the objective"),
    (dict(compiled=True), TypeError, "a vectorized batch runs its objective as one call"),
    (dict(vectorized="yes"), TypeError, "vectorized"),
])
def test_a_vectorized_batch_refuses_what_would_mix_the_problems_before_anything_runs(options, error, message):
    calls = []

    def fun(X, Y):
        calls.append(1)
        return (X * X).sum(1), 2 * X

    with pytest.raises(error, match=message):
        numadam.minimize_batch(fun, np.zeros(3), batched_args=(np.ones((4, 2)),), jac=True,
                               **{"vectorized": True, **options})
    assert calls == []


def test_a_vectorized_objective_that_returns_the_wrong_shapes_is_named():
    with pytest.raises(ValueError, match=r"one value per problem, shape \(4,\); got shape \(\)"):
        numadam.minimize_batch(lambda X: ((X * X).sum(), 2 * X), np.zeros((4, 3)), jac=True, vectorized=True)
    with pytest.raises(ValueError, match=r"the gradients must have x's shape \(4, 3\); got shape \(4,\)"):
        numadam.minimize_batch(lambda X: ((X * X).sum(1), X.sum(1)), np.zeros((4, 3)), jac=True, vectorized=True)


@pytest.mark.slow
def test_a_vectorized_batch_in_float32_with_a_separate_jac():
    centres = np.random.default_rng(12).standard_normal((6, 5)).astype(np.float32)
    batch = numadam.minimize_batch(lambda X, C: ((X - C) ** 2).sum(1), np.zeros((6, 5), np.float32),
                                   batched_args=(centres,), jac=lambda X, C: 2 * (X - C), lr=0.1, maxiter=2000,
                                   gtol=1e-4, vectorized=True)
    assert batch.x.dtype == np.float32 and batch.success.all()
    np.testing.assert_allclose(batch.x, centres, atol=1e-4)


@pytest.mark.gpu
def test_a_vectorized_batch_on_cupy_arrays_stays_on_the_gpu():
    cupy = pytest.importorskip("cupy")
    t, y = decay_problems(16, seed=13)
    on_host = numadam.minimize_batch(decay_all, np.ones(3), args=(t,), batched_args=(y,), jac=True, lr=0.05,
                                     maxiter=300, vectorized=True)
    on_gpu = numadam.minimize_batch(decay_all, cupy.ones(3), args=(cupy.asarray(t),), batched_args=(cupy.asarray(y),),
                                    jac=True, lr=0.05, maxiter=300, vectorized=True)
    assert isinstance(on_gpu.x, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(on_gpu.x), on_host.x, rtol=1e-6, atol=1e-8)


def test_a_vectorized_history_grows_with_the_solve_not_with_maxiter():
    centres = np.array([[1.0, 2.0], [3.0, 4.0]])
    slow = numadam.minimize_batch(lambda X, C: (((X - C) ** 2).sum(1), 2 * (X - C)), np.zeros(2),
                                  batched_args=(centres,), jac=True, lr=1e-4, maxiter=2500, gtol=0.0, vectorized=True)
    assert slow.history.shape == (2, 2501) and not np.isnan(slow.history).any()
    quick = numadam.minimize_batch(lambda X, C: (((X - C) ** 2).sum(1), 2 * (X - C)), np.zeros(2),
                                   batched_args=(centres,), jac=True, lr=0.1, maxiter=10**9, gtol=1e-6,
                                   vectorized=True)
    assert quick.success.all() and quick.history.shape == (2, quick.nit.max() + 1)
