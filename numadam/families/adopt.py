r"""ADOPT (Taniguchi et al. 2024): normalize the gradient by the *previous* second moment,
then take momentum, as the official code and optax.contrib compute it.

The first step only sets :math:`v \leftarrow g^2`. From step 2 on, with
:math:`c_t` = ``clip_lambda(t - 1)``:

.. math::

    m &\leftarrow \beta_1 m + (1-\beta_1)\, \operatorname{clip}\Bigl(\frac{g}{\max(\sqrt{v}, \epsilon)}, -c_t, c_t\Bigr),
    \qquad p \leftarrow p - \eta\, m, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2

The official code updates :math:`m` as ``torch.lerp`` (:math:`m + (1-\beta_1)(x - m)`),
optax as :math:`(1-\beta_1)x + \beta_1 m`.
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math, validate
from ..core.algorithm import Algorithm, Example, Hyperparameter, StateKind
from . import _common


#: ``first``: 1 on the first step, which only sets v.
ADOPTScalars = namedtuple("ADOPTScalars", "grad_sign weight_decay decay_rate beta1 one_minus_beta1 beta2 "
                                          "one_minus_beta2 clip negative_lr eps first")


ADOPTFlags = namedtuple("ADOPTFlags", "l2_decay decoupled_decay clip optax")


def _check_clip_lambda(name, value):
    """``None``, a number (the exponent e of ``step**e``) or a callable ``step -> clip``."""
    if value is None or callable(value):
        return value
    return validate.check_nonnegative(name, value)


def clip_value(h, step):
    """The clipping bound of step ``step`` (from 1): ``clip_lambda`` at the steps taken before it."""
    if callable(h.clip_lambda):
        return float(h.clip_lambda(step - 1))
    return power_clip(h, step)


def power_clip(h, step):
    """The bound for a number ``clip_lambda`` e: :math:`(t-1)^e` (all that njit code may pass)."""
    return float(step - 1) ** h.clip_lambda


def adopt_scalars(step, h, carry) -> ADOPTScalars:
    beta1, beta2 = h.betas
    clip = 0.0 if h.clip_lambda is None or step == 1 else clip_value(h, step)
    return element_math.scalar_fields(ADOPTScalars, (_common.grad_sign(h), h.weight_decay, -h.lr * h.weight_decay,
                        beta1, 1.0 - beta1, beta2, 1.0 - beta2, clip, -h.lr, h.eps,
                        1.0 if step == 1 else 0.0))


def adopt_flags(h) -> ADOPTFlags:
    decays = h.weight_decay != 0.0
    return ADOPTFlags(decays and not h.decoupled_weight_decay, decays and h.decoupled_weight_decay,
                      h.clip_lambda is not None, h.convention == "optax")


@njit(inline="always")
def adopt_rule(param, grad, state, s, flags):
    """ADOPT for one real element; ``state`` is ``(exp_avg, exp_avg_sq)``."""
    exp_avg, exp_avg_sq = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    if s.first != 0:
        return param, (exp_avg, exp_avg_sq + grad * grad)
    if flags.decoupled_decay:
        param = param + s.decay_rate * param
    root = math.sqrt(exp_avg_sq)
    normed = grad / (root if root > s.eps or root != root else s.eps)
    if flags.clip:  # NaN stays NaN, as in torch.clamp
        if normed > s.clip:
            normed = s.clip
        elif normed < -s.clip:
            normed = -s.clip
    if flags.optax:
        exp_avg = s.one_minus_beta1 * normed + s.beta1 * exp_avg
    else:
        exp_avg = exp_avg + s.one_minus_beta1 * (normed - exp_avg)
    param = param + s.negative_lr * exp_avg
    exp_avg_sq = exp_avg_sq * s.beta2 + s.one_minus_beta2 * grad * grad
    return param, (exp_avg, exp_avg_sq)


ADOPT_FAMILY = Algorithm(
    name="adopt", title="ADOPT",
    hyperparameters=(
        _common.lr(1e-3), _common.betas((0.9, 0.9999)),
        _common.eps(1e-6, r":math:`\epsilon` (>= 0): the floor of :math:`\sqrt{v}`."),
        Hyperparameter("clip_lambda", 0.25, _check_clip_lambda,
                       "Clip the normalized gradient to [-c, c], c = step**clip_lambda for a number, "
                       "c = clip_lambda(step) for a callable (the steps taken before this one); None: no clipping.",
                       per_group=False),
        _common.weight_decay(0.0), _common.decoupled_weight_decay(), _common.maximize(),
        _common.convention(("official", "optax"),
                           "Whose arithmetic: 'official' (iShohei220/adopt, the default) or 'optax' (optax.contrib)."),
    ),
    state=(StateKind("exp_avg", "the momentum m of the normalized gradient"),
           StateKind("exp_avg_sq", "the second moment v", nonnegative=True)),
    scalars=adopt_scalars, flags=adopt_flags, rule=adopt_rule,
    doc=r"""ADOPT (Taniguchi et al. 2024) over a tree of arrays, updated in place.

.. math::

    m \leftarrow \beta_1 m + (1-\beta_1)\, \operatorname{clip}\Bigl(\frac{g}{\max(\sqrt{v}, \epsilon)},
    \pm c_t\Bigr), \qquad p \leftarrow p - \eta m, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2

where :math:`v` is the second moment *before* this step; the first step
only sets :math:`v = g^2`. ``clip_lambda=0.25`` is the official
``lambda step: step**0.25``; a callable may be given too (it is then not
saved by :meth:`save`). ``convention="optax"`` gives optax.contrib's
arithmetic. See :doc:`/families/adopt`.""",
    example=Example('lr=0.05', 300, 0.1),
    references=(
        'Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any beta_2 with the Optimal Rate", NeurIPS 2024.',
    ),
    step_doc=r"""Take ADOPT step ``step`` on ``param`` and its state, in place.

The update of :class:`numadam.ADOPT`, on single arrays; step 1 only sets the second moment.""",
    step_example=r""">>> import numpy as np, numadam
>>> p, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
>>> m, v = np.zeros(2), np.zeros(2)
>>> numadam.adopt_step(p, g, m, v, step=1, lr=0.1)
>>> p, v
(array([ 1., -2.]), array([0.25, 0.25]))""",
)
