r"""Yogi (Zaheer et al. 2018): Adam whose second moment moves additively, as optax computes it.

.. math::

    m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad
    v \leftarrow v - (1-\beta_2)\,\operatorname{sign}(v - g^2)\, g^2 \\
    p &\leftarrow p - \eta\, \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t) + \epsilon_{root}} + \epsilon}

Both moments start at ``initial_accumulator_value`` (optax: 1e-6), and
``eps`` is 1e-3 by default, as in the paper.
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core import validate
from ..core.algorithm import Algorithm, Example, Hyperparameter, StateKind
from . import _common


YogiScalars = namedtuple("YogiScalars", "grad_sign weight_decay beta1 one_minus_beta1 one_minus_beta2 "
                                        "bias_correction1 bias_correction2 lr eps eps_root one")


YogiFlags = namedtuple("YogiFlags", "decoupled_decay")


def yogi_scalars(step, h, carry) -> YogiScalars:
    beta1, beta2 = h.betas
    return element_math.scalar_fields(YogiScalars, (
        _common.grad_sign(h), h.weight_decay, beta1, 1.0 - beta1, 1.0 - beta2,
        1.0 - element_math.power_of_step(beta1, step), 1.0 - element_math.power_of_step(beta2, step), h.lr, h.eps,
        h.eps_root, 1.0,
    ))


def yogi_flags(h) -> YogiFlags:
    return YogiFlags(h.weight_decay != 0.0)


@njit(inline="always")
def yogi_rule(param, grad, state, s, flags):
    """Yogi for one real element; ``state`` is ``(exp_avg, exp_avg_sq)``."""
    exp_avg, exp_avg_sq = state
    grad = s.grad_sign * grad
    squared = grad * grad
    exp_avg = s.one_minus_beta1 * grad + s.beta1 * exp_avg
    exp_avg_sq = exp_avg_sq - s.one_minus_beta2 * element_math.sign(exp_avg_sq - squared, s.one) * squared
    update = (exp_avg / s.bias_correction1) / (math.sqrt(exp_avg_sq / s.bias_correction2 + s.eps_root) + s.eps)
    if flags.decoupled_decay:
        update = update + s.weight_decay * param
    param = param - s.lr * update
    return param, (exp_avg, exp_avg_sq)


def _initial_accumulator(h):
    return h.initial_accumulator_value


YOGI = Algorithm(
    name="yogi", title="Yogi",
    hyperparameters=(
        _common.lr(1e-2), _common.betas((0.9, 0.999)), _common.eps(1e-3),
        _common.eps_root(),
        Hyperparameter("initial_accumulator_value", 1e-6, validate.check_nonnegative,
                       "The value both moments start from (>= 0).", per_group=False),
        _common.weight_decay(0.0, r"Decoupled weight decay :math:`\lambda` (>= 0), added to the update "
                                  "as optax.add_decayed_weights does."),
        _common.maximize(),
    ),
    state=(StateKind("exp_avg", "the first moment m", initial=_initial_accumulator),
           StateKind("exp_avg_sq", "the second moment v", initial=_initial_accumulator)),
    scalars=yogi_scalars, flags=yogi_flags, rule=yogi_rule,
    doc=r"""Yogi (Zaheer et al. 2018) over a tree of arrays, updated in place.

.. math::

    m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad
    v \leftarrow v - (1-\beta_2)\,\operatorname{sign}(v - g^2)\, g^2 \\
    p &\leftarrow p - \eta\, \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t) + \epsilon_{root}} + \epsilon}

optax's ``yogi``: both moments start at ``initial_accumulator_value``.
See :doc:`/families/yogi`.""",
    example=Example('lr=0.05', 300, 0.05),
    references=(
        'Zaheer, Reddi, Sachan, Kale & Kumar, "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018.',
    ),
    step_doc=r"""Take Yogi step ``step`` on ``param`` and its state, in place.

The update of :class:`numadam.Yogi`, on single arrays; start the state at
``initial_accumulator_value`` (1e-6).""",
    step_example=r""">>> import numpy as np, numadam
>>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
>>> m, v = np.full(2, 1e-6), np.full(2, 1e-6)
>>> numadam.yogi_step(p, g, m, v, step=1, lr=0.1)
>>> bool(p[0] < 1.0 and p[1] > -2.0)
True""",
)
