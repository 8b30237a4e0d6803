"""tests/reference_prodigy.py against prodigyopt 1.1.2 (skipped without it): the reference numadam's
Prodigy will be held to, checked first against the package whose arithmetic it follows.

Float64, 60 steps of gradients that depend on the parameters (a quadratic pull toward a target plus
noise, computed from the reference's parameters and given to both), every option, within 1e-6
relative (issue 57): the parameters, the state (s, p0, exp_avg, exp_avg_sq) and each group's d,
d_max, d_numerator, d_denom and k.
"""

import math

import numpy as np
import pytest

from reference_prodigy import ProdigyReference

torch = pytest.importorskip("torch")
prodigyopt = pytest.importorskip("prodigyopt")

STEPS = 60
SHAPES = [(5, 4), (7,), (3, 2, 2)]
#: Option sets of one group, each a case.
OPTIONS = [
    {},
    {"betas": (0.0, 0.99)},
    {"beta3": 0.95, "d_coef": 0.5},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decouple": False},
    {"use_bias_correction": True},
    {"safeguard_warmup": True, "use_bias_correction": True},
    {"d0": 1e-4, "growth_rate": 1.02},
    {"slice_p": 3},
    {"lr": 0.5, "eps": 1e-6},
    {"betas": (0.0, 0.999), "weight_decay": 0.05, "decouple": False, "slice_p": 2},
]


def _starts(seed, shapes, zero=None):
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(shape) for shape in shapes]
    if zero is not None:
        starts[zero] = np.zeros(shapes[zero])
    return starts


def _run(groups_of_starts, options, defaults=None, steps=STEPS, zero_first_gradient=False):
    """The reference and prodigyopt over the same groups (``options`` per group, ``defaults`` the
    constructor's); returns both, with the reference's parameters and the torch ones."""
    reference_params = [[p.copy() for p in starts] for starts in groups_of_starts]
    reference = ProdigyReference([(params, o) for params, o in zip(reference_params, options)], defaults)
    tensors = [[torch.tensor(p.copy(), requires_grad=True) for p in starts] for starts in groups_of_starts]
    package = prodigyopt.Prodigy([{"params": group, **o} for group, o in zip(tensors, options)], **(defaults or {}))
    rng = np.random.default_rng(99)
    targets = [[rng.standard_normal(p.shape) for p in starts] for starts in groups_of_starts]
    for t in range(steps):
        grads = [[(p - target) + 0.1 * rng.standard_normal(p.shape) for p, target in zip(params, group_targets)]
                 for params, group_targets in zip(reference_params, targets)]
        if zero_first_gradient and t == 0:
            grads = [[np.zeros_like(g) for g in group] for group in grads]
        for group, group_grads in zip(tensors, grads):
            for tensor, g in zip(group, group_grads):
                tensor.grad = torch.tensor(g.copy())
        reference.step(grads)
        package.step()
    return reference, reference_params, package, tensors


def _close(actual, expected, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    assert actual.shape == expected.shape, what
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6 * scale, err_msg=what)


def _assert_same(reference, reference_params, package, tensors):
    for group_index, (group, package_group) in enumerate(zip(reference.groups, package.param_groups)):
        for name in ("d", "d_max", "d_numerator", "d_denom", "k"):
            if name in package_group:  # prodigyopt writes d_denom at its first step with nonzero sums
                _close(group[name], float(package_group[name]), f"group {group_index}'s {name}")
        for i, (p, tensor) in enumerate(zip(reference_params[group_index], tensors[group_index])):
            _close(p, tensor.detach().numpy(), f"group {group_index}'s parameter {i}")
            state, package_state = reference.state[group_index][i], package.state[tensor]
            assert set(state) == set(package_state) - {"step"}
            for name, value in state.items():
                _close(value, package_state[name].numpy(), f"group {group_index}'s parameter {i}'s {name}")


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_the_reference_is_prodigyopt_s_arithmetic(options):
    run = _run([_starts(1, SHAPES)], [{}], options)
    d0 = options.get("d0", 1e-6)
    assert run[0].groups[0]["d"] > 4 * d0, "d must have grown from d0 for the test to mean something"
    _assert_same(*run)


@pytest.mark.parametrize("second_d0", [2e-6, 1e-6])
def test_two_groups_share_d_and_keep_their_own_options(second_d0):
    """The second group has its own eps, weight decay, d0 and slice_p; the test d = d0 reads the
    last group's d0 (with 2e-6 it never holds: d never jumps to d_hat); d and its companions
    start at the constructor's d0 and are the first group's, written to both."""
    options = [{"weight_decay": 0.1}, {"eps": 1e-5, "weight_decay": 0.0, "d0": second_d0, "slice_p": 2}]
    _assert_same(*_run([_starts(2, SHAPES[:2]), _starts(3, SHAPES[2:])], options, {"growth_rate": 1.5}))


