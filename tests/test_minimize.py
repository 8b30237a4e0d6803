"""numadam.minimize: known answers, stop rules, callbacks, non-finite values, schedules, clipping, scipy."""

import math
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.optimize

import numadam
from arrays import tiered
from numadam import schedules


def least_squares(rng, rows=40, cols=6, dtype=np.float64):
    A = rng.standard_normal((rows, cols)).astype(dtype)
    b = rng.standard_normal(rows).astype(dtype)

    def fun(x):
        residual = A @ x - b
        return 0.5 * float(residual @ residual), A.T @ residual

    return A, b, fun


def bowl(x, center, scales):
    """sum(scales * (x - center)^2): minimum 0 at ``center``."""
    return float(np.sum(scales * (x - center) ** 2))


def bowl_gradient(x, center, scales):
    return 2 * scales * (x - center)


class Recorder:
    """A new-style callback that keeps copies of what it is given."""

    def __init__(self, stop_at=None):
        self.results = []
        self.stop_at = stop_at

    def __call__(self, intermediate_result):
        self.results.append(intermediate_result)
        if self.stop_at is not None and intermediate_result.nit == self.stop_at:
            raise StopIteration


class CountingFun:
    def __init__(self, fun):
        self.fun, self.calls = fun, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fun(*args)


# -- known answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-7), (np.float32, 1e-3)])
def test_least_squares_reaches_the_lstsq_solution(rng, dtype, tolerance):
    A, b, fun = least_squares(rng, dtype=dtype)
    expected = np.linalg.lstsq(A.astype(np.float64), b.astype(np.float64), rcond=None)[0]
    x0 = np.zeros(A.shape[1], dtype)
    res = numadam.minimize(fun, x0, jac=True, lr=0.05, maxiter=20000, gtol=tolerance / 10)
    assert res.success and res.status == 0, res.message
    assert isinstance(res, scipy.optimize.OptimizeResult)
    assert res.x.dtype == dtype and res.jac.dtype == dtype
    np.testing.assert_allclose(res.x, expected, atol=tolerance)
    value, gradient = fun(res.x)
    assert res.fun == pytest.approx(value, rel=1e-12) and np.array_equal(res.jac, gradient)
    assert np.max(np.abs(res.jac)) <= tolerance / 10
    assert res.history.dtype == np.float64 and res.history.shape == (res.nit + 1,)
    assert res.history[0] == pytest.approx(fun(x0)[0]) and res.history[-1] == res.fun
    assert res.nfev == res.njev == res.nit + 1


def test_a_bowl_with_separate_jac_and_args_keeps_the_shape_of_x0(rng):
    center = rng.standard_normal((3, 4))
    scales = rng.uniform(0.5, 5.0, (3, 4))
    fun, jac = CountingFun(bowl), CountingFun(bowl_gradient)
    res = numadam.minimize(fun, np.zeros((3, 4)), args=(center, scales), jac=jac, lr=0.05, maxiter=5000, gtol=1e-9)
    assert res.success and res.x.shape == (3, 4)
    np.testing.assert_allclose(res.x, center, atol=1e-9)
    assert res.fun < 1e-17
    assert fun.calls == jac.calls == res.nfev == res.njev == res.nit + 1


def test_a_single_extra_argument_need_not_be_a_tuple():
    res = numadam.minimize(lambda x, c: (float(np.sum((x - c) ** 2)), 2 * (x - c)), np.zeros(2),
                           args=np.array([1.0, 2.0]), jac=True, lr=0.1, maxiter=3000, gtol=1e-8)
    np.testing.assert_allclose(res.x, [1.0, 2.0], atol=1e-8)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_parameters_converge_with_the_pair_of_reals_gradient(rng, dtype):
    target = (rng.standard_normal(5) + 1j * rng.standard_normal(5)).astype(dtype)

    def fun(z):
        difference = z - target
        return float(np.sum(np.abs(difference) ** 2)), 2 * difference  # d/dRe + i d/dIm

    res = numadam.minimize(fun, np.zeros(5, dtype), jac=True, lr=0.05, maxiter=5000, gtol=1e-5)
    assert res.success and res.x.dtype == dtype
    np.testing.assert_allclose(res.x, target, atol=1e-4)


