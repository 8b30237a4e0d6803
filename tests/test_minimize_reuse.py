"""minimize reuses a compiled solve's preparation when a call repeats its configuration
(numadam.solver.compiled.configuration_key): the reused solve is the one prepared anew, bit for bit;
any change of what the checks read prepares anew; nothing of a call is kept for the next."""

import concurrent.futures

import numpy as np
import pytest
from numba import njit

import numadam
from concurrency import run_together
from numadam import schedules
from numadam.solver import compiled as compiled_solves


@njit
def bowl(x, centre, scale):
    """:math:`s \\sum_i (x_i - c_i)^4` and its gradient (float64)."""
    value = 0.0
    grad = np.empty(x.size)
    for i in range(x.size):
        gap = np.float64(x[i]) - centre[i]
        value += scale * gap ** 4
        grad[i] = 4.0 * scale * gap ** 3
    return value, grad


@njit
def one_too_long(x):
    """A gradient of one element more than ``x``: refused when the compiled solve runs."""
    return 0.0, np.zeros(x.size + 1)


CENTRE = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
X0 = np.array([0.3, 0.1, -0.4, 2.0, 1.0])


def solve(x0=X0, args=(CENTRE, 0.5), **options):
    options = {"lr": 1e-2, "maxiter": 300, "gtol": 1e-6, **options}
    return numadam.minimize(bowl, x0, jac=True, args=args, compiled=True, **options)


def prepared_anew(**options):
    """The solve with nothing kept from an earlier call."""
    kept = dict(compiled_solves._PREPARED)
    compiled_solves._PREPARED.clear()
    try:
        return solve(**options)
    finally:
        compiled_solves._PREPARED.update(kept)


