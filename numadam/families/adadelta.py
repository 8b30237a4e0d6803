r"""Adadelta (Zeiler 2012), in ``torch.optim.Adadelta``'s arithmetic.

.. math::

    g &\leftarrow g + \lambda p, \qquad v \leftarrow \rho v + (1 - \rho) g^2, \\
    \Delta &= \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g, \qquad
    u \leftarrow \rho u + (1 - \rho) \Delta^2, \qquad p \leftarrow p - \eta \Delta

with L2 decay :math:`\lambda`, the running average of squared gradients
:math:`v` (``square_avg``) and of squared updates :math:`u` (``acc_delta``).
Each coordinate's step is the ratio of the two roots times its gradient: units
that match the parameter's, so the default rate is 1.
"""

from collections import namedtuple
import math

from numba import njit

from ..core import element_math, validate
from ..core.algorithm import Algorithm, Example, Hyperparameter, StateKind
from . import _common


AdadeltaScalars = namedtuple("AdadeltaScalars", "grad_sign weight_decay rho one_minus_rho eps lr")


def adadelta_scalars(step, h, carry) -> AdadeltaScalars:
    return element_math.scalar_fields(AdadeltaScalars, (
        -1.0 if h.maximize else 1.0, h.weight_decay, h.rho, 1.0 - h.rho, h.eps, h.lr,
    ))


def _check_rho(name, value):
    checked = validate.check_real(name, value)
    if not 0.0 <= checked <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; got {value!r}")
    return checked


@njit(inline="always")
def adadelta_rule(param, grad, state, s, flags):
    """Adadelta for one real element; ``state`` is ``(square_avg, acc_delta)``."""
    square_avg, acc_delta = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    square_avg = square_avg * s.rho + s.one_minus_rho * (grad * grad)
    delta = math.sqrt(acc_delta + s.eps) / math.sqrt(square_avg + s.eps) * grad
    acc_delta = acc_delta * s.rho + s.one_minus_rho * (delta * delta)
    return param - s.lr * delta, (square_avg, acc_delta)


ADADELTA = Algorithm(
    name="adadelta", title="Adadelta",
    hyperparameters=(
        _common.lr(1.0),
        Hyperparameter("rho", 0.9, _check_rho,
                       r"Smoothing constant :math:`\rho` in [0, 1] of both running averages."),
        _common.eps(1e-6, r":math:`\epsilon` (>= 0), added under both roots."),
        _common.l2_weight_decay(),
        _common.maximize(),
    ),
    state=(StateKind("square_avg", "the running average of squared gradients v", nonnegative=True),
           StateKind("acc_delta", "the running average of squared updates u", nonnegative=True)),
    scalars=adadelta_scalars, flags=_common.l2_flags, rule=adadelta_rule,
    doc=r"""Adadelta (Zeiler 2012) over a tree of arrays, updated in place.

.. math::

    v \leftarrow \rho v + (1 - \rho) g^2, \qquad
    \Delta = \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g, \qquad
    u \leftarrow \rho u + (1 - \rho) \Delta^2, \qquad p \leftarrow p - \eta \Delta

with :math:`g` the gradient plus :math:`\lambda p`: ``torch.optim.Adadelta``'s
update. See :doc:`/families/adadelta`.""",
    example=Example("lr=1.0", 1000, 0.05),
    references=(
        'Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012.',
    ),
    step_example=r""">>> import numpy as np, numadam
>>> p, g, v, u = np.array([1.0, -2.0]), np.array([0.5, -0.5]), np.zeros(2), np.zeros(2)
>>> numadam.adadelta_step(p, g, v, u, step=1, lr=1.0)
>>> bool(p[0] < 1.0 and p[1] > -2.0)   # each element moves against its gradient
True""",
)
