r"""Schedule-free AdamW (Defazio et al. 2024), as facebookresearch/schedule_free computes it.

The parameters hold :math:`y`, where the gradient is evaluated; the state
holds the base sequence :math:`z`; the averaged iterate
:math:`x = (y - (1-\beta_1) z)/\beta_1` is what to evaluate or deploy
(:meth:`ScheduleFreeAdamW.eval_params`). With :math:`k` = step - 1:

.. math::

    v &\leftarrow \beta_2 v + (1-\beta_2) g^2, \qquad
    \hat g = \frac{g}{\sqrt{v/(1-\beta_2^{k+1})} + \epsilon} + \lambda y \\
    \eta_k &= \eta \min\bigl(1, \tfrac{k+1}{\text{warmup}}\bigr), \qquad
    w_k = (k+1)^r \bigl(\max_{i\le k}\eta_i\bigr)^{p}, \qquad c_{k+1} = \frac{w_k}{\sum_{i\le k} w_i} \\
    y &\leftarrow (1-c_{k+1})\, y + c_{k+1} z + \eta_k\bigl(\beta_1(1-c_{k+1}) - 1\bigr)\hat g, \qquad
    z \leftarrow z - \eta_k \hat g

with :math:`p` = ``weight_lr_power`` and :math:`r` = ``r``.
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core import validate
from ..core.algorithm import Algorithm, Carry, Hyperparameter, StateKind
from . import _common


#: ``average_weight``: c_{k+1}.
#: ``y_step``: eta_k (beta1 (1 - c_{k+1}) - 1).
ScheduleFreeScalars = namedtuple("ScheduleFreeScalars", "beta2 one_minus_beta2 bias_correction2 eps weight_decay "
                                                        "average_weight one_minus_average_weight y_step lr")


ScheduleFreeFlags = namedtuple("ScheduleFreeFlags", "decoupled_decay")


def scheduled_lr(step, h):
    """:math:`\\eta_k`: the learning rate with its linear warm-up, at step ``step`` (from 1)."""
    k = step - 1
    return h.lr * ((k + 1) / h.warmup_steps if k < h.warmup_steps else 1.0)


def _advance(step, h, carry):
    """The running maximum of the learning rate and the running sum of the averaging weights."""
    lr_max, weight_sum = carry
    lr_max = max(scheduled_lr(step, h), lr_max)
    weight = (step ** h.r) * (lr_max ** h.weight_lr_power)
    return lr_max, weight_sum + weight


def schedule_free_scalars(step, h, carry) -> ScheduleFreeScalars:
    beta1, beta2 = h.betas
    lr = scheduled_lr(step, h)
    lr_max, weight_sum = carry
    weight = (step ** h.r) * (lr_max ** h.weight_lr_power)
    average_weight = weight / weight_sum if weight_sum != 0 else 0.0
    return element_math.scalar_fields(ScheduleFreeScalars, (
        beta2, 1.0 - beta2, 1.0 - element_math.power_of_step(beta2, step), h.eps, h.weight_decay, average_weight,
        1.0 - average_weight, lr * (beta1 * (1.0 - average_weight) - 1.0), lr,
    ))


def schedule_free_flags(h) -> ScheduleFreeFlags:
    return ScheduleFreeFlags(h.weight_decay != 0.0)


@njit(inline="always")
def schedule_free_rule(param, grad, state, s, flags):
    """Schedule-free AdamW for one real element: ``param`` is y, ``state`` is ``(z, exp_avg_sq)``."""
    z, exp_avg_sq = state
    exp_avg_sq = exp_avg_sq * s.beta2 + s.one_minus_beta2 * grad * grad
    normalized = grad / (math.sqrt(exp_avg_sq / s.bias_correction2) + s.eps)
    if flags.decoupled_decay:
        normalized = normalized + s.weight_decay * param
    param = element_math.torch_lerp(param, z, s.average_weight, s.one_minus_average_weight)
    param = param + s.y_step * normalized
    z = z - s.lr * normalized
    return param, (z, exp_avg_sq)


def eval_params(self):
    r"""The averaged iterate :math:`x = y + (1 - 1/\beta_1)(z - y)` as new arrays, in the tree of ``params``.

    Computed as ``torch.lerp(y, z, 1 - 1/beta1)``, with each group's
    :math:`\beta_1`; the parameters and state are not touched. Over Dask
    parameters, lazy Dask arrays.
    """
    with self._lock:
        averaged = []
        for y, z, h in self._with_state("z"):
            weight = y.dtype.type(1.0 - 1.0 / h.betas[0])
            averaged.append(y + weight * (z - y))
        return self._treedef.unflatten(averaged)


SCHEDULE_FREE_ADAMW = Algorithm(
    name="schedule_free_adamw", title="ScheduleFreeAdamW",
    hyperparameters=(
        _common.lr(2.5e-3), _common.betas((0.9, 0.999)), _common.eps(1e-8),
        _common.weight_decay(0.0, r"Decoupled weight decay :math:`\lambda` (>= 0), taken at :math:`y`."),
        Hyperparameter("warmup_steps", 0, lambda name, value: validate.check_count(name, value, minimum=0),
                       "Steps of linear learning-rate warm-up (>= 0).", per_group=False),
        Hyperparameter("r", 0.0, validate.check_nonnegative, "The power of k in the averaging weights (>= 0).",
                       per_group=False),
        Hyperparameter("weight_lr_power", 2.0, validate.check_nonnegative,
                       "The power of the largest learning rate in the averaging weights (>= 0).", per_group=False),
    ),
    state=(StateKind("z", "the base sequence z", initial="param"),
           StateKind("exp_avg_sq", "the second moment v", nonnegative=True)),
    scalars=schedule_free_scalars, flags=schedule_free_flags, rule=schedule_free_rule,
    carry=Carry(("lr_max", "weight_sum"), (-1.0, 0.0), _advance),
    doc=r"""Schedule-free AdamW (Defazio et al. 2024) over a tree of arrays, updated in place.

