"""The policies around every family's update: clipping, non-finite gradients, bounds, EMA, accumulation.

Each is compared with what a user would do by hand around a plain optimizer
(clip the gradients, skip the call, project with numpy.clip, average, sum
micro-batches in float64), for every family.
"""

import numpy as np
import pytest

import numadam
from arrays import random_array, tiered

FAMILIES = list(numadam.families())
LR = 1e-2


def problem(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    shapes = {"W": (5, 4), "b": (4,), "v": (7,)}
    params = {name: random_array(rng, shape, dtype) for name, shape in shapes.items()}
    grads = [{name: random_array(rng, shape, dtype) for name, shape in shapes.items()} for _ in range(6)]
    return params, grads


def copy_tree(tree):
    return {name: np.array(value, copy=True) for name, value in tree.items()}


def assert_trees_equal(actual, expected):
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], strict=True)


@pytest.mark.parametrize("method", tiered(FAMILIES, lambda method: method == "adam"))
def test_fused_global_norm_clipping_equals_clipping_first(method):
    cls = numadam.families()[method]
    params, grads = problem(1)
    fused, by_hand = copy_tree(params), copy_tree(params)
    fused_opt = cls(fused, lr=LR, clip_global_norm=0.5)
    plain_opt = cls(by_hand, lr=LR)
    for g in grads:
        originals = copy_tree(g)
        fused_opt.step(g)
        assert_trees_equal(g, originals)  # the gradients themselves are not modified
        clipped = copy_tree(g)
        numadam.clip_by_global_norm(clipped, 0.5)  # in place; returns the norm
        plain_opt.step(clipped)
    for name in params:
        np.testing.assert_allclose(fused[name], by_hand[name], rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("method", tiered(["adam", "lion", "adopt"], lambda method: method == "adam"))
def test_clip_value_clips_each_element_inside_the_update(method):
    cls = numadam.families()[method]
    params, grads = problem(2)
    fused, by_hand = copy_tree(params), copy_tree(params)
    fused_opt, plain_opt = cls(fused, lr=LR, clip_value=0.3), cls(by_hand, lr=LR)
    for g in grads:
        fused_opt.step(g)
        plain_opt.step(numadam.clip_by_value(copy_tree(g), 0.3))
    assert_trees_equal(fused, by_hand)


@pytest.mark.parametrize("method", tiered(FAMILIES, lambda method: method == "adam"))
def test_bounds_project_after_every_update(method):
    cls = numadam.families()[method]
    params, grads = problem(3)
    low = {"W": -0.5, "b": None, "v": np.linspace(-1, 0, 7).astype(np.float32)}
    high = 0.4
    fused, by_hand = copy_tree(params), copy_tree(params)
    fused_opt = cls(fused, lr=0.2, bounds=(low, high))
    plain_opt = cls(by_hand, lr=0.2)
    for g in grads:
        fused_opt.step(g)
        plain_opt.step(g)
        for name in by_hand:  # the projection, as the user would write it
            np.clip(by_hand[name], -np.inf if low[name] is None else low[name], high, out=by_hand[name])
            plain_opt_params = plain_opt.params[name]
            assert plain_opt_params is by_hand[name]
    assert_trees_equal(fused, by_hand)
    assert fused["W"].min() >= -0.5 and fused["v"].max() <= 0.4


def test_nonneg_is_a_lower_bound_of_zero():
    params, grads = problem(4)
    opt = numadam.Adam(params, lr=0.5, nonneg=True)
    for g in grads:
        opt.step(g)
    assert all(p.min() >= 0 for p in params.values())
    assert any((p == 0).any() for p in params.values())


@pytest.mark.parametrize("method", tiered(FAMILIES, lambda method: method == "adam"))
@pytest.mark.parametrize("bias_correction", [False, True])
def test_ema_follows_the_parameters_in_the_same_pass(method, bias_correction):
    cls = numadam.families()[method]
    params, grads = problem(5)
    twin = copy_tree(params)
    opt = cls(params, lr=LR, ema=0.9, ema_bias_correction=bias_correction)
    plain = cls(twin, lr=LR)
    average = {name: (np.zeros_like(p) if bias_correction else p.copy()) for name, p in twin.items()}
    decay, rest = np.float32(0.9), np.float32(1 - 0.9)
    for g in grads:
        opt.step(g)
        plain.step(g)
        for name in twin:
            average[name] = decay * average[name] + rest * twin[name]
    assert_trees_equal(params, twin)
    expected = average
    if bias_correction:
        expected = {name: a / np.float32(1 - 0.9 ** len(grads)) for name, a in average.items()}
    assert_trees_equal(opt.ema_params(), expected)


@pytest.mark.parametrize("method", tiered(FAMILIES, lambda method: method == "adam"))
def test_accumulation_updates_with_the_mean_every_k_calls(method):
    cls = numadam.families()[method]
    params, grads = problem(6)
    twin = copy_tree(params)
    if cls.algorithm.factored:  # its factors' pass reads one gradient whole
        with pytest.raises(ValueError, match="accumulate=3 is not available for Adafactor"):
            cls(params, lr=LR, accumulate=3)
        return
    opt, plain = cls(params, lr=LR, accumulate=3), cls(twin, lr=LR)
    for start in (0, 3):
        total = {name: np.zeros(p.shape, np.float64) for name, p in params.items()}
        for g in grads[start:start + 3]:
            opt.step(g)
            for name in total:
                total[name] += g[name]
        plain.step({name: (total[name] / 3).astype(np.float32) for name in total})
        assert opt.step_count == plain.step_count
    assert_trees_equal(params, twin)


def test_accumulation_matches_optax_multisteps_with_a_float64_accumulator():
    """optax keeps its accumulator in the gradients' dtype: float64 gradients, cast to float32 after the mean."""
    optax = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    params, grads = problem(7)
    opt = numadam.Adam(copy_tree(params), lr=LR, accumulate=2, convention="optax")
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # for the float64 accumulator; restored below
    try:
        to_float32 = optax.stateless(lambda updates, params: jax.tree.map(lambda u: u.astype(jnp.float32), updates))
        chain = optax.MultiSteps(optax.chain(to_float32, optax.adam(LR)), every_k_schedule=2)
        jax_params = {name: jnp.asarray(p, jnp.float32) for name, p in params.items()}
        state = chain.init({name: jnp.asarray(p, jnp.float64) for name, p in params.items()})
        for g in grads[:4]:
            opt.step(g)
            updates, state = chain.update({name: jnp.asarray(v, jnp.float64) for name, v in g.items()}, state,
                                          jax_params)
            jax_params = optax.apply_updates(jax_params, updates)
        for name in params:
            np.testing.assert_allclose(opt.params[name], np.asarray(jax_params[name], np.float32), rtol=2e-7,
                                       atol=1e-8)
    finally:
        jax.config.update("jax_enable_x64", x64)


@pytest.mark.parametrize("method", tiered(FAMILIES, lambda method: method == "adam"))
def test_skip_leaves_everything_as_it_was_and_the_next_step_equals_a_never_failed_twin(method):
    cls = numadam.families()[method]
    params, grads = problem(8)
    twin = copy_tree(params)
    opt, never_failed = cls(params, lr=LR, nonfinite="skip"), cls(twin, lr=LR)
    opt.step(grads[0])
    never_failed.step(grads[0])
    before = (copy_tree(params), opt.state_dict())
    poisoned = copy_tree(grads[1])
    poisoned["b"][2] = np.inf
    opt.step(poisoned)
    assert_trees_equal(params, before[0])
    assert opt.step_count == 1 and opt.skipped_steps == 1
    for key, value in before[1].items():
        if isinstance(value, dict):
            assert_trees_equal(opt.state_dict()[key], value)
    for g in grads[1:]:
        opt.step(g)
        never_failed.step(g)
    assert_trees_equal(params, twin)
    assert opt.state_dict()["skipped_steps"] == 1


def test_raise_names_the_first_parameter_with_a_nonfinite_gradient_and_changes_nothing():
    params, grads = problem(9)
    opt = numadam.AdamW(params, lr=LR, nonfinite="raise")
    opt.step(grads[0])
    before = copy_tree(params)
    poisoned = copy_tree(grads[1])
    poisoned["v"][3] = np.nan
    poisoned["W"][1, 1] = -np.inf
    with pytest.raises(FloatingPointError, match=r"grads\['W'\] holds NaN or infinity"):
        opt.step(poisoned)
    assert_trees_equal(params, before)
    assert opt.step_count == 1


@pytest.mark.parametrize("nonfinite", ["raise", "skip"])
def test_only_nan_and_infinity_count_as_nonfinite_in_every_piece(nonfinite):
    """The pre-pass counts non-finite numbers where a piece's sum of squares is not finite:
    a finite float64 gradient whose squares overflow is stepped; a NaN deep inside a large
    parameter (a middle piece, parallel kernel) is found."""
    rng = np.random.default_rng(13)
    params = {"big": random_array(rng, (70000,), np.float64), "small": random_array(rng, (5,), np.float64)}
    opt = numadam.Adam(params, lr=LR, nonfinite=nonfinite)
    huge = {name: np.ones_like(value) for name, value in params.items()}
    huge["big"][40000] = 1e200  # its square is infinite; the number is not
    before = copy_tree(params)
    opt.step(huge)
    assert opt.step_count == 1 and opt.skipped_steps == 0
    assert not np.array_equal(params["big"], before["big"])
    poisoned = copy_tree(huge)
    poisoned["big"][40000], poisoned["big"][50001] = 1.0, np.nan
    after_one = copy_tree(params)
    if nonfinite == "raise":
        with pytest.raises(FloatingPointError, match=r"grads\['big'\] holds NaN or infinity"):
            opt.step(poisoned)
    else:
        opt.step(poisoned)
        assert opt.skipped_steps == 1
    assert_trees_equal(params, after_one)
    assert opt.step_count == 1


def test_propagate_lets_nan_through_as_torch_does():
    params, grads = problem(10)
    opt = numadam.Adam(params, lr=LR)
    poisoned = copy_tree(grads[0])
    poisoned["b"][0] = np.nan
    opt.step(poisoned)
    assert np.isnan(params["b"][0]) and np.isfinite(params["W"]).all()


@pytest.mark.slow
def test_skip_with_accumulation_does_not_count_the_skipped_micro_step():
    params, grads = problem(11)
    twin = copy_tree(params)
    opt = numadam.Adam(params, lr=LR, accumulate=2, nonfinite="skip")
    plain = numadam.Adam(twin, lr=LR, accumulate=2)
    poisoned = copy_tree(grads[0])
    poisoned["W"][0, 0] = np.nan
    opt.step(grads[0])
    opt.step(poisoned)  # skipped: the next call still completes the pair
    opt.step(grads[1])
    plain.step(grads[0])
    plain.step(grads[1])
    assert opt.step_count == plain.step_count == 1
    assert_trees_equal(params, twin)


def test_reductions_give_the_same_bits_with_one_or_two_threads():
    """Large enough for the parallel kernels: the sums use fixed pieces and a fixed order."""
    import numba

    rng = np.random.default_rng(12)
    shapes = [(70000,), (300, 301), (5,)]
    results = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        params = [random_array(rng.__class__(np.random.PCG64(1)), shape, np.float32) for shape in shapes]
        opt = numadam.Adam(params, lr=LR, clip_global_norm=10.0)
        for k in range(3):
            local = np.random.default_rng(k)
            opt.step([random_array(local, shape, np.float32) for shape in shapes])
        results.append([p.copy() for p in params])
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two, strict=True)


