"""A slow, obviously-correct NumPy Adam, written from the papers.

Kingma & Ba (2015), Algorithm 1, with the conventions torch.optim.Adam/AdamW
use where the papers leave a choice:

- ``eps`` is added after the bias-corrected square root:
  ``p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)``;
- AMSGrad (Reddi et al. 2018) keeps the running maximum of the raw ``v``;
- decoupled weight decay (Loshchilov & Hutter 2019) multiplies ``p`` by
  ``1 - lr*wd`` before the moment updates; L2 decay adds ``wd*p`` to ``g``;
- complex numbers are pairs of reals.

:func:`adam_exact` evaluates the formula in the array's real dtype, left to
right, with scalars derived in float64 and rounded once: numadam promises
bit-for-bit equality with it on the CPU. :func:`adam_paper` evaluates the
paper's own arrangement (bias-corrected m-hat and v-hat) in float64: numadam
must agree with it to rounding.
"""

import math
from typing import Callable, NamedTuple

import numpy as np


def as_real(x):
    """Complex arrays as a trailing axis of (real, imag); real arrays as they are (copied)."""
    x = np.asarray(x)
    if x.dtype.kind == "c":
        return np.stack([x.real, x.imag], axis=-1)
    return x.copy()


def from_real(x, dtype):
    x = np.asarray(x)
    if np.dtype(dtype).kind == "c":
        return np.asarray(x[..., 0] + 1j * x[..., 1]).astype(dtype)
    return x.astype(dtype)


def adam_exact(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step, lr, betas, eps,
               weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False, maximize=False):
    """One step; returns new ``(param, exp_avg, exp_avg_sq, max_exp_avg_sq)`` arrays."""
    dtype = np.asarray(param).dtype
    p, g, m, v = (as_real(a) for a in (param, grad, exp_avg, exp_avg_sq))
    real = p.dtype.type
    beta1, beta2 = betas
    if maximize:
        g = -g
    if weight_decay != 0 and not decoupled_weight_decay:
        g = g + real(weight_decay) * p
    if weight_decay != 0 and decoupled_weight_decay:
        p = real(1 - lr * weight_decay) * p
    m = real(beta1) * m + real(1 - beta1) * g
    v = real(beta2) * v + real(1 - beta2) * (g * g)
    if amsgrad:
        peak = np.maximum(as_real(max_exp_avg_sq), v)
        second_moment = peak
    else:
        peak = None
        second_moment = v
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = np.sqrt(second_moment) / real(math.sqrt(bias_correction2)) + real(eps)
    p = p - real(lr / bias_correction1) * m / denom
    out = [from_real(a, dtype) for a in (p, m, v)]
    out.append(None if peak is None else from_real(peak, dtype))
    return tuple(out)


def adam_paper(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step, lr, betas, eps,
               weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False, maximize=False):
    """Algorithm 1 of Kingma & Ba in float64: m-hat, v-hat, then the step. Returns float64 reals."""
    p, g, m, v = (as_real(a).astype(np.float64) for a in (param, grad, exp_avg, exp_avg_sq))
    beta1, beta2 = betas
    if maximize:
        g = -g
    if decoupled_weight_decay:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    if amsgrad:
        v_max = np.maximum(as_real(max_exp_avg_sq).astype(np.float64), v)
    else:
        v_max = v
    m_hat = m / (1 - beta1**step)
    v_hat = v_max / (1 - beta2**step)
    p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v, (v_max if amsgrad else None)


# -- the rest of the family ------------------------------------------------------------------------------
#
# Each ``<family>_reference(param, grad, state, step, carry, h)`` takes one step of the family, in
# NumPy, on copies: ``state`` maps state names to arrays, ``carry`` is the family's running host
# values (or ``()``), ``h`` a dict of every hyperparameter. It returns ``(param, state, carry)``.
# Scalars are derived in float64 from the hyperparameters (``step`` counts from 1) and rounded once
# to the real dtype; every expression is evaluated in the order the module docstrings of
# ``numadam.families`` give, so numadam must agree bit for bit.


def _reals(param, grad, state):
    """Real views (complex as pairs) of param, grad and the state, copied, and the real scalar type."""
    p, g = as_real(param), as_real(grad)
    return p, g, {name: as_real(value) for name, value in state.items()}, p.dtype.type


def _back(param, state, dtype):
    return from_real(param, dtype), {name: from_real(value, dtype) for name, value in state.items()}