def test_integer_and_list_starts_become_float64():
    for x0 in ([0, 0], np.array([0, 0], np.int32), (0.0, 0.0)):
        res = numadam.minimize(bowl, x0, args=(np.array([1.0, 2.0]), 1.0), jac=bowl_gradient, lr=0.1, maxiter=3000)
        assert res.x.dtype == np.float64 and res.success
        np.testing.assert_allclose(res.x, [1.0, 2.0], atol=1e-5)


@pytest.mark.parametrize("big_endian, native", [(">f8", np.float64), (">f4", np.float32), (">c16", np.complex128)])
def test_a_big_endian_start_is_solved_in_native_byte_order_at_its_precision(rng, big_endian, native):
    """As read from FITS or HDF5: the same steps as from the native array, x0 left as it was."""
    center = rng.standard_normal(5).astype(native)
    native_x0 = rng.standard_normal(5).astype(native)
    x0 = native_x0.astype(big_endian)
    kept = x0.copy()

    def fun(x):
        assert x.dtype == native and x.dtype.isnative
        difference = x - center
        return float(np.sum(np.abs(difference) ** 2)), 2 * difference

    res = numadam.minimize(fun, x0, jac=True, lr=0.05, maxiter=50)
    expected = numadam.minimize(fun, native_x0, jac=True, lr=0.05, maxiter=50)
    assert res.x.dtype == native and res.x.dtype.isnative and res.jac.dtype == native
    np.testing.assert_array_equal(res.x, expected.x)
    np.testing.assert_array_equal(x0, kept, strict=True)


def test_x0_is_never_modified_and_fun_sees_a_read_only_iterate(rng):
    x0 = rng.standard_normal(4)
    kept = x0.copy()
    seen_writable = []

    def fun(x):
        seen_writable.append(x.flags.writeable)
        return float(np.sum(x**2)), 2 * x

    res = numadam.minimize(fun, x0, jac=True, lr=0.1, maxiter=50)
    np.testing.assert_array_equal(x0, kept, strict=True)
    assert not np.shares_memory(res.x, x0) and not any(seen_writable)
    assert not np.array_equal(res.x, x0)


def test_the_gradient_may_be_the_iterate_itself_or_a_list():
    res = numadam.minimize(lambda x: (0.5 * float(x @ x), x), np.ones(3), jac=True, lr=0.1, maxiter=2000, gtol=1e-8)
    assert res.success and np.max(np.abs(res.x)) <= 1e-8
    res = numadam.minimize(lambda x: float(x[0] ** 2), [3.0], jac=lambda x: [2 * x[0]], lr=0.1, maxiter=3000)
    assert abs(res.x[0]) < 1e-4


# -- the trajectory is Adam's, whatever the options ----------------------------------------------


def by_hand(fun_and_grad, x0, steps, method="adam", schedule=None, clip=None, **options):
    """Adam run directly on a copy of x0: what minimize must reproduce bit for bit."""
    x = x0.copy()
    optimizer = (numadam.AdamW if method == "adamw" else numadam.Adam)(x, schedule=schedule, **options)
    for _ in range(steps):
        value, gradient = fun_and_grad(x)
        if schedule is not None:
            schedule.observe(value)
        if clip is not None:
            gradient = clip(gradient.copy())
        optimizer.step(gradient)
    return x


def clip_in_place(gradient):
    np.clip(gradient, -0.3, 0.3, out=gradient)


TRAJECTORIES = {
    "adam": ({}, {}),
    "amsgrad-l2": ({"amsgrad": True, "weight_decay": 0.1}, {"amsgrad": True, "weight_decay": 0.1}),
    "adamw": ({"method": "adamw", "weight_decay": 0.1}, {"method": "adamw", "weight_decay": 0.1}),
    "betas-eps": ({"betas": (0.8, 0.99), "eps": 1e-3}, {"betas": (0.8, 0.99), "eps": 1e-3}),
    "clip-value": ({"clip": ("value", 0.5)}, {"clip": lambda g: np.clip(g, -0.5, 0.5)}),
    "clip-norm": ({"clip": ("norm", 0.5)},
                  {"clip": lambda g: g * min(1.0, 0.5 / np.linalg.norm(g))}),
    "clip-callable": ({"clip": lambda g: np.sign(g)}, {"clip": np.sign}),
    "clip-in-place": ({"clip": clip_in_place}, {"clip": lambda g: np.clip(g, -0.3, 0.3)}),
}


