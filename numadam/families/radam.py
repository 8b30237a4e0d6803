r"""RAdam (Liu et al. 2020): Adam with the variance of its adaptive step rectified.

With :math:`\rho_\infty = 2/(1-\beta_2) - 1` and
:math:`\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)`: while :math:`\rho_t`
is above the threshold (torch: :math:`\rho_t > 5`; optax: :math:`\rho_t \ge 5`)

.. math::

    r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}, \qquad
    p \leftarrow p - \eta\, \frac{m}{1-\beta_1^t}\, \frac{\sqrt{1-\beta_2^t}}{\sqrt{v} + \epsilon}\, r_t

and before it, the un-adapted momentum step :math:`p \leftarrow p - \eta\, m/(1-\beta_1^t)`.
optax divides by :math:`\sqrt{v/(1-\beta_2^t) + \epsilon_{root}} + \epsilon` instead.
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core import validate
from ..core.algorithm import Algorithm, Example, Hyperparameter, StateKind
from . import _common


#: ``rectified``: 1 while rho_t is above the threshold, else 0.
RAdamScalars = namedtuple("RAdamScalars", "grad_sign weight_decay decay_factor beta1 one_minus_beta1 beta2 "
                                          "one_minus_beta2 bias_correction1 bias_correction2 bias_correction2_sqrt "
                                          "rectified rectification lr eps eps_root")


RAdamFlags = namedtuple("RAdamFlags", "l2_decay decoupled_decay optax")


def rectification(rho, rho_inf):
    """:math:`r_t` of :math:`\\rho_t` = ``rho``; NaN where :math:`\\rho_t \\le 4`."""
    if rho <= 4.0:
        return math.nan
    return math.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))


def radam_scalars(step, h, carry) -> RAdamScalars:
    """The scalars of step ``step`` (this runs every step: each power is taken once)."""
    beta1, beta2 = h.betas
    lr, weight_decay = h.lr, h.weight_decay
    beta2_t = element_math.power_of_step(beta2, step)
    bias_correction2 = 1.0 - beta2_t
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho = rho_inf - 2.0 * step * beta2_t / bias_correction2
    rectified = rho >= h.threshold if h.convention == "optax" else rho > h.threshold
    return element_math.scalar_fields(RAdamScalars, (
        -1.0 if h.maximize else 1.0, weight_decay,
        1.0 - lr * weight_decay if h.decoupled_weight_decay else 1.0,
        beta1, 1.0 - beta1, beta2, 1.0 - beta2, 1.0 - element_math.power_of_step(beta1, step), bias_correction2,
        math.sqrt(bias_correction2),
        1.0 if rectified else 0.0, rectification(rho, rho_inf) if rectified else 0.0, lr, h.eps, h.eps_root,
    ))


def radam_flags(h) -> RAdamFlags:
    decays = h.weight_decay != 0.0
    return RAdamFlags(decays and not h.decoupled_weight_decay, decays and h.decoupled_weight_decay,
                      h.convention == "optax")


@njit(inline="always")
def radam_rule(param, grad, state, s, flags):
    """RAdam for one real element; ``state`` is ``(exp_avg, exp_avg_sq)``."""
    exp_avg, exp_avg_sq = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    if flags.optax:
        exp_avg = s.beta1 * exp_avg + s.one_minus_beta1 * grad
        exp_avg_sq = s.beta2 * exp_avg_sq + s.one_minus_beta2 * (grad * grad)
        update = exp_avg / s.bias_correction1
        if s.rectified != 0:
            update = s.rectification * update / (math.sqrt(exp_avg_sq / s.bias_correction2 + s.eps_root) + s.eps)
        if flags.decoupled_decay:
            update = update + s.weight_decay * param
        param = param - s.lr * update
    else:
        param, exp_avg, exp_avg_sq = _common.torch_decay_and_moments(param, grad, exp_avg, exp_avg_sq, s, flags)
        corrected = exp_avg / s.bias_correction1
        if s.rectified != 0:
            adaptive = s.bias_correction2_sqrt / (math.sqrt(exp_avg_sq) + s.eps)
            param = param - corrected * s.lr * adaptive * s.rectification
        else:
            param = param - corrected * s.lr
    return param, (exp_avg, exp_avg_sq)


RADAM = Algorithm(
    name="radam", title="RAdam",
    hyperparameters=(
        _common.lr(1e-3), _common.betas((0.9, 0.999)), _common.eps(1e-8),
        _common.weight_decay(0.0), _common.decoupled_weight_decay(), _common.maximize(),
        _common.convention(("torch", "optax"), "Whose arithmetic: 'torch' (the default) or 'optax'."),
        Hyperparameter("threshold", 5.0, validate.check_nonnegative,
                       r"Rectify while :math:`\rho_t` exceeds it (torch: ``>``; optax: ``>=``)."),
        _common.eps_root(),
    ),
    state=(StateKind("exp_avg", "the first moment m"),
           StateKind("exp_avg_sq", "the second moment v", nonnegative=True)),
    scalars=radam_scalars, flags=radam_flags, rule=radam_rule,
    check_combination=_common.eps_root_needs_optax,
    doc=r"""RAdam (Liu et al. 2020) over a tree of arrays, updated in place.

.. math::

    m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
    \qquad \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t} \\
    p &\leftarrow p - \eta\,\frac{m}{1-\beta_1^t}\,\frac{\sqrt{1-\beta_2^t}}{\sqrt v + \epsilon}\, r_t
    \quad (\rho_t > 5), \qquad p \leftarrow p - \eta\,\frac{m}{1-\beta_1^t} \quad \text{(otherwise)}

``torch.optim.RAdam``'s update, L2 or decoupled decay included;
``convention="optax"`` gives optax's ``radam`` (:math:`\rho_t \ge`
``threshold``, ``eps_root``). See :doc:`/families/radam`.""",
    example=Example('lr=0.1', 300, 0.05),
    references=(
        'Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.',
    ),
    step_example=r""">>> import numpy as np, numadam
>>> p, g = np.array([1.0, -2.0]), np.array([0.5, 0.5])
>>> m, v = np.zeros(2), np.zeros(2)
>>> numadam.radam_step(p, g, m, v, step=1, lr=0.1)   # early steps: momentum only
>>> p
array([ 0.95, -2.05])""",
)
