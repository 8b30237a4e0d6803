"""numadam.Prodigy against tests/reference_prodigy.py (prodigyopt 1.1.2's arithmetic, itself checked
against the package in tests/test_parity_prodigy.py): groups sharing one d, every option, float32,
the state dict, bad input, Dask and minimize by name.

test_families.py and test_functional.py also hold Prodigy to the reference over their cases (one
group); here the tree spans groups, whose sums d adds up."""

import numpy as np
import pytest

import numadam
from arrays import assert_resumes_exactly, random_array, tiered
from reference_prodigy import ProdigyReference

STEPS = 40
#: Option sets of the whole optimizer.
OPTIONS = [{}, {"betas": (0.0, 0.99)}, {"beta3": 0.95, "d_coef": 0.5}, {"weight_decay": 0.1},
           {"weight_decay": 0.1, "decouple": False}, {"use_bias_correction": True, "safeguard_warmup": True},
           {"d0": 1e-4, "growth_rate": 1.02}, {"lr": 0.5, "eps": 1e-6}]


def _pulled(rng, params, targets):
    """Gradients that depend on the parameters: a pull toward the targets plus noise."""
    return [(p - t) + 0.1 * random_array(rng, p.shape, p.dtype) for p, t in zip(params, targets)]


def _groups_and_reference(rng, dtype, options, second=None):
    """Three parameters in two groups (the second with ``second``'s options), their copies in the
    reference, and targets."""
    params = [random_array(rng, shape, dtype) for shape in [(5, 4), (7,), (3, 2, 2)]]
    copies = [p.copy() for p in params]
    second = second or {}
    tree = {"body": params[:2], "head": numadam.Group([params[2]], **second)}
    reference = ProdigyReference([(copies[:2], {}), (copies[2:], second)], options)
    targets = [random_array(rng, p.shape, dtype) for p in params]
    return tree, params, reference, copies, targets


def _assert_close(actual, expected, dtype):
    tolerance = 1e-12 if np.dtype(dtype) == np.float64 else 1e-5
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance * max(1.0, float(np.max(np.abs(e)))))