@pytest.mark.parametrize("case", sorted(TRAJECTORIES))
def test_minimize_takes_exactly_the_steps_of_the_optimizer(rng, case):
    A, b, fun = least_squares(rng)
    ours, theirs = TRAJECTORIES[case]
    x0 = rng.standard_normal(A.shape[1]) * 3
    res = numadam.minimize(fun, x0, jac=True, lr=0.02, maxiter=60, gtol=0.0, **ours)
    expected = by_hand(fun, x0, 60, lr=0.02, **theirs)
    assert res.nit == 60 and res.status == 1
    np.testing.assert_allclose(res.x, expected, rtol=1e-14, atol=1e-14)
    plain = numadam.minimize(fun, x0, jac=True, lr=0.02, maxiter=60, gtol=0.0)
    assert case == "adam" or not np.allclose(plain.x, res.x, rtol=1e-6, atol=0)


def test_res_jac_and_the_stop_rules_see_the_unclipped_gradient(rng):
    A, b, fun = least_squares(rng)
    res = numadam.minimize(fun, np.zeros(A.shape[1]), jac=True, lr=0.01, maxiter=5, clip=("value", 1e-3))
    np.testing.assert_array_equal(res.jac, fun(res.x)[1])
    assert np.max(np.abs(res.jac)) > 1e-3


CLIP_RETURNS_THAT_ARE_NOT_GRADIENTS = {
    # numadam's norm clippers return the norm (a float): broadcast into the gradient, it would replace it.
    "the norm from clip_by_norm": lambda g: numadam.clip_by_norm(g, 1.0),
    "the norm from clip_by_global_norm": lambda g: numadam.clip_by_global_norm(g, 1.0),
    "a NumPy scalar": lambda g: np.float64(1.0),
    "a list": lambda g: list(g),
    "a wrong shape": lambda g: g[:1],
    "a complex array": lambda g: g * 1j,
}


@pytest.mark.parametrize("clip", CLIP_RETURNS_THAT_ARE_NOT_GRADIENTS.values(), ids=CLIP_RETURNS_THAT_ARE_NOT_GRADIENTS)
def test_a_clip_callable_must_return_none_or_a_gradient_shaped_array(clip):
    x0 = np.array([3.0, -4.0])
    with pytest.raises(TypeError, match=re.escape("clip(grad) must clip grad in place and return None, or return "
                                                  "the clipped gradient: a float64 array of shape (2,); got")):
        numadam.minimize(lambda x: (float(x @ x), 2 * x), x0, jac=True, clip=clip)
    np.testing.assert_array_equal(x0, [3.0, -4.0])


def test_a_schedule_sets_each_rate_and_observes_every_loss_before_its_step(rng):
    A, b, fun = least_squares(rng)

    class Observed(schedules.CosineDecay):
        def __init__(self):
            super().__init__(0.05, total_steps=30, min_lr=0.001)
            self.losses = []

        def observe(self, loss):
            self.losses.append(loss)

    schedule = Observed()
    x0 = np.ones(A.shape[1])
    res = numadam.minimize(fun, x0, jac=True, maxiter=40, gtol=0.0, schedule=schedule, lr=99.0)
    assert schedule.losses == list(res.history[:-1])
    expected = by_hand(fun, x0, 40, schedule=schedules.CosineDecay(0.05, total_steps=30, min_lr=0.001))
    np.testing.assert_array_equal(res.x, expected)


def test_reduce_on_plateau_cuts_the_rate_of_a_stalled_solve():
    plateau = schedules.ReduceOnPlateau(0.5, factor=0.5, patience=3)
    res = numadam.minimize(lambda x: (float(np.sum(np.abs(x))), np.sign(x)), np.array([1.3, -0.7]), jac=True,
                           maxiter=300, gtol=0.0, schedule=plateau)
    assert plateau(0) < 0.5 * 0.5**3
    assert res.fun < 0.05


# -- stop rules -----------------------------------------------------------------------------------------


def test_maxiter_stops_without_success(rng):
    A, b, fun = least_squares(rng)
    res = numadam.minimize(fun, np.zeros(A.shape[1]), jac=True, lr=1e-3, maxiter=7)
    assert (res.nit, res.status, res.success) == (7, 1, False)
    assert "maxiter = 7" in res.message and res.history.shape == (8,)


def test_maxiter_zero_evaluates_x0_only(rng):
    A, b, fun = least_squares(rng)
    x0 = rng.standard_normal(A.shape[1])
    res = numadam.minimize(fun, x0, jac=True, maxiter=0)
    assert (res.nit, res.nfev, res.status) == (0, 1, 1)
    np.testing.assert_array_equal(res.x, x0)
    assert res.fun == fun(x0)[0]


