"""torch tensors through numadam's own API: updated in place, autograd told, ``p.grad`` read.

torch is optional (never a CI dependency): this module skips without it. The
CUDA case runs where torch sees a GPU.
"""

import numpy as np
import pytest

import numadam
from arrays import random_array
from reference import adam_exact

torch = pytest.importorskip("torch")

#: (numadam and torch class name, options both take): the families torch.optim has.
FAMILIES = {
    "adam": ("Adam", {}),
    "adam-amsgrad-l2": ("Adam", {"amsgrad": True, "weight_decay": 0.01}),
    "adamw": ("AdamW", {"weight_decay": 0.1}),
    "nadam": ("NAdam", {}),
    "radam": ("RAdam", {"weight_decay": 0.01, "decoupled_weight_decay": True}),
    "adamax": ("Adamax", {}),
}


def small_model(seed, dtype=torch.float32):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
              torch.nn.Linear(16, 1)]
    return torch.nn.Sequential(*layers).to(dtype)


def train(model, optimizer, steps, dtype=torch.float32, device="cpu"):
    generator = torch.Generator().manual_seed(5)
    for _ in range(steps):
        inputs = torch.randn(32, 6, generator=generator, dtype=dtype).to(device)
        targets = torch.sin(inputs.sum(dim=1, keepdim=True))
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(FAMILIES))
def test_a_module_trained_for_100_steps_matches_torch_optim(case, dtype):
    name, options = FAMILIES[case]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # torch keeps NAdam's momentum product in the default dtype
    try:
        ours, theirs = small_model(0, dtype), small_model(0, dtype)
        train(ours, getattr(numadam, name)(ours.parameters(), lr=1e-2, **options), 100, dtype)
        train(theirs, getattr(torch.optim, name)(theirs.parameters(), lr=1e-2, foreach=False, **options), 100, dtype)
    finally:
        torch.set_default_dtype(previous)
    eps = torch.finfo(dtype).eps
    moved = 0.0
    for mine, reference, start in zip(ours.parameters(), theirs.parameters(), small_model(0, dtype).parameters()):
        scale = float(reference.detach().abs().max())
        difference = float((mine.detach() - reference.detach()).abs().max())
        assert difference <= 16 * eps * scale, (case, difference / (eps * scale))
        moved = max(moved, float((mine.detach() - start.detach()).abs().max()))
    assert moved > 1e-2  # the model trained


def test_each_step_bumps_the_version_counter_so_autograd_catches_a_stale_graph():
    weight = torch.nn.Parameter(torch.randn(4, 4))
    optimizer = numadam.Adam([weight], lr=0.1)
    versions = [weight._version]
    loss = (weight * weight).sum()  # mul saves its inputs for backward
    loss.backward(retain_graph=True)
    optimizer.step()
    versions.append(weight._version)
    assert versions[1] == versions[0] + 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_parameters_whose_grad_is_none_are_skipped_as_torch_skips_them():
    model = small_model(1)
    frozen = model[0].weight
    before = frozen.detach().clone()
    optimizer = numadam.Adam(model.parameters(), lr=0.1)
    frozen.requires_grad_(False)
    train(model, optimizer, 3)
    assert torch.equal(frozen.detach(), before)
    assert optimizer.state_dict()["exp_avg"][0].any() == np.False_  # its state never moved
    assert optimizer.step_count == 3


@pytest.mark.parametrize("options", [{}, {"clip_global_norm": 0.5, "nonfinite": "skip"}], ids=["plain", "policy"])
def test_new_grad_tensors_every_step_move_one_plan_and_step_as_numpy_arrays(options, monkeypatch):
    """``zero_grad()`` then ``backward()`` makes new ``.grad`` tensors every step: the plan made at the
    first step moves onto each (one plan for the run), and the steps are those of the same
    gradients as NumPy arrays."""
    from numadam.engine.bucket import Bucket

    plans = []
    made = Bucket._rebinding_of
    monkeypatch.setattr(Bucket, "_rebinding_of", lambda self, *arguments: plans.append(1) or made(self, *arguments))
    model, twin = small_model(3), small_model(3)
    optimizer = numadam.Adam(model.parameters(), lr=0.05, **options)
    arrays = [p.detach().numpy().copy() for p in twin.parameters()]
    reference = numadam.Adam(arrays, lr=0.05, **options)
    generator = torch.Generator().manual_seed(2)
    for _ in range(6):
        inputs = torch.randn(16, 6, generator=generator)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), torch.sin(inputs.sum(dim=1, keepdim=True))).backward()
        reference.step([p.grad.numpy().copy() for p in model.parameters()])
        optimizer.step()
    assert len(plans) == 1 + 1  # the reference's first step, then this optimizer's
    for p, array in zip(model.parameters(), arrays):
        assert p.detach().numpy().tobytes() == array.tobytes()


