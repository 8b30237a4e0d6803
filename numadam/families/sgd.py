r"""SGD with momentum, dampening and Nesterov momentum, in ``torch.optim.SGD``'s arithmetic.

.. math::

    g &\leftarrow g + \lambda p \\
    b &\leftarrow g \ \text{(the first step)}, \qquad
    b \leftarrow \mu b + (1 - \tau) g \ \text{(after it)} \\
    d &= g + \mu b \ \text{(Nesterov)}, \qquad d = b \ \text{(otherwise)}, \qquad
    p \leftarrow p - \eta\, d

with momentum :math:`\mu`, dampening :math:`\tau` and L2 decay :math:`\lambda`;
without momentum, :math:`d = g` and no state is kept (Robbins & Monro 1951;
Polyak 1964; Sutskever et al. 2013).
"""

from collections import namedtuple

from numba import njit

from ..core import element_math, validate
from ..core.algorithm import Algorithm, Example, Hyperparameter, StateKind
from . import _common


#: ``first``: 1 on the first step, where the momentum buffer starts as the gradient (torch's).
SGDScalars = namedtuple("SGDScalars", "grad_sign weight_decay momentum one_minus_dampening first lr")


SGDFlags = namedtuple("SGDFlags", "l2_decay momentum nesterov")


def sgd_scalars(step, h, carry) -> SGDScalars:
    return element_math.scalar_fields(SGDScalars, (
        -1.0 if h.maximize else 1.0, h.weight_decay, h.momentum, 1.0 - h.dampening, 1.0 if step == 1 else 0.0, h.lr,
    ))


def sgd_flags(h) -> SGDFlags:
    return SGDFlags(h.weight_decay != 0.0, h.momentum != 0.0, h.nesterov)


@njit(inline="always")
def sgd_rule(param, grad, state, s, flags):
    """SGD for one real element; ``state`` is ``(momentum_buffer,)`` (unused without momentum)."""
    (buffer,) = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    if flags.momentum:
        if s.first != 0:
            buffer = grad
        else:
            buffer = buffer * s.momentum + s.one_minus_dampening * grad
        if flags.nesterov:
            grad = grad + s.momentum * buffer
        else:
            grad = buffer
    return param - s.lr * grad, (buffer,)


def _check_nesterov(h):
    if h.nesterov and (h.momentum <= 0.0 or h.dampening != 0.0):
        raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0 (as torch.optim.SGD); got "
                         f"momentum={h.momentum!r}, dampening={h.dampening!r}")


SGD_ALGORITHM = Algorithm(
    name="sgd", title="SGD",
    hyperparameters=(
        _common.lr(1e-3),
        _common.momentum(),
        Hyperparameter("dampening", 0.0, validate.check_nonnegative,
                       r"Dampening :math:`\tau` (>= 0) of the gradient added into the momentum."),
        _common.l2_weight_decay(),
        Hyperparameter("nesterov", False, validate.check_flag,
                       "Nesterov momentum: step along the gradient plus the momentum (needs momentum > 0 "
                       "and dampening = 0)."),
        _common.maximize(),
    ),
    state=(StateKind("momentum_buffer", "the momentum b", present=lambda h: h.momentum != 0.0,
                     when="momentum != 0"),),
    scalars=sgd_scalars, flags=sgd_flags, rule=sgd_rule,
    check_combination=_check_nesterov,
    doc=r"""Stochastic gradient descent, with momentum, over a tree of arrays, updated in place.

.. math::

    b \leftarrow \mu b + (1 - \tau)(g + \lambda p), \qquad
    p \leftarrow p - \eta\, b \quad \text{(Nesterov: } p \leftarrow p - \eta\,(g + \lambda p + \mu b)\text{)}

the momentum buffer :math:`b` starting as the first gradient: ``torch.optim.SGD``'s
update. Without momentum no state is kept. See :doc:`/families/sgd`.""",
    example=Example("lr=0.1, momentum=0.9", 300, 0.05),
    references=(
        'Robbins & Monro, "A Stochastic Approximation Method", Ann. Math. Statist. 22, 1951.',
        'Polyak, "Some methods of speeding up the convergence of iteration methods", USSR Comput. Math. '
        'Math. Phys. 4, 1964.',
        'Sutskever et al., "On the importance of initialization and momentum in deep learning", ICML 2013.',
    ),
    step_example=r""">>> import numpy as np, numadam
>>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
>>> numadam.sgd_step(p, g, step=1, lr=0.1)
>>> p
array([ 0.95, -1.95])""",
)
