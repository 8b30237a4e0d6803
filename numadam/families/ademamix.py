r"""AdEMAMix (Pagliardini, Ablin & Grangier 2024): a fast and a slow momentum, mixed, as
apple/ml-ademamix computes it.

.. math::

    m_1 &\leftarrow \beta_1 m_1 + (1-\beta_1) g, \qquad
    m_2 \leftarrow \beta_3 m_2 + (1-\beta_3) g, \qquad
    v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
    p &\leftarrow p - \eta\left(\frac{m_1/(1-\beta_1^t) + \alpha\, m_2}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}
          + \lambda p\right)

With warm-ups, :math:`\alpha` rises linearly from 0 over ``alpha_warmup``
steps and :math:`\beta_3` rises from :math:`\beta_1` over ``beta3_warmup``
steps, linearly in the half-life :math:`\ln(1/2)/\ln\beta - 1` (the paper's
schedulers).
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core import validate
from ..core.algorithm import Algorithm, Example, Hyperparameter, StateKind
from . import _common


AdEMAMixScalars = namedtuple("AdEMAMixScalars", "beta1 one_minus_beta1 beta2 one_minus_beta2 beta3 one_minus_beta3 "
                                                "bias_correction1 bias_correction2_sqrt alpha weight_decay "
                                                "negative_lr eps")


AdEMAMixFlags = namedtuple("AdEMAMixFlags", "decoupled_decay")


def linear_warmup(step, end, start, warmup):
    """The paper's ``linear_warmup_scheduler``: from ``start`` to ``end`` over ``warmup`` steps."""
    if step < warmup:
        fraction = step / float(warmup)
        return (1.0 - fraction) * start + fraction * end
    return end


def half_life_warmup(step, end, start, warmup):
    """The paper's ``linear_hl_warmup_scheduler``: linear in the half-life of ``beta``."""
    def half_life(beta, eps=1e-8):
        return math.log(0.5) / math.log(beta + eps) - 1

    if step < warmup:
        fraction = step / float(warmup)
        return math.pow(0.5, 1 / ((1.0 - fraction) * half_life(start) + fraction * half_life(end) + 1))
    return end


def ademamix_scalars(step, h, carry) -> AdEMAMixScalars:
    beta1, beta2, beta3 = h.betas
    alpha = h.alpha if h.alpha_warmup is None else linear_warmup(step, h.alpha, 0.0, h.alpha_warmup)
    if h.beta3_warmup is not None:
        beta3 = half_life_warmup(step, beta3, beta1, h.beta3_warmup)
    return element_math.scalar_fields(AdEMAMixScalars, (
        beta1, 1.0 - beta1, beta2, 1.0 - beta2, beta3, 1.0 - beta3, 1.0 - element_math.power_of_step(beta1, step),
        math.sqrt(1.0 - element_math.power_of_step(beta2, step)), alpha, h.weight_decay, -h.lr, h.eps,
    ))


def ademamix_flags(h) -> AdEMAMixFlags:
    return AdEMAMixFlags(h.weight_decay != 0.0)


@njit(inline="always")
def ademamix_rule(param, grad, state, s, flags):
    """AdEMAMix for one real element; ``state`` is ``(exp_avg_fast, exp_avg_slow, exp_avg_sq)``."""
    exp_avg_fast, exp_avg_slow, exp_avg_sq = state
    exp_avg_fast = exp_avg_fast * s.beta1 + s.one_minus_beta1 * grad
    exp_avg_slow = exp_avg_slow * s.beta3 + s.one_minus_beta3 * grad
    exp_avg_sq = exp_avg_sq * s.beta2 + s.one_minus_beta2 * grad * grad
    denom = math.sqrt(exp_avg_sq) / s.bias_correction2_sqrt + s.eps
    update = (exp_avg_fast / s.bias_correction1 + s.alpha * exp_avg_slow) / denom
    if flags.decoupled_decay:
        update = update + s.weight_decay * param
    param = param + s.negative_lr * update
    return param, (exp_avg_fast, exp_avg_slow, exp_avg_sq)


ADEMAMIX = Algorithm(
    name="ademamix", title="AdEMAMix",
    hyperparameters=(
        _common.lr(1e-3), _common.betas((0.9, 0.999, 0.9999)),
        Hyperparameter("alpha", 2.0, validate.check_nonnegative,
                       r"The weight :math:`\alpha` of the slow momentum (>= 0)."),
        Hyperparameter("beta3_warmup", None, validate.check_optional_count,
                       r"Steps over which :math:`\beta_3` rises from :math:`\beta_1`, or None."),
        Hyperparameter("alpha_warmup", None, validate.check_optional_count,
                       r"Steps over which :math:`\alpha` rises from 0, or None."),
        _common.eps(1e-8),
        _common.weight_decay(0.0, r"Decoupled weight decay :math:`\lambda` (>= 0), added to the update."),
    ),
    state=(StateKind("exp_avg_fast", "the fast momentum m1"),
           StateKind("exp_avg_slow", "the slow momentum m2"),
           StateKind("exp_avg_sq", "the second moment v", nonnegative=True)),
    scalars=ademamix_scalars, flags=ademamix_flags, rule=ademamix_rule,
    doc=r"""AdEMAMix (Pagliardini et al. 2024) over a tree of arrays, updated in place.

.. math::

    p \leftarrow p - \eta\left(\frac{m_1/(1-\beta_1^t) + \alpha\, m_2}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}
    + \lambda p\right)

with a fast EMA :math:`m_1` (:math:`\beta_1`), a slow one :math:`m_2`
(:math:`\beta_3`), and :math:`\alpha`, :math:`\beta_3` warmed up as in the
paper (``alpha_warmup``, ``beta3_warmup``): apple/ml-ademamix's update. Its
state is three arrays per parameter (36 bytes of traffic per float32
element). See :doc:`/families/ademamix`.""",
    example=Example('lr=0.02, alpha=1.0, beta3_warmup=50, alpha_warmup=50', 300, 0.1),
    references=(
        'Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older", 2024.',
    ),
    step_example=r""">>> import numpy as np, numadam
>>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
>>> fast, slow, v = np.zeros(2), np.zeros(2), np.zeros(2)
>>> numadam.ademamix_step(p, g, fast, slow, v, step=1, lr=0.1)
>>> bool(p[0] < 1.0 and p[1] > -2.0)
True""",
)