@pytest.mark.parametrize("options", [{"bounds": (-0.3, 0.3)}, {"nonfinite": "skip", "clip_global_norm": 0.5},
                                     {"ema": 0.5, "accumulate": 2}])
def test_policies_read_each_groups_scalars(options):
    """With groups, every scalar row (the family's scalars, then the policy's) is read at its own place."""
    params, grads = problem(15)
    twins = copy_tree(params)
    grouped = numadam.Adam({"g": numadam.Group([params["W"]], lr=0.05, betas=(0.5, 0.9)),
                            "rest": [params["b"], params["v"]]}, lr=LR, **options)
    alone = [numadam.Adam([twins["W"]], lr=0.05, betas=(0.5, 0.9), **options),
             numadam.Adam([twins["b"], twins["v"]], lr=LR, **options)]
    for g in grads:
        if options.get("clip_global_norm"):  # the global norm spans both groups: clip by hand, same factor
            g = copy_tree(g)
            numadam.clip_by_global_norm(g, 0.5)
        grouped.step({"g": [g["W"]], "rest": [g["b"], g["v"]]})
        alone[0].step([g["W"]])
        alone[1].step([g["b"], g["v"]])
    for name in params:
        np.testing.assert_allclose(params[name], twins[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("options, error, message", [
    ({"clip_global_norm": 0.0}, ValueError, "clip_global_norm must be finite and > 0"),
    ({"clip_value": -1.0}, ValueError, "clip_value must be finite and >= 0"),
    ({"nonfinite": "ignore"}, ValueError, "nonfinite must be one of ['propagate', 'raise', 'skip']"),
    ({"bounds": (0.0, 1.0), "nonneg": True}, ValueError, "nonneg=True is bounds=(0, None)"),
    ({"bounds": 1.0}, TypeError, "bounds must be a pair (low, high)"),
    ({"bounds": (1.0, 0.0)}, ValueError, "must have low <= high"),
    ({"bounds": ({"W": np.zeros(3), "b": None, "v": None}, None)}, ValueError, "must have its shape (5, 4)"),
    ({"ema": 1.0}, ValueError, "ema must be in [0, 1)"),
    ({"ema_bias_correction": True}, ValueError, "ema_bias_correction needs ema=d"),
    ({"accumulate": 0}, ValueError, "accumulate must be >= 1"),
])
def test_bad_policy_options_are_refused(options, error, message):
    params, _ = problem(13)
    with pytest.raises(error, match=__import__("re").escape(message)):
        numadam.Adam(params, **options)


def test_policies_are_saved_and_continue_after_loading(tmp_path):
    params, grads = problem(14)
    twin = copy_tree(params)
    options = dict(lr=LR, accumulate=2, ema=0.9, nonfinite="skip")
    first, straight = numadam.Adam(params, **options), numadam.Adam(twin, **options)
    poisoned = copy_tree(grads[1])
    poisoned["b"][0] = np.nan
    for g in (grads[0], poisoned):
        first.step(g)
        straight.step(g)
    first.save(tmp_path / "state.npz")
    resumed = numadam.Adam(copy_tree(params), **options)
    resumed.load(tmp_path / "state.npz")
    assert resumed.skipped_steps == 1 and resumed.state_dict()["micro_step"] == 1
    for g in grads[2:]:
        resumed.step(g)
        straight.step(g)
    assert_trees_equal(resumed.params, twin)
    assert_trees_equal(resumed.ema_params(), straight.ema_params())