def _decay_and_sign(p, g, h, real, decoupled_form="torch"):
    """``maximize`` and weight decay before a step: L2 into g, or torch's p(1 - lr wd)."""
    if h.get("maximize"):
        g = -g
    if h["weight_decay"] != 0 and not h.get("decoupled_weight_decay", False):
        g = g + real(h["weight_decay"]) * p
    if h["weight_decay"] != 0 and h.get("decoupled_weight_decay", False) and decoupled_form == "torch":
        p = real(1 - h["lr"] * h["weight_decay"]) * p
    return p, g


def adam_reference(param, grad, state, step, carry, h):
    """Adam in the five conventions (torch, keras, sklearn, optax, deepspeed)."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    lr, wd, convention = h["lr"], h["weight_decay"], h["convention"]
    if convention == "deepspeed":  # DeepSpeed keeps its betas as C floats
        beta1, beta2 = float(np.float32(beta1)), float(np.float32(beta2))
    decoupled = wd != 0 and h["decoupled_weight_decay"]
    p, g = _decay_and_sign(p, g, h, real, decoupled_form=None)
    m, v = s["exp_avg"], s["exp_avg_sq"]
    if convention == "keras":
        m = m + (g - m) * real(1 - beta1)
        v = v + (g * g - v) * real(1 - beta2)
    else:
        m = real(beta1) * m + real(1 - beta1) * g
        v = real(beta2) * v + real(1 - beta2) * (g * g)
    bc1, bc2 = 1 - beta1**step, 1 - beta2**step
    second = v / real(bc2) if convention == "optax" else v
    if h["amsgrad"]:
        second = s["max_exp_avg_sq"] = np.maximum(s["max_exp_avg_sq"], second)
    if convention == "optax":
        update = (m / real(bc1)) / (np.sqrt(second + real(h["eps_root"])) + real(h["eps"]))
        if decoupled:
            update = update + real(wd) * p
        p = p - real(lr) * update
    elif convention in ("keras", "sklearn"):
        if decoupled:
            p = p - p * real(wd * lr)
        p = p - (m * real(lr * math.sqrt(bc2) / bc1)) / (np.sqrt(second) + real(h["eps"]))
    elif convention == "deepspeed":  # one division: sqrt(v) times the reciprocal of sqrt(bc2)
        if decoupled:
            p = p - real(wd * lr) * p
        p = p - m / (np.sqrt(second) * real(1 / math.sqrt(bc2)) + real(h["eps"])) * real(lr / bc1)
    else:
        if decoupled:
            p = real(1 - lr * wd) * p
        p = p - real(lr / bc1) * m / (np.sqrt(second) / real(math.sqrt(bc2)) + real(h["eps"]))
    s["exp_avg"], s["exp_avg_sq"] = m, v
    return (*_back(p, s, dtype), carry)


def nadam_reference(param, grad, state, step, carry, h):
    """NAdam (Dozat 2016) as torch, Keras and optax compute it; ``carry`` is the mu product."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    lr, wd, convention = h["lr"], h["weight_decay"], h["convention"]
    decoupled = wd != 0 and h["decoupled_weight_decay"]
    p, g = _decay_and_sign(p, g, h, real, decoupled_form="torch" if convention == "torch" else None)
    m, v = s["exp_avg"], s["exp_avg_sq"]
    bc2 = 1 - beta2**step

    def mu(t):
        exponent = t if convention == "keras" else t * h["momentum_decay"]
        return beta1 * (1 - 0.5 * 0.96**exponent)

    (product,) = carry
    product = product * mu(step)  # kept in every convention (optax's update does not use it)
    if convention == "torch":
        m = m + real(1 - beta1) * (g - m)
        v = real(beta2) * v + real(1 - beta2) * (g * g)
        denom = np.sqrt(v / real(bc2)) + real(h["eps"])
        p = p + (real(-lr * (1 - mu(step)) / (1 - product)) * g) / denom
        p = p + (real(-lr * mu(step + 1) / (1 - product * mu(step + 1))) * m) / denom
    elif convention == "keras":
        m = m + (g - m) * real(1 - beta1)
        v = v + (g * g - v) * real(1 - beta2)
        m_hat = (real(mu(step + 1)) * m) / real(1 - product * mu(step + 1)) + (real(1 - mu(step)) * g) / real(1 - product)
        if decoupled:
            p = p - p * (real(lr) * real(wd))
        p = p - (m_hat * real(lr)) / (np.sqrt(v / real(bc2)) + real(h["eps"]))
    else:
        m = real(beta1) * m + real(1 - beta1) * g
        v = real(beta2) * v + real(1 - beta2) * (g * g)
        m_hat = real(beta1) * (m / real(1 - beta1 ** (step + 1))) + real(1 - beta1) * (g / real(1 - beta1**step))
        update = m_hat / (np.sqrt(v / real(bc2) + real(h["eps_root"])) + real(h["eps"]))
        if decoupled:
            update = update + real(wd) * p
        p = p - real(lr) * update
    s["exp_avg"], s["exp_avg_sq"] = m, v
    return (*_back(p, s, dtype), (product,))


