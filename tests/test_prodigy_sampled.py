"""numadam.Prodigy with ``slice_p > 1``: s and p0 kept on every slice_p-th element of each parameter
(C order, prodigyopt's ``p.flatten()[::slice_p]``), against tests/reference_prodigy.py; the options
that shape the gradient, the state dict, the functional step, and what refuses it.

tests/test_parity_prodigy.py holds the same runs to prodigyopt itself (skipped without it)."""

import numpy as np
import pytest

import numadam
from arrays import assert_resumes_exactly, random_array, tiered
from reference_prodigy import ProdigyReference, sliced

STEPS = 30
SLICES = tiered([3, 2, 11], lambda k: k == 3)
OPTIONS = tiered([{}, {"betas": (0.0, 0.99)}, {"weight_decay": 0.1, "decouple": False},
                  {"use_bias_correction": True, "safeguard_warmup": True}, {"weight_decay": 0.1}],
                 lambda options: not options)


def _ids(options):
    return ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"


def _pulled(rng, params, targets):
    """Gradients that depend on the parameters: a pull toward the targets plus noise."""
    return [(p - t) + 0.1 * random_array(rng, p.shape, p.dtype) for p, t in zip(params, targets)]


def _params(rng, dtype):
    """Parameters of several layouts: C order, Fortran order, a strided view, a vector, a 3-D array."""
    strided = random_array(rng, (10, 6), dtype)[::2, 1:]
    fortran = np.asfortranarray(random_array(rng, (4, 7), dtype))
    return [random_array(rng, (5, 4), dtype), fortran, strided, random_array(rng, (13,), dtype),
            random_array(rng, (3, 2, 5), dtype)]


def _assert_close(actual, expected, dtype):
    tolerance = 1e-12 if np.dtype(dtype) == np.float64 else 2e-5
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance * max(1.0, float(np.max(np.abs(e)))))


