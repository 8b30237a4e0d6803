r"""AdaBelief (Zhuang et al. 2020): Adam whose second moment is the "belief" in the gradient,
the variance of :math:`g` around its running mean, in optax's and adabelief-pytorch 0.2's arithmetic.

.. math::

    m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad
    s \leftarrow \beta_2 s + (1-\beta_2)(g - m)^2 + \epsilon_s \\
    p &\leftarrow p - \eta\, \frac{m / (1-\beta_1^t)}{\sqrt{s / (1-\beta_2^t)} + \epsilon}

:math:`\epsilon_s` is added into the state every step (optax: ``eps_root``;
adabelief-pytorch: ``eps``). adabelief-pytorch divides by
:math:`\sqrt{s}/\sqrt{1-\beta_2^t} + \epsilon` and, with ``rectify=True`` (its
default), rectifies the step as RAdam does.
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core import validate
from ..core.algorithm import Algorithm, Example, Hyperparameter, StateKind
from . import _common


#: ``adaptive``: 1 for an adaptive step, 0 for a momentum (SGD) step (rectify, early steps).
AdaBeliefScalars = namedtuple("AdaBeliefScalars", "grad_sign weight_decay decay_factor beta1 one_minus_beta1 beta2 "
                                                  "one_minus_beta2 bias_correction1 bias_correction2 "
                                                  "bias_correction2_sqrt belief_eps step_size lr eps adaptive")


AdaBeliefFlags = namedtuple("AdaBeliefFlags", "l2_decay decoupled_decay pytorch rectify")


def adabelief_scalars(step, h, carry) -> AdaBeliefScalars:
    beta1, beta2 = h.betas
    lr, weight_decay = h.lr, h.weight_decay
    bias_correction1, bias_correction2 = 1.0 - element_math.power_of_step(beta1, step), 1.0 - element_math.power_of_step(beta2, step)
    step_size, adaptive = lr / bias_correction1, 1.0
    if h.rectify:  # adabelief-pytorch 0.2's rectification, in its arithmetic
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        rho = rho_inf - 2.0 * step * element_math.power_of_step(beta2, step) / bias_correction2
        if rho >= 5.0:
            step_size = math.sqrt(bias_correction2 * (rho - 4.0) / (rho_inf - 4.0) * (rho - 2.0) / rho * rho_inf
                                  / (rho_inf - 2.0)) / bias_correction1 * lr
        else:  # its degenerated_to_sgd=True
            step_size, adaptive = 1.0 / bias_correction1 * lr, 0.0
    return element_math.scalar_fields(AdaBeliefScalars, (
        _common.grad_sign(h), weight_decay, 1.0 - lr * weight_decay,
        beta1, 1.0 - beta1, beta2, 1.0 - beta2, bias_correction1, bias_correction2, math.sqrt(bias_correction2),
        h.eps if h.convention == "pytorch" else h.eps_root, step_size, lr, h.eps, adaptive,
    ))


def adabelief_flags(h) -> AdaBeliefFlags:
    decays = h.weight_decay != 0.0
    return AdaBeliefFlags(decays and not h.decoupled_weight_decay, decays and h.decoupled_weight_decay,
                          h.convention == "pytorch", h.rectify)


@njit(inline="always")
def adabelief_rule(param, grad, state, s, flags):
    """AdaBelief for one real element; ``state`` is ``(exp_avg, exp_avg_var)``."""
    exp_avg, exp_avg_var = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    if flags.pytorch:
        if flags.decoupled_decay:
            param = param * s.decay_factor
        exp_avg = exp_avg * s.beta1 + s.one_minus_beta1 * grad
        residual = grad - exp_avg
        exp_avg_var = exp_avg_var * s.beta2 + s.one_minus_beta2 * residual * residual + s.belief_eps
        if flags.rectify:
            if s.adaptive != 0:
                param = param + (-s.step_size * exp_avg) / (math.sqrt(exp_avg_var) + s.eps)
            else:
                param = param + -s.step_size * exp_avg
        else:
            denom = math.sqrt(exp_avg_var) / s.bias_correction2_sqrt + s.eps
            param = param + (-s.step_size * exp_avg) / denom
    else:
        exp_avg = s.one_minus_beta1 * grad + s.beta1 * exp_avg
        residual = grad - exp_avg
        exp_avg_var = s.one_minus_beta2 * (residual * residual) + s.beta2 * exp_avg_var + s.belief_eps
        update = (exp_avg / s.bias_correction1) / (math.sqrt(exp_avg_var / s.bias_correction2) + s.eps)
        if flags.decoupled_decay:
            update = update + s.weight_decay * param
        param = param - s.lr * update
    return param, (exp_avg, exp_avg_var)


def _check_adabelief_combination(h):
    if h.rectify and h.convention != "pytorch":
        raise ValueError("rectify is adabelief-pytorch's; it needs convention='pytorch'")
    if h.eps_root != 0.0 and h.convention == "pytorch":
        raise ValueError("eps_root is optax's; adabelief-pytorch adds eps into the state instead "
                         f"(convention='pytorch'); got eps_root={h.eps_root!r}")


ADABELIEF = Algorithm(
    name="adabelief", title="AdaBelief",
    hyperparameters=(
        _common.lr(1e-3), _common.betas((0.9, 0.999)), _common.eps(1e-16),
        _common.eps_root(1e-16), _common.weight_decay(0.0), _common.decoupled_weight_decay(True),
        _common.maximize(),
        _common.convention(("optax", "pytorch"), "Whose arithmetic: 'optax' (the default) or "
                           "'pytorch' (adabelief-pytorch 0.2, where eps_root must be 0 and eps goes into the state)."),
        Hyperparameter("rectify", False, validate.check_flag,
                       "Rectify the step as RAdam does (adabelief-pytorch's default; convention='pytorch').",
                       per_group=False),
    ),
    state=(StateKind("exp_avg", "the first moment m"),
           StateKind("exp_avg_var", "the belief s, the second moment of g - m", nonnegative=True)),
    scalars=adabelief_scalars, flags=adabelief_flags, rule=adabelief_rule,
    check_combination=_check_adabelief_combination,
    doc=r"""AdaBelief (Zhuang et al. 2020) over a tree of arrays, updated in place.

.. math::

    m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad
    s \leftarrow \beta_2 s + (1-\beta_2)(g - m)^2 + \epsilon_{root} \\
    p &\leftarrow p - \eta\, \frac{m/(1-\beta_1^t)}{\sqrt{s/(1-\beta_2^t)} + \epsilon}

optax's ``adabelief`` (the default, with decoupled ``weight_decay`` added to
the update as ``optax.add_decayed_weights`` does); ``convention="pytorch"``
gives adabelief-pytorch 0.2's update (``eps`` added into :math:`s`, decay
:math:`p \leftarrow p(1-\eta\lambda)`, and ``rectify=True`` for its default
rectification, with ``eps_root=0``). See :doc:`/families/adabelief`.""",
    example=Example('lr=0.05', 300, 0.05),
    references=(
        'Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients", '
        'NeurIPS 2020.',
    ),
    step_example=r""">>> import numpy as np, numadam
>>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
>>> m, s = np.zeros(2), np.zeros(2)
>>> numadam.adabelief_step(p, g, m, s, step=1, lr=0.1)
>>> bool(p[0] < 1.0 and p[1] > -2.0)
True""",
)
