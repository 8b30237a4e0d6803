"""Adafactor's common step in one serial call (numadam/targets/cpu/factored_step.py).

Each test runs the same steps twice: with the one call, and with the one call
turned off (the policy pipeline's passes, one compiled call each, which the
trajectory tests compare with the NumPy reference). They must agree to the
bit, parameters and factors, and the one call must have run.
"""

import numpy as np
import pytest

import numadam
from arrays import random_array, tiered
from numadam.engine.local import LocalEngine
from numadam.targets.cpu import factored_step


@pytest.fixture
def calls(monkeypatch):
    """How many times the one-call kernel ran, and how many of those left the norms to the host."""
    counted = {"kernel": 0, "missing": 0}
    compiled = factored_step.compiled

    def counting(update, first):
        kernel = compiled(update, first)

        def run(*arguments):
            counted["kernel"] += 1
            missing = kernel(*arguments)
            counted["missing"] += bool(missing)
            return missing

        return run

    monkeypatch.setattr(factored_step, "compiled", counting)
    return counted


def trajectory(make, grads, monkeypatch=None, in_place=False):
    """The parameters and factors after stepping ``make()``'s optimizer over ``grads``; with
    ``monkeypatch``, the one call turned off. ``in_place``: one set of gradient arrays, refilled
    each step (the plan made once and reused)."""
    if monkeypatch is not None:
        monkeypatch.setattr(LocalEngine, "_factored_launcher", lambda self, bucket, plan, flags: None)
    params, opt = make()
    held = [np.array(g, copy=True, order="K") for g in grads[0]]
    for grad in grads:
        if in_place:
            for target, value in zip(held, grad):
                target[...] = value
            opt.step(held)
        else:
            opt.step(list(grad))
    state = opt.state_dict()
    if monkeypatch is not None:
        monkeypatch.undo()
    return [p.copy() for p in params], state


def assert_same_bits(one_call, passes):
    for a, b in zip(one_call[0], passes[0]):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    for factor in ("row_var", "col_var"):
        for a, b in zip(one_call[1][factor], passes[1][factor]):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def arrays(seed, shapes, dtype, order="C", steps=4):
    rng = np.random.default_rng(seed)
    params = [np.asarray(random_array(rng, shape, dtype), order=order) for shape in shapes]
    grads = [[np.asarray(random_array(rng, shape, dtype), order=order) for shape in shapes] for _ in range(steps)]
    return params, grads


CASES = [  # (shapes, dtype, order, options)
    ([(30, 33)], np.float32, "C", {}),
    ([(30, 33), (7,), (), (2, 5, 6), (1, 9), (0, 4)], np.float32, "C", {}),
    ([(30, 33), (1, 9), (7,)], np.float32, "F", {}),  # (a batch of matrices in Fortran order walks strided)
    ([(70, 9), (8,)], np.float64, "C", {}),
    ([(12, 5), (6,)], np.float32, "C", {"weight_decay": 0.1, "maximize": True, "d": 2.0, "beta2_decay": -0.5,
                                       "eps": (1e-3, 1e-2)}),
    ([(40, 600), (3,)], np.float32, "C", {}),  # (weighted sums sixteen rows at a time)
    ([(600, 40)], np.float32, "F", {}),  # (the same, walked transposed)
]


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("case", tiered(CASES, lambda case: case is CASES[0]))
def test_the_one_call_step_takes_the_bits_of_the_passes(case, in_place, calls, monkeypatch):
    shapes, dtype, order, options = case
    start, grads = arrays(1, shapes, dtype, order)

    def make():
        params = [p.copy(order="K") for p in start]
        return params, numadam.Adafactor(params, lr=1e-2, **options)

    one_call = trajectory(make, grads, in_place=in_place)
    assert calls["kernel"] == len(grads) and calls["missing"] == 0
    assert_same_bits(one_call, trajectory(make, grads, monkeypatch, in_place))


