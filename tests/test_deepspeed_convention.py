"""Adam's ``convention="deepspeed"``: its distance from torch's bits (the figure docs/algorithm.md
states), and its parity with ``DeepSpeedCPUAdam`` where deepspeed is installed (never a CI
dependency). Its bits against the NumPy reference are in test_families.py's cases."""

import numpy as np
import pytest

import numadam
from repo_scripts import script

#: From the same state, with betas that float32 holds exactly, one step's parameter is within this
#: many units in the last place of the larger of |p| before and after it (measured by
#: tools/convention_distance.py: 6 with L2 decay, 7 with decoupled decay): the one division's cost.
ULPS_FROM_TORCH = 8


def random_state(rng, n, dtype):
    """Parameters and gradients over six decades, moments of a run in progress."""
    spread = 10.0 ** rng.integers(-3, 3, n)
    return ((rng.standard_normal(n) * spread).astype(dtype), (rng.standard_normal(n) * spread[::-1]).astype(dtype),
            (rng.standard_normal(n) * 0.1).astype(dtype), (np.abs(rng.standard_normal(n)) * 0.01).astype(dtype))


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_with_float32_betas_its_moments_are_torch_s_and_its_parameters_a_few_ulps_away(dtype, decoupled):
    tool = script("tools/convention_distance.py")
    param, grad, exp_avg, exp_avg_sq = random_state(np.random.default_rng(11), 10_000, dtype)
    stepped = {}
    for convention in ("torch", "deepspeed"):
        p, m, v = param.copy(), exp_avg.copy(), exp_avg_sq.copy()
        numadam.adam_step(p, grad, m, v, step=7, lr=1e-3, betas=tool.EXACT_BETAS, weight_decay=0.1,
                          decoupled_weight_decay=decoupled, convention=convention)
        stepped[convention] = p, m, v
    for torch_s, deepspeed_s in zip(stepped["torch"][1:], stepped["deepspeed"][1:]):
        np.testing.assert_array_equal(deepspeed_s, torch_s, strict=True)
    assert np.mean(stepped["deepspeed"][0] != stepped["torch"][0]) > 0.01  # other bits, not torch's renamed
    assert 0 < tool.one_step_ulps(100_000, dtype, decoupled) <= ULPS_FROM_TORCH


def test_a_float32_fit_lands_as_near_torch_s_as_float32_rounding_does():
    """docs/algorithm.md's run: after 100 steps, within a few times float32's own rounding."""
    distances = script("tools/convention_distance.py").run_distances(100)
    assert 0 < distances["float32, deepspeed - torch"] < 4 * distances["float32 torch - float64 torch"]
    assert 0 < distances["float64, deepspeed - torch"] < 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_its_betas_are_float32_numbers_as_deepspeed_s_are(dtype):
    """torch's 1 - 0.999 is 1e-3 rounded; DeepSpeed's is 1 - float32(0.999), 1.3e-5 (relative) less."""
    rng = np.random.default_rng(13)
    param, grad, exp_avg, exp_avg_sq = random_state(rng, 1000, dtype)
    for convention, beta2 in [("deepspeed", float(np.float32(0.999))), ("torch", 0.999)]:
        v = exp_avg_sq.copy()
        numadam.adam_step(param.copy(), grad, exp_avg.copy(), v, step=3, betas=(0.9, 0.999), convention=convention)
        expected = dtype(beta2) * exp_avg_sq + dtype(1 - beta2) * (grad * grad)
        np.testing.assert_array_equal(v, expected, strict=True)


@pytest.mark.parametrize("decoupled", [False, True])
def test_equals_deepspeed_cpu_adam_to_rounding(decoupled):
    torch = pytest.importorskip("torch")
    deepspeed_adam = pytest.importorskip("deepspeed.ops.adam")
    rng = np.random.default_rng(12)
    n, lr = 1003, 1e-2  # past DeepSpeed's vector tiles, into its scalar tail
    ours = rng.standard_normal(n, dtype=np.float32)
    theirs = ours.copy()
    tensor = torch.nn.Parameter(torch.from_numpy(theirs))
    reference = deepspeed_adam.DeepSpeedCPUAdam([tensor], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1,
                                                adamw_mode=decoupled, fp32_optimizer_states=True)
    opt = numadam.Adam([ours], lr=lr, eps=1e-8, weight_decay=0.1, decoupled_weight_decay=decoupled,
                       convention="deepspeed")
    for _ in range(20):
        grad = rng.standard_normal(n, dtype=np.float32)
        tensor.grad = torch.from_numpy(grad.copy())
        reference.step()
        opt.step([grad])
    state = reference.state[tensor]
    # DeepSpeed fuses its multiply-adds (the L2 term's too); numadam rounds each product. After 20
    # steps they are a few ulps of each array's scale apart; a wrong scalar is thousands.
    for actual, expected in [(ours, theirs), (opt.state_dict()["exp_avg"][0], state["exp_avg"].numpy()),
                             (opt.state_dict()["exp_avg_sq"][0], state["exp_avg_sq"].numpy())]:
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