@pytest.mark.parametrize("dtype", tiered([np.float64, np.float32], lambda dtype: dtype == np.float64),
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("options", tiered(OPTIONS, lambda options: not options),
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_groups_share_one_d_as_prodigyopt_s_do(options, dtype):
    rng = np.random.default_rng(1)
    tree, params, reference, copies, targets = _groups_and_reference(rng, dtype, options,
                                                                     {"weight_decay": 0.05, "eps": 1e-6})
    opt = numadam.Prodigy(tree, **options)
    for _ in range(STEPS):
        grads = _pulled(rng, copies, targets)
        opt.step({"body": [g.copy() for g in grads[:2]], "head": [grads[2].copy()]})
        reference.step([grads[:2], grads[2:]])
    _assert_close(params, copies, dtype)
    state = opt.state_dict()
    expected = [s for group in reference.state for s in group]
    for name in expected[0]:
        held = state[name]["body"] + state[name]["head"]
        _assert_close([np.ravel(a) for a in held], [np.ravel(e) for e in (s[name] for s in expected)], dtype)
    d, d_max, numerator, denominator, k = (reference.groups[0][name] for name in
                                           ("d", "d_max", "d_numerator", "d_denom", "k"))
    for row in state["carry"]:  # (the numerator adds terms of both signs: float64 sums in another order)
        np.testing.assert_allclose(row[:5], [d, d_max, numerator, denominator, k], rtol=1e-9)
    assert d > 2 * reference.groups[0]["h"]["d0"], "d must have grown for the test to mean something"


def test_a_group_at_lr_zero_adds_nothing_to_the_sums_and_still_decays():
    rng = np.random.default_rng(2)
    tree, params, reference, copies, targets = _groups_and_reference(rng, np.float64, {"weight_decay": 0.1},
                                                                     {"lr": 0.0})
    start = params[2].copy()
    opt = numadam.Prodigy(tree, weight_decay=0.1)
    for _ in range(10):
        grads = _pulled(rng, copies, targets)
        opt.step({"body": [g.copy() for g in grads[:2]], "head": [grads[2].copy()]})
        reference.step([grads[:2], grads[2:]])
    _assert_close(params, copies, np.float64)
    assert not np.array_equal(params[2], start)
    assert np.all(opt.state_dict()["exp_avg"]["head"][0] == 0)


def test_another_lr_than_the_largest_or_zero_is_refused_before_anything_moves():
    rng = np.random.default_rng(3)
    tree, params, _, _, targets = _groups_and_reference(rng, np.float64, {}, {"lr": 0.5})
    _assert_a_step_refuses_the_lr_and_moves_nothing(numadam.Prodigy(tree), params, _pulled(rng, params, targets))


def _assert_a_step_refuses_the_lr_and_moves_nothing(opt, params, grads):
    """A step with ``grads`` raises for a group's lr of 0.5 (not the largest, 1.0) and leaves the
    parameters, the state and the counts as they were."""
    before, saved = [p.copy() for p in params], opt.state_dict()
    with pytest.raises(ValueError, match=r"every group's lr must be the largest lr \(1.0\) or 0.*got lr=0.5"):
        opt.step({"body": grads[:2], "head": grads[2:]})
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p, b)
    after = opt.state_dict()
    assert after["step"] == saved["step"] and after["carry"] == saved["carry"]
    for name in ("exp_avg", "exp_avg_sq", "s"):
        for a, b in zip(after[name]["body"] + after[name]["head"], saved[name]["body"] + saved[name]["head"]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("options, dtype", tiered(
    [(options, dtype) for options in OPTIONS + [{"slice_p": 3}] for dtype in (np.float64, np.float32)],
    lambda case: not case[0] and case[1] == np.float64, unpack=True),  # (each case compiles its staged kernels)
    ids=lambda v: np.dtype(v).name if isinstance(v, type) else ",".join(f"{k}={v}" for k, v in v.items()) or "defaults")
def test_the_common_step_takes_the_bits_of_the_step_through_every_stage(options, dtype):
    """Without options, a step takes its first pass, d's total and its update in one launch made once
    (``LocalEngine._total_launcher``); with a clip that cuts nothing it goes through every stage
    (``policy_step``): the same bits, new gradient arrays and the same ones, groups and all."""
    rng = np.random.default_rng(11)
    tree, params, _, _, targets = _groups_and_reference(rng, dtype, options, {"weight_decay": 0.05})
    staged_params = [p.copy() for p in params]
    staged_tree = {"body": staged_params[:2], "head": numadam.Group([staged_params[2]], weight_decay=0.05)}
    common = numadam.Prodigy(tree, **options)
    staged = numadam.Prodigy(staged_tree, clip_value=1e30, **options)
    for step in range(12):
        grads = _pulled(rng, params, targets)
        same = {"body": grads[:2], "head": grads[2:]}
        for _ in range(1 + step % 2):  # (every other step, the very arrays twice)
            common.step(same)
            staged.step({"body": [g.copy() for g in grads[:2]], "head": [g.copy() for g in grads[2:]]})
        for a, b in zip(params, staged_params):
            np.testing.assert_array_equal(a, b)
    assert common._engine._launch[2] is not None and not staged._engine._plain  # (each took its own path)
    ours, theirs = common.state_dict(), staged.state_dict()
    assert ours["carry"] == theirs["carry"] and ours["step"] == theirs["step"] == 18
    for name in ("exp_avg_sq", "s", "p0"):
        for a, b in zip(ours[name]["body"] + ours[name]["head"], theirs[name]["body"] + theirs[name]["head"]):
            np.testing.assert_array_equal(a, b)


def test_a_group_lr_changed_to_another_than_the_largest_is_refused_in_the_common_step_too():
    """The common step's launch is made once for the kernels' flags, which a new lr leaves as they
    are: it checks the groups' lrs at every step, before anything moves."""
    rng = np.random.default_rng(5)
    tree, params, _, _, targets = _groups_and_reference(rng, np.float64, {})
    opt = numadam.Prodigy(tree)
    for _ in range(3):
        grads = _pulled(rng, params, targets)
        opt.step({"body": grads[:2], "head": grads[2:]})
    assert opt._engine._launch[2] is not None and opt.state_dict()["step"] == 3
    tree["head"].lr = 0.5
    _assert_a_step_refuses_the_lr_and_moves_nothing(opt, params, _pulled(rng, params, targets))


def test_a_step_with_zero_sums_moves_the_moments_only():
    """Zero gradients at the first step: s stays 0, so prodigyopt ends the step after its first pass:
    no parameter moves, d and k stay; the next step goes on from there as the reference does."""
    rng = np.random.default_rng(4)
    params = [random_array(rng, (6,), np.float64)]
    copies = [p.copy() for p in params]
    opt, reference = numadam.Prodigy(params), ProdigyReference([(copies, {})])
    zero = [np.zeros(6)]
    opt.step([z.copy() for z in zero])
    reference.step([zero])
    np.testing.assert_array_equal(params[0], copies[0])
    carry = opt.state_dict()["carry"][0]
    assert carry[:5] == [-1.0, -1.0, 0.0, 0.0, 0.0] and carry[6] == 0.0
    for _ in range(5):
        grads = [random_array(rng, (6,), np.float64)]
        opt.step([g.copy() for g in grads])
        reference.step([grads])
    _assert_close(params, copies, np.float64)
    assert opt.state_dict()["carry"][0][4] == reference.groups[0]["k"] == 5


def test_the_state_dict_round_trips_and_the_run_goes_on_exactly():
    rng = np.random.default_rng(5)
    params = [random_array(rng, (4, 3), np.float32), random_array(rng, (5,), np.float32)]
    twin = [p.copy() for p in params]
    steps = [[random_array(rng, p.shape, np.float32) for p in params] for _ in range(8)]
    opt = numadam.Prodigy(params, weight_decay=0.01)
    for grads in steps[:4]:
        opt.step(grads)
    saved = opt.state_dict()
    assert set(saved) >= {"exp_avg", "exp_avg_sq", "s", "p0", "carry"}
    for p, q in zip(twin, params):
        p[...] = q
    resumed = numadam.Prodigy(twin, weight_decay=0.01)
    resumed.load_state_dict(saved)
    assert_resumes_exactly(opt, resumed, steps[4:], params, twin)


def test_without_a_first_moment_the_update_takes_the_clipped_gradient():
    """With betas[0] == 0 the update steps along the gradient itself: clip_value clips it there as
    in the first pass, so the run equals one fed gradients clipped beforehand."""
    rng = np.random.default_rng(8)
    start = random_array(rng, (30,), np.float64)
    clipped, fed = start.copy(), start.copy()
    a = numadam.Prodigy(clipped, betas=(0.0, 0.99), clip_value=0.3)
    b = numadam.Prodigy(fed, betas=(0.0, 0.99))
    for _ in range(12):
        g = random_array(rng, (30,), np.float64)
        a.step(g)
        b.step(np.clip(g, -0.3, 0.3))
    np.testing.assert_array_equal(clipped, fed)
    assert a.state_dict()["carry"][0][0] > 2e-6, "d must have grown from d0 for the test to mean something"


def test_p0_is_the_parameter_at_the_first_step():
    """As prodigyopt takes it: weights loaded in place after the optimizer was made count."""
    rng = np.random.default_rng(9)
    loaded = random_array(rng, (8,), np.float64)
    late, early = np.zeros(8), loaded.copy()
    opt_late, opt_early = numadam.Prodigy(late), numadam.Prodigy(early)
    late[...] = loaded  # e.g. model.load_state_dict after the optimizer
    for _ in range(5):
        g = random_array(rng, (8,), np.float64)
        opt_late.step(g.copy())
        opt_early.step(g.copy())
    np.testing.assert_array_equal(late, early)
    np.testing.assert_array_equal(opt_late.state_dict()["p0"], loaded)


def test_without_a_first_moment_no_exp_avg_is_kept():
    opt = numadam.Prodigy(np.ones(4), betas=(0.0, 0.99))
    opt.step(np.ones(4))
    assert "exp_avg" not in opt.state_dict()


@pytest.mark.parametrize("options, error, message", [
    ({"slice_p": 0}, ValueError, "slice_p must be >= 1"),
    ({"beta3": 1.0}, ValueError, r"beta3 must be in \[0, 1\)"),
    ({"d0": 0.0}, ValueError, "d0 must be finite and > 0"),
    ({"d_coef": -1.0}, ValueError, "d_coef must be finite and > 0"),
    ({"growth_rate": 0.0}, ValueError, r"growth_rate must be > 0 \(inf: no limit\)"),
    ({"decouple": 1}, TypeError, "decouple must be True or False"),
    ({"eps": 0.0}, ValueError, "eps must be finite and > 0"),
    ({"betas": (0.0, 0.99), "accumulate": 2}, ValueError, r"accumulate=2 sums .* take accumulate=1, or a first "
                                                          r"moment \(betas\[0\] > 0\)"),
])
def test_bad_hyperparameters_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        numadam.Prodigy(np.ones(3), **options)


def test_minimize_by_name_needs_no_lr():
    """A least-squares fit with Prodigy's defaults: no lr given, the tolerance reached."""
    rng = np.random.default_rng(6)
    a = rng.standard_normal((40, 5))
    x_true = rng.standard_normal(5)
    b = a @ x_true

    def value_and_grad(x):
        r = a @ x - b
        return 0.5 * float(r @ r), a.T @ r

    result = numadam.minimize(value_and_grad, np.zeros(5), jac=True, method="prodigy", maxiter=3000, gtol=1e-6)
    assert result.success, result.message
    np.testing.assert_allclose(result.x, x_true, atol=1e-5)


@pytest.mark.dask
def test_dask_chunks_sum_into_the_numpy_step(client):  # noqa: F811
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(7)
    starts = [random_array(rng, (40, 30), np.float64), random_array(rng, (50,), np.float64)]
    grads = [[random_array(rng, s.shape, np.float64) for s in starts] for _ in range(6)]
    chunked = [da.from_array(starts[0], chunks=(20, 15)), da.from_array(starts[1], chunks=20)]
    optimizer = numadam.Prodigy(chunked, weight_decay=0.1)
    reference = numadam.Prodigy([s.copy() for s in starts], weight_decay=0.1)
    for step in grads:
        optimizer.step([da.from_array(step[0], chunks=(20, 15)), da.from_array(step[1], chunks=20)])
        reference.step(step)
    for actual, expected in zip(optimizer.params, reference.params):
        np.testing.assert_allclose(actual.compute(), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(optimizer.state_dict()["carry"][0], reference.state_dict()["carry"][0], rtol=1e-12)
    # the state too: the update stores none of it (Dask's update keeps the first pass's chunks)
    for name in ("exp_avg", "exp_avg_sq", "s", "p0"):
        for actual, expected in zip(optimizer.state_dict()[name], reference.state_dict()[name]):
            np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(optimizer.state_dict()["p0"][0], starts[0])


from test_dask import client  # noqa: E402,F401  (the cluster fixture)


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["least_squares", "rosenbrock", "deconvolution", "logistic_regression"])
def test_at_its_defaults_it_reaches_the_tolerance_on_minimize_s_problems(problem):
    """docs/minimize.md's table (tools/prodigy_problems.py): no lr, the relative gap of 1e-10 that a
    hand-tuned Adam reaches, within the problem's maxiter."""
    pytest.importorskip("scipy")
    from repo_scripts import script

    tool = script("tools/prodigy_problems.py")
    made = getattr(tool, problem)(np.random.default_rng(0))
    assert tool.first_within(tool.gaps(made, method="prodigy"), tool.TOLERANCE) is not None
