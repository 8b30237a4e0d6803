"""``complex_mode="magnitude"``: one real second moment per complex element, accumulating |g|^2.

The reference is Adam written on complex NumPy arrays from optax's complex
form: the first moment is complex, the second is real and accumulates
:math:`|g|^2 = (\\operatorname{Re} g)^2 + (\\operatorname{Im} g)^2`, and each part of the
parameter moves by its part of :math:`m / (\\sqrt{\\hat v} + \\epsilon)`.
"""

import math

import numpy as np
import pytest

import numadam
from arrays import in_layout, random_array, tiered
from test_families import hyperparameters

CASES = [
    {},
    {"amsgrad": True, "weight_decay": 0.1},
    {"weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
    {"convention": "keras", "amsgrad": True},
    {"convention": "sklearn", "weight_decay": 0.05},
    {"convention": "optax", "eps_root": 1e-8, "amsgrad": True, "weight_decay": 0.1, "decoupled_weight_decay": True},
]
STEPS = 6
LR = 1e-2


def over(z, d):
    """Each part of complex ``z`` divided by real ``d``, exactly rounded (NumPy's complex division
    multiplies by a rounded reciprocal)."""
    out = np.empty_like(z)
    out.real, out.imag = z.real / d, z.imag / d
    return out


def magnitude_adam(p, g, state, step, h):
    """One step of complex Adam with a shared real second moment (every convention numadam has)."""
    real = p.real.dtype.type
    beta1, beta2 = h["betas"]
    lr, wd, convention = h["lr"], h["weight_decay"], h["convention"]
    decoupled = wd != 0 and h["decoupled_weight_decay"]
    if h["maximize"]:
        g = -g
    if wd != 0 and not decoupled:
        g = g + real(wd) * p
    squared = g.real * g.real + g.imag * g.imag
    m, v = state["exp_avg"], state["exp_avg_sq"]
    if convention == "keras":
        m = m + (g - m) * real(1 - beta1)
        v = v + (squared - v) * real(1 - beta2)
    else:
        m = real(beta1) * m + real(1 - beta1) * g
        v = real(beta2) * v + real(1 - beta2) * squared
    bc1, bc2 = 1 - beta1**step, 1 - beta2**step
    second = v / real(bc2) if convention == "optax" else v
    if h["amsgrad"]:
        second = state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], second)
    if convention == "optax":
        update = over(over(m, real(bc1)), np.sqrt(second + real(h["eps_root"])) + real(h["eps"]))
        if decoupled:
            update = update + real(wd) * p
        p = p - real(lr) * update
    elif convention in ("keras", "sklearn"):
        if decoupled:
            p = p - p * real(wd * lr)
        p = p - over(m * real(lr * math.sqrt(bc2) / bc1), np.sqrt(second) + real(h["eps"]))
    else:
        if decoupled:
            p = real(1 - lr * wd) * p
        p = p - over(real(lr / bc1) * m, np.sqrt(second) / real(math.sqrt(bc2)) + real(h["eps"]))
    state["exp_avg"], state["exp_avg_sq"] = m, v
    return p


def initial(p, h):
    zeros = np.zeros(p.shape, p.real.dtype)
    state = {"exp_avg": np.zeros_like(p), "exp_avg_sq": zeros}
    return {**state, "max_exp_avg_sq": zeros.copy()} if h["amsgrad"] else state


def case_id(options):
    return "-".join(f"{k}={v}" for k, v in options.items()) or "torch"