No learning-rate schedule is needed: the parameters hold the point
:math:`y` where gradients are taken, the state holds :math:`z`, and
:meth:`eval_params` returns the averaged iterate :math:`x` to evaluate or
deploy, without disturbing training (no train/eval mode switching).

.. math::

    \hat g = \frac{g}{\sqrt{v/(1-\beta_2^t)} + \epsilon} + \lambda y, \qquad
    y \leftarrow (1-c_t) y + c_t z + \eta_t(\beta_1(1-c_t) - 1)\,\hat g, \qquad
    z \leftarrow z - \eta_t \hat g

facebookresearch/schedule_free's ``AdamWScheduleFree`` (its defaults too,
``lr=0.0025``); the running learning-rate maximum and weight sum that give
:math:`c_t` are kept on the host and saved in ``state_dict``. See
:doc:`/families/schedule_free_adamw`.""",
    example=r""">>> import numpy as np, numadam
>>> w = np.array([1.0, -1.0])
>>> opt = numadam.ScheduleFreeAdamW(w, lr=0.05, warmup_steps=10)
>>> for _ in range(300):
...     opt.step(2 * w)
>>> x = opt.eval_params()          # the averaged iterate; w itself is y
>>> bool(np.all(np.abs(x) < 0.1))
True""",
    references=(
        'Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled", NeurIPS 2024.',
    ),
    step_doc=r"""``param`` is :math:`y`; start ``z`` as a copy of it. ``carry`` holds
``(lr_max, weight_sum)``: pass ``None`` on the first step and what the
previous call returned after it.""",
    step_example=r""">>> import numpy as np, numadam
>>> y, g = np.array([1.0, -2.0]), np.array([0.5, -0.5])
>>> z, v = y.copy(), np.zeros(2)
>>> carry = numadam.schedule_free_adamw_step(y, g, z, v, step=1, lr=0.1)
>>> carry
(0.1, 0.010000000000000002)""",
    methods=(eval_params,),
)
