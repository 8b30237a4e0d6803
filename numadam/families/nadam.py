r"""NAdam (Dozat 2016): Adam with Nesterov momentum, in torch's, Keras's and optax's arithmetic.

With :math:`\mu_t = \beta_1 (1 - \tfrac12\, 0.96^{t\psi})` (torch; Keras uses
:math:`0.96^t`) and the running product :math:`\Pi_t = \prod_{i \le t} \mu_i`:

.. math::

    m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
    \qquad d = \sqrt{v / (1-\beta_2^t)} + \epsilon \\
    p &\leftarrow p - \eta\,\frac{1-\mu_t}{1-\Pi_t}\,\frac{g}{d}
                    - \eta\,\frac{\mu_{t+1}}{1-\Pi_t\,\mu_{t+1}}\,\frac{m}{d}

optax (``adam(nesterov=True)``) keeps :math:`\beta_1` constant instead:
:math:`\hat m = \beta_1 m / (1-\beta_1^{t+1}) + (1-\beta_1) g / (1-\beta_1^t)`,
:math:`p \leftarrow p - \eta\, \hat m / (\sqrt{v/(1-\beta_2^t) + \epsilon_{root}} + \epsilon)`.
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core import validate
from ..core.algorithm import Algorithm, Carry, Example, Hyperparameter, StateKind
from . import _common


NAdamScalars = namedtuple("NAdamScalars", "grad_sign weight_decay decay_factor beta1 one_minus_beta1 beta2 "
                                          "one_minus_beta2 bias_correction2 grad_coefficient grad_divisor "
                                          "momentum_coefficient momentum_divisor lr eps eps_root")


NAdamFlags = namedtuple("NAdamFlags", "l2_decay decoupled_decay keras optax")


def _momentum(h, step):
    """:math:`\\mu_t`: torch's (with ``momentum_decay``) or Keras's (0.96^t)."""
    rate = 1.0 if h.convention == "keras" else h.momentum_decay  # 0.96^(t * 1.0) is 0.96^t
    return h.betas[0] * (1.0 - 0.5 * 0.96 ** (step * rate))


def _advance(step, h, carry):
    (momentum_product,) = carry
    return (momentum_product * _momentum(h, step),)


def nadam_scalars(step, h, carry) -> NAdamScalars:
    """The scalars of step ``step`` (this runs every step: no call it can spare)."""
    beta1, beta2 = h.betas
    lr, weight_decay = h.lr, h.weight_decay
    (product,) = carry  # of mu_1 .. mu_t
    convention = h.convention
    if convention == "optax":
        grad_coefficient, grad_divisor = 1.0 - beta1, 1.0 - element_math.power_of_step(beta1, step)
        momentum_coefficient, momentum_divisor = beta1, 1.0 - element_math.power_of_step(beta1, step + 1)
    else:
        rate = 1.0 if convention == "keras" else h.momentum_decay  # as in _momentum, written out
        momentum = beta1 * (1.0 - 0.5 * 0.96 ** (step * rate))
        momentum_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * rate))
        grad_coefficient, grad_divisor = 1.0 - momentum, 1.0 - product
        momentum_coefficient, momentum_divisor = momentum_next, 1.0 - product * momentum_next
        if convention == "torch":  # torch folds -lr into the coefficients
            grad_coefficient, grad_divisor = -lr * grad_coefficient / grad_divisor, 1.0
            momentum_coefficient, momentum_divisor = -lr * momentum_coefficient / momentum_divisor, 1.0
    return element_math.scalar_fields(NAdamScalars, (
        -1.0 if h.maximize else 1.0, weight_decay,
        1.0 - lr * weight_decay if h.decoupled_weight_decay else 1.0,
        beta1, 1.0 - beta1, beta2, 1.0 - beta2, 1.0 - element_math.power_of_step(beta2, step),
        grad_coefficient, grad_divisor, momentum_coefficient, momentum_divisor,
        lr, h.eps, h.eps_root,
    ))


def nadam_flags(h) -> NAdamFlags:
    decays = h.weight_decay != 0.0
    return NAdamFlags(decays and not h.decoupled_weight_decay, decays and h.decoupled_weight_decay,
                      h.convention == "keras", h.convention == "optax")


@njit(inline="always")
def nadam_rule(param, grad, state, s, flags):
    """NAdam for one real element; ``state`` is ``(exp_avg, exp_avg_sq)``."""
    exp_avg, exp_avg_sq = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    if flags.keras:
        exp_avg = exp_avg + (grad - exp_avg) * s.one_minus_beta1
        exp_avg_sq = exp_avg_sq + (grad * grad - exp_avg_sq) * s.one_minus_beta2
        nesterov = (s.momentum_coefficient * exp_avg) / s.momentum_divisor + (s.grad_coefficient * grad) / s.grad_divisor
        if flags.decoupled_decay:
            param = param - param * (s.lr * s.weight_decay)
        param = param - (nesterov * s.lr) / (math.sqrt(exp_avg_sq / s.bias_correction2) + s.eps)
    elif flags.optax:
        exp_avg = s.beta1 * exp_avg + s.one_minus_beta1 * grad
        exp_avg_sq = s.beta2 * exp_avg_sq + s.one_minus_beta2 * (grad * grad)
        nesterov = s.momentum_coefficient * (exp_avg / s.momentum_divisor) + s.grad_coefficient * (grad / s.grad_divisor)
        update = nesterov / (math.sqrt(exp_avg_sq / s.bias_correction2 + s.eps_root) + s.eps)
        if flags.decoupled_decay:
            update = update + s.weight_decay * param
        param = param - s.lr * update
    else:
        param, exp_avg, exp_avg_sq = _common.torch_decay_and_moments(param, grad, exp_avg, exp_avg_sq, s, flags)
        denom = math.sqrt(exp_avg_sq / s.bias_correction2) + s.eps
        param = param + (s.grad_coefficient * grad) / denom
        param = param + (s.momentum_coefficient * exp_avg) / denom
    return param, (exp_avg, exp_avg_sq)


NADAM = Algorithm(
    name="nadam", title="NAdam",
    hyperparameters=(
        _common.lr(2e-3), _common.betas((0.9, 0.999)), _common.eps(1e-8),
        _common.weight_decay(0.0),
        Hyperparameter("momentum_decay", 4e-3, validate.check_nonnegative,
                       r"torch's :math:`\psi` in :math:`\mu_t = \beta_1(1 - \frac12 0.96^{t\psi})` (>= 0)."),
        _common.decoupled_weight_decay(), _common.maximize(),
        _common.convention(("torch", "keras", "optax"),
                           "Whose arithmetic: 'torch' (the default), 'keras' (0.96^t) or 'optax' (constant beta1)."),
        _common.eps_root(),
    ),
    state=(StateKind("exp_avg", "the first moment m"),
           StateKind("exp_avg_sq", "the second moment v", nonnegative=True)),
    scalars=nadam_scalars, flags=nadam_flags, rule=nadam_rule,
    carry=Carry(("momentum_product",), (1.0,), _advance),
    check_combination=_common.eps_root_needs_optax,
    doc=r"""NAdam (Dozat 2016): Adam with Nesterov momentum, over a tree of arrays, in place.

