r"""Lion (Chen et al. 2023): the sign of an interpolated momentum, as the paper and optax compute it.

.. math::

    u &= \operatorname{sign}\bigl(\beta_1 m + (1-\beta_1) g\bigr) \\
    p &\leftarrow p - \eta\,(u + \lambda p), \qquad m \leftarrow \beta_2 m + (1-\beta_2) g

One state array (half of Adam's), and an update of the same size for every
element: the learning rate is typically 3-10x smaller than AdamW's and the
weight decay that much larger.
"""

from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core.algorithm import Algorithm, Example, StateKind
from . import _common


LionScalars = namedtuple("LionScalars", "grad_sign weight_decay beta1 one_minus_beta1 beta2 one_minus_beta2 lr one")


LionFlags = namedtuple("LionFlags", "decoupled_decay")


def lion_scalars(step, h, carry) -> LionScalars:
    beta1, beta2 = h.betas
    return element_math.scalar_fields(LionScalars, (
        _common.grad_sign(h), h.weight_decay, beta1, 1.0 - beta1, beta2, 1.0 - beta2, h.lr, 1.0,
    ))


def lion_flags(h) -> LionFlags:
    return LionFlags(h.weight_decay != 0.0)


@njit(inline="always")
def lion_rule(param, grad, state, s, flags):
    """Lion for one real element; ``state`` is ``(exp_avg,)``."""
    (exp_avg,) = state
    grad = s.grad_sign * grad
    update = element_math.sign(s.one_minus_beta1 * grad + s.beta1 * exp_avg, s.one)
    if flags.decoupled_decay:
        update = update + s.weight_decay * param
    param = param - s.lr * update
    exp_avg = s.one_minus_beta2 * grad + s.beta2 * exp_avg
    return param, (exp_avg,)


LION = Algorithm(
    name="lion", title="Lion",
    hyperparameters=(
        _common.lr(1e-4), _common.betas((0.9, 0.99)),
        _common.weight_decay(1e-3, r"Decoupled weight decay :math:`\lambda` (>= 0), scaled by :math:`\eta`."),
        _common.maximize(),
    ),
    state=(StateKind("exp_avg", "the momentum m"),),
    scalars=lion_scalars, flags=lion_flags, rule=lion_rule,
    doc=r"""Lion (Chen et al. 2023) over a tree of arrays, updated in place.

.. math::

    p \leftarrow p - \eta\,\bigl(\operatorname{sign}(\beta_1 m + (1-\beta_1) g) + \lambda p\bigr),
    \qquad m \leftarrow \beta_2 m + (1-\beta_2) g

The paper's Algorithm 2 and optax's ``lion`` (its defaults too:
``betas=(0.9, 0.99)``, ``weight_decay=1e-3``). See :doc:`/families/lion`.""",
    example=Example('lr=0.01, weight_decay=0.0', 300, 0.05),
    references=(
        'Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.',
    ),
    step_example=r""">>> import numpy as np, numadam
>>> p, g, m = np.array([1.0, -2.0]), np.array([0.5, -0.5]), np.zeros(2)
>>> numadam.lion_step(p, g, m, step=1, lr=0.1, weight_decay=0.0)
>>> p
array([ 0.9, -1.9])""",
)