def radam_reference(param, grad, state, step, carry, h):
    """RAdam (Liu et al. 2020) as torch and optax compute it."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    lr, wd, optax = h["lr"], h["weight_decay"], h["convention"] == "optax"
    decoupled = wd != 0 and h["decoupled_weight_decay"]
    p, g = _decay_and_sign(p, g, h, real, decoupled_form=None if optax else "torch")
    m, v = s["exp_avg"], s["exp_avg_sq"]
    bc1, bc2 = 1 - beta1**step, 1 - beta2**step
    rho_inf = 2 / (1 - beta2) - 1
    rho = rho_inf - 2 * step * beta2**step / bc2
    rectified = rho >= h["threshold"] if optax else rho > h["threshold"]
    rect = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) if rectified else 0.0
    if optax:
        m = real(beta1) * m + real(1 - beta1) * g
        v = real(beta2) * v + real(1 - beta2) * (g * g)
        update = m / real(bc1)
        if rectified:
            update = real(rect) * update / (np.sqrt(v / real(bc2) + real(h["eps_root"])) + real(h["eps"]))
        if decoupled:
            update = update + real(wd) * p
        p = p - real(lr) * update
    else:
        m = m + real(1 - beta1) * (g - m)
        v = real(beta2) * v + real(1 - beta2) * (g * g)
        corrected = m / real(bc1)
        if rectified:
            adaptive = real(math.sqrt(bc2)) / (np.sqrt(v) + real(h["eps"]))
            p = p - corrected * real(lr) * adaptive * real(rect)
        else:
            p = p - corrected * real(lr)
    s["exp_avg"], s["exp_avg_sq"] = m, v
    return (*_back(p, s, dtype), carry)


def adamax_reference(param, grad, state, step, carry, h):
    """Adamax (Kingma & Ba 2015, section 7.1) as torch, Keras and optax compute it."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    lr, eps, convention = h["lr"], real(h["eps"]), h["convention"]
    p, g = _decay_and_sign(p, g, h, real)
    m, u = s["exp_avg"], s["exp_inf"]
    bc1 = 1 - beta1**step
    if convention == "keras":
        m = m + (g - m) * real(1 - beta1)
        u = np.maximum(real(beta2) * u, np.abs(g))
        p = p - (real(lr) * m) / (real(bc1) * (u + eps))
    elif convention == "optax":
        m = real(1 - beta1) * g + real(beta1) * m
        u = np.maximum(np.abs(g) + eps, real(beta2) * u)
        p = p - real(lr) * ((m / real(bc1)) / u)
    else:
        m = m + real(1 - beta1) * (g - m)
        u = np.maximum(real(beta2) * u, np.abs(g) + eps)
        p = p - (real(lr / bc1) * m) / u
    s["exp_avg"], s["exp_inf"] = m, u
    return (*_back(p, s, dtype), carry)