def test_gtol_stops_at_the_first_iterate_that_meets_it(rng):
    A, b, fun = least_squares(rng)
    recorder = Recorder()
    res = numadam.minimize(fun, np.zeros(A.shape[1]), jac=True, lr=0.05, maxiter=10000, gtol=1e-4, callback=recorder)
    assert res.status == 0 and res.success and "gtol" in res.message
    peaks = [np.max(np.abs(r.jac)) for r in recorder.results]
    assert peaks[-1] <= 1e-4 and all(peak > 1e-4 for peak in peaks[:-1])
    assert len(recorder.results) == res.nit


def test_gtol_met_at_x0_takes_no_step():
    res = numadam.minimize(lambda x: (float(x @ x), 2 * x), np.zeros(3), jac=True)
    assert (res.nit, res.status, res.success) == (0, 0, True)


def first_quiet_run(changes, tolerances, patience):
    """The first iteration at which ``patience`` consecutive changes met their tolerance."""
    run = 0
    for k, (change, tolerance) in enumerate(zip(changes, tolerances), start=1):
        run = run + 1 if change <= tolerance else 0
        if run >= patience:
            return k
    return None


@pytest.mark.parametrize("patience", [1, 5, 25])
def test_ftol_stops_after_patience_quiet_iterations(rng, patience):
    A, b, fun = least_squares(rng)
    res = numadam.minimize(fun, np.zeros(A.shape[1]), jac=True, lr=0.05, maxiter=20000, gtol=0.0, ftol=1e-9,
                           patience=patience)
    assert res.status == 2 and res.success and f"ftol = 1e-09 for {patience} iterations" in res.message
    f = res.history
    changes = np.abs(np.diff(f))
    scale = np.maximum(np.maximum(np.abs(f[1:]), np.abs(f[:-1])), 1.0)
    assert first_quiet_run(changes, 1e-9 * scale, patience) == res.nit


@pytest.mark.parametrize("patience", [1, 10])
def test_xtol_stops_after_patience_small_steps(rng, patience):
    A, b, fun = least_squares(rng)
    recorder = Recorder()
    x0 = np.zeros(A.shape[1])
    res = numadam.minimize(fun, x0, jac=True, lr=0.05, maxiter=20000, gtol=0.0, xtol=1e-7, patience=patience,
                           callback=recorder)
    assert res.status == 3 and res.success
    xs = [x0] + [r.x for r in recorder.results]
    changes = [np.max(np.abs(new - old)) for old, new in zip(xs, xs[1:])]
    tolerances = [1e-7 * max(np.max(np.abs(new)), 1.0) for new in xs[1:]]
    assert first_quiet_run(changes, tolerances, patience) == res.nit


# -- callbacks ---------------------------------------------------------------------------------------------


def test_the_callback_gets_copies_after_every_step(rng):
    A, b, fun = least_squares(rng)

    def vandal(intermediate_result):
        recorder(intermediate_result)
        intermediate_result.x[:] = 1e6
        intermediate_result.jac[:] = np.nan

    recorder = Recorder()
    res = numadam.minimize(fun, np.zeros(A.shape[1]), jac=True, lr=0.05, maxiter=30, callback=vandal)
    clean = numadam.minimize(fun, np.zeros(A.shape[1]), jac=True, lr=0.05, maxiter=30)
    np.testing.assert_array_equal(res.x, clean.x)
    assert [r.nit for r in recorder.results] == list(range(1, 31))
    assert [r.fun for r in recorder.results] == list(res.history[1:])
    assert [r.nfev for r in recorder.results] == list(range(2, 32))


class NewStyleObject:
    def __init__(self):
        self.seen = []

    def __call__(self, intermediate_result):
        self.seen.append(intermediate_result)


def two_parameters(intermediate_result, extra=None):
    two_parameters.seen.append(intermediate_result)


CALLBACK_STYLES = {
    # SciPy's rule: the result, by keyword, only for a callable whose parameters are exactly intermediate_result.
    "function named intermediate_result": ("result", lambda seen: lambda intermediate_result: seen.append(
        intermediate_result)),
    "callable object": ("result", lambda seen: NewStyleObject()),
    "lambda xk": ("x", lambda seen: lambda xk: seen.append(xk)),
    "a parameter named x": ("x", lambda seen: lambda x: seen.append(x)),
    "a builtin (list.append)": ("x", lambda seen: seen.append),
    "intermediate_result and another parameter": ("x", lambda seen: two_parameters),
}