.. math::

    \mu_t &= \beta_1\bigl(1 - \tfrac12\, 0.96^{t\psi}\bigr), \qquad
    m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
    p &\leftarrow p - \eta\,\frac{1-\mu_t}{1-\prod_{i\le t}\mu_i}\,\frac{g}{d}
           - \eta\,\frac{\mu_{t+1}}{1-\prod_{i\le t+1}\mu_i}\,\frac{m}{d},
    \qquad d = \sqrt{v/(1-\beta_2^t)} + \epsilon

with :math:`\psi` = ``momentum_decay``: ``torch.optim.NAdam``'s update, L2 or
(``decoupled_weight_decay``) decoupled decay included. ``convention="keras"``
gives Keras 3's (:math:`0.96^t`, no :math:`\psi`), ``convention="optax"``
optax's ``nadam`` (constant :math:`\beta_1`, ``eps_root``). The running
product of the :math:`\mu_i` is kept on the host and saved in ``state_dict``
(``"carry"``). Options as :class:`numadam.Adam`'s; see :doc:`/families/nadam`.""",
    example=Example('lr=0.1', 200, 0.05),
    references=(
        'Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.',
    ),
    step_doc=r"""``carry`` holds the
running product of the momentum schedule, ``(momentum_product,)``: pass
``None`` on the first step and what the previous call returned after it.""",
    step_example=r""">>> import numpy as np, numadam
>>> p, g = np.array([1.0, -2.0]), np.array([0.5, 0.5])
>>> m, v = np.zeros(2), np.zeros(2)
>>> carry = numadam.nadam_step(p, g, m, v, step=1, lr=0.1)
>>> carry = numadam.nadam_step(p, g, m, v, step=2, lr=0.1, carry=carry)
>>> bool(p[0] < 1.0 and p[1] < -2.0)
True""",
)