@pytest.mark.parametrize("dtype", tiered([np.float64, np.float32], lambda dtype: dtype == np.float64),
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("options", OPTIONS, ids=_ids)
@pytest.mark.parametrize("slice_p", SLICES)
def test_the_sampled_statistics_are_the_reference_s(slice_p, options, dtype):
    """Two groups, five layouts: the parameters, s and p0 (prodigyopt's shapes), the moments and d."""
    rng = np.random.default_rng(slice_p)
    params = _params(rng, dtype)
    copies = [np.array(p) for p in params]
    second = {"weight_decay": 0.05, "eps": 1e-6}
    opt = numadam.Prodigy({"body": params[:3], "head": numadam.Group(params[3:], **second)},
                          slice_p=slice_p, **options)
    defaults = {**options, "slice_p": slice_p}
    reference = ProdigyReference([(copies[:3], {}), (copies[3:], second)], defaults)
    targets = [random_array(rng, p.shape, dtype) for p in params]
    for _ in range(STEPS):
        grads = _pulled(rng, copies, targets)
        opt.step({"body": [g.copy() for g in grads[:3]], "head": [g.copy() for g in grads[3:]]})
        reference.step([grads[:3], grads[3:]])
    _assert_close(params, copies, dtype)
    state = opt.state_dict()
    expected = [s for group in reference.state for s in group]
    for name in expected[0]:
        held = state[name]["body"] + state[name]["head"]
        if name in ("s", "p0"):
            assert [a.shape for a in held] == [(-(-p.size // slice_p),) for p in params]
            _assert_close(held, [e[name] for e in expected], dtype)
        else:
            _assert_close(held, [e[name] for e in expected], dtype)
    d = reference.groups[0]["d"]
    np.testing.assert_allclose(state["carry"][0][0], d, rtol=1e-9 if np.dtype(dtype) == np.float64 else 1e-4)
    assert d > 2 * reference.groups[0]["h"]["d0"], "d must have grown for the test to mean something"


def test_the_sample_is_every_slice_p_th_element_in_c_order():
    """p0 after the first step is the parameter's C-order elements 0, k, 2k, ... (of a Fortran-ordered
    parameter too), whatever was loaded into it after the optimizer was made."""
    rng = np.random.default_rng(1)
    param = np.asfortranarray(np.zeros((6, 5)))
    opt = numadam.Prodigy(param, slice_p=4)
    param[...] = random_array(rng, (6, 5), np.float64)
    loaded = param.copy(order="C")
    opt.step(random_array(rng, (6, 5), np.float64))
    np.testing.assert_array_equal(opt.state_dict()["p0"], loaded.ravel()[::4])
    assert opt.state_dict()["p0"].shape == (8,)


@pytest.mark.parametrize("slice_p", tiered([1, 3], lambda slice_p: slice_p == 3))
def test_options_shape_the_sampled_gradient_as_they_shape_the_first_pass_s(slice_p):
    """clip_value and accumulate: the same run as one fed the clipped gradients, or the micro-batches'
    mean, bit for bit (the sampled pass forms the gradient as the kernels do)."""
    rng = np.random.default_rng(2)
    start = random_array(rng, (9, 7), np.float32)
    clipped, fed, accumulated, averaged = (start.copy() for _ in range(4))
    a = numadam.Prodigy(clipped, slice_p=slice_p, clip_value=0.3)
    b = numadam.Prodigy(fed, slice_p=slice_p)
    c = numadam.Prodigy(accumulated, slice_p=slice_p, accumulate=2)
    d = numadam.Prodigy(averaged, slice_p=slice_p)
    target = random_array(rng, start.shape, np.float32)
    for _ in range(12):
        g = (clipped - target) + np.float32(0.1) * random_array(rng, start.shape, np.float32)
        a.step(g)
        b.step(np.clip(g, np.float32(-0.3), np.float32(0.3)))
        g, h = ((accumulated - target) + np.float32(0.1) * random_array(rng, start.shape, np.float32)
                for _ in range(2))
        c.step(g)
        c.step(h)
        d.step((g + h) / np.float32(2))
    np.testing.assert_array_equal(clipped, fed)
    np.testing.assert_array_equal(accumulated, averaged)
    for name in ("s", "p0", "exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(a.state_dict()[name], b.state_dict()[name])
        np.testing.assert_array_equal(c.state_dict()[name], d.state_dict()[name])
    assert a.state_dict()["carry"][0][0] > 2e-6, "d must have grown from d0 for the test to mean something"


def test_clip_global_norm_scales_the_sampled_gradient():
    rng = np.random.default_rng(3)
    start = random_array(rng, (40,), np.float64)
    params, copies = start.copy(), start.copy()
    opt = numadam.Prodigy(params, slice_p=3, clip_global_norm=0.5)
    reference = ProdigyReference([([copies], {})], {"slice_p": 3})
    for _ in range(STEPS):
        g = 3.0 * random_array(rng, start.shape, np.float64)
        opt.step(g.copy())
        reference.step([[g * min(1.0, 0.5 / np.linalg.norm(g))]])
    _assert_close([params], [copies], np.float64)


def test_master_weights_sample_the_float32_copy():
    """bfloat16 parameters with a float32 master copy step as float32 parameters fed the same
    gradients: the sampled pass reads the master copy."""
    bfloat16 = pytest.importorskip("ml_dtypes").bfloat16
    rng = np.random.default_rng(4)
    start = random_array(rng, (11, 3), np.float32).astype(bfloat16)
    low, wide = start.copy(), start.astype(np.float32)
    a = numadam.Prodigy(low, slice_p=3, master_weights=True)
    b = numadam.Prodigy(wide, slice_p=3)
    for _ in range(10):
        g = random_array(rng, start.shape, np.float32).astype(bfloat16)
        a.step(g)
        b.step(g.astype(np.float32))
    np.testing.assert_array_equal(a.state_dict()["master"], wide)
    np.testing.assert_array_equal(low, wide.astype(bfloat16))
    np.testing.assert_array_equal(a.state_dict()["s"], b.state_dict()["s"])


def test_the_state_dict_round_trips_and_another_slice_p_is_refused():
    rng = np.random.default_rng(5)
    params = [random_array(rng, (4, 5), np.float32), random_array(rng, (7,), np.float32)]
    twin = [p.copy() for p in params]
    steps = [[random_array(rng, p.shape, np.float32) for p in params] for _ in range(8)]
    opt = numadam.Prodigy(params, slice_p=3)
    for grads in steps[:4]:
        opt.step(grads)
    saved = opt.state_dict()
    assert [a.shape for a in saved["s"]] == [a.shape for a in saved["p0"]] == [(7,), (3,)]
    for p, q in zip(twin, params):
        p[...] = q
    other = numadam.Prodigy([p.copy() for p in twin], slice_p=2)
    before = other.state_dict()
    with pytest.raises(ValueError, match=r"state keeps \['s', 'p0'\] on one element in every 3 \(slice_p=3\); "
                                         r"this optimizer keeps them on one in every 2"):
        other.load_state_dict(saved)
    for name in ("s", "p0"):
        for a, b in zip(other.state_dict()[name], before[name]):
            np.testing.assert_array_equal(a, b)
    bad = {**saved, "s": [np.zeros(6, np.float32), saved["s"][1]]}
    resumed = numadam.Prodigy(twin, slice_p=3)
    with pytest.raises(ValueError, match=r"state\['s'\]\[0\] has shape \(6,\); s keeps one element in every 3 "
                                         r"of its parameter of shape \(4, 5\): shape \(7,\)"):
        resumed.load_state_dict(bad)
    resumed.load_state_dict(saved)
    assert_resumes_exactly(opt, resumed, steps[4:], params, twin)


@pytest.mark.slow
def test_the_functional_step_takes_sampled_s_and_p0():
    """numadam.prodigy_step with s and p0 of ceil(n / slice_p) elements: numadam.Prodigy's run bit for bit;
    s or p0 of another shape, or sharing memory, is refused before anything is written."""
    rng = np.random.default_rng(6)
    start = random_array(rng, (6, 7), np.float64)
    param, twin = start.copy(), start.copy()
    exp_avg, exp_avg_sq, s, p0 = np.zeros_like(param), np.zeros_like(param), np.zeros(11), np.zeros(11)
    opt = numadam.Prodigy(twin, slice_p=4, weight_decay=0.1, decouple=False)
    carry = None
    for step in range(1, 16):
        g = random_array(rng, start.shape, np.float64)
        carry = numadam.prodigy_step(param, g, exp_avg_sq, s, p0, step=step, slice_p=4, weight_decay=0.1,
                                     decouple=False, carry=carry, exp_avg=exp_avg)
        opt.step(g)
    np.testing.assert_array_equal(param, twin)
    np.testing.assert_array_equal(s, opt.state_dict()["s"])
    np.testing.assert_array_equal(p0, opt.state_dict()["p0"])
    assert list(carry) == opt.state_dict()["carry"][0]
    arrays = [param, exp_avg, exp_avg_sq, s, p0]
    before = [a.copy() for a in arrays]
    g = random_array(rng, start.shape, np.float64)
    with pytest.raises(ValueError, match=r"s must be float64 of shape \(11,\) \(one value per 4 elements of param"):
        numadam.prodigy_step(param, g, exp_avg_sq, np.zeros(12), p0, step=16, slice_p=4, carry=carry, exp_avg=exp_avg)
    with pytest.raises(ValueError, match="p0 must be float64"):
        numadam.prodigy_step(param, g, exp_avg_sq, s, p0.astype(np.float32), step=16, slice_p=4, carry=carry,
                             exp_avg=exp_avg)
    with pytest.raises(ValueError, match="share memory"):
        numadam.prodigy_step(param, g, exp_avg_sq, s, exp_avg_sq.reshape(-1)[:11], step=16, slice_p=4, carry=carry,
                             exp_avg=exp_avg)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def test_what_refuses_slice_p_says_why():
    with pytest.raises(ValueError, match=r"slice_p=3 keeps Prodigy's statistics on one element in every 3, which "
                                         r"takes real parameters; params is complex128"):
        numadam.Prodigy(np.ones(4, np.complex128), slice_p=3)
    da = pytest.importorskip("dask.array")
    with pytest.raises(ValueError, match="slice_p=3 is not available for Dask arrays"):
        numadam.Prodigy(da.ones(10, chunks=5), slice_p=3)


def test_minimize_solves_in_python_with_slice_p():
    numba = pytest.importorskip("numba")

    @numba.njit
    def fun(x):
        return np.sum((x - 1.0) ** 2), 2.0 * (x - 1.0)

    with pytest.raises(TypeError, match="compiled=True: the solve cannot compile: slice_p=3 keeps Prodigy's "
                                        "statistics on a sample"):
        numadam.minimize(fun, np.zeros(40), method="prodigy", jac=True, slice_p=3, compiled=True)
    chosen = numadam.minimize(fun, np.zeros(40), method="prodigy", jac=True, slice_p=3, maxiter=400)
    python = numadam.minimize(fun, np.zeros(40), method="prodigy", jac=True, slice_p=3, maxiter=400, compiled=False)
    np.testing.assert_array_equal(chosen.x, python.x)
    assert chosen.success and np.allclose(chosen.x, 1.0, atol=1e-4)


def _sampled_run(start, grads, **options):
    param = start.copy()
    opt = numadam.Prodigy(param, slice_p=3, **options)
    for g in grads:
        opt.step(g.copy())
    return param, opt.state_dict()


def test_the_cpu_s_compiled_pass_is_the_array_pass(monkeypatch):
    """Over C-ordered NumPy arrays the CPU takes its compiled loop; every other layout (and CuPy)
    the array operations. One step: the same s and p0 bit for bit, and sums within rounding (added
    in another order); five steps of clipped, accumulated gradients: within rounding."""
    from numadam.targets.cpu.backend import CpuBackend

    rng = np.random.default_rng(7)
    start = random_array(rng, (300, 700), np.float32)  # 70000 sampled elements: several blocks of the loop
    grads = [random_array(rng, start.shape, np.float32) for _ in range(10)]
    options = {"clip_value": 0.5, "accumulate": 2, "weight_decay": 0.1, "decouple": False}
    compiled_one = _sampled_run(start, grads[:1], **options)
    compiled = _sampled_run(start, grads, **options)
    monkeypatch.setattr(CpuBackend, "sampled_pass", None)
    arrays_one = _sampled_run(start, grads[:1], **options)
    arrays = _sampled_run(start, grads, **options)
    for name in ("s", "p0"):
        np.testing.assert_array_equal(compiled_one[1][name], arrays_one[1][name])
    np.testing.assert_allclose(compiled_one[1]["carry"][0], arrays_one[1]["carry"][0], rtol=1e-12)
    np.testing.assert_allclose(compiled[0], arrays[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled[1]["s"], arrays[1]["s"], rtol=1e-4, atol=1e-12)
    assert compiled[1]["carry"][0][4] == 5


@pytest.mark.slow
def test_the_compiled_pass_gives_the_same_bits_on_any_number_of_threads():
    numba = pytest.importorskip("numba")
    rng = np.random.default_rng(8)
    start = random_array(rng, (300, 700), np.float32)
    grads = [random_array(rng, start.shape, np.float32) for _ in range(4)]
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _sampled_run(start, grads)
    finally:
        numba.set_num_threads(threads)
    every = _sampled_run(start, grads)
    np.testing.assert_array_equal(one[0], every[0])
    np.testing.assert_array_equal(one[1]["s"], every[1]["s"])
    assert one[1]["carry"] == every[1]["carry"]


@pytest.mark.parametrize("case", ["grad shape", "grad list", "complex", "no s", "float32 s beside float64 state"])
def test_the_functional_step_checks_everything_before_the_sample_s_pass(case):
    """Every array is checked before anything is written, the gradient too: the sampled pass reads
    it where it lies (a shorter gradient was read past its end before this was checked first)."""
    rng = np.random.default_rng(9)
    dtype = np.complex128 if case == "complex" else np.float64
    param = random_array(rng, (400, 50), dtype)
    grad = {"grad shape": np.ones(3), "grad list": [1.0, 2.0]}.get(case, random_array(rng, param.shape, dtype))
    n = -(-param.size // 4)
    s = np.zeros(n, np.float32 if case == "float32 s beside float64 state" else np.float64)
    exp_avg, exp_avg_sq, p0 = np.zeros_like(param), np.zeros_like(param), np.zeros(n)
    arrays = [param, exp_avg, exp_avg_sq, s, p0]
    before = [a.copy() for a in arrays]
    message = {"grad shape": "grad has shape", "grad list": "grad must be a numpy.ndarray",
               "complex": "which takes real parameters; param is complex128",
               "no s": r"slice_p=4 keeps s: pass it \(an array of 5000 values, float64",
               "float32 s beside float64 state": r"s must be float64 of shape \(5000,\)"}[case]
    with pytest.raises((TypeError, ValueError), match=message):
        numadam.prodigy_step(param, grad, exp_avg_sq, None if case == "no s" else s, p0, step=1, slice_p=4,
                             exp_avg=exp_avg)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def test_the_functional_step_keeps_bfloat16_state_as_the_objects_do():
    bfloat16 = pytest.importorskip("ml_dtypes").bfloat16
    rng = np.random.default_rng(10)
    start = random_array(rng, (8, 9), np.float32)
    param, twin = start.copy(), start.copy()
    state = [np.zeros(start.shape, bfloat16) for _ in range(2)] + [np.zeros(18, bfloat16) for _ in range(2)]
    opt = numadam.Prodigy(twin, slice_p=4, state_dtype="bfloat16")
    carry = None
    for step in range(1, 8):
        g = random_array(rng, start.shape, np.float32)
        carry = numadam.prodigy_step(param, g, state[1], state[2], state[3], step=step, slice_p=4, carry=carry,
                                     exp_avg=state[0])
        opt.step(g)
    np.testing.assert_array_equal(param, twin)
    for name, array in zip(("exp_avg", "exp_avg_sq", "s", "p0"), state):
        np.testing.assert_array_equal(array, opt.state_dict()[name])


def test_torch_tensors_step_as_numpy_arrays_do():
    """Tensors' memory is stepped in place through NumPy views: the same run as NumPy arrays."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    starts = [random_array(rng, (12, 5), np.float32), random_array(rng, (9,), np.float32)]
    arrays = [s.copy() for s in starts]
    tensors = [torch.tensor(s.copy(), requires_grad=True) for s in starts]
    a, b = numadam.Prodigy(arrays, slice_p=3), numadam.Prodigy(tensors, slice_p=3)
    for _ in range(8):
        grads = [random_array(rng, s.shape, np.float32) for s in starts]
        a.step([g.copy() for g in grads])
        for tensor, g in zip(tensors, grads):
            tensor.grad = torch.tensor(g)
        b.step()
    for array, tensor in zip(arrays, tensors):
        np.testing.assert_array_equal(array, tensor.detach().numpy())
    for x, y in zip(a.state_dict()["s"], b.state_dict()["s"]):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
