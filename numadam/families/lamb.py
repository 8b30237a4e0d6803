r"""LAMB (You et al. 2020): Adam's direction, scaled per parameter by a trust ratio, as optax
and NVIDIA apex compute it.

For each parameter array (complex numbers as pairs of reals):

.. math::

    m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \qquad
    r = \frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t) + \epsilon_{root}} + \epsilon} + \lambda p \\
    p &\leftarrow p - \eta\, \phi\, r, \qquad \phi = \frac{\|p\|}{\|r\|}
    \text{ (1 where either norm is 0)}

optax's ``lamb`` (the default). apex's ``FusedLAMB`` (``convention="apex"``)
divides by :math:`\sqrt{v/(1-\beta_2^t)} + \epsilon`, uses the trust ratio only
where :math:`\lambda \ne 0`, and may first clip every gradient by their global
norm (``max_grad_norm``; numadam's ``clip_global_norm`` option does the same).

A step is two passes over memory: the first updates the moments and sums
:math:`\|p\|^2` and :math:`\|r\|^2` per parameter, the second applies the update.
Exclude biases and norm layers from the decay with :class:`numadam.Group`.
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core.algorithm import Algorithm, Norms, StateKind
from . import _common


#: ``trust_ratio``: per parameter, from the first pass.
LAMBScalars = namedtuple("LAMBScalars", "beta1 one_minus_beta1 beta2 one_minus_beta2 bias_correction1 "
                                        "bias_correction2 eps eps_root weight_decay lr trust_ratio")


LAMBFlags = namedtuple("LAMBFlags", "decays")


def lamb_scalars(step, h, carry) -> LAMBScalars:
    beta1, beta2 = h.betas
    return element_math.scalar_fields(LAMBScalars, (
        beta1, 1.0 - beta1, beta2, 1.0 - beta2, 1.0 - element_math.power_of_step(beta1, step),
        1.0 - element_math.power_of_step(beta2, step), h.eps, h.eps_root, h.weight_decay, h.lr, 1.0,
    ))


def lamb_flags(h) -> LAMBFlags:
    return LAMBFlags(h.weight_decay != 0.0)


def trust_ratio(param_squares, direction_squares):
    """The trust ratio :math:`\\|p\\|/\\|r\\|` of a parameter from its sums of squares; 1 where either norm is 0."""
    param_norm, direction_norm = math.sqrt(param_squares), math.sqrt(direction_squares)
    if param_norm != 0.0 and direction_norm != 0.0:
        return param_norm / direction_norm
    return 1.0


def uses_trust_ratio(h):
    """Whether a parameter with hyperparameters ``h`` takes the trust ratio (apex: only where it decays)."""
    return h.convention != "apex" or h.weight_decay != 0.0


@njit(inline="always")
def _direction(param, exp_avg, exp_avg_sq, s, flags):
    direction = element_math.divided(exp_avg, s.bias_correction1) / (
        math.sqrt(element_math.divided(exp_avg_sq, s.bias_correction2) + s.eps_root) + s.eps)
    if flags.decays:
        direction = direction + s.weight_decay * param
    return direction


@njit(inline="always")
def lamb_moments(param, grad, state, s, flags):
    """LAMB's first pass for one real element: the new moments, and the update direction r."""
    exp_avg, exp_avg_sq = state
    exp_avg = s.one_minus_beta1 * grad + s.beta1 * exp_avg
    exp_avg_sq = s.one_minus_beta2 * (grad * grad) + s.beta2 * exp_avg_sq
    return (exp_avg, exp_avg_sq), _direction(param, exp_avg, exp_avg_sq, s, flags)


@njit(inline="always")
def lamb_rule(param, grad, state, s, flags):
    """LAMB's second pass for one real element: the update, with the parameter's trust ratio."""
    exp_avg, exp_avg_sq = state
    direction = _direction(param, exp_avg, exp_avg_sq, s, flags)
    return param - s.lr * (direction * s.trust_ratio), (exp_avg, exp_avg_sq)


def _check_lamb_combination(h):
    if h.eps_root != 0.0 and h.convention == "apex":
        raise ValueError(f"eps_root is optax's; apex has none (convention='apex'); got eps_root={h.eps_root!r}")


LAMB_FAMILY = Algorithm(
    name="lamb", title="LAMB",
    hyperparameters=(
        _common.lr(1e-3), _common.betas((0.9, 0.999)), _common.eps(1e-6),
        _common.eps_root(),
        _common.weight_decay(0.0, r"Decoupled weight decay :math:`\lambda` (>= 0), in the direction :math:`r`."),
        _common.convention(("optax", "apex"),
                           "Whose arithmetic: 'optax' (the default) or 'apex' (the trust ratio only where "
                           "weight_decay != 0)."),
    ),
    state=(StateKind("exp_avg", "the first moment m"),
           StateKind("exp_avg_sq", "the second moment v", nonnegative=True)),
    scalars=lamb_scalars, flags=lamb_flags, rule=lamb_rule,
    check_combination=_check_lamb_combination,
    norms=Norms(lamb_moments, "trust_ratio", uses_trust_ratio, trust_ratio),
    doc=r"""LAMB (You et al. 2020) over a tree of arrays, updated in place.

.. math::

    r = \frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t) + \epsilon_{root}} + \epsilon} + \lambda p, \qquad
    p \leftarrow p - \eta\, \frac{\|p\|}{\|r\|}\, r

per parameter array, the ratio 1 where either norm is 0: optax's
``lamb``. ``convention="apex"`` gives apex's ``FusedLAMB`` (no trust ratio
where ``weight_decay`` is 0; its gradient pre-clip is ``clip_global_norm``).
Give biases and norm layers their own :class:`numadam.Group` with
``weight_decay=0.0``. See :doc:`/families/lamb`.""",
    example=r""">>> import numpy as np, numadam
>>> w = np.array([1.0, -1.0, 0.5])
>>> opt = numadam.LAMB(w, lr=0.02)
>>> for _ in range(300):
...     opt.step(2 * w)
>>> bool(np.all(np.abs(w) < 0.1))
True""",
    references=(
        'You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020.',
    ),
    step_doc=r"""Take LAMB step ``step`` on ``param`` and its state, in place.

The update of :class:`numadam.LAMB` on one array (one trust ratio: its own),
in its two passes.""",
    step_example=r""">>> import numpy as np, numadam
>>> p, g = np.array([3.0, 4.0]), np.array([1.0, -1.0])
>>> m, v = np.zeros(2), np.zeros(2)
>>> numadam.lamb_step(p, g, m, v, step=1, lr=0.1)
>>> np.round(p, 6)     # |p| = 5 and |r| = sqrt(2): each element moves by 0.1 * 5 / sqrt(2)
array([2.646447, 4.353553])""",
)