def assert_same(a, b):
    assert (a.nit, a.nfev, a.status, a.message) == (b.nit, b.nfev, b.status, b.message)
    for field in ("x", "jac", "history"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.x.dtype == b.x.dtype


#: Configurations a repeated call reuses, each against the others (each must change the solve).
CONFIGURATIONS = {
    "adam": {},
    "lr": {"lr": 2e-2},
    "betas": {"betas": (0.8, 0.99)},
    "amsgrad": {"amsgrad": True},
    "weight-decay": {"weight_decay": 0.1},
    "adamw": {"method": "adamw", "weight_decay": 0.1},
    "yogi": {"method": "yogi"},
    "clip": {"clip": ("value", 0.05)},
    "schedule": {"schedule": schedules.CosineDecay(2e-2, 300, 1e-4)},
    "schedule-other-numbers": {"schedule": schedules.CosineDecay(2e-2, 200, 1e-4)},
    "float32": {"x0": X0.astype(np.float32)},
    "stop-rules": {"ftol": 1e-9, "patience": 2, "maxiter": 40},
    "other-start": {"x0": X0[::-1].copy()},
    "other-args": {"args": (CENTRE * 2, 0.25)},
}


@pytest.mark.slow  # (a compile for each of its families and options: the full tier)
def test_a_repeated_configuration_is_reused_and_solves_as_one_prepared_anew():
    compiled_solves._PREPARED.clear()
    results = {}
    for name, options in CONFIGURATIONS.items():
        first = solve(**options)
        before = len(compiled_solves._PREPARED)
        again = solve(**options)
        assert len(compiled_solves._PREPARED) == before  # reused: nothing new prepared
        assert_same(again, first)  # (a fresh state: nothing of the first solve carried over)
        assert_same(again, prepared_anew(**options))
        results[name] = again
    assert len(compiled_solves._PREPARED) == len(CONFIGURATIONS) - 3  # stop rules, start and args are not in the key
    for name, result in results.items():
        if name != "adam":
            assert not np.array_equal(result.x, results["adam"].x), name


def test_reuse_runs_on_the_call_s_own_start_and_keeps_nothing_of_it():
    first = solve()
    moved = solve(x0=X0 + 1.0)
    assert_same(moved, prepared_anew(x0=X0 + 1.0))
    assert not np.shares_memory(moved.x, first.x)
    for template in compiled_solves._PREPARED.values():
        assert template.x.size == 0 and template.args is None and template.state is None


@pytest.mark.parametrize("options, error", [
    ({"lr": -1e-2}, ValueError), ({"betas": (0.9, 1.5)}, ValueError), ({"amsgrad": 1}, TypeError),
    ({"clip": ("value", -1.0)}, ValueError), ({"maxiter": -1}, ValueError), ({"gtol": "0"}, TypeError),
])
def test_bad_input_beside_a_reused_configuration_is_still_refused(options, error):
    solve()  # the good configuration, kept
    with pytest.raises(error):
        solve(**options)


def test_what_the_key_cannot_tell_apart_is_prepared_anew_each_call():
    """Bounds, a callback, NumPy scalars and other arguments are not plain keys: each call checks them."""
    for options in ({"bounds": [(-1, 1)] * 5}, {"weight_decay": np.float64(0.1)}, {"args": ([1.0] * 5, 0.5)}):
        assert compiled_solves.configuration_key(
            bowl, True, options.get("args", (CENTRE, 0.5)), X0, numadam.Adam, options.get("bounds"), None, None, None,
            False, "stop", {k: v for k, v in options.items() if k not in ("bounds", "args")}) is None
    assert compiled_solves.configuration_key(bowl, True, (CENTRE, 0.5), X0, numadam.Adam, None, None, None, None,
                                             False, "stop", {"weight_decay": 0.0}) != \
        compiled_solves.configuration_key(bowl, True, (CENTRE, 0.5), X0, numadam.Adam, None, None, None, None,
                                          False, "stop", {"weight_decay": -0.0})


def test_the_kept_configurations_are_bounded():
    compiled_solves._PREPARED.clear()
    for k in range(compiled_solves._PREPARED_LIMIT + 5):
        solve(lr=1e-3 * (k + 1), maxiter=2)
    assert len(compiled_solves._PREPARED) == compiled_solves._PREPARED_LIMIT


def test_threads_reusing_one_configuration_each_solve_their_own_start():
    starts = [X0 + k for k in range(8)]
    expected = [prepared_anew(x0=start) for start in starts]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            found = list(pool.map(lambda start: solve(x0=start), starts))
            for result, alone in zip(found, expected):
                assert_same(result, alone)


def test_threads_keeping_configurations_at_once_keep_at_most_the_limit():
    """Keeping and dropping from several threads at once (a switch every microsecond, so that a
    thread is interrupted between finding the oldest and dropping it): no error, the limit kept."""
    import types

    fake = types.SimpleNamespace(owns_its_state=True, x=np.zeros(1), low=None, high=None, args=None,
                                 stop_rules=None, state=None)

    def keep(thread):
        for k in range(20_000):
            compiled_solves.remember((thread, k), fake)

    compiled_solves._PREPARED.clear()
    try:
        assert run_together([lambda thread=thread: keep(thread) for thread in range(4)]) == []
        assert len(compiled_solves._PREPARED) == compiled_solves._PREPARED_LIMIT
    finally:
        compiled_solves._PREPARED.clear()


@pytest.mark.slow  # 11 s of compiling solves of its own: the full tier's
def test_a_configuration_holding_large_bounds_or_that_failed_to_run_is_not_kept():
    compiled_solves._PREPARED.clear()
    solve(x0=np.ones(10), nonneg=True)
    assert len(compiled_solves._PREPARED) == 1  # small bounds: kept
    large = np.ones(compiled_solves._PREPARED_BYTES // 8)
    numadam.minimize(bowl, large, jac=True, args=(np.zeros(large.size), 0.5), nonneg=True, maxiter=2,
                     compiled=True)
    assert len(compiled_solves._PREPARED) == 1  # its bounds weigh 2 MiB: checked at every call
    for _ in range(2):  # refused at its run, and again: it was not kept
        with pytest.raises(ValueError, match="x's shape"):
            numadam.minimize(one_too_long, np.ones(3), jac=True, compiled=True)
    assert len(compiled_solves._PREPARED) == 1


def test_arguments_whose_numba_types_the_key_cannot_tell_are_not_keys():
    from collections import namedtuple

    pair = namedtuple("pair", "centre scale")
    for args in (pair(CENTRE, 0.5), (CENTRE, 1 << 63), (CENTRE, -(1 << 63) - 1), (CENTRE, [0.5])):
        assert compiled_solves.configuration_key(bowl, True, args, X0, numadam.Adam, None, None, None, None,
                                                 False, "stop", {}) is None
    assert compiled_solves.configuration_key(bowl, True, (CENTRE, (1 << 63) - 1), X0, numadam.Adam, None, None,
                                             None, None, False, "stop", {}) is not None


def test_a_namedtuple_of_arguments_runs_in_python_or_says_why_it_cannot_compile():
    from collections import namedtuple

    pair = namedtuple("pair", "centre scale")
    plain = solve()
    named = numadam.minimize(bowl, X0, jac=True, args=pair(CENTRE, 0.5), lr=1e-2, maxiter=300, gtol=1e-6)
    assert not named.compiled
    assert_same(named, plain)  # the Python loop takes the compiled solve's iterates
    with pytest.raises(TypeError, match="args is a pair.*plain tuple"):
        solve(args=pair(CENTRE, 0.5))


@njit
def shifted_bowl(x, k):
    r""":math:`\sum_i (x_i - (k \bmod 7))^2` and its gradient: an int argument of any size."""
    gap = x - (k % 7)
    return (gap * gap).sum(), 2.0 * gap


@njit
def shifted_bowl_of_pair(x, pair):
    """:func:`shifted_bowl` with its int inside a tuple argument."""
    return shifted_bowl(x, pair[0])


@pytest.mark.slow  # (compiles of their own: the quick tier keeps within its minutes)
def test_an_int_argument_beyond_int64_runs_in_python_and_leaves_later_calls_compiled():
    """Numba types an int beyond int64 inside a tuple as uint64, and its dispatcher then fails on a
    tuple that holds a negative int: such an argument runs in Python (or says why it cannot compile),
    and the next call with a negative int still compiles and agrees; NumPy's uint64 of it compiles."""
    x0, huge = np.array([0.5, -1.0, 2.0]), 1 << 63

    def fit(k, compiled):
        return numadam.minimize(shifted_bowl, x0, jac=True, args=(k,), lr=0.1, maxiter=50, compiled=compiled)

    beyond = fit(huge, None)
    assert not beyond.compiled
    assert_same(beyond, fit(huge, False))
    negative = fit(-1, None)
    assert negative.compiled
    assert_same(negative, fit(-1, False))
    with pytest.raises(TypeError, match=r"args\[0\] holds the int 9223372036854775808, outside int64.*numpy.uint64"):
        fit(huge, True)
    with pytest.raises(TypeError, match=r"args\[0\] holds the int 18446744073709551616, outside int64.*no type"):
        fit(1 << 64, True)
    as_uint64 = fit(np.uint64(huge), True)
    assert as_uint64.compiled
    assert_same(as_uint64, beyond)


@pytest.mark.slow
def test_an_int_beyond_int64_in_a_tuple_argument_runs_in_python():
    """The same int inside a tuple argument keeps the solve in Python too (or says why it cannot
    compile), so that the compiled solve's own dispatcher never types a uint64 tuple. (The objective's
    own dispatcher, called with it by the Python loop, is Numba's: after it, a tuple holding a
    negative int fails there, in or out of ``minimize``.)"""
    x0, huge = np.array([0.5, -1.0, 2.0]), 1 << 63

    def fit(compiled):
        return numadam.minimize(shifted_bowl_of_pair, x0, jac=True, args=((huge, 0),), lr=0.1, maxiter=50,
                                compiled=compiled)

    with pytest.raises(TypeError, match=r"args\[0\] holds the int 9223372036854775808, outside int64"):
        fit(True)
    beyond = fit(None)
    assert not beyond.compiled
    assert_same(beyond, fit(False))