def adabelief_reference(param, grad, state, step, carry, h):
    """AdaBelief (Zhuang et al. 2020) as optax and adabelief-pytorch 0.2 compute it."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    lr, wd, eps, pytorch = h["lr"], h["weight_decay"], real(h["eps"]), h["convention"] == "pytorch"
    decoupled = wd != 0 and h["decoupled_weight_decay"]
    p, g = _decay_and_sign(p, g, h, real, decoupled_form="torch" if pytorch else None)
    m, belief = s["exp_avg"], s["exp_avg_var"]
    bc1, bc2 = 1 - beta1**step, 1 - beta2**step
    if pytorch:
        m = m * real(beta1) + real(1 - beta1) * g
        residual = g - m
        belief = belief * real(beta2) + real(1 - beta2) * residual * residual + eps
        rho_inf = 2 / (1 - beta2) - 1
        rho = rho_inf - 2 * step * beta2**step / bc2
        if h["rectify"] and rho >= 5:
            size = math.sqrt(bc2 * (rho - 4) / (rho_inf - 4) * (rho - 2) / rho * rho_inf / (rho_inf - 2)) / bc1 * lr
            p = p + (real(-size) * m) / (np.sqrt(belief) + eps)
        elif h["rectify"]:
            p = p + real(-(1 / bc1 * lr)) * m
        else:
            p = p + (real(-(lr / bc1)) * m) / (np.sqrt(belief) / real(math.sqrt(bc2)) + eps)
    else:
        m = real(1 - beta1) * g + real(beta1) * m
        residual = g - m
        belief = real(1 - beta2) * (residual * residual) + real(beta2) * belief + real(h["eps_root"])
        update = (m / real(bc1)) / (np.sqrt(belief / real(bc2)) + eps)
        if decoupled:
            update = update + real(wd) * p
        p = p - real(lr) * update
    s["exp_avg"], s["exp_avg_var"] = m, belief
    return (*_back(p, s, dtype), carry)


def yogi_reference(param, grad, state, step, carry, h):
    """Yogi (Zaheer et al. 2018) as optax computes it."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    if h["maximize"]:
        g = -g
    m, v = s["exp_avg"], s["exp_avg_sq"]
    squared = g * g
    m = real(1 - beta1) * g + real(beta1) * m
    v = v - real(1 - beta2) * np.sign(v - squared) * squared
    update = (m / real(1 - beta1**step)) / (np.sqrt(v / real(1 - beta2**step) + real(h["eps_root"]))
                                            + real(h["eps"]))
    if h["weight_decay"] != 0:
        update = update + real(h["weight_decay"]) * p
    p = p - real(h["lr"]) * update
    s["exp_avg"], s["exp_avg_sq"] = m, v
    return (*_back(p, s, dtype), carry)


def lion_reference(param, grad, state, step, carry, h):
    """Lion (Chen et al. 2023, Algorithm 2), as optax computes it."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    if h["maximize"]:
        g = -g
    m = s["exp_avg"]
    update = np.sign(real(1 - beta1) * g + real(beta1) * m)
    if h["weight_decay"] != 0:
        update = update + real(h["weight_decay"]) * p
    p = p - real(h["lr"]) * update
    s["exp_avg"] = real(1 - beta2) * g + real(beta2) * m
    return (*_back(p, s, dtype), carry)


def sgd_reference(param, grad, state, step, carry, h):
    """SGD with momentum (Polyak 1964), dampening and Nesterov momentum (Sutskever et al. 2013), as
    torch.optim.SGD computes it: the buffer starts as the first gradient."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    p, g = _decay_and_sign(p, g, h, real)
    momentum = h["momentum"]
    if momentum != 0:
        b = g if step == 1 else s["momentum_buffer"] * real(momentum) + real(1 - h["dampening"]) * g
        s["momentum_buffer"] = b
        g = g + real(momentum) * b if h["nesterov"] else b
    p = p - real(h["lr"]) * g
    return (*_back(p, s, dtype), carry)


def adagrad_reference(param, grad, state, step, carry, h):
    """Adagrad (Duchi, Hazan & Singer 2011) with torch.optim.Adagrad's rate decay and L2 decay."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    p, g = _decay_and_sign(p, g, h, real)
    s["sum"] = s["sum"] + g * g
    step_size = real(h["lr"] / (1 + (step - 1) * h["lr_decay"]))
    p = p - (step_size * g) / (np.sqrt(s["sum"]) + real(h["eps"]))
    return (*_back(p, s, dtype), carry)


def adadelta_reference(param, grad, state, step, carry, h):
    """Adadelta (Zeiler 2012) as torch.optim.Adadelta computes it: the ratio of two roots times the gradient."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    p, g = _decay_and_sign(p, g, h, real)
    rho, eps = real(h["rho"]), real(h["eps"])
    s["square_avg"] = s["square_avg"] * rho + real(1 - h["rho"]) * (g * g)
    delta = np.sqrt(s["acc_delta"] + eps) / np.sqrt(s["square_avg"] + eps) * g
    s["acc_delta"] = s["acc_delta"] * rho + real(1 - h["rho"]) * (delta * delta)
    p = p - real(h["lr"]) * delta
    return (*_back(p, s, dtype), carry)


