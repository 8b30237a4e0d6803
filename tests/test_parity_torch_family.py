"""NAdam, RAdam, Adamax, SGD, RMSprop and Adagrad against torch.optim, where torch is installed (never a CI dependency).

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