@pytest.mark.parametrize("style", CALLBACK_STYLES)
def test_minimize_calls_the_callback_as_scipy_decides_by_its_signature(rng, style):
    A, b, fun = least_squares(rng)
    expected, make = CALLBACK_STYLES[style]
    seen = []
    two_parameters.seen = seen
    callback = make(seen)
    res = numadam.minimize(fun, np.zeros(A.shape[1]), jac=True, lr=0.05, maxiter=5, callback=callback)
    seen = callback.seen if isinstance(callback, NewStyleObject) else seen
    assert len(seen) == 5
    if expected == "result":
        assert all(isinstance(r, scipy.optimize.OptimizeResult) for r in seen)
        np.testing.assert_array_equal(seen[-1].x, res.x)
    else:
        assert all(type(xk) is np.ndarray and xk.shape == (A.shape[1],) for xk in seen)
        np.testing.assert_array_equal(seen[-1], res.x)
        assert not np.shares_memory(seen[-1], res.x)


def test_an_old_style_callback_gets_a_copy_it_may_change_and_may_stop_the_solve(rng):
    A, b, fun = least_squares(rng)

    def vandal(xk):
        xk[:] = 1e6
        if len(history) == 10:
            raise StopIteration
        history.append(xk)

    history = []
    res = numadam.minimize(fun, np.zeros(A.shape[1]), jac=True, lr=0.05, maxiter=30, callback=vandal)
    clean = numadam.minimize(fun, np.zeros(A.shape[1]), jac=True, lr=0.05, maxiter=11)
    assert (res.nit, res.status, res.success) == (11, 99, False)
    np.testing.assert_array_equal(res.x, clean.x)


def test_stop_iteration_from_the_callback_ends_the_solve_cleanly(rng):
    A, b, fun = least_squares(rng)
    recorder = Recorder(stop_at=5)
    res = numadam.minimize(fun, np.zeros(A.shape[1]), jac=True, lr=0.05, maxiter=100, callback=recorder)
    assert (res.nit, res.status, res.success) == (5, 99, False)
    assert "StopIteration" in res.message
    np.testing.assert_array_equal(res.x, recorder.results[-1].x)
    assert res.fun == recorder.results[-1].fun and len(res.history) == 6


# -- non-finite values -------------------------------------------------------------------------------------


def blows_up_after(limit, how):
    """sum((x - 10)^2) from 0, but beyond x[0] > limit the value or gradient is not finite."""
    def fun(x):
        value, gradient = float(np.sum((x - 10) ** 2)), 2 * (x - 10)
        if x[0] > limit:
            if how == "nan value":
                value = math.nan
            elif how == "inf value":
                value = math.inf
            else:
                gradient[1] = -math.inf if how == "inf gradient" else math.nan
        return value, gradient
    return fun


@pytest.mark.parametrize("how, message", [("nan value", "fun returned nan"), ("inf value", "fun returned inf"),
                                          ("inf gradient", "the gradient holds NaN or infinity"),
                                          ("nan gradient", "the gradient holds NaN or infinity")])
def test_a_non_finite_value_or_gradient_returns_the_last_finite_iterate(how, message):
    recorder = Recorder()
    fun = blows_up_after(0.5, how)
    res = numadam.minimize(fun, np.zeros(3), jac=True, lr=0.1, maxiter=100, callback=recorder)
    assert (res.status, res.success) == (4, False)
    assert re.search(f"{message} at iteration {res.nit + 1}; returning the last finite iterate "
                     f"\\(iteration {res.nit}\\)", res.message), res.message
    assert 0 < res.nit < 100 and res.x[0] <= 0.5
    np.testing.assert_array_equal(res.x, recorder.results[-1].x)
    value, gradient = fun(res.x)
    assert res.fun == value and np.array_equal(res.jac, gradient)
    assert np.all(np.isfinite(res.history)) and len(res.history) == res.nit + 1
    assert res.nfev == res.nit + 2


def test_a_non_finite_start_returns_x0_unsuccessfully():
    res = numadam.minimize(lambda x: (math.nan, x), np.ones(2), jac=True)
    assert (res.status, res.success, res.nit) == (4, False, 0)
    assert "fun returned nan at iteration 0; returning x0" in res.message
    np.testing.assert_array_equal(res.x, [1.0, 1.0])


