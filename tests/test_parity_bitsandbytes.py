"""8-bit state against bitsandbytes' ``Adam8bit`` (skipped without bitsandbytes and torch).

The two quantize differently (numadam: 256-element blocks of a signed/unsigned
8-bit code scaled by the block's largest magnitude; bitsandbytes: its dynamic
quantization map per block), so they are compared on what a user sees: the
loss a fit reaches, against float32 state, on a logistic regression with more
samples than features (so the loss stays away from zero) and 4096 parameters:
both libraries keep arrays of fewer elements in full precision.
"""

import numpy as np
import pytest

import numadam

torch = pytest.importorskip("torch")
bitsandbytes = pytest.importorskip("bitsandbytes")

FEATURES, SAMPLES, STEPS, LR = 4096, 8192, 200, 1e-2


def _problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SAMPLES, FEATURES)).astype(np.float32) / np.sqrt(FEATURES, dtype=np.float32)
    truth = rng.standard_normal(FEATURES).astype(np.float32) * 4
    y = (x @ truth + 0.5 * rng.standard_normal(SAMPLES).astype(np.float32) > 0).astype(np.float32)
    return x, y


def _loss_and_gradient(w, x, y):
    """Mean logistic loss and its gradient (float32)."""
    z = x @ w
    loss = np.mean(np.logaddexp(0, z) - y * z)
    return float(loss), (x.T @ (1 / (1 + np.exp(-z)) - y) / np.float32(len(y))).astype(np.float32)


def _numadam_fit(x, y, **options):
    w = np.zeros(FEATURES, np.float32)
    adam = numadam.Adam([w], lr=LR, **options)
    for _ in range(STEPS):
        adam.step([_loss_and_gradient(w, x, y)[1]])
    assert adam.state_dict()["exp_avg_sq"][0].dtype == (np.uint8 if options else np.float32)
    return _loss_and_gradient(w, x, y)[0]


def _bitsandbytes_fit(x, y):
    w = np.zeros(FEATURES, np.float32)
    param = torch.nn.Parameter(torch.from_numpy(w))
    adam = bitsandbytes.optim.Adam8bit([param], lr=LR)
    for _ in range(STEPS):
        param.grad = torch.from_numpy(_loss_and_gradient(w, x, y)[1])
        adam.step()
    assert adam.state[param]["state1"].dtype == torch.uint8  # its state really is 8-bit
    return _loss_and_gradient(w, x, y)[0]


@pytest.mark.slow  # three fits of a few hundred steps: the full tier
def test_int8_state_fits_as_close_to_float32_state_as_bitsandbytes_adam8bit():
    x, y = _problem()
    float32 = _numadam_fit(x, y)
    ours = _numadam_fit(x, y, state_dtype="int8")
    theirs = _bitsandbytes_fit(x, y)
    start = _loss_and_gradient(np.zeros(FEATURES, np.float32), x, y)[0]
    assert float32 < 0.5 * start  # the fit makes progress
    # measured: float32 0.3171, numadam int8 0.3156, bitsandbytes 0.3186
    assert abs(ours - float32) <= 2 * abs(theirs - float32) + 1e-3 * float32, (float32, ours, theirs)
