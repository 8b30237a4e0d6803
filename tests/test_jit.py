"""numadam.jit: each family's step from njit code, bit for bit the optimizer objects' trajectory."""

import re

import numpy as np
import pytest
from numba import njit

import numadam
from arrays import tiered
from numadam import jit

#: The families numadam.jit offers: every one (Prodigy's step sums over its one array).
OFFERED = list(numadam.families())


@pytest.mark.slow  # full tier: 16 s cold (the vector's test below is quick)
@pytest.mark.parametrize("dtype, options", [(dtype, options) for dtype in (np.float32, np.float64)
                                            for options in ({}, {"weight_decay": 0.1, "maximize": True,
                                                                 "eps": (1e-20, 1e-3)})])
def test_adafactor_steps_a_matrix_as_the_objects_do(dtype, options):
    """The factored step on a matrix: its row and column factors bit for bit with the objects' (the
    same blocks of rows); the norms' sums in float64 in order (the objects' in tiles and chunks),
    so the parameters to a few ulps."""
    rng = np.random.default_rng(4)
    ours = rng.standard_normal((70, 9)).astype(dtype)
    theirs = ours.copy()
    opt = numadam.Adafactor(theirs, lr=1e-2, **options)
    row_var, col_var = np.zeros((70, 1), dtype), np.zeros((1, 9), dtype)
    defaults = {**numadam.Adafactor._class_defaults, "lr": 1e-2, **options}
    hyper = [defaults[h] for h in jit.hyperparameter_order(numadam.Adafactor)]
    for t in range(1, 11):
        grad = rng.standard_normal((70, 9)).astype(dtype)
        opt.step(grad)
        jit.adafactor_step(ours, grad, row_var, col_var, t, *hyper)
    tolerance = 8 * np.finfo(dtype).eps
    np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(row_var, opt.state_dict()["row_var"])
    np.testing.assert_array_equal(col_var, opt.state_dict()["col_var"])


def test_adafactor_steps_a_vector_whose_weight_underflows_as_the_objects_do():
    """t**beta2_decay rounds to 0 in float32 from some step on: the vector's second moment then stays
    as it is, and the step goes on (its stand-in row mean is 1, not weight / weight)."""
    ours = np.linspace(-1.0, 1.0, 6).astype(np.float32)
    theirs = ours.copy()
    opt = numadam.Adafactor(theirs, beta2_decay=-20.0)
    variance = np.zeros(6, np.float32)
    grad = np.linspace(0.5, 1.0, 6).astype(np.float32)
    for t in range(1, 201):  # 200**-20 is below float32's smallest number
        opt.step(grad)
        jit.adafactor_step(ours, grad, variance, np.ones((), np.float32), t, 1e-2, -20.0)
    assert np.float32(200.0 ** -20) == 0 and np.isfinite(ours).all()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=4 * np.finfo(np.float32).eps)
    np.testing.assert_array_equal(variance, opt.state_dict()["row_var"])


@pytest.mark.slow  # full tier: 18 s cold, the compiled matrix step (the quick tier took 366 s in CI)
@pytest.mark.parametrize("shapes", [((70, 9), (1, 1), (1, 9)), ((70, 9), (70, 1), (9, 1)), ((70, 9), (9, 1), (1, 70)),
                                    ((6,), (5,), ())])
def test_adafactor_refuses_factors_of_other_shapes_before_writing(shapes):
    """Numba does not check its indices: a factor of another shape would be read and written past its end."""
    shape, row_shape, column_shape = shapes
    # float32: the signature test_adafactor_steps_a_matrix_as_the_objects_do compiles in the quick tier
    param, grad = np.ones(shape, np.float32), np.ones(shape, np.float32)
    row_var, col_var = np.zeros(row_shape, np.float32), np.ones(column_shape, np.float32)
    with pytest.raises(ValueError, match="adafactor_step: "):
        jit.adafactor_step(param, grad, row_var, col_var, 1)
    np.testing.assert_array_equal(param, 1.0)
    np.testing.assert_array_equal(row_var, 0.0)