def test_zero_grad_sets_grads_to_none_or_zero_as_torch():
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = numadam.Adam([weight])
    weight.grad = torch.ones(3)
    optimizer.zero_grad(set_to_none=False)
    assert weight.grad is not None and not weight.grad.any()
    optimizer.zero_grad()
    assert weight.grad is None


def test_tensors_share_memory_with_what_numadam_updates_and_params_gives_them_back():
    rng = np.random.default_rng(0)
    start = random_array(rng, (3, 5), np.float64)
    tensor = torch.tensor(start)
    optimizer = numadam.Adam({"w": tensor}, lr=0.1)
    grad = random_array(rng, (3, 5), np.float64)
    optimizer.step({"w": torch.tensor(grad)})
    expected = adam_exact(start, grad, np.zeros_like(start), np.zeros_like(start), step=1, lr=0.1,
                          betas=(0.9, 0.999), eps=1e-8)[0]
    np.testing.assert_array_equal(tensor.numpy(), expected)  # bit for bit, in the tensor itself
    assert optimizer.params["w"] is tensor


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
def test_the_functional_step_on_tensors_is_bit_identical_to_numpy(dtype):
    rng = np.random.default_rng(1)
    numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    start = random_array(rng, (50,), numpy_dtype)
    tensors = [torch.tensor(start), torch.zeros(50, dtype=dtype), torch.zeros(50, dtype=dtype)]
    arrays = [start.copy(), np.zeros(50, numpy_dtype), np.zeros(50, numpy_dtype)]
    for step in range(1, 4):
        grad = random_array(rng, (50,), numpy_dtype)
        numadam.adam_step(tensors[0], torch.tensor(grad), *tensors[1:], step=step, lr=0.1, weight_decay=0.1)
        numadam.adam_step(arrays[0], grad, *arrays[1:], step=step, lr=0.1, weight_decay=0.1)
    for tensor, array in zip(tensors, arrays):
        np.testing.assert_array_equal(tensor.numpy(), array)
    assert tensors[0]._version == 3


def test_bfloat16_parameters_through_their_bits():
    pytest.importorskip("ml_dtypes")
    weight = torch.nn.Parameter(torch.linspace(-1, 1, 64, dtype=torch.bfloat16))
    reference = weight.detach().float().clone()
    optimizer = numadam.Adam([weight], lr=0.01, master_weights=True)
    weight.grad = torch.ones(64, dtype=torch.bfloat16)
    optimizer.step()
    moved = weight.detach().float() - reference
    assert torch.allclose(moved, torch.full((64,), -0.01), atol=4e-3)


def test_bfloat16_tensors_with_kahan_s_compensation_step_as_numpy_arrays_do():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    weight = torch.nn.Parameter(torch.linspace(-1, 1, 64, dtype=torch.bfloat16))
    array = weight.detach().float().numpy().astype(ml_dtypes.bfloat16)
    on_tensors = numadam.AdamW([weight], lr=1e-3, compensation="kahan")
    on_arrays = numadam.AdamW([array], lr=1e-3, compensation="kahan")
    for k in range(5):
        grad = torch.linspace(-0.5, 1.0 + k, 64, dtype=torch.bfloat16)
        weight.grad = grad
        on_tensors.step()
        on_arrays.step([grad.float().numpy().astype(ml_dtypes.bfloat16)])
    np.testing.assert_array_equal(weight.detach().view(torch.int16).numpy(), array.view(np.int16))
    compensation = on_tensors.state_dict()["compensation"][0]
    expected = on_arrays.state_dict()["compensation"][0]
    np.testing.assert_array_equal(np.asarray(compensation.float() if hasattr(compensation, "float") else compensation,
                                             np.float32), expected.astype(np.float32))
    assert np.any(expected.astype(np.float32) != 0)


