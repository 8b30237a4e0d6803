r"""Rprop (Riedmiller & Braun 1993), in ``torch.optim.Rprop``'s arithmetic.

Each coordinate keeps its own step size :math:`\delta` and its last gradient
:math:`g'` (a NaN gradient counts as zero, as torch's sign makes it). Where
the gradient keeps its sign the step grows, where it flips
the step shrinks and that step is skipped:

.. math::

    f &= \eta_+ \ (g g' > 0), \qquad f = \eta_- \ (g g' < 0), \qquad f = 1 \ (g g' = 0), \\
    \delta &\leftarrow \min(\max(f \delta, \delta_{\min}), \delta_{\max}), \qquad
    g \leftarrow 0 \ \text{where}\ f = \eta_-, \\
    p &\leftarrow p - \operatorname{sign}(g)\, \delta, \qquad g' \leftarrow g

with every step size starting at the learning rate of the first step. Only the gradient's sign
moves the parameter: a full-batch method, robust to the gradient's scale.
"""

from collections import namedtuple

from numba import njit

from ..core import element_math, validate
from ..core.algorithm import Algorithm, Example, Hyperparameter, StateKind
from . import _common


#: ``first``: 1 at the first step, whose ``lr`` (the group's) every step size starts at; else 0.
RpropScalars = namedtuple("RpropScalars", "grad_sign eta_minus eta_plus step_size_min step_size_max one first lr")


RpropFlags = namedtuple("RpropFlags", "")

#: The method's paper.
PAPER = ('Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP '
         'Algorithm", IEEE International Conference on Neural Networks, 1993.')


def rprop_scalars(step, h, carry) -> RpropScalars:
    eta_minus, eta_plus = h.etas
    step_size_min, step_size_max = h.step_sizes
    return element_math.scalar_fields(RpropScalars, (
        -1.0 if h.maximize else 1.0, eta_minus, eta_plus, step_size_min, step_size_max, 1.0, 1.0 if step == 1 else 0.0,
        h.lr,
    ))


def rprop_flags(h) -> RpropFlags:
    return RpropFlags()


def _check_etas(name, value):
    """``(eta_minus, eta_plus)`` with 0 < eta_minus < 1 < eta_plus, as torch asks."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (eta_minus, eta_plus); got {value!r}")
    minus, plus = (validate.check_real(f"{name}[{k}]", v) for k, v in enumerate(value))
    if not 0.0 < minus < 1.0 < plus:
        raise ValueError(f"{name} must satisfy 0 < eta_minus < 1 < eta_plus; got {value!r}")
    return (minus, plus)


def _check_step_sizes(name, value):
    """``(step_size_min, step_size_max)``, both >= 0 and in that order."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (step_size_min, step_size_max); got {value!r}")
    low, high = (validate.check_nonnegative(f"{name}[{k}]", v) for k, v in enumerate(value))
    if low > high:
        raise ValueError(f"{name} must have step_size_min <= step_size_max; got {value!r}")
    return (low, high)


@njit(inline="always")
def rprop_rule(param, grad, state, s, flags):
    """Rprop for one real element; ``state`` is ``(prev, step_size)``: the last gradient (zeroed where
    its sign flipped) and the element's step size."""
    prev, step_size = state
    if s.first != 0:  # the step sizes start at the first step's lr, as torch makes them then
        step_size = s.lr
    grad = s.grad_sign * grad
    product = grad * prev
    if product > 0:
        factor = s.eta_plus
    elif product < 0:
        factor = s.eta_minus
    else:  # zero, or NaN, whose sign torch takes as zero
        factor = s.one
    step_size = step_size * factor
    if step_size < s.step_size_min:
        step_size = s.step_size_min
    elif step_size > s.step_size_max:
        step_size = s.step_size_max
    if factor == s.eta_minus:
        grad = s.one - s.one  # zero, an infinite gradient too
    if grad > 0:  # torch's sign: a NaN gradient moves nothing
        param = param - step_size
    elif grad < 0:
        param = param + step_size
    return param, (grad, step_size)


RPROP = Algorithm(
    name="rprop", title="Rprop",
    hyperparameters=(
        _common.lr(1e-2),
        Hyperparameter("etas", (0.5, 1.2), _check_etas,
                       r"``(eta_minus, eta_plus)``: the factors :math:`\eta_-` (in (0, 1)) and :math:`\eta_+` "
                       "(> 1) that shrink and grow a step size."),
        Hyperparameter("step_sizes", (1e-6, 50.0), _check_step_sizes,
                       r"``(step_size_min, step_size_max)``: the bounds of every step size :math:`\delta`."),
        _common.maximize(),
    ),
    state=(StateKind("prev", "the last gradient g' (zero where its sign flipped)"),
           StateKind("step_size", "each element's step size, from the first step's lr", nonnegative=True)),
    scalars=rprop_scalars, flags=rprop_flags, rule=rprop_rule,
    doc=r"""Rprop (Riedmiller & Braun 1993) over a tree of arrays, updated in place.

.. math::

    \delta \leftarrow \operatorname{clip}(f \delta, \delta_{\min}, \delta_{\max}), \qquad
    p \leftarrow p - \operatorname{sign}(g)\, \delta

with :math:`f = \eta_+` where the gradient kept its sign since the last step,
:math:`\eta_-` where it flipped (that step then skipped) and 1 after a skip,
every step size starting at the first step's ``lr`` (each group's, a
schedule's): ``torch.optim.Rprop``'s update, which reads ``lr`` at that step
only. See :doc:`/families/rprop`.""",
    example=Example("lr=0.01", 300, 0.05),
    references=(PAPER,),
    step_example=r""">>> import numpy as np, numadam
>>> p, g, prev, step_size = np.array([1.0, -2.0]), np.array([0.5, -0.5]), np.zeros(2), np.zeros(2)
>>> numadam.rprop_step(p, g, prev, step_size, step=1, lr=0.1)
>>> np.round(p, 6)            # the step sizes start at lr, and each element moves by its own
array([ 0.9, -1.9])""",
)