def test_a_group_at_lr_zero_adds_nothing_to_the_sums_but_still_decays():
    options = [{"weight_decay": 0.1}, {"lr": 0.0, "weight_decay": 0.2}]
    run = _run([_starts(4, SHAPES[:2]), _starts(5, SHAPES[2:])], options)
    _assert_same(*run)
    reference, params = run[0], run[1]
    assert np.all(reference.state[1][0]["exp_avg"] == 0)
    assert not np.allclose(params[1][0], _starts(5, SHAPES[2:])[0])


def test_a_zero_parameter_keeps_a_zero_scalar_p0():
    run = _run([_starts(6, SHAPES, zero=1)], [{}])
    _assert_same(*run)
    assert run[0].state[0][1]["p0"].shape == ()


def test_a_step_with_zero_sums_changes_the_moments_but_not_d_or_k():
    """All-zero gradients at the first step: the denominator's sum is 0, so prodigyopt returns after
    the moments changed, k stays 0, and the next steps go on from there."""
    reference, params, package, tensors = _run([_starts(7, SHAPES)], [{}], steps=1, zero_first_gradient=True)
    assert reference.groups[0]["k"] == 0 and package.param_groups[0]["k"] == 0
    assert reference.groups[0]["d"] == 1e-6
    _assert_same(reference, params, package, tensors)


def test_another_lr_than_the_largest_or_zero_is_refused():
    reference = ProdigyReference([([np.ones(3)], {"lr": 1.0}), ([np.ones(2)], {"lr": 0.5})])
    with pytest.raises(ValueError, match="largest one or 0"):
        reference.step([[np.ones(3)], [np.ones(2)]])
    package = prodigyopt.Prodigy([{"params": [torch.ones(3, requires_grad=True)], "lr": 1.0},
                                  {"params": [torch.ones(2, requires_grad=True)], "lr": 0.5}])
    for group in package.param_groups:
        for p in group["params"]:
            p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError, match="only supported for values of 0"):
        package.step()
    assert math.isclose(package.param_groups[0]["d"], 1e-6)


@pytest.mark.parametrize("options", OPTIONS,
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_numadam_is_prodigyopt(options):
    """numadam.Prodigy itself beside prodigyopt: two groups (the second with its own eps and decay),
    60 float64 steps of the same gradients, within 1e-6 relative: parameters, state and d."""
    import numadam

    starts = [_starts(8, SHAPES[:2]), _starts(9, SHAPES[2:])]
    second = {"eps": 1e-6, "weight_decay": 0.02}
    params = [[p.copy() for p in group] for group in starts]
    opt = numadam.Prodigy({"a": params[0], "b": numadam.Group(params[1], **second)}, **options)
    tensors = [[torch.tensor(p.copy(), requires_grad=True) for p in group] for group in starts]
    package = prodigyopt.Prodigy([{"params": tensors[0]}, {"params": tensors[1], **second}], **options)
    rng = np.random.default_rng(10)
    targets = [[rng.standard_normal(p.shape) for p in group] for group in starts]
    for _ in range(STEPS):
        grads = [[(p - t) + 0.1 * rng.standard_normal(p.shape) for p, t in zip(group, group_targets)]
                 for group, group_targets in zip(params, targets)]
        for group, group_grads in zip(tensors, grads):
            for tensor, g in zip(group, group_grads):
                tensor.grad = torch.tensor(g.copy())
        opt.step({"a": [g.copy() for g in grads[0]], "b": [g.copy() for g in grads[1]]})
        package.step()
    for group, package_group in zip(params, tensors):
        for p, tensor in zip(group, package_group):
            _close(p, tensor.detach().numpy(), "a parameter")
    state = opt.state_dict()
    for name in ("exp_avg", "exp_avg_sq", "s", "p0"):
        if name not in state:
            assert name not in package.state[tensors[0][0]]
            continue
        held = state[name]["a"] + state[name]["b"]
        for value, tensor in zip(held, tensors[0] + tensors[1]):
            theirs = package.state[tensor][name].numpy()
            if options.get("slice_p", 1) > 1 and name in ("s", "p0"):  # the same sample: prodigyopt's shape
                assert np.shape(value) == theirs.shape
            _close(np.ravel(value), np.ravel(theirs), name)
    d, d_max = state["carry"][0][:2]
    _close(d, float(package.param_groups[0]["d"]), "d")
    _close(d_max, float(package.param_groups[0]["d_max"]), "d_max")
    assert d > 4 * options.get("d0", 1e-6)
