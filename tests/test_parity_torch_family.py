"""NAdam, RAdam, Adamax, SGD, RMSprop, Adagrad, Adadelta, Rprop and ASGD against torch.optim, where torch is
installed (never a CI dependency).

numadam's defaults are torch's conventions for these three; the reference
tests (tests/test_families.py) hold numadam to its NumPy transcription bit for
bit, and this module holds that transcription to torch. torch's single-tensor
code rounds a few intermediate quantities in another order (``lerp`` for m,
``addcmul`` for v, the bias corrections as tensors), so agreement is to a few
units in the last place of the parameters' scale.
"""

import numpy as np
import pytest

import numadam
from arrays import random_array

torch = pytest.importorskip("torch")

#: (numadam class, torch class, options both take) per case.
CASES = {
    "nadam": ("NAdam", {}),
    "nadam-l2": ("NAdam", {"weight_decay": 0.1}),
    "nadam-decoupled": ("NAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True, "momentum_decay": 0.01}),
    "radam": ("RAdam", {}),
    "radam-l2": ("RAdam", {"weight_decay": 0.1}),
    "radam-decoupled": ("RAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    "adamax": ("Adamax", {}),
    "adamax-l2-maximize": ("Adamax", {"weight_decay": 0.1, "maximize": True}),
    "adagrad": ("Adagrad", {}),
    "adagrad-options": ("Adagrad", {"lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.1,
                                    "maximize": True}),
    "rmsprop": ("RMSprop", {}),
    "rmsprop-momentum-l2": ("RMSprop", {"momentum": 0.9, "weight_decay": 0.1}),
    "rmsprop-centered-maximize": ("RMSprop", {"centered": True, "alpha": 0.9, "maximize": True}),
    "rmsprop-centered-momentum": ("RMSprop", {"centered": True, "momentum": 0.5}),
    "sgd": ("SGD", {}),
    "sgd-momentum-l2": ("SGD", {"momentum": 0.9, "weight_decay": 0.1}),
    "sgd-dampening-maximize": ("SGD", {"momentum": 0.8, "dampening": 0.3, "maximize": True}),
    "sgd-nesterov": ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
}


@pytest.fixture
def torch_scalars_like(request):
    """torch keeps NAdam's running product of the momentum schedule in its default dtype (float32
    unless changed), whatever the parameters' dtype; numadam keeps it in float64. A float64 user of
    torch sets the default dtype, and then the two agree."""
    def use(dtype):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64 if dtype == np.float64 else torch.float32)
        request.addfinalizer(lambda: torch.set_default_dtype(previous))
    return use


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fifty_steps_agree_with_torch(case, dtype, torch_scalars_like):
    """50 steps: RAdam's first five take the un-adapted momentum step, the rest the rectified one."""
    name, options = CASES[case]
    torch_scalars_like(dtype)
    rng = np.random.default_rng(11)
    start = random_array(rng, (500,), dtype)
    ours, theirs = start.copy(), torch.tensor(start.copy())
    optimizer = getattr(torch.optim, name)([theirs], lr=1e-2, foreach=False, **options)
    ours_opt = getattr(numadam, name)([ours], lr=1e-2, **options)
    for _ in range(50):
        grad = random_array(rng, (500,), dtype)
        theirs.grad = torch.tensor(grad)
        optimizer.step()
        ours_opt.step([grad])
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=16 * eps * float(np.abs(start).max()))
    assert not np.array_equal(ours, start)


#: The rest of torch.optim's elementwise classes, each option of theirs: (class, options).
REST_OF_TORCH = {
    "adadelta": ("Adadelta", {"lr": 1.0}),
    "adadelta-options": ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.1, "maximize": True}),
    "rprop": ("Rprop", {"lr": 1e-2}),
    "rprop-options": ("Rprop", {"lr": 3e-3, "etas": (0.3, 1.5), "step_sizes": (1e-4, 2e-2), "maximize": True}),
    "asgd": ("ASGD", {"lr": 1e-2}),
    "asgd-options": ("ASGD", {"lr": 2e-2, "lambd": 1e-2, "alpha": 0.5, "t0": 10.0, "weight_decay": 0.1,
                              "maximize": True}),
}