def rprop_reference(param, grad, state, step, carry, h):
    """Rprop (Riedmiller & Braun 1993) as torch.optim.Rprop computes it: each element's step size grows
    by eta_plus while its gradient keeps its sign, shrinks by eta_minus when it flips (and that step is
    skipped), and the parameter moves by the gradient's sign times it."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    if h["maximize"]:
        g = -g
    if step == 1:  # torch makes the step sizes at the first step, from that step's lr
        s["step_size"] = np.full_like(s["step_size"], real(h["lr"]))
    eta_minus, eta_plus = (real(eta) for eta in h["etas"])
    low, high = (real(bound) for bound in h["step_sizes"])
    product = g * s["prev"]
    with np.errstate(invalid="ignore"):  # torch's sign of NaN is zero: factor 1, and no move
        factor = np.where(product > 0, eta_plus, np.where(product < 0, eta_minus, real(1)))
    s["step_size"] = np.clip(s["step_size"] * factor, low, high)
    g = np.where(factor == eta_minus, real(0), g)
    with np.errstate(invalid="ignore"):
        p = np.where(g > 0, p - s["step_size"], np.where(g < 0, p + s["step_size"], p))
    s["prev"] = g
    return (*_back(p, s, dtype), carry)


def asgd_reference(param, grad, state, step, carry, h):
    """ASGD (Polyak & Juditsky 1992) as torch.optim.ASGD computes it; ``carry`` is ``(eta, mu, lr)``, the
    rate and averaging weight torch computes at the end of the step before (in float64 here), and that
    step's lr."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    p, g = _decay_and_sign(p, g, h, real)
    if step == 1:
        eta, mu = h["lr"], 1.0
    else:
        previous = carry[2] if carry[2] >= 0 else h["lr"]  # no step before: the lr was this step's
        eta = previous / (1 + h["lambd"] * previous * (step - 1)) ** h["alpha"]
        mu = 1 / max(1, step - 1 - h["t0"])
    p = p * real(1 - h["lambd"] * eta)
    p = p - real(eta) * g
    s["ax"] = s["ax"] + (p - s["ax"]) * real(mu) if mu != 1 else p.copy()
    return (*_back(p, s, dtype), (eta, mu, h["lr"]))


def rmsprop_reference(param, grad, state, step, carry, h):
    """RMSprop (Tieleman & Hinton 2012), centered (Graves 2013) and with momentum, as
    torch.optim.RMSprop computes it (its lerp for the centered average)."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    p, g = _decay_and_sign(p, g, h, real)
    alpha = h["alpha"]
    v = s["square_avg"] * real(alpha) + real(1 - alpha) * (g * g)
    s["square_avg"] = v
    if h["centered"]:
        m = s["grad_avg"]
        m = m + real(1 - alpha) * (g - m) if 1 - alpha < 0.5 else g - (g - m) * real(alpha)  # torch.lerp
        s["grad_avg"] = m
        denominator = np.sqrt(v - m * m) + real(h["eps"])
    else:
        denominator = np.sqrt(v) + real(h["eps"])
    if h["momentum"] > 0:
        s["momentum_buffer"] = s["momentum_buffer"] * real(h["momentum"]) + g / denominator
        p = p - real(h["lr"]) * s["momentum_buffer"]
    else:
        p = p - (real(h["lr"]) * g) / denominator
    return (*_back(p, s, dtype), carry)


def _rmsprop_start(param, h):
    names = ["square_avg"] + (["grad_avg"] if h["centered"] else []) + (["momentum_buffer"] if h["momentum"] else [])
    return _zeros(*names)(param, h)


def ademamix_reference(param, grad, state, step, carry, h):
    """AdEMAMix (Pagliardini et al. 2024) as apple/ml-ademamix computes it, warm-ups included."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2, beta3 = h["betas"]
    alpha = h["alpha"]
    if h["alpha_warmup"] is not None and step < h["alpha_warmup"]:
        alpha = step / h["alpha_warmup"] * h["alpha"]
    if h["beta3_warmup"] is not None and step < h["beta3_warmup"]:
        half_life = lambda beta: math.log(0.5) / math.log(beta + 1e-8) - 1  # noqa: E731
        fraction = step / h["beta3_warmup"]
        beta3 = 0.5 ** (1 / ((1 - fraction) * half_life(beta1) + fraction * half_life(beta3) + 1))
    fast = s["exp_avg_fast"] * real(beta1) + real(1 - beta1) * g
    slow = s["exp_avg_slow"] * real(beta3) + real(1 - beta3) * g
    v = s["exp_avg_sq"] * real(beta2) + real(1 - beta2) * g * g
    denom = np.sqrt(v) / real(math.sqrt(1 - beta2**step)) + real(h["eps"])
    update = (fast / real(1 - beta1**step) + real(alpha) * slow) / denom
    if h["weight_decay"] != 0:
        update = update + real(h["weight_decay"]) * p
    p = p + real(-h["lr"]) * update
    s["exp_avg_fast"], s["exp_avg_slow"], s["exp_avg_sq"] = fast, slow, v
    return (*_back(p, s, dtype), carry)


