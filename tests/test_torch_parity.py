"""numadam against torch.optim.Adam/AdamW, the specification of its default semantics.

torch is an optional comparison, never a test dependency: this module is skipped
where torch is not installed. The tests' oracle is ``tests/reference.py``; this
check guards the claim that the reference, and numadam, compute torch's update.
torch rounds two intermediate quantities differently (``lerp`` for m, ``addcmul``
for v; see docs/algorithm.md), so agreement is to a few units in the last place.
"""

import numpy as np
import pytest

import numadam
from arrays import DTYPES, random_array

torch = pytest.importorskip("torch")

CASES = {
    "adam": {},
    "l2": {"weight_decay": 0.1},
    "adamw": {"weight_decay": 0.1, "decoupled_weight_decay": True},
    "amsgrad": {"amsgrad": True},
    "maximize": {"maximize": True, "amsgrad": True, "weight_decay": 0.05},
}


def torch_optimizer(tensor, options):
    options = dict(options)
    decoupled = options.pop("decoupled_weight_decay", False)
    kind = torch.optim.AdamW if decoupled else torch.optim.Adam
    return kind([tensor], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, foreach=False, **options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_fifty_steps_agree_with_torch_to_a_few_ulps(case, dtype):
    rng = np.random.default_rng(3)
    options = CASES[case]
    start = random_array(rng, (2000,), dtype)
    ours = start.copy()
    theirs = torch.tensor(start.copy())
    optimizer = torch_optimizer(theirs, options)
    adam = numadam.Adam([ours], lr=1e-2, **options)
    for _ in range(50):
        grad = random_array(rng, (2000,), dtype)
        theirs.grad = torch.tensor(grad)
        optimizer.step()
        adam.step([grad])
    real = np.finfo(ours.real.dtype)
    scale = float(np.abs(start).max())
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=8 * real.eps * scale)
    assert not np.array_equal(ours, start)