@pytest.mark.parametrize("case", sorted(REST_OF_TORCH))
def test_sixty_float64_steps_agree_with_torch_within_1e_12(case, torch_scalars_like):
    """60 float64 steps of Adadelta, Rprop and ASGD (whose averaging starts at step 12 with t0=10) with
    each option: within 1e-12 of the parameters' scale, and the state too."""
    name, options = REST_OF_TORCH[case]
    torch_scalars_like(np.float64)  # ASGD's rate and weight: torch keeps them in its default dtype
    rng = np.random.default_rng(12)
    start = random_array(rng, (500,), np.float64)
    ours, theirs = start.copy(), torch.tensor(start.copy())
    optimizer = getattr(torch.optim, name)([theirs], foreach=False, **options)
    ours_opt = getattr(numadam, name)([ours], **options)
    for _ in range(60):
        grad = random_array(rng, (500,), np.float64)
        theirs.grad = torch.tensor(grad)
        optimizer.step()
        ours_opt.step([grad])
    scale = float(np.abs(start).max())
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=1e-12 * scale)
    theirs_state = optimizer.state[theirs]
    for key, value in ours_opt.state_dict().items():
        if key in theirs_state and torch.is_tensor(theirs_state[key]) and theirs_state[key].shape == theirs.shape:
            np.testing.assert_allclose(value[0], theirs_state[key].numpy(), rtol=1e-12, atol=1e-12 * scale)
    assert not np.array_equal(ours, start)


def test_rprop_takes_each_groups_first_lr_and_zeroes_a_flipped_infinite_gradient(torch_scalars_like):
    """Two groups with their own lr (torch makes each step size from its group's lr at the first
    step), infinite gradients whose sign flips (torch stores a zero) and zero gradients."""
    torch_scalars_like(np.float64)
    rng = np.random.default_rng(13)
    starts = [random_array(rng, (40,), np.float64) for _ in range(2)]
    ours, theirs = [s.copy() for s in starts], [torch.tensor(s.copy()) for s in starts]
    optimizer = torch.optim.Rprop([{"params": [theirs[0]], "lr": 0.05}, {"params": [theirs[1]]}], lr=0.01,
                                  foreach=False)
    ours_opt = numadam.Rprop([numadam.Group([ours[0]], lr=0.05), ours[1]], lr=0.01)
    for t in range(30):
        grads = [random_array(rng, (40,), np.float64) for _ in range(2)]
        grads[0][0] = (np.inf if t % 2 else -np.inf) if t in (3, 4) else grads[0][0]
        grads[1][1] = 0.0 if t in (5, 6) else grads[1][1]
        for tensor, grad in zip(theirs, grads):
            tensor.grad = torch.tensor(grad)
        optimizer.step()
        ours_opt.step([[grads[0]], grads[1]])  # the tree of the parameters: a group holds a list
    for mine, torch_param in zip(ours, theirs):  # (an infinite gradient after a zeroed one: NaN in both)
        np.testing.assert_allclose(mine, torch_param.numpy(), rtol=0, atol=1e-12)
    assert np.isfinite(ours[0][1:]).all() and not np.array_equal(ours[1], starts[1])


def test_asgd_follows_torch_with_an_lr_changed_every_step(torch_scalars_like):
    """torch's ASGD computes each step's rate at the end of the step before, from that step's lr."""
    torch_scalars_like(np.float64)
    rng = np.random.default_rng(14)
    start = random_array(rng, (100,), np.float64)
    ours, theirs = start.copy(), torch.tensor(start.copy())
    optimizer = torch.optim.ASGD([theirs], lr=0.05, lambd=1e-2, t0=5.0, foreach=False)
    ours_opt = numadam.ASGD(ours, lr=0.05, lambd=1e-2, t0=5.0)
    for t in range(30):
        lr = 0.05 * 0.9**t
        optimizer.param_groups[0]["lr"] = lr
        ours_opt.lr = lr
        grad = random_array(rng, (100,), np.float64)
        theirs.grad = torch.tensor(grad)
        optimizer.step()
        ours_opt.step(grad)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=1e-12 * float(np.abs(start).max()))
    np.testing.assert_allclose(ours_opt.state_dict()["ax"], optimizer.state[theirs]["ax"].numpy(), rtol=0,
                               atol=1e-12 * float(np.abs(start).max()))