#: Options other than the defaults: None where a number may stand, numbers where None is the default,
#: and options that keep state of their own (passed by name).
OPTIONS = [("ademamix", {"alpha_warmup": 8, "beta3_warmup": 12}), ("adopt", {"clip_lambda": None}),
           ("adopt", {"clip_lambda": 0.5, "convention": "optax"}), ("nadam", {"convention": "keras"}),
           ("adam", {"amsgrad": True, "weight_decay": 0.1}), ("adam", {"convention": "deepspeed", "weight_decay": 0.1}),
           ("sgd", {"momentum": 0.9, "nesterov": True}),
           ("rmsprop", {"centered": True, "momentum": 0.5}),
           ("prodigy", {"betas": (0.0, 0.99), "weight_decay": 0.1, "decouple": False}),
           ("prodigy", {"use_bias_correction": True, "safeguard_warmup": True, "weight_decay": 0.05,
                        "growth_rate": 1.02, "beta3": 0.9})]


@pytest.mark.parametrize("dtype", tiered([np.float32, np.float64], lambda dtype: dtype == np.float32))
@pytest.mark.parametrize("name, options", tiered([(name, {}) for name in OFFERED] + OPTIONS,
                                                 lambda case: case == ("adam", {}), unpack=True),
                         ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={w}" for k, w in v.items()))
def test_steps_follow_the_objects_bit_for_bit(name, options, dtype):
    cls = numadam.families()[name]
    rng = np.random.default_rng(0)
    ours = rng.standard_normal(40).astype(dtype)
    theirs = ours.copy()
    opt = cls(theirs, lr=1e-2, **options)
    always = [kind.name for kind in cls.algorithm.state if kind.present is None and not kind.derived]
    state = [np.array(opt.state_dict()[kind], copy=True) for kind in always]
    h = cls.algorithm.Hyper(**{**cls._class_defaults, **cls.pinned, **options})
    by_name = {kind.name: np.array(opt.state_dict()[kind.name], copy=True)
               for kind in cls.algorithm.state_kinds(h) if kind.present is not None}
    defaults = {**cls._class_defaults, **cls.pinned, "lr": 1e-2, **options}
    hyper = [defaults[h] for h in jit.hyperparameter_order(cls)]
    step, carry = getattr(jit, f"{name}_step"), None
    for t in range(1, 21):
        grad = rng.standard_normal(40).astype(dtype)
        opt.step(grad)
        if name == "adam" and not options:
            step(ours, grad, *state, t, 1e-2, 0.9, 0.999, 1e-8, 0.0)
        elif cls.algorithm.carry is not None:
            carry = step(ours, grad, *state, t, *hyper, carry, **by_name)
        else:
            jit.offered(name).step(ours, grad, *state, t, *hyper, **by_name)
    if name == "adafactor":
        # Its norms are float64 sums that numadam.jit takes in order, where the objects' pass sums in
        # blocks (LAMB's jit step sums in the objects' tiles: the same bits).
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=4 * np.finfo(dtype).eps * np.abs(theirs).max())
    else:
        np.testing.assert_array_equal(ours, theirs)
    for name_, array in [*zip(always, state), *by_name.items()]:
        np.testing.assert_array_equal(array, opt.state_dict()[name_])


@pytest.mark.slow
def test_lamb_spans_the_objects_chunks():
    """Parameters longer than one chunk of the objects' pre-pass: sums per chunk, added in order."""
    rng = np.random.default_rng(1)
    ours = rng.standard_normal(40_000).astype(np.float32)
    theirs = ours.copy()
    opt = numadam.LAMB(theirs, lr=1e-2, weight_decay=0.1, convention="apex")
    exp_avg, exp_avg_sq = np.zeros_like(ours), np.zeros_like(ours)
    for t in range(1, 6):
        grad = rng.standard_normal(40_000).astype(np.float32)
        opt.step(grad)
        jit.lamb_step(ours, grad, exp_avg, exp_avg_sq, t, 1e-2, (0.9, 0.999), 1e-6, 0.0, 0.1, "apex")
    np.testing.assert_array_equal(ours, theirs)


