"""ScheduleFreeAdamW against the official implementation (the ``schedulefree`` package, on
torch), where both are installed (never CI dependencies)."""

import numpy as np
import pytest

import numadam

torch = pytest.importorskip("torch")
schedulefree = pytest.importorskip("schedulefree")


@pytest.mark.parametrize("options", [{}, {"warmup_steps": 5, "weight_decay": 0.01, "r": 0.5}])
def test_both_iterates_follow_the_official_adamw_schedule_free(options):
    """y (the parameters during training) and x (``eval_params``; the official ``eval()`` mode)."""
    rng = np.random.default_rng(0)
    start = rng.standard_normal(100)
    ours = start.copy()
    opt = numadam.ScheduleFreeAdamW(ours, lr=1e-2, **options)
    tensor = torch.tensor(start.copy())
    theirs = schedulefree.AdamWScheduleFree([tensor], lr=1e-2, foreach=False, **options)
    theirs.train()
    for _ in range(40):
        grad = rng.standard_normal(100)
        opt.step(grad)
        tensor.grad = torch.tensor(grad)
        theirs.step()
    np.testing.assert_allclose(ours, tensor.numpy(), rtol=1e-12, atol=1e-13)
    theirs.eval()  # the official optimizer swaps x into the parameters
    np.testing.assert_allclose(opt.eval_params(), tensor.numpy(), rtol=1e-12, atol=1e-13)