def test_a_gradient_that_overflows_the_dtype_counts_as_infinite():
    with pytest.warns(RuntimeWarning, match="overflow"):
        res = numadam.minimize(lambda x: (0.0, np.full(2, 1e300)), np.ones(2, np.float32), jac=True)
    assert res.status == 4 and "gradient holds NaN or infinity" in res.message


# -- bad input: errors before fun is ever called -------------------------------------------------------------


BAD_CALLS = [
    ({"fun": 3}, TypeError, "fun must be callable; got 3"),
    ({"jac": None}, TypeError, "jac must be True"),
    ({"jac": False}, TypeError, "jac must be True"),
    ({"jac": "2-point"}, TypeError, "Adam needs the gradient"),
    ({"method": "newton"}, ValueError, "method must be one of ['adabelief', 'adadelta', 'adafactor', 'adagrad'"),
    ({"lr": -1.0}, ValueError, "lr must be finite and >= 0; got -1.0"),
    ({"betas": (0.9, 1.0)}, ValueError, "beta2 must be in [0, 1)"),
    ({"amsgrad": "no"}, TypeError, "amsgrad must be True or False"),
    ({"maxiter": -1}, ValueError, "maxiter must be >= 0; got -1"),
    ({"maxiter": 10.0}, TypeError, "maxiter must be an integer; got 10.0"),
    ({"gtol": -1e-3}, ValueError, "gtol must be finite and >= 0"),
    ({"ftol": math.nan}, ValueError, "ftol must be finite and >= 0"),
    ({"xtol": "small"}, TypeError, "xtol must be a real number"),
    ({"patience": 0}, ValueError, "patience must be >= 1; got 0"),
    ({"schedule": 0.1}, TypeError, "schedule must be callable"),
    ({"clip": ("huber", 1.0)}, TypeError, "clip must be None, a callable or a pair (rule, limit)"),
    ({"clip": ["norm", 1.0]}, TypeError, "clip must be None"),
    ({"clip": ("norm", -1.0)}, ValueError, "max_norm must be finite and >= 0; got -1.0"),
    ({"callback": 7}, TypeError, "callback must be callable or None; got 7"),
    ({"progress": 1}, TypeError, "progress must be True or False; got 1"),
    ({"x0": np.ones(3, np.float16)}, TypeError, "x0 has dtype float16"),
    ({"x0": np.ones(0)}, ValueError, "x0 must hold at least one number; got shape (0,)"),
    ({"x0": ["a", "b"]}, TypeError, "x0 has dtype <U1"),
    ({"x0": np.ones(3, ">f2")}, TypeError, "x0 has dtype >f2; minimize works in float32, float64"),
    ({"x0": {"w": np.ones(3)}}, TypeError, "x0 must be one array (an array_like of numbers); got a dict. For a tree "
                                           "of arrays, step numadam.Adam over it, or pass one vector such as "
                                           "np.concatenate([a.ravel() for a in arrays])"),
    ({"x0": [np.ones(3), np.ones(2)]}, TypeError, "x0 must be one array (an array_like of numbers); got a list"),
    ({"x0": np.array([None, 1.0])}, TypeError, "x0 must be one array (an array_like of numbers); got an array of "
                                               "dtype object"),
    ({"lr": schedules.CosineDecay(0.1, 10)}, TypeError, "lr must be a real number; got the callable CosineDecay("),
    ({"lr": lambda step: 0.1}, TypeError, "Pass a learning-rate schedule as schedule=..."),
]


@pytest.mark.parametrize("change, error, message", BAD_CALLS)
def test_bad_arguments_are_refused_before_fun_runs(change, error, message):
    fun = CountingFun(lambda x: (float(np.sum(x**2)), 2 * x))
    x0 = np.ones(3)
    call = {"fun": fun, "x0": x0, "jac": True, **change}
    with pytest.raises(error, match=re.escape(message)):
        numadam.minimize(call.pop("fun"), call.pop("x0"), **call)
    assert fun.calls == 0
    np.testing.assert_array_equal(x0, np.ones(3))