@pytest.mark.parametrize("dtype", tiered([np.complex64, np.complex128], lambda dtype: dtype == np.complex64))
@pytest.mark.parametrize("options", tiered(CASES, lambda options: options is CASES[0]), ids=case_id)
def test_adam_matches_the_complex_reference(options, dtype):
    h = hyperparameters("adam", {"lr": LR, **options})
    rng = np.random.default_rng(0)
    params = [random_array(rng, shape, dtype) for shape in [(4, 3), (7,)]] + [random_array(rng, (5,), np.float32)]
    expected = [p.copy() for p in params]
    states = [initial(p, h) for p in params[:2]]
    opt = numadam.Adam(params, lr=LR, complex_mode="magnitude", **options)
    for step in range(1, STEPS + 1):
        grads = [random_array(rng, p.shape, p.dtype) for p in params]
        opt.step(grads)
        for k in range(2):
            expected[k] = magnitude_adam(expected[k], grads[k], states[k], step, h)
    for actual, wanted in zip(params[:2], expected):
        np.testing.assert_array_equal(actual, wanted, strict=True)
    state = opt.state_dict()
    for name in states[0]:
        for k in range(2):
            np.testing.assert_array_equal(state[name][k], states[k][name], strict=True)



@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("options", CASES[:3], ids=case_id)
def test_the_functional_step_takes_a_real_second_moment(options, layout):
    """``numadam.adam_step`` with a real second moment (and running maximum) for a complex
    parameter steps in magnitude mode: the same numbers as the reference."""
    h = hyperparameters("adam", {"lr": LR, **options})
    rng = np.random.default_rng(4)
    param = in_layout(random_array(rng, (6, 5), np.complex64), layout)
    expected, state = param.copy(), initial(param, h)
    arrays = {name: in_layout(value.copy(), layout) for name, value in state.items()}
    for step in range(1, STEPS + 1):
        grad = random_array(rng, param.shape, param.dtype)
        extra = {name: arrays[name] for name in arrays if name not in ("exp_avg", "exp_avg_sq")}
        numadam.adam_step(param, grad, arrays["exp_avg"], arrays["exp_avg_sq"], step=step, lr=LR, **extra, **options)
        expected = magnitude_adam(expected, grad, state, step, h)
    np.testing.assert_array_equal(param, expected, strict=True)
    for name in state:
        np.testing.assert_array_equal(arrays[name], state[name])


def test_the_functional_step_refuses_real_state_where_the_family_has_no_magnitude():
    with pytest.raises(TypeError, match="exp_avg_sq has dtype float32 but param has dtype complex64"):
        numadam.nadam_step(np.zeros(3, np.complex64), np.zeros(3, np.complex64), np.zeros(3, np.complex64),
                           np.zeros(3, np.float32), step=1)
    with pytest.raises(TypeError, match="exp_avg_sq has dtype float64 but param's magnitude state has dtype float32"):
        numadam.adam_step(np.zeros(3, np.complex64), np.zeros(3, np.complex64), np.zeros(3, np.complex64),
                          np.zeros(3, np.float64), step=1)


@pytest.mark.parametrize("layout", ["F", "strided", "transposed"])
def test_layouts(layout):
    h = hyperparameters("adam", {"lr": LR, "amsgrad": True})
    rng = np.random.default_rng(1)
    params = [in_layout(random_array(rng, (6, 5), np.complex64), layout)]
    expected, state = params[0].copy(), initial(params[0], h)
    opt = numadam.Adam(params, lr=LR, amsgrad=True, complex_mode="magnitude")
    for step in range(1, 4):
        grad = in_layout(random_array(rng, (6, 5), np.complex64), layout)
        opt.step([grad])
        expected = magnitude_adam(expected, grad, state, step, h)
    np.testing.assert_array_equal(params[0], expected)


def rotated(z, phase):
    return (z * np.exp(1j * phase)).astype(z.dtype)


@pytest.mark.parametrize("mode", ["magnitude", "pairs"])
def test_only_magnitude_mode_commutes_with_a_phase(mode):
    """Training p and e^{i phi} p on g and e^{i phi} g: the same up to rounding with a shared
    second moment; pairs of reals give each part its own step size and break the symmetry."""
    rng = np.random.default_rng(2)
    p = random_array(rng, (200,), np.complex128)
    grads = [random_array(rng, (200,), np.complex128) * np.array([1, 100])[np.arange(200) % 2] for _ in range(20)]
    phase = 0.7
    a, b = p.copy(), rotated(p, phase)
    opt_a = numadam.Adam(a, lr=0.05, complex_mode=mode)
    opt_b = numadam.Adam(b, lr=0.05, complex_mode=mode)
    for g in grads:
        opt_a.step(g)
        opt_b.step(rotated(g, phase))
    gap = np.abs(rotated(a, phase) - b).max()
    if mode == "magnitude":
        assert gap < 1e-12
    else:
        assert gap > 1e-3


