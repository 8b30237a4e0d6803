r"""The Adam update of one element, written once for every backend.

Numba inlines :func:`adam_update` into the CPU ``prange`` loop
(:mod:`numadam._kernels.cpu`) and numba-cuda inlines the same function into the
grid-stride CUDA kernel (:mod:`numadam._kernels.cuda`). The function has no
signature, so each target compiles it lazily for float32 and float64.

Every scalar comes precomputed by :func:`numadam._hyper.adam_scalars` and is
rounded once to the element's dtype before the loop; the rule itself contains no literal that could promote
float32 arithmetic to float64.
"""

import math

from numba import njit

#: The order of the scalars in the ``hyper`` tuple.
HYPER_FIELDS = (
    "grad_sign",
    "l2_weight_decay",
    "decay_factor",
    "beta1",
    "one_minus_beta1",
    "beta2",
    "one_minus_beta2",
    "bias_correction2_sqrt",
    "eps",
    "step_size",
)
NUM_HYPER = len(HYPER_FIELDS)


@njit(inline="always")
def adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, hyper, amsgrad, l2_decay):
    r"""Adam, AdamW and AMSGrad for one real element; returns the four new values.

    .. math::

        g &\leftarrow s\,g \;(+\; \lambda p \text{ if } l2\_decay) \\
        p &\leftarrow \delta\, p \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g \\
        v &\leftarrow \beta_2 v + (1-\beta_2)\, (g g) \\
        \hat v &\leftarrow \max(\hat v, v) \text{ if amsgrad, else } v \\
        p &\leftarrow p - \alpha_t\, m \,/\, \bigl(\sqrt{\hat v} / \sqrt{1-\beta_2^t} + \epsilon\bigr)

    with :math:`s = \pm 1` (``maximize``), :math:`\delta = 1 - \eta\lambda` for
    decoupled decay (else 1) and :math:`\alpha_t = \eta / (1-\beta_1^t)`, evaluated
    left to right. ``max_exp_avg_sq`` is returned unchanged unless ``amsgrad``.
    The maximum propagates NaN like ``numpy.maximum``.
    """
    (grad_sign, l2_weight_decay, decay_factor, beta1, one_minus_beta1, beta2,
     one_minus_beta2, bias_correction2_sqrt, eps, step_size) = hyper
    grad = grad_sign * grad
    if l2_decay:
        grad = grad + l2_weight_decay * param
    param = decay_factor * param
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * (grad * grad)
    if amsgrad:
        if exp_avg_sq > max_exp_avg_sq or exp_avg_sq != exp_avg_sq:
            max_exp_avg_sq = exp_avg_sq
        second_moment = max_exp_avg_sq
    else:
        second_moment = exp_avg_sq
    denom = math.sqrt(second_moment) / bias_correction2_sqrt + eps
    param = param - step_size * exp_avg / denom
    return param, exp_avg, exp_avg_sq, max_exp_avg_sq
