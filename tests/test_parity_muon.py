"""numadam.Muon beside torch.optim.Muon (torch 2.13): every option, float32, tall, wide and square
matrices, 30 steps; on NumPy arrays and on torch tensors. Skips without torch."""

import numpy as np
import pytest

import numadam
from reference_muon import muon_step

torch = pytest.importorskip("torch")
if not hasattr(torch.optim, "Muon"):
    pytest.skip("this torch has no torch.optim.Muon (2.9 and later)", allow_module_level=True)

SHAPES = {"tall": (48, 16), "wide": (16, 48), "square": (32, 32)}
OPTIONS = [
    {},
    {"nesterov": False},
    {"momentum": 0.3},
    {"adjust_lr_fn": "original", "lr": 0.02},
    {"adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.0},
    {"ns_steps": 3, "ns_coefficients": (2.0, -1.5, 0.5), "eps": 1e-4},
    {"weight_decay": 0.5, "lr": 0.01},
]
STEPS = 30


def _torch_run(start, grads, options):
    p = torch.nn.Parameter(torch.from_numpy(start.copy()))
    opt = torch.optim.Muon([p], **options)
    for g in grads:
        p.grad = torch.from_numpy(g)
        opt.step()
    return p.detach().numpy(), opt.state[p]["momentum_buffer"].numpy()


def _case(shape, seed=0):
    rng = np.random.default_rng(seed)
    start = rng.standard_normal(shape).astype(np.float32)
    return start, [rng.standard_normal(shape).astype(np.float32) for _ in range(STEPS)]


def _worst_over_movement(result, expected, start):
    return float(np.abs(result - expected).max() / np.abs(expected - start).max())


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_bfloat16_muon_is_within_2_percent_of_the_movement_of_torchs(kind, shape, options):
    start, grads = _case(shape)
    expected, expected_buffer = _torch_run(start, grads, options)
    if kind == "numpy":
        ours = start.copy()
        opt = numadam.Muon(ours, **options)
        for g in grads:
            opt.step(g)
    else:
        ours_tensor = torch.from_numpy(start.copy())
        opt = numadam.Muon(ours_tensor, **options)
        for g in grads:
            opt.step(torch.from_numpy(g))
        ours = ours_tensor.numpy()
    assert _worst_over_movement(ours, expected, start) <= 0.02
    buffer = np.asarray(opt.state_dict()["momentum_buffer"])
    assert np.abs(buffer - expected_buffer).max() <= 1e-5 * max(1.0, np.abs(expected_buffer).max())


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_float32_muon_on_torch_tensors_matches_the_numpy_reference(shape):
    start, grads = _case(shape, seed=1)
    ours_tensor = torch.from_numpy(start.copy())
    opt = numadam.Muon(ours_tensor, ns_dtype="float32")
    theirs, buffer = start.copy(), np.zeros(shape, np.float32)
    for g in grads:
        opt.step(torch.from_numpy(g))
        muon_step(theirs, g, buffer, ns_dtype="float32")
    assert _worst_over_movement(ours_tensor.numpy(), theirs, start) <= 1e-4


def test_the_reference_itself_follows_torch_in_bfloat16():
    start, grads = _case((24, 40), seed=2)
    expected, _ = _torch_run(start, grads, {})
    theirs, buffer = start.copy(), np.zeros(start.shape, np.float32)
    for g in grads:
        muon_step(theirs, g, buffer)
    assert _worst_over_movement(theirs, expected, start) <= 0.02


def test_torch_stacks_and_higher_dimensional_tensors_step_as_the_reference():
    rng = np.random.default_rng(3)
    shapes = [(8, 12), (8, 12), (6, 2, 3, 3)]
    starts = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    tensors = [torch.from_numpy(s.copy()) for s in starts]
    opt = numadam.Muon(tensors, ns_dtype="float32")
    theirs = [s.copy() for s in starts]
    buffers = [np.zeros(s, np.float32) for s in shapes]
    for _ in range(10):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        opt.step([torch.from_numpy(g) for g in grads])
        for p, g, b in zip(theirs, grads, buffers):
            muon_step(p, g, b, ns_dtype="float32")
    for t, p, s in zip(tensors, theirs, starts):
        assert _worst_over_movement(t.numpy(), p, s) <= 1e-4


def test_gradients_that_require_grad_and_a_muon_made_in_inference_mode_step_as_plain_tensors():
    """Gradients from ``backward(create_graph=True)`` require grad, and a Muon built under
    ``torch.inference_mode()`` holds inference tensors; both step as plain tensors do."""
    rng = np.random.default_rng(4)
    starts = {"w": rng.standard_normal((6, 4)).astype(np.float32), "v": rng.standard_normal((5, 3)).astype(np.float32),
              "b": rng.standard_normal(4).astype(np.float32)}
    grads = [{name: rng.standard_normal(a.shape).astype(np.float32) for name, a in starts.items()} for _ in range(3)]
    plain = {name: torch.from_numpy(a.copy()) for name, a in starts.items()}
    with torch.inference_mode():
        in_inference = {name: torch.from_numpy(a.copy()) for name, a in starts.items()}
        made_there = numadam.Muon(in_inference, aux={})
    tracked = {name: torch.from_numpy(a.copy()) for name, a in starts.items()}
    expected, requiring = numadam.Muon(plain, aux={}), numadam.Muon(tracked, aux={})
    for g in grads:
        expected.step({name: torch.from_numpy(a) for name, a in g.items()})
        requiring.step({name: torch.from_numpy(a.copy()).requires_grad_() for name, a in g.items()})
        made_there.step({name: torch.from_numpy(a) for name, a in g.items()})
    for name in starts:
        assert not np.array_equal(plain[name].numpy(), starts[name])
        np.testing.assert_array_equal(tracked[name].numpy(), plain[name].numpy())
        np.testing.assert_array_equal(in_inference[name].numpy(), plain[name].numpy())


def test_sparse_and_complex_tensors_are_refused():
    with pytest.raises(TypeError, match="complex"):
        numadam.Muon(torch.zeros(3, 3, dtype=torch.complex64))
    opt = numadam.Muon(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="sparse"):
        opt.step(torch.zeros(3, 3).to_sparse())


def test_a_model_s_parameters_step_as_torchs_muon_and_adamw_written_by_hand():
    """What users write by hand with torch (Muon for the weights, AdamW for the biases), in one numadam.Muon."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    twin = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    twin.load_state_dict(model.state_dict())
    starts = [p.detach().clone() for p in model.parameters()]
    ours = numadam.Muon(model.parameters(), lr=0.02, aux={"lr": 1e-2, "weight_decay": 0.01})
    weights = [p for p in twin.parameters() if p.ndim == 2]
    biases = [p for p in twin.parameters() if p.ndim != 2]
    muon, adamw = torch.optim.Muon(weights, lr=0.02), torch.optim.AdamW(biases, lr=1e-2, weight_decay=0.01)
    x, y = torch.randn(32, 12), torch.randn(32, 3)
    for _ in range(20):
        for net in (model, twin):
            net.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
        ours.step([p.grad for p in model.parameters()])
        muon.step()
        adamw.step()
    for p, q, start in zip(model.parameters(), twin.parameters(), starts):
        moved = (q.detach() - start).abs().max()
        assert (p.detach() - q.detach()).abs().max() <= (0.02 if p.ndim == 2 else 1e-4) * moved
