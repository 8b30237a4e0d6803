"""Adafactor against torch.optim.Adafactor, where torch is installed (never a CI dependency).

torch takes its norms in float32 and squares them; numadam sums squares in
float64 and rounds once (tests/reference.py holds numadam to its NumPy
transcription; this module holds both to torch), so agreement is to a few
units in the last place of the parameters' scale.
"""

import numpy as np
import pytest

import numadam
from arrays import random_array, tiered

torch = pytest.importorskip("torch")
if not hasattr(torch.optim, "Adafactor"):
    pytest.skip("this torch has no torch.optim.Adafactor (added in 2.5)", allow_module_level=True)

#: Options both take, per case.
CASES = {
    "defaults": {},
    "decay-maximize": {"weight_decay": 0.1, "maximize": True},
    "eps1-d-beta2_decay": {"eps": (1e-20, 1e-3), "d": 1.5, "beta2_decay": -0.6},
    "large-lr": {"lr": 0.5},  # rho = 1/sqrt(t) after the first step: the relative step's own schedule
}
#: A matrix, a batch of matrices, a vector and a scalar: the factored and the full second moments.
SHAPES = [(6, 5), (2, 4, 3), (7,), ()]


@pytest.mark.parametrize("case, dtype, foreach", tiered(
    [(case, dtype, foreach) for case in sorted(CASES) for dtype in (np.float32, np.float64) for foreach in (False, True)],
    lambda combination: combination[0] == "defaults" and combination[1] == np.float32, unpack=True))
def test_forty_steps_agree_with_torch(case, dtype, foreach):
    options = {"lr": 0.01, **CASES[case]}
    rng = np.random.default_rng(3)
    params = [random_array(rng, shape, dtype) for shape in SHAPES]
    tensors = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    theirs = torch.optim.Adafactor(tensors, foreach=foreach, **options)
    ours = numadam.Adafactor(params, **options)
    for _ in range(40):
        grads = [random_array(rng, p.shape, dtype) for p in params]
        for tensor, grad in zip(tensors, grads):
            tensor.grad = torch.tensor(grad)
        theirs.step()
        ours.step(grads)
    tolerance = 64 * np.finfo(dtype).eps
    for mine, tensor in zip(params, tensors):
        np.testing.assert_allclose(mine, tensor.detach().numpy(), rtol=tolerance, atol=tolerance)
    state = ours.state_dict()
    for k, tensor in enumerate(tensors):
        kept = theirs.state[tensor]
        if tensor.dim() >= 2:
            np.testing.assert_allclose(state["row_var"][k], kept["row_var"].numpy(), rtol=tolerance, atol=0)
            np.testing.assert_allclose(state["col_var"][k], kept["col_var"].numpy(), rtol=tolerance, atol=0)
        else:
            np.testing.assert_allclose(state["row_var"][k], kept["variance"].numpy(), rtol=tolerance, atol=0)


#: Gradients of the scale at which a floor binds, from eps1 (or the dtype's machine epsilon) e:
#: 0.01 e, the estimate's (floored at e**2: u = g / e); e**0.625, the row mean's (floored at e, while
#: the estimate stays above e**2), with d large enough that the RMS clipping does not undo it.
#: Each with its d and lr.
FLOORS = {"estimate": (lambda e: 0.01 * e, 1.0, 0.1), "row-mean": (lambda e: e ** 0.625, 1e6, 1e-3)}


@pytest.mark.parametrize("floor", sorted(FLOORS))
@pytest.mark.parametrize("eps1", [None, 1e-12])
@pytest.mark.parametrize("dtype", tiered([np.float32, np.float64], lambda dtype: dtype == np.float32))
def test_the_floors_of_small_gradients_agree_with_torch(dtype, eps1, floor):
    """Gradients small enough that eps1 (None: the dtype's machine epsilon) floors the row mean or the
    estimate of the second moment, which gradients of the parameters' scale never reach."""
    scale_of, d, lr = FLOORS[floor]
    scale = dtype(scale_of(np.finfo(dtype).eps if eps1 is None else eps1))
    rng = np.random.default_rng(5)
    params = [random_array(rng, shape, dtype) for shape in SHAPES]
    starts = [p.copy() for p in params]
    tensors = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    theirs = torch.optim.Adafactor(tensors, lr=lr, eps=(eps1, 1e-3), d=d)
    ours = numadam.Adafactor(params, lr=lr, eps=(eps1, 1e-3), d=d)
    for _ in range(10):
        grads = [np.asarray(random_array(rng, p.shape, dtype) * scale, dtype) for p in params]
        for tensor, grad in zip(tensors, grads):
            tensor.grad = torch.tensor(grad)
        theirs.step()
        ours.step(grads)
    tolerance = 64 * np.finfo(dtype).eps
    for mine, tensor, start in zip(params, tensors, starts):
        assert np.abs(mine - start).max() > 1e-4  # the steps are far above the tolerance
        np.testing.assert_allclose(mine, tensor.detach().numpy(), rtol=tolerance, atol=tolerance)
