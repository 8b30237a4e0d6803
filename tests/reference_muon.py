r"""A slow, obviously correct NumPy Muon, one matrix at a time, as ``torch.optim.Muon`` (torch 2.13) computes it.

For a matrix :math:`W` (``shape[0] x prod(shape[1:])``) with gradient :math:`G`,
momentum buffer :math:`B`, coefficients :math:`(a, b, c)`:

.. math::

    B &\leftarrow \operatorname{lerp}(B, G, 1 - \mu), \qquad
    U = \operatorname{lerp}(G, B, \mu) \text{ (Nesterov) or } B \\
    X &= \operatorname{round}(U)^{(\top)} / \max(\operatorname{round}\|X\|_F, \epsilon), \qquad
    X \leftarrow \operatorname{round}(a X + \operatorname{round}(b A + c A^2) X),\
    A = \operatorname{round}(X X^\top) \\
    W &\leftarrow W (1 - \eta\lambda) - \eta\,r\,X^{(\top)}

with torch's ``lerp`` (:math:`x + w(y - x)` for :math:`|w| < 0.5`, else
:math:`y - (y - x)(1 - w)`), ``round`` to bfloat16 (``ml_dtypes``) or nothing
(``ns_dtype="float32"``), products in float64 of the rounded float32 values,
and :math:`r = \sqrt{\max(1, A/B)}` or :math:`0.2\sqrt{\max(A, B)}`.
"""

import math

import numpy as np


def bfloat16(x):
    """``x`` rounded to bfloat16 values (nearest, ties to even), as float32."""
    import ml_dtypes

    return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def lerp(start, end, weight):
    """torch's ``start.lerp(end, weight)`` in the arrays' dtype."""
    dtype = start.dtype.type
    weight = dtype(weight)
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (dtype(1) - weight)


def newton_schulz(update, coefficients, steps, eps, ns_dtype):
    """The orthogonalized ``update`` (float32), torch's ``_zeropower_via_newtonschulz``."""
    round_ = bfloat16 if ns_dtype == "bfloat16" else (lambda x: np.asarray(x, dtype=np.float32))
    a, b, c = coefficients
    x = round_(update)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    norm = round_(np.sqrt(np.sum(x.astype(np.float64) ** 2)))
    x = round_(x / max(norm, round_(eps)))
    for _ in range(steps):
        gram = round_(x.astype(np.float64) @ x.T.astype(np.float64))
        square = round_(b * gram.astype(np.float64) + c * (gram.astype(np.float64) @ gram.astype(np.float64)))
        x = round_(a * x.astype(np.float64) + square.astype(np.float64) @ x.astype(np.float64))
    return x.T if tall else x


def lr_ratio(adjust_lr_fn, rows, columns):
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1.0, rows / columns))
    return 0.2 * math.sqrt(max(rows, columns))


def muon_step(param, grad, buffer, *, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
              ns_coefficients=(3.4445, -4.7750, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None,
              ns_dtype="bfloat16"):
    """One Muon step of ``param`` (any shape of two or more dimensions) in place; ``buffer`` too."""
    matrix = param.reshape(param.shape[0], -1)
    g = grad.reshape(matrix.shape)
    b = buffer.reshape(matrix.shape)
    b[...] = lerp(b, g, 1 - momentum)
    update = lerp(g, b, momentum) if nesterov else b
    orthogonal = newton_schulz(update, ns_coefficients, ns_steps, eps, ns_dtype).astype(param.dtype)
    dtype = param.dtype.type
    adjusted = lr * lr_ratio(adjust_lr_fn, *matrix.shape)
    matrix[...] = matrix * dtype(1 - lr * weight_decay)
    matrix[...] = matrix - dtype(adjusted) * orthogonal
