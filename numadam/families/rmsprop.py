r"""RMSprop (Tieleman & Hinton 2012), centered (Graves 2013) and with momentum, in
``torch.optim.RMSprop``'s arithmetic.

.. math::

    g &\leftarrow g + \lambda p, \qquad v \leftarrow \alpha v + (1 - \alpha) g^2, \qquad
    \bar g \leftarrow \bar g + (1 - \alpha)(g - \bar g) \ \text{(centered)} \\
    d &= \sqrt{v - \bar g^2} + \epsilon \ \text{(centered)}, \qquad d = \sqrt{v} + \epsilon \ \text{(otherwise)} \\
    b &\leftarrow \mu b + g / d, \quad p \leftarrow p - \eta\, b \ \text{(momentum)}, \qquad
    p \leftarrow p - \eta\, g / d \ \text{(otherwise)}

Adam is RMSprop with a momentum of the gradient and bias corrections; RMSprop
divides each coordinate's step by the root of a running average of its
squared gradients, and nothing else.
"""

from collections import namedtuple
import math

from numba import njit

from ..core import element_math
from ..core import validate
from ..core.algorithm import Algorithm, Example, Hyperparameter, StateKind
from . import _common


RMSpropScalars = namedtuple("RMSpropScalars", "grad_sign weight_decay alpha one_minus_alpha momentum lr eps")


RMSpropFlags = namedtuple("RMSpropFlags", "l2_decay centered momentum")


def rmsprop_scalars(step, h, carry) -> RMSpropScalars:
    return element_math.scalar_fields(RMSpropScalars, (
        -1.0 if h.maximize else 1.0, h.weight_decay, h.alpha, 1.0 - h.alpha, h.momentum, h.lr, h.eps,
    ))


def rmsprop_flags(h) -> RMSpropFlags:
    return RMSpropFlags(h.weight_decay != 0.0, h.centered, h.momentum > 0.0)


@njit(inline="always")
def rmsprop_rule(param, grad, state, s, flags):
    """RMSprop for one real element; ``state`` is ``(square_avg, grad_avg, momentum_buffer)`` (the last
    two used only when centered, and with momentum)."""
    square_avg, grad_avg, buffer = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    square_avg = square_avg * s.alpha + s.one_minus_alpha * (grad * grad)
    if flags.centered:
        grad_avg = element_math.torch_lerp(grad_avg, grad, s.one_minus_alpha, s.alpha)
        denominator = math.sqrt(square_avg - grad_avg * grad_avg) + s.eps
    else:
        denominator = math.sqrt(square_avg) + s.eps
    if flags.momentum:
        buffer = buffer * s.momentum + grad / denominator
        param = param - s.lr * buffer
    else:
        param = param - (s.lr * grad) / denominator
    return param, (square_avg, grad_avg, buffer)


RMSPROP = Algorithm(
    name="rmsprop", title="RMSprop",
    hyperparameters=(
        _common.lr(1e-2),
        Hyperparameter("alpha", 0.99, validate.check_beta,
                       r"Smoothing constant :math:`\alpha` in [0, 1) of the running average of squares."),
        _common.eps(1e-8),
        _common.l2_weight_decay(),
        _common.momentum(),
        Hyperparameter("centered", False, validate.check_flag,
                       "Divide by the root of the running variance instead (the average of squares minus the "
                       "square of the running average of the gradient)."),
        _common.maximize(),
    ),
    state=(StateKind("square_avg", "the running average of squared gradients v", nonnegative=True),
           StateKind("grad_avg", "the running average of the gradient", present=lambda h: h.centered,
                     when="centered=True"),
           StateKind("momentum_buffer", "the momentum b", present=lambda h: h.momentum > 0.0,
                     when="momentum > 0")),
    scalars=rmsprop_scalars, flags=rmsprop_flags, rule=rmsprop_rule,
    doc=r"""RMSprop (Tieleman & Hinton 2012) over a tree of arrays, updated in place.

.. math::

    v \leftarrow \alpha v + (1 - \alpha) g^2, \qquad p \leftarrow p - \eta\, \frac{g}{\sqrt{v} + \epsilon}

with :math:`g` the gradient plus :math:`\lambda p`, ``centered`` dividing by
the root of the running variance and ``momentum`` accumulating the divided
gradient: ``torch.optim.RMSprop``'s update. See :doc:`/families/rmsprop`.""",
    example=Example("lr=0.01", 300, 0.05),
    references=(
        'Tieleman & Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for Machine Learning, 2012.',
        'Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850, 2013 (centered).',
    ),
    step_example=r""">>> import numpy as np, numadam
>>> p, g, v = np.array([1.0, -2.0]), np.array([0.5, -0.5]), np.zeros(2)
>>> numadam.rmsprop_step(p, g, v, step=1, lr=0.01)
>>> np.round(p, 4)            # the first step divides by sqrt(1 - alpha) |g|: 10 lr
array([ 0.9, -1.9])""",
)