def test_callable_from_a_users_njit_loop():
    @njit
    def solve(x, target, steps):
        m, v, g = np.zeros_like(x), np.zeros_like(x), np.empty_like(x)
        carry = None
        for t in range(1, steps + 1):
            g[:] = 2 * (x - target)
            carry = jit.nadam_step(x, g, m, v, t, 0.05, (0.9, 0.999), 1e-8, 0.0, 4e-3, False, False, "torch",
                                   0.0, carry)
        return x

    x = solve(np.zeros(4), np.array([1.0, -2.0, 0.5, 3.0]), 3000)
    np.testing.assert_allclose(x, [1.0, -2.0, 0.5, 3.0], atol=1e-3)


@pytest.mark.parametrize("step", [7, 6800, 9000, 10**6])  # beta1**t: normal, subnormal, +0 (beta2**t too at 1e6)
def test_scalars_are_the_hosts(step):
    family = numadam.Adam.algorithm
    h = family.Hyper(**numadam.Adam._class_defaults)
    expected = np.array(family.scalars(step, h, ()), np.float64)
    compiled = np.array(jit.adam_scalars(step, 1e-3, (0.9, 0.999), 1e-8, 0.0), np.float64)
    assert np.array_equal(compiled.view(np.uint64), expected.view(np.uint64))
    assert jit.adam_rule is family.rule


def test_every_family_is_offered():
    names = {f"{name}_{kind}" for name in numadam.families() for kind in ("rule", "scalars", "flags", "step")}
    assert names <= set(jit.__all__) and all(callable(getattr(jit, name)) for name in names)


@pytest.mark.parametrize("dtype", tiered([np.float32, np.float64], lambda dtype: dtype is np.float32))
@pytest.mark.slow
def test_prodigy_steps_one_array_of_many_chunks_as_the_objects_do(dtype):
    """Prodigy's two passes on one array: the first pass's two sums over many tiles and chunks, its
    total (d and the rest of the carry), the update with the new d, bit for bit with
    numadam.Prodigy; the first steps' zero gradients make the sum of |s| zero, and then only the
    moments move (prodigyopt's early return), as in the objects."""
    rng = np.random.default_rng(3)
    n = 3 * 2**14 + 77
    ours = rng.standard_normal(n).astype(dtype)
    theirs = ours.copy()
    opt = numadam.Prodigy(theirs, weight_decay=0.01)
    exp_avg, exp_avg_sq, s, p0 = (np.zeros_like(ours) for _ in range(4))
    hyper = [{**numadam.Prodigy._class_defaults, "weight_decay": 0.01}[h]
             for h in jit.hyperparameter_order(numadam.Prodigy)]
    carry = None
    for t in range(1, 16):
        grad = (np.zeros(n) if t <= 2 else ours - 0.5 + 0.1 * rng.standard_normal(n)).astype(dtype)
        opt.step(grad)
        carry = jit.prodigy_step(ours, grad, exp_avg_sq, s, p0, t, *hyper, carry, exp_avg=exp_avg)
        if t == 2:
            assert carry[4] == 0.0  # k: no step has moved the parameters yet
    state = opt.state_dict()
    np.testing.assert_array_equal(ours, theirs)
    for name, array in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq), ("s", s), ("p0", p0)):
        np.testing.assert_array_equal(array, state[name])
    assert carry == tuple(state["carry"][0]) and carry[4] == 13.0 and carry[0] > 1e-6