def test_minimize_takes_and_returns_tensors_and_fun_sees_a_tensor():
    target = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    seen = []

    def value_and_grad(x):
        seen.append(type(x))
        x = x.detach().clone().requires_grad_()
        loss = ((x - target) ** 2).sum()
        loss.backward()
        return loss, x.grad

    x0 = torch.zeros(3, dtype=torch.float64)
    result = numadam.minimize(value_and_grad, x0, jac=True, lr=0.1, maxiter=3000, gtol=1e-8)
    assert result.success and isinstance(result.x, torch.Tensor) and isinstance(result.jac, torch.Tensor)
    assert set(seen) == {torch.Tensor}
    assert torch.allclose(result.x, target, atol=1e-7)
    assert not x0.any()  # x0 itself is never written


def test_clipping_rewrites_tensor_gradients_in_place():
    grads = [torch.tensor([3.0, 4.0]), torch.tensor([0.0])]
    version = grads[0]._version
    norm = numadam.clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert torch.allclose(grads[0], torch.tensor([0.6, 0.8]))
    assert grads[0]._version > version


def test_misuse_is_refused_with_the_rule():
    weight = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match=r"params\[0\] is a tensor computed from others .* as torch.optim does"):
        numadam.Adam([weight * 2])
    optimizer = numadam.Adam([weight])
    with pytest.raises(TypeError, match="step\\(\\) needs grads"):
        numadam.Adam([np.ones(3)]).step()
    weight.data = torch.zeros(3)  # the optimizer's memory is no longer the parameter's
    weight.grad = torch.ones(3)
    with pytest.raises(ValueError, match=r"params\[0\] no longer holds the memory .* p.data.copy_"):
        optimizer.step()
    with pytest.raises(TypeError, match="torch tensor on device meta"):
        numadam.Adam([torch.empty(3, device="meta")])


@pytest.mark.gpu
def test_cuda_tensors_are_updated_on_torchs_stream():
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    model = small_model(2).cuda()
    reference = small_model(2).cuda()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        train(model, numadam.Adam(model.parameters(), lr=1e-2), 20, device="cuda")
        train(reference, torch.optim.Adam(reference.parameters(), lr=1e-2, foreach=False), 20, device="cuda")
    torch.cuda.synchronize()
    for mine, theirs in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(mine, theirs, rtol=0, atol=1e-5)


@pytest.mark.gpu
def test_cuda_tensors_through_the_functional_step_and_minimize():
    """The functional step updates CUDA tensors in place (bumping their versions) like NumPy within
    ulps; minimize takes a CUDA tensor, hands fun CUDA tensors, and returns them."""
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    rng = np.random.default_rng(2)
    start = random_array(rng, (300,), np.float32)
    tensors = [torch.tensor(start, device="cuda"), torch.zeros(300, device="cuda"), torch.zeros(300, device="cuda")]
    arrays = [start.copy(), np.zeros(300, np.float32), np.zeros(300, np.float32)]
    for step in range(1, 4):
        grad = random_array(rng, (300,), np.float32)
        numadam.adam_step(tensors[0], torch.tensor(grad, device="cuda"), *tensors[1:], step=step, lr=0.1)
        numadam.adam_step(arrays[0], grad, *arrays[1:], step=step, lr=0.1)
    torch.cuda.synchronize()
    for tensor, array in zip(tensors, arrays):
        np.testing.assert_allclose(tensor.cpu().numpy(), array, rtol=1e-5, atol=1e-6)
    assert tensors[0]._version == 3

    target = torch.tensor([1.0, -2.0, 3.0], device="cuda")
    seen = []

    def value_and_grad(x):
        seen.append(x.device.type)
        return ((x - target) ** 2).sum(), 2 * (x - target)

    result = numadam.minimize(value_and_grad, torch.zeros(3, device="cuda"), jac=True, lr=0.1, maxiter=3000,
                              gtol=1e-5)
    assert result.success and result.x.device.type == "cuda" and set(seen) == {"cuda"}
    assert torch.allclose(result.x, target, atol=1e-4)
