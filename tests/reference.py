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