@pytest.mark.slow  # 10 s of compiling Prodigy's two passes into a user's loop: the full tier's
def test_prodigy_step_carries_d_through_a_users_njit_loop():
    """The carry starts as None in the user's loop (an optional of Numba's) and is passed back:
    the loop compiles and reaches numadam.Prodigy's bits."""
    @njit
    def fit(x, target, steps):
        m, v, s, p0, g = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x), np.zeros_like(x), np.empty_like(x)
        carry = None
        for t in range(1, steps + 1):
            g[:] = 2 * (x - target)
            carry = jit.prodigy_step(x, g, v, s, p0, t, carry=carry, exp_avg=m)
        return carry

    target = np.array([1.0, -2.0, 0.5, 3.0])
    ours, theirs = np.zeros(4), np.zeros(4)
    carry = fit(ours, target, 300)
    opt = numadam.Prodigy(theirs)
    for _ in range(300):
        opt.step(2 * (theirs - target))
    np.testing.assert_array_equal(ours, theirs)
    assert carry == tuple(opt.state_dict()["carry"][0])
    np.testing.assert_allclose(ours, target, atol=1e-2)


def test_prodigy_step_refuses_slice_p_before_writing():
    p, g = np.ones(3), np.ones(3)
    state = [np.zeros(3) for _ in range(3)]
    hyper = [{**numadam.Prodigy._class_defaults, "slice_p": 2}[h] for h in jit.hyperparameter_order(numadam.Prodigy)]
    with pytest.raises(ValueError, match="prodigy_step keeps s on every element: it takes slice_p=1"):
        jit.prodigy_step(p, g, *state, 1, *hyper, None, exp_avg=np.zeros(3))
    np.testing.assert_array_equal(p, np.ones(3))
    assert not any(array.any() for array in state)


def test_state_an_option_keeps_must_be_passed():
    p, g = np.ones(3), np.ones(3)
    with pytest.raises(ValueError, match=r"sgd_step: momentum != 0 keeps momentum_buffer; pass it by name"):
        jit.sgd_step(p, g, 1, 0.1, 0.9)
    np.testing.assert_array_equal(p, np.ones(3))


@pytest.mark.parametrize("size", tiered([513, 40_000], lambda size: size == 40_000))
def test_lamb_sums_over_many_tiles_and_chunks_are_the_objects_bit_for_bit(size):
    """numadam.jit sums LAMB's squares in the objects' chunks and tiles (targets.body.NORMS_TILE), in
    their order: the same trust ratio, so the same bits, however many tiles and chunks the sums span.
    In float64, where a sum in another order moves the trust ratio (float32's rounds it away)."""
    rng = np.random.default_rng(5)
    ours = rng.standard_normal(size)
    theirs = ours.copy()
    opt = numadam.LAMB(theirs, lr=1e-2, weight_decay=0.1)
    exp_avg, exp_avg_sq = np.zeros(size), np.zeros(size)
    hyper = [{**numadam.LAMB._class_defaults, "lr": 1e-2, "weight_decay": 0.1}[h]
             for h in jit.hyperparameter_order(numadam.LAMB)]
    for t in range(1, 6):
        grad = rng.standard_normal(size) * rng.uniform(0.1, 10.0, size)
        opt.step(grad)
        jit.lamb_step(ours, grad, exp_avg, exp_avg_sq, t, *hyper)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(exp_avg_sq, opt.state_dict()["exp_avg_sq"])


@pytest.mark.parametrize("name", ["adam", "nadam"])
def test_a_float32_step_is_vectorized(name):
    """The steps compile with NumPy's error model, as the kernels: Python's checks each division
    for zero, and its branch keeps the loop scalar (nine times slower)."""
    step = getattr(jit, f"{name}_step")
    n = 64
    arrays = [np.ones(n, np.float32) for _ in range(4)]
    step(*arrays, 1, *([1e-3, 0.9, 0.999, 1e-8, 0.0] if name == "adam" else []))
    code = "\n".join(step.inspect_asm().values())
    assert re.search(r"\bv?sqrtps\b", code), f"jit.{name}_step's loop is not vectorized"
