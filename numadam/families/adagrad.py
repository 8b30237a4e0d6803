r"""Adagrad (Duchi, Hazan & Singer 2011), in ``torch.optim.Adagrad``'s arithmetic.

.. math::

    g &\leftarrow g + \lambda p, \qquad s \leftarrow s + g^2, \qquad
    \eta_t = \frac{\eta}{1 + (t - 1)\,\delta} \\
    p &\leftarrow p - \frac{\eta_t\, g}{\sqrt{s} + \epsilon}

with L2 decay :math:`\lambda`, rate decay :math:`\delta` (``lr_decay``) and the
sum of squared gradients :math:`s` starting at ``initial_accumulator_value``.
Each coordinate's rate shrinks as its gradients accumulate: large for rare
features, small for frequent ones.
"""

from collections import namedtuple
import math

from numba import njit

from ..core import element_math, validate
from ..core.algorithm import Algorithm, Example, Hyperparameter, StateKind
from . import _common


#: ``step_size``: the decayed rate :math:`\eta_t`.
AdagradScalars = namedtuple("AdagradScalars", "grad_sign weight_decay step_size eps")


AdagradFlags = namedtuple("AdagradFlags", "l2_decay")


def adagrad_scalars(step, h, carry) -> AdagradScalars:
    return element_math.scalar_fields(AdagradScalars, (
        -1.0 if h.maximize else 1.0, h.weight_decay, h.lr / (1.0 + (step - 1) * h.lr_decay), h.eps,
    ))


def adagrad_flags(h) -> AdagradFlags:
    return AdagradFlags(h.weight_decay != 0.0)


@njit(inline="always")
def adagrad_rule(param, grad, state, s, flags):
    """Adagrad for one real element; ``state`` is ``(sum,)``, the sum of squared gradients."""
    (total,) = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    total = total + grad * grad
    return param - (s.step_size * grad) / (math.sqrt(total) + s.eps), (total,)  # torch's addcdiv order


ADAGRAD = Algorithm(
    name="adagrad", title="Adagrad",
    hyperparameters=(
        _common.lr(1e-2),
        Hyperparameter("lr_decay", 0.0, validate.check_nonnegative,
                       r"Rate decay :math:`\delta` (>= 0): step :math:`t` uses :math:`\eta/(1 + (t-1)\delta)`."),
        _common.l2_weight_decay(),
        Hyperparameter("initial_accumulator_value", 0.0, validate.check_nonnegative,
                       "Where the sum of squared gradients starts (>= 0)."),
        _common.eps(1e-10),
        _common.maximize(),
    ),
    state=(StateKind("sum", "the sum of squared gradients s", initial=lambda h: h.initial_accumulator_value,
                     nonnegative=True),),
    scalars=adagrad_scalars, flags=adagrad_flags, rule=adagrad_rule,
    doc=r"""Adagrad (Duchi, Hazan & Singer 2011) over a tree of arrays, updated in place.

.. math::

    s \leftarrow s + g^2, \qquad
    p \leftarrow p - \frac{\eta}{1 + (t-1)\delta}\, \frac{g}{\sqrt{s} + \epsilon}

with :math:`g` the gradient plus :math:`\lambda p`: ``torch.optim.Adagrad``'s
update. See :doc:`/families/adagrad`.""",
    example=Example("lr=0.5", 300, 0.05),
    references=(
        'Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic '
        'Optimization", JMLR 12, 2011.',
    ),
    step_example=r""">>> import numpy as np, numadam
>>> p, g, s = np.array([1.0, -2.0]), np.array([0.5, -0.5]), np.zeros(2)
>>> numadam.adagrad_step(p, g, s, step=1, lr=0.1)
>>> np.round(p, 6)            # the first step moves each element by lr (g / |g|)
array([ 0.9, -1.9])""",
)
