r"""Adamax (Kingma & Ba 2015, section 7.1): Adam with the infinity norm, in torch's,
Keras's and optax's arithmetic.

.. math::

    m &\leftarrow \beta_1 m + (1-\beta_1) g \\
    \text{torch, optax:}\quad u &\leftarrow \max(\beta_2 u, |g| + \epsilon), \qquad
        p \leftarrow p - \frac{\eta}{1-\beta_1^t}\,\frac{m}{u} \\
    \text{Keras:}\quad u &\leftarrow \max(\beta_2 u, |g|), \qquad
        p \leftarrow p - \frac{\eta\, m}{(1-\beta_1^t)(u + \epsilon)}
"""

from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core.algorithm import Algorithm, Example, StateKind
from . import _common


AdamaxScalars = namedtuple("AdamaxScalars", "grad_sign weight_decay beta1 one_minus_beta1 beta2 bias_correction1 "
                                            "step_size lr eps")


AdamaxFlags = namedtuple("AdamaxFlags", "l2_decay keras optax")


def adamax_scalars(step, h, carry) -> AdamaxScalars:
    beta1, beta2 = h.betas
    bias_correction1 = 1.0 - element_math.power_of_step(beta1, step)
    return element_math.scalar_fields(AdamaxScalars, (
        _common.grad_sign(h), h.weight_decay, beta1, 1.0 - beta1, beta2, bias_correction1, h.lr / bias_correction1,
        h.lr, h.eps,
    ))


def adamax_flags(h) -> AdamaxFlags:
    return AdamaxFlags(h.weight_decay != 0.0, h.convention == "keras", h.convention == "optax")


@njit(inline="always")
def _maximum(first, second):
    """``numpy.maximum``: NaN wins."""
    if first > second or first != first:
        return first
    return second


@njit(inline="always")
def adamax_rule(param, grad, state, s, flags):
    """Adamax for one real element; ``state`` is ``(exp_avg, exp_inf)``."""
    exp_avg, exp_inf = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    if flags.keras:
        exp_avg = exp_avg + (grad - exp_avg) * s.one_minus_beta1
        exp_inf = _maximum(s.beta2 * exp_inf, abs(grad))
        param = param - (s.lr * exp_avg) / (s.bias_correction1 * (exp_inf + s.eps))
    elif flags.optax:
        exp_avg = s.one_minus_beta1 * grad + s.beta1 * exp_avg
        exp_inf = _maximum(abs(grad) + s.eps, s.beta2 * exp_inf)
        param = param - s.lr * ((exp_avg / s.bias_correction1) / exp_inf)
    else:
        exp_avg = exp_avg + s.one_minus_beta1 * (grad - exp_avg)
        exp_inf = _maximum(s.beta2 * exp_inf, abs(grad) + s.eps)
        param = param - (s.step_size * exp_avg) / exp_inf
    return param, (exp_avg, exp_inf)


ADAMAX = Algorithm(
    name="adamax", title="Adamax",
    hyperparameters=(
        _common.lr(2e-3), _common.betas((0.9, 0.999)),
        _common.eps(1e-8, r":math:`\epsilon` (>= 0): added to :math:`|g|` (torch, optax) or to :math:`u` (Keras)."),
        _common.l2_weight_decay(),
        _common.maximize(),
        _common.convention(("torch", "keras", "optax"), "Whose arithmetic: 'torch' (the default), 'keras' or 'optax'."),
    ),
    state=(StateKind("exp_avg", "the first moment m"),
           StateKind("exp_inf", "the infinity-norm moment u", nonnegative=True)),
    scalars=adamax_scalars, flags=adamax_flags, rule=adamax_rule,
    doc=r"""Adamax (Kingma & Ba 2015) over a tree of arrays, updated in place.

.. math::

    m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad
    u \leftarrow \max(\beta_2 u, |g| + \epsilon), \qquad
    p \leftarrow p - \frac{\eta}{1-\beta_1^t}\,\frac{m}{u}

``torch.optim.Adamax``'s update (L2 ``weight_decay``); ``convention="keras"``
gives Keras 3's (:math:`\epsilon` added to :math:`u`), ``convention="optax"``
optax's. The maximum propagates NaN. See :doc:`/families/adamax`.""",
    example=Example('lr=0.05', 300, 0.05),
    references=(
        'Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.1.',
    ),
    step_example=r""">>> import numpy as np, numadam
>>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
>>> m, u = np.zeros(2), np.zeros(2)
>>> numadam.adamax_step(p, g, m, u, step=1, lr=0.1)
>>> np.round(p, 6)
array([ 0.9, -1.9])""",
)