@pytest.mark.slow
def test_groups_take_their_own_scalars_in_the_one_call(calls, monkeypatch):
    start, grads = arrays(2, [(9, 4), (5,), (3, 6)], np.float32)

    def run():
        params = [p.copy() for p in start]
        opt = numadam.Adafactor([numadam.Group([params[0]], lr=0.1, weight_decay=0.5),
                                 numadam.Group(params[1:], beta2_decay=-0.6)], lr=1e-2)
        for g in grads:
            opt.step([[g[0]], [g[1], g[2]]])
        state = opt.state_dict()
        return params, {factor: state[factor][0] + state[factor][1] for factor in ("row_var", "col_var")}

    one_call = run()
    assert calls["kernel"] == len(grads)
    monkeypatch.setattr(LocalEngine, "_factored_launcher", lambda self, bucket, plan, flags: None)
    assert_same_bits(one_call, run())


@pytest.mark.parametrize("eps1", [None, 1e-30])
def test_where_the_factors_pass_finds_no_norms_the_host_finishes_the_step(eps1, calls, monkeypatch):
    """A row of zeros: its scale is infinite, the direction takes the cap there, and the factors'
    pass cannot sum the norms; the call says so having moved the factors only, and the host's
    norms pass and update finish the step (the same bits as the passes one by one). A compiled
    solve's call runs that norms pass itself (tests/test_minimize_compiled.py)."""
    start, grads = arrays(3, [(16, 5), (4,)], np.float32)
    for grad in grads:
        grad[0][3] = 0.0

    def make():
        params = [p.copy() for p in start]
        return params, numadam.Adafactor(params, lr=1e-2, eps=(eps1, 1e-3))

    one_call = trajectory(make, grads)
    assert calls["kernel"] == len(grads) and calls["missing"] == len(grads)
    assert_same_bits(one_call, trajectory(make, grads, monkeypatch))


def test_a_strided_gradient_takes_the_passes(calls):
    """The one call takes densely walked arrays (its sums compiled for them, as the host's pass's
    are); a strided gradient's step goes through the passes instead."""
    rng = np.random.default_rng(4)
    param = random_array(rng, (8, 6), np.float32)
    reference = param.copy()
    opt, twin = numadam.Adafactor(param, lr=1e-2), numadam.Adafactor(reference, lr=1e-2)
    for _ in range(3):
        wide = random_array(rng, (8, 12), np.float32)
        opt.step(wide[:, ::2])
        twin.step(np.ascontiguousarray(wide[:, ::2]))
    assert calls["kernel"] == 3  # the twin's dense gradients only
    np.testing.assert_allclose(param, reference, rtol=1e-6)


def test_the_one_call_compiles_the_passes_functions_for_the_hosts_argument_types(calls, monkeypatch):
    """The one call must run the host's machine code of the factors' pass (whose float64 sums are
    reassociated as each compiled loop vectorizes them): a constant passed from compiled code would
    be typed as a literal, a version of its own. The one call is compiled afresh here (machine
    code loaded from Numba's disk cache types none of the functions it calls)."""
    import functools

    import numba
    from numba import types

    from numadam.targets.cpu import factor_sums

    options = {name: value for name, value in factored_step.factored_step_serial.targetoptions.items()
               if name != "nopython"}  # (njit's own)
    fresh = numba.njit(**options, cache=False)(factored_step.factored_step_serial.py_func)
    monkeypatch.setattr(factored_step, "factored_step_serial", fresh)
    monkeypatch.setattr(factored_step, "_compiled", functools.cache(factored_step._compiled.__wrapped__))

    start, grads = arrays(5, [(9, 7), (5,)], np.float32, steps=1)
    numadam.Adafactor([p.copy() for p in start], lr=1e-2).step(grads[0])
    assert calls["kernel"] == 1
    for function in (factor_sums._block_sums_with_norms_serial, factor_sums._one_row, factor_sums._eight_rows,
                     factor_sums._row_squares, factor_sums._eight_rows_weighted, factor_sums._sixteen_rows_weighted,
                     factor_sums.moved_variance, factor_sums._vector_norms):
        assert function.signatures
        for signature in function.signatures:
            assert not any(isinstance(argument, types.Literal) for argument in signature), (function, signature)