BAD_RETURNS = [
    (lambda x: float(x @ x), True, TypeError, "with jac=True, fun must return (value, gradient); got"),
    (lambda x: (x, x), True, TypeError, "fun must return a real scalar; got array"),
    (lambda x: (1j, x), True, TypeError, "fun must return a real scalar; got 1j"),
    (lambda x: (1.0, x[:2]), True, ValueError, "the gradient must have x's shape (3,); got shape (2,)"),
    (lambda x: (1.0, x * 1j), True, TypeError, "the gradient has dtype complex128, which does not cast"),
    (lambda x: 1.0, lambda x: "grad", TypeError, "the gradient has dtype <U4"),
]


@pytest.mark.parametrize("fun, jac, error, message", BAD_RETURNS)
def test_fun_and_jac_must_return_what_they_promise(fun, jac, error, message):
    with pytest.raises(error, match=re.escape(message)):
        numadam.minimize(fun, np.ones(3), jac=jac)


# -- progress bar --------------------------------------------------------------------------------------------


def test_progress_true_draws_a_tqdm_bar_and_false_draws_nothing(capsys):
    fun = lambda x: (float(x @ x), 2 * x)  # noqa: E731
    numadam.minimize(fun, np.ones(2), jac=True, maxiter=40, gtol=0.0, progress=True)
    err = capsys.readouterr().err
    assert "numadam.minimize" in err and "40/40" in err and "fun=" in err
    numadam.minimize(fun, np.ones(2), jac=True, maxiter=40, gtol=0.0)
    assert capsys.readouterr().err == ""