def adopt_reference(param, grad, state, step, carry, h):
    """ADOPT (Taniguchi et al. 2024) as the official code and optax.contrib compute it."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    lr, wd = h["lr"], h["weight_decay"]
    p, g = _decay_and_sign(p, g, h, real, decoupled_form=None)
    m, v = s["exp_avg"], s["exp_avg_sq"]
    if step == 1:
        s["exp_avg_sq"] = v + g * g
        return (*_back(p, s, dtype), carry)
    if wd != 0 and h["decoupled_weight_decay"]:
        p = p + real(-lr * wd) * p
    normed = g / np.maximum(np.sqrt(v), real(h["eps"]))
    if h["clip_lambda"] is not None:
        clip = real(float(step - 1) ** h["clip_lambda"])
        normed = np.clip(normed, -clip, clip)
    if h["convention"] == "optax":
        m = real(1 - beta1) * normed + real(beta1) * m
    else:
        m = m + real(1 - beta1) * (normed - m)
    p = p + real(-lr) * m
    s["exp_avg"], s["exp_avg_sq"] = m, v * real(beta2) + real(1 - beta2) * g * g
    return (*_back(p, s, dtype), carry)


def schedule_free_adamw_reference(param, grad, state, step, carry, h):
    """Schedule-free AdamW (Defazio et al. 2024) as facebookresearch/schedule_free computes it.

    ``param`` is y; ``carry`` is ``(lr_max, weight_sum)``.
    """
    dtype = np.asarray(param).dtype
    y, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    k = step - 1
    lr = h["lr"] * ((k + 1) / h["warmup_steps"] if k < h["warmup_steps"] else 1.0)
    lr_max, weight_sum = carry
    lr_max = max(lr, lr_max)
    weight = ((k + 1) ** h["r"]) * (lr_max ** h["weight_lr_power"])
    weight_sum = weight_sum + weight
    c = weight / weight_sum if weight_sum != 0 else 0.0
    z, v = s["z"], s["exp_avg_sq"] * real(beta2) + real(1 - beta2) * g * g
    normalized = g / (np.sqrt(v / real(1 - beta2 ** (k + 1))) + real(h["eps"]))
    if h["weight_decay"] != 0:
        normalized = normalized + real(h["weight_decay"]) * y
    if c < 0.5:  # torch.lerp(y, z, c)
        y = y + real(c) * (z - y)
    else:
        y = z - (z - y) * real(1 - c)
    y = y + real(lr * (beta1 * (1 - c) - 1)) * normalized
    s["z"], s["exp_avg_sq"] = z - real(lr) * normalized, v
    return (*_back(y, s, dtype), (lr_max, weight_sum))


def lamb_reference(param, grad, state, step, carry, h):
    """LAMB (You et al. 2020) as optax (and apex) compute it: one trust ratio per array.

    The norms are taken in float64 over the real numbers of the array.
    """
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    m = real(1 - beta1) * g + real(beta1) * s["exp_avg"]
    v = real(1 - beta2) * (g * g) + real(beta2) * s["exp_avg_sq"]
    r = (m / real(1 - beta1**step)) / (np.sqrt(v / real(1 - beta2**step) + real(h["eps_root"])) + real(h["eps"]))
    if h["weight_decay"] != 0:
        r = r + real(h["weight_decay"]) * p
    ratio = 1.0
    param_norm = math.sqrt(float(np.sum(p.astype(np.float64) ** 2)))
    direction_norm = math.sqrt(float(np.sum(r.astype(np.float64) ** 2)))
    if param_norm and direction_norm and not (h["convention"] == "apex" and h["weight_decay"] == 0):
        ratio = param_norm / direction_norm
    p = p - real(h["lr"]) * (r * real(ratio))
    s["exp_avg"], s["exp_avg_sq"] = m, v
    return (*_back(p, s, dtype), carry)


def sparse_adam_reference(param, grad, state, step, carry, h):
    """torch.optim.SparseAdam on every row (a dense gradient lists them all): the moments moved
    toward g and g^2, eps added to sqrt(v), the step size lr sqrt(1 - beta2^t) / (1 - beta1^t)."""
    dtype = np.asarray(param).dtype
    p, g, s, real = _reals(param, grad, state)
    beta1, beta2 = h["betas"]
    if h["maximize"]:
        g = -g
    m = s["exp_avg"] + (g - s["exp_avg"]) * real(1 - beta1)
    v = s["exp_avg_sq"] + (g * g - s["exp_avg_sq"]) * real(1 - beta2)
    step_size = h["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    p = p - real(step_size) * (m / (np.sqrt(v) + real(h["eps"])))
    s["exp_avg"], s["exp_avg_sq"] = m, v
    return (*_back(p, s, dtype), carry)


def adafactor_reference(param, grad, state, step, carry, h):
    """torch.optim.Adafactor (Shazeer & Stern 2018): row and column means of g^2 over the last two
    dimensions, moved by torch's lerp with weight t**beta2_decay; the estimate r c / max(mean r, eps1),
    at least eps1^2; the step rho max(eps2, RMS(p)) / max(1, RMS(u)/d) along u = g / sqrt(estimate),
    of a matrix taken as min(sqrt(max(mean r, eps1) / r) / sqrt(c), 1 / eps1) g (numadam's products).
    Sums of squares in float64, rounded once; eps1 None is the machine epsilon of the dtype."""
    dtype = np.asarray(param).dtype
    if np.size(param) == 0:  # nothing to step, no means to take
        return param, state, carry
    p, g, s, real = _reals(param, grad, state)
    eps1, eps2 = h["eps"]
    eps1 = np.finfo(real).eps if eps1 is None else eps1
    if h["maximize"]:
        g = -g
    weight = real(float(step) ** h["beta2_decay"])

    def lerp(start, end):
        return start + weight * (end - start) if weight < 0.5 else end - (end - start) * (real(1) - weight)

    squares = g.astype(np.float64) ** 2
    if p.ndim >= 2:
        rows, columns = p.shape[-2:]
        s["row_var"] = lerp(s["row_var"], (squares.sum(axis=-1, keepdims=True) / columns).astype(real))
        s["col_var"] = lerp(s["col_var"], (squares.sum(axis=-2, keepdims=True) / rows).astype(real))
        mean = (s["row_var"].astype(np.float64).sum(axis=-2, keepdims=True) / rows).astype(real)
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero factor: an infinite scale, capped
            row_scale = np.sqrt(np.maximum(mean, real(eps1)) / s["row_var"])
            column_scale = real(1) / np.sqrt(s["col_var"])
            cap = real(1) / np.sqrt(real(eps1 * eps1))
        scale = row_scale * column_scale  # 1 / sqrt(the estimate r c / mean), as products
        u = np.where(scale > cap, cap, scale) * g
    else:
        s["row_var"] = lerp(s["row_var"], g * g)
        u = (real(1) / np.sqrt(np.maximum(s["row_var"], real(eps1 * eps1)))) * g
    count = math.sqrt(p.size)
    alpha = max(eps2, math.sqrt(float(np.sum(p.astype(np.float64) ** 2))) / count) * min(h["lr"], 1 / step**0.5)
    scale = -alpha / max(1.0, math.sqrt(float(np.sum(u.astype(np.float64) ** 2))) / (count * h["d"]))
    if h["weight_decay"] != 0:
        p = p * real(1 - h["lr"] * h["weight_decay"])
    p = p + real(scale) * u
    return (*_back(p, s, dtype), carry)


def _adafactor_start(param, h):
    """Row and column factors at zero (a full second moment and a 1 below two dimensions)."""
    shape = np.shape(param)
    if len(shape) >= 2:
        return {"row_var": np.zeros(shape[:-1] + (1,), param.dtype),
                "col_var": np.zeros(shape[:-2] + (1, shape[-1]), param.dtype)}
    return {"row_var": np.zeros_like(param), "col_var": np.ones((), param.dtype)}


class Reference(NamedTuple):
    """A family's reference: ``step(param, grad, state, t, carry, h) -> (param, state, carry)``, the state
    before its first step (``start(param, h)``, a dict of arrays, as its paper and library start it),
    and its running host values before the first step (``carry``).

    A family whose step sums over every parameter (Prodigy's d) has no step of one parameter alone:
    its ``tree_step(params, grads, states, t, carry, h) -> (params, states, carry)`` steps all
    parameters of one group together (``step`` is then ``None``); :func:`step_tree` takes either."""

    step: Callable | None
    start: Callable
    carry: tuple = ()
    tree_step: Callable | None = None


def step_tree(method, params, grads, states, t, carry, h):
    """One step of family ``method``'s reference over a tree (one group): each parameter alone, or
    all together where its sums are the tree's. Returns the new params, states and carry."""
    reference = REFERENCES[method]
    if reference.tree_step is not None:
        return reference.tree_step(params, grads, states, t, carry, h)
    params, states, after = list(params), list(states), carry
    for k, g in enumerate(grads):
        params[k], states[k], after = reference.step(params[k], g, states[k], t, carry, h)
    return params, states, after


def prodigy_tree_reference(params, grads, states, t, carry, h):
    """Prodigy over one group (tests/reference_prodigy.py, prodigyopt's arithmetic), complex numbers
    as pairs of reals."""
    from reference_prodigy import tree_step

    dtypes = [np.asarray(p).dtype for p in params]
    real_states = [{name: as_real(value) for name, value in state.items()} for state in states]
    new_params, new_states, carry = tree_step([as_real(p) for p in params], [as_real(g) for g in grads],
                                              real_states, carry, h)
    return ([from_real(p, dtype) for p, dtype in zip(new_params, dtypes)],
            [{name: from_real(value, dtype) for name, value in state.items()}
             for state, dtype in zip(new_states, dtypes)], carry)


def _prodigy_start(param, h):
    state = {"exp_avg_sq": np.zeros_like(param), "s": np.zeros_like(param), "p0": np.array(param, copy=True)}
    return {"exp_avg": np.zeros_like(param), **state} if h["betas"][0] > 0 else state


def _zeros(*names):
    """A start of every state array at zero."""
    return lambda param, h: {name: np.zeros_like(param) for name in names}


def _adam_start(param, h):
    state = _zeros("exp_avg", "exp_avg_sq")(param, h)
    return {**state, "max_exp_avg_sq": np.zeros_like(param)} if h["amsgrad"] else state


def _yogi_start(param, h):
    """Every real number (complex: each part) at ``initial_accumulator_value``."""
    value = h["initial_accumulator_value"]
    start = np.full_like(param, value * (1 + 1j) if param.dtype.kind == "c" else value)
    return {"exp_avg": start, "exp_avg_sq": start.copy()}


#: Every family's reference, by the method name of :func:`numadam.families`.
REFERENCES = {
    "adam": Reference(adam_reference, _adam_start),
    "adamw": Reference(adam_reference, _adam_start),
    "nadam": Reference(nadam_reference, _zeros("exp_avg", "exp_avg_sq"), (1.0,)),
    "radam": Reference(radam_reference, _zeros("exp_avg", "exp_avg_sq")),
    "adamax": Reference(adamax_reference, _zeros("exp_avg", "exp_inf")),
    "adabelief": Reference(adabelief_reference, _zeros("exp_avg", "exp_avg_var")),
    "yogi": Reference(yogi_reference, _yogi_start),
    "lion": Reference(lion_reference, _zeros("exp_avg")),
    "ademamix": Reference(ademamix_reference, _zeros("exp_avg_fast", "exp_avg_slow", "exp_avg_sq")),
    "adopt": Reference(adopt_reference, _zeros("exp_avg", "exp_avg_sq")),
    "schedule_free_adamw": Reference(schedule_free_adamw_reference,
                                     lambda param, h: {"z": np.array(param, copy=True), "exp_avg_sq": np.zeros_like(param)},
                                     (-1.0, 0.0)),
    "lamb": Reference(lamb_reference, _zeros("exp_avg", "exp_avg_sq")),
    "adafactor": Reference(adafactor_reference, _adafactor_start),
    "adagrad": Reference(adagrad_reference, lambda param, h: {
        "sum": np.full_like(param, h["initial_accumulator_value"] * (1 + 1j) if param.dtype.kind == "c"
                            else h["initial_accumulator_value"])}),
    "rmsprop": Reference(rmsprop_reference, _rmsprop_start),
    "adadelta": Reference(adadelta_reference, _zeros("square_avg", "acc_delta")),
    "rprop": Reference(rprop_reference, _zeros("prev", "step_size")),
    "asgd": Reference(asgd_reference, _zeros("ax"), (0.0, 1.0, -1.0)),
    "sparse_adam": Reference(sparse_adam_reference, _zeros("exp_avg", "exp_avg_sq")),
    "sgd": Reference(sgd_reference, lambda param, h: _zeros("momentum_buffer")(param, h) if h["momentum"] else {}),
    "prodigy": Reference(None, _prodigy_start, (-1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0), prodigy_tree_reference),
}