def test_second_moment_takes_half_the_memory():
    p = np.zeros(1000, np.complex64)
    pairs = numadam.Adam(p, amsgrad=True).state_dict()
    shared = numadam.Adam(p.copy(), amsgrad=True, complex_mode="magnitude").state_dict()
    for name in ("exp_avg_sq", "max_exp_avg_sq"):
        assert shared[name].dtype == np.float32 and shared[name].shape == p.shape
        assert shared[name].nbytes * 2 == pairs[name].nbytes
    assert shared["exp_avg"].dtype == np.complex64


def test_state_dict_round_trip_and_wrong_state_refused():
    rng = np.random.default_rng(3)
    p, q = random_array(rng, (9,), np.complex64), random_array(rng, (4,), np.float32)
    opt = numadam.Adam([p, q], lr=LR, complex_mode="magnitude")
    opt.step([random_array(rng, (9,), np.complex64), random_array(rng, (4,), np.float32)])
    state = opt.state_dict()
    p2, q2 = p.copy(), q.copy()
    twin = numadam.Adam([p2, q2], lr=LR, complex_mode="magnitude")
    twin.load_state_dict(state)
    grads = [random_array(rng, (9,), np.complex64), random_array(rng, (4,), np.float32)]
    opt.step(grads)
    twin.step([g.copy() for g in grads])
    np.testing.assert_array_equal(p, p2)
    np.testing.assert_array_equal(q, q2)
    pairs = numadam.Adam([p.copy(), q.copy()], lr=LR)
    with pytest.raises(TypeError, match=r"exp_avg_sq'\]\[0\] has dtype float32.*complex"):
        pairs.load_state_dict(state)
    with pytest.raises(TypeError, match=r"exp_avg_sq'\]\[0\] has dtype complex64.*real"):
        twin.load_state_dict(pairs.state_dict())


def test_what_refuses_magnitude_mode_says_why():
    z = np.zeros(8, np.complex64)
    with pytest.raises(ValueError, match="complex_mode='magnitude'.*Lion has none to share.*Adam"):
        numadam.Lion(z, complex_mode="magnitude")
    with pytest.raises(ValueError, match="complex_mode='magnitude' is not available with clip_global_norm="):
        numadam.Adam(z, complex_mode="magnitude", clip_global_norm=1.0)
    with pytest.raises(ValueError, match="complex_mode must be one of"):
        numadam.Adam(z, complex_mode="modulus")
    numadam.Lion(np.zeros(8, np.float32), complex_mode="magnitude")  # nothing complex: nothing to change


def test_minimize_takes_complex_mode():
    """A rotation-invariant bowl |x - c|^2 over complex x (gradient 2(x - c), scipy's convention)."""
    target = np.array([1 + 2j, -3j, 0.5])
    res = numadam.minimize(lambda x: (float(np.sum(np.abs(x - target) ** 2)), 2 * (x - target)), np.zeros(3, complex),
                           jac=True, lr=0.05, maxiter=3000, gtol=1e-6, complex_mode="magnitude")
    np.testing.assert_allclose(res.x, target, atol=1e-3)


def test_matches_optax_complex_adam():
    optax = pytest.importorskip("optax")
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(4)
    p = random_array(rng, (64,), np.complex64)
    ours = p.copy()
    opt = numadam.Adam(ours, lr=1e-2, eps=1e-8, convention="optax", complex_mode="magnitude")
    transform = optax.adam(1e-2, eps=1e-8)
    theirs = jnp.asarray(p)
    state = transform.init(theirs)
    for _ in range(30):
        g = random_array(rng, (64,), np.complex64)
        opt.step(g)
        updates, state = transform.update(jnp.asarray(g), state, theirs)
        theirs = optax.apply_updates(theirs, updates)
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=3e-6, atol=3e-6)