def test_progress_without_tqdm_is_a_clear_error_before_the_solve(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    fun = CountingFun(lambda x: (float(x @ x), 2 * x))
    with pytest.raises(ImportError, match="progress=True draws a tqdm progress bar: install tqdm"):
        numadam.minimize(fun, np.ones(2), jac=True, progress=True)
    assert fun.calls == 0


# -- scipy.optimize.minimize(method=numadam.adam_minimizer) ----------------------------------------------------


def test_scipy_minimize_runs_adam_with_jac_true_and_options(rng):
    A, b, fun = least_squares(rng)
    expected = np.linalg.lstsq(A, b, rcond=None)[0]
    res = scipy.optimize.minimize(fun, np.zeros(A.shape[1]), jac=True, method=numadam.adam_minimizer,
                                  options={"lr": 0.05, "maxiter": 20000, "gtol": 1e-9})
    assert res.success and res.status == 0 and "gtol = 1e-09" in res.message
    np.testing.assert_allclose(res.x, expected, atol=1e-8)
    assert res.history.shape == (res.nit + 1,)


def test_scipy_tol_becomes_gtol_and_a_jac_callable_works():
    center = np.array([2.0, -1.0, 0.5])
    res = scipy.optimize.minimize(bowl, np.zeros(3), args=(center, 2.0), jac=bowl_gradient,
                                  method=numadam.adam_minimizer, tol=1e-7, options={"lr": 0.05, "maxiter": 10000})
    assert res.success and "gtol = 1e-07" in res.message
    np.testing.assert_allclose(res.x, center, atol=1e-7)


def test_scipy_callbacks_old_and_new_style_and_stop_iteration():
    center = np.array([1.0, 2.0])
    seen_x, seen_results = [], []

    def old_style(xk):
        seen_x.append(xk)

    def new_style(intermediate_result):
        seen_results.append(intermediate_result)
        if intermediate_result.nit == 4:
            raise StopIteration

    options = {"lr": 0.1, "maxiter": 10}
    res = scipy.optimize.minimize(bowl, np.zeros(2), args=(center, 1.0), jac=bowl_gradient,
                                  method=numadam.adam_minimizer, callback=old_style, options=options)
    assert len(seen_x) == 10 and all(isinstance(x, np.ndarray) and x.shape == (2,) for x in seen_x)
    np.testing.assert_array_equal(seen_x[-1], res.x)
    res = scipy.optimize.minimize(bowl, np.zeros(2), args=(center, 1.0), jac=bowl_gradient,
                                  method=numadam.adam_minimizer, callback=new_style, options=options)
    assert (res.nit, res.status, res.success) == (4, 99, False)
    assert [r.nit for r in seen_results] == [1, 2, 3, 4]


def test_scipy_bounds_constraints_and_hessians():
    def call(**extra):
        return scipy.optimize.minimize(bowl, np.zeros(2), args=(np.ones(2), 1.0), jac=bowl_gradient,
                                       method=numadam.adam_minimizer, **extra)

    boxed = call(bounds=[(0, 0.5), (0, 0.5)], options={"lr": 0.1, "maxiter": 500})
    assert np.all(boxed.x <= 0.5) and boxed.x.max() == 0.5  # the bowl's center, 1, lies outside the box
    with pytest.raises(ValueError, match="takes bounds, not constraints"):
        call(constraints=[{"type": "eq", "fun": lambda x: x[0]}])
    with pytest.warns(RuntimeWarning, match="hess is ignored"):
        assert call(hess=lambda x, *args: np.eye(2), options={"maxiter": 5}).nit == 5


@pytest.mark.parametrize("others", [{"disp": True, "maxfun": 15000}, {"maxls": 20, "iprint": -1, "return_all": False},
                                    {"learning_rate": 0.5}, {"some_future_option": None}])
def test_scipy_options_of_other_methods_are_ignored_with_a_warning_as_scipy_does(others):
    def call(**options):
        return scipy.optimize.minimize(bowl, np.zeros(2), args=(np.ones(2), 1.0), jac=bowl_gradient,
                                       method=numadam.adam_minimizer, options={"lr": 0.1, "maxiter": 7, **options})

    expected = call()
    names = ", ".join(others)
    with pytest.warns(scipy.optimize.OptimizeWarning, match=re.escape(f"Unknown solver options: {names}; "
                                                                       "numadam.adam_minimizer ignores them")):
        res = call(**others)
    assert res.nit == 7
    np.testing.assert_array_equal(res.x, expected.x)


# -- CuPy -------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_a_cupy_start_keeps_the_solve_on_the_gpu(rng):
    import cupy

    A, b, _ = least_squares(rng)
    A_gpu, b_gpu = cupy.asarray(A), cupy.asarray(b)

    def fun(x):
        residual = A_gpu @ x - b_gpu
        return 0.5 * (residual @ residual), A_gpu.T @ residual

    x0 = cupy.zeros(A.shape[1])
    res = numadam.minimize(fun, x0, jac=True, lr=0.05, maxiter=20000, gtol=1e-9, clip=("global_norm", 10.0))
    assert res.success and isinstance(res.x, cupy.ndarray) and isinstance(res.jac, cupy.ndarray)
    assert not bool(cupy.any(x0))
    np.testing.assert_allclose(res.x.get(), np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-8)


# -- imports stay lazy --------------------------------------------------------------------------------------------


def test_the_solver_front_door_imports_nothing_optional_until_used():
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import numadam
        w = np.ones(4)
        opt = numadam.Adam(w, schedule=numadam.schedules.LinearWarmup(numadam.schedules.CosineDecay(0.1, 10), 2))
        grads = np.full(4, 3.0)
        numadam.clip_by_global_norm(grads, 1.0)
        opt.step(grads)
        optional = ("cupy", "cupyx", "scipy.optimize", "matplotlib", "tqdm")
        print(sorted(name for name in sys.modules if name.startswith(optional)))
        numadam.minimize(lambda x: (float(x @ x), 2 * x), np.ones(2), jac=True, maxiter=3)
        print(sorted(name for name in sys.modules if name.startswith(("cupy", "matplotlib", "tqdm"))))
        ax = numadam.plot_convergence([3.0, 2.0, 1.0])
        print("matplotlib.pyplot" in sys.modules, type(ax.figure).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["[]", "[]", "False Figure"]


@pytest.mark.parametrize("method", tiered(list(numadam.families()), lambda method: method == "adam"))
def test_minimize_takes_every_family_by_name(method):
    """A bowl with its minimum at 3: every family reaches it from 0 with its own hyperparameters."""
    options = {"lion": {"lr": 1e-2, "weight_decay": 0.0}, "ademamix": {"lr": 0.05, "alpha": 0.5},
               "adopt": {"lr": 0.05}, "schedule_free_adamw": {"lr": 0.05},
               "adagrad": {"lr": 0.5}, "adadelta": {"lr": 1.0}}.get(method, {"lr": 0.05})
    if method == "adamw":
        options = {"lr": 0.05, "weight_decay": 0.0}

    def fun(x):
        return float(np.sum((x - 3.0) ** 2)), 2 * (x - 3.0)

    res = numadam.minimize(fun, np.zeros(4), jac=True, method=method, maxiter=3000, gtol=1e-3,
                           schedule=numadam.schedules.CosineDecay(options.pop("lr"), total_steps=3000), **options)
    assert res.nit > 0
    np.testing.assert_allclose(res.x, 3.0, atol=0.05)
