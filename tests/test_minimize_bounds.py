"""minimize on a box (projected Adam), and nonfinite="skip" for stochastic objectives."""

import numpy as np
import pytest
import scipy.optimize

import numadam


def nonnegative_least_squares(seed=0, rows=60, cols=12):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((rows, cols))
    b = A @ rng.standard_normal(cols) + 0.1 * rng.standard_normal(rows)

    def fun(x):
        r = A @ x - b
        return 0.5 * float(r @ r), A.T @ r

    return A, b, fun


@pytest.mark.parametrize("form", ["Bounds", "pairs"])
def test_a_box_constrained_least_squares_reaches_lsq_linear(form):
    A, b, fun = nonnegative_least_squares()
    low, high = np.zeros(A.shape[1]), np.full(A.shape[1], 0.8)
    bounds = scipy.optimize.Bounds(low, high) if form == "Bounds" else list(zip(low, high))
    expected = scipy.optimize.lsq_linear(A, b, bounds=(low, high), tol=1e-12).x
    res = numadam.minimize(fun, np.full(A.shape[1], 2.0), jac=True, bounds=bounds, lr=0.02, maxiter=20000,
                           gtol=1e-7, schedule=numadam.schedules.CosineDecay(0.02, total_steps=20000))
    assert res.success, res.message
    assert np.all(res.x >= low) and np.all(res.x <= high)
    np.testing.assert_allclose(res.x, expected, atol=1e-5)
    assert np.any(res.x == 0.0) and np.any(np.abs(res.jac) > 1e-3), "active bounds with a nonzero gradient"


def test_the_stop_rule_measures_the_projected_gradient():
    """At a corner the gradient pushes outward: its projection is zero and the solve stops at once."""
    res = numadam.minimize(lambda x: (float(np.sum(x)), np.ones(3)), np.zeros(3), jac=True,
                           bounds=[(0.0, None)] * 3, gtol=1e-9)
    assert res.status == 0 and res.nit == 0 and np.all(res.jac == 1)


def test_the_scipy_adapter_passes_bounds_through():
    A, b, fun = nonnegative_least_squares(1)
    res = scipy.optimize.minimize(fun, np.ones(A.shape[1]), jac=True, method=numadam.adam_minimizer,
                                  bounds=scipy.optimize.Bounds(0.0, np.inf),
                                  options={"lr": 0.02, "maxiter": 20000, "gtol": 1e-6})
    expected = scipy.optimize.minimize(fun, np.ones(A.shape[1]), jac=True, method="L-BFGS-B",
                                       bounds=scipy.optimize.Bounds(0.0, np.inf), tol=1e-12)
    assert res.fun <= expected.fun * (1 + 1e-6) + 1e-9
    assert np.all(res.x >= 0)


@pytest.mark.parametrize("form", ["pairs", "flat Bounds", "shaped Bounds", "numbers"])
def test_bounds_of_a_matrix_x0_are_one_per_element_in_c_order(form):
    """The box of an (R, C) x0: pairs or flat arrays one per element in C order, arrays of its
    shape, or numbers; each solve stays in its box, and the forms of one box solve alike."""
    low = np.arange(6.0).reshape(2, 3) - 3.0
    high = low + 1.5
    bounds = {"pairs": list(zip(low.ravel(), high.ravel())), "flat Bounds": scipy.optimize.Bounds(low.ravel(),
                                                                                                  high.ravel()),
              "shaped Bounds": scipy.optimize.Bounds(low, high), "numbers": scipy.optimize.Bounds(-0.5, 0.25)}[form]
    if form == "numbers":
        low, high = np.full((2, 3), -0.5), np.full((2, 3), 0.25)
    res = numadam.minimize(lambda x: (float(np.sum(x * x)), 2 * x), np.full((2, 3), 5.0), jac=True, bounds=bounds,
                           lr=0.1, maxiter=300, gtol=0.0)
    assert res.x.shape == (2, 3)
    assert np.all(res.x >= low) and np.all(res.x <= high)
    np.testing.assert_allclose(res.x, np.clip(np.zeros((2, 3)), low, high), atol=1e-6)


@pytest.mark.parametrize("bounds, error, message", [
    ([(0, 1)] * 2, ValueError, "3 pairs (low, high)"),
    (scipy.optimize.Bounds(np.zeros(2), 1.0), ValueError, "one number or one per element of x (3)"),
])
def test_bad_bounds_are_refused(bounds, error, message):
    with pytest.raises(error, match=__import__("re").escape(message)):
        numadam.minimize(lambda x: (0.0, x), np.zeros(3), jac=True, bounds=bounds)


def test_skip_draws_again_after_a_nonfinite_sample():
    """A stochastic objective that returns NaN now and then: skipped, and the solve still converges."""
    rng = np.random.default_rng(2)
    calls = []

    def noisy(x):
        calls.append(1)
        if len(calls) % 7 == 3:
            return float("nan"), np.full_like(x, np.nan)
        r = x - 1.5 + 0.01 * rng.standard_normal(x.shape)
        return float(r @ r), 2 * r

    res = numadam.minimize(noisy, np.zeros(4), jac=True, lr=0.05, maxiter=400, gtol=0.0, nonfinite="skip")
    assert res.status == 1 and res.skipped > 0
    np.testing.assert_allclose(res.x, 1.5, atol=0.05)
    stopped = numadam.minimize(noisy, np.zeros(4), jac=True, lr=0.05, maxiter=400, gtol=0.0)
    assert stopped.status == 4 and stopped.skipped == 0


def test_skip_gives_up_after_patience_failures_in_a_row():
    def blows_up(x):
        if x[0] > 0.5:
            return float("inf"), np.full_like(x, np.inf)
        return float(-x[0]), -np.ones_like(x)

    res = numadam.minimize(blows_up, np.zeros(2), jac=True, lr=0.1, maxiter=100, nonfinite="skip", patience=3)
    assert res.status == 4 and "3 times in a row" in res.message
    assert res.x[0] <= 0.5 and res.skipped == 2
