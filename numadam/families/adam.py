r"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), in torch's, Keras's,
optax's, scikit-learn's and DeepSpeed's arithmetic.

For one real element, with gradient :math:`g` (negated if ``maximize``; plus
:math:`\lambda p` for L2 decay), :math:`t` the step number and
:math:`b_i = 1 - \beta_i^t`:

.. math::

    m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
    v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
    \text{torch:}\quad p &\leftarrow p - \frac{\eta}{b_1}\, m \Big/
        \Bigl(\frac{\sqrt{\hat v}}{\sqrt{b_2}} + \epsilon\Bigr), \qquad \hat v = \max(\hat v, v) \text{ (AMSGrad)} \\
    \text{keras, sklearn:}\quad p &\leftarrow p - \frac{\eta \sqrt{b_2}}{b_1}\, m \Big/ (\sqrt{\hat v} + \hat\epsilon) \\
    \text{optax:}\quad p &\leftarrow p - \eta\, \frac{m / b_1}{\sqrt{\hat v + \epsilon_{root}} + \epsilon},
        \qquad \hat v = \max(\hat v, v / b_2) \text{ (AMSGrad)} \\
    \text{deepspeed:}\quad p &\leftarrow p - \frac{m}{\sqrt{\hat v}\, r_2 + \epsilon}\,\frac{\eta}{b_1},
        \qquad r_2 = \frac{1}{\sqrt{b_2}}

Decoupled decay is torch's :math:`p \leftarrow p(1-\eta\lambda)` before the
update, Keras's :math:`p \leftarrow p - p\,\lambda\eta` (DeepSpeed's: :math:`p - \eta\lambda\,p`), and optax's
:math:`\lambda p` added to the update before it is scaled by :math:`\eta`.
Keras computes its moments as :math:`m \leftarrow m + (g - m)(1-\beta_1)`.

DeepSpeed's form (``DeepSpeedCPUAdam``'s) divides once where torch's divides twice:
it multiplies :math:`\sqrt{\hat v}` by the reciprocal :math:`r_2` of the
bias correction's square root, and takes its betas as float32 numbers (DeepSpeed's
C floats). Its parameters differ from torch's by a few units in the last place
per step, and its moments by the betas' rounding (docs/algorithm.md, "DeepSpeed's
arithmetic"). It is here for speed where the divider bounds a step
(docs/performance.md), never the default. AMSGrad, which
DeepSpeed lacks, keeps torch's maximum of the raw :math:`v`. Its multiply-adds
are not fused, so it is DeepSpeed's formula, not its FMA bits.

A complex element is two reals by default; with ``complex_mode="magnitude"``
:math:`m` and :math:`p` are complex, :math:`v` is real and :math:`g^2` is
:math:`|g|^2` (optax's complex Adam): see docs/precision.md.
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core import validate
from ..core.algorithm import Algorithm, Hyperparameter, StateKind, Variant
from . import _common

CONVENTIONS = ("torch", "keras", "optax", "sklearn", "deepspeed")


AdamScalars = namedtuple("AdamScalars", "grad_sign weight_decay decay_factor decay_rate beta1 one_minus_beta1 beta2 "
                                        "one_minus_beta2 bias_correction1 bias_correction2 bias_correction2_sqrt "
                                        "inverse_bias_correction2_sqrt step_size lr eps eps_root")


AdamFlags = namedtuple("AdamFlags", "amsgrad l2_decay decoupled_decay eps_hat keras_moments optax deepspeed")


def adam_scalars(step, h, carry) -> AdamScalars:
    """The scalars of step ``step`` in float64, as torch, Keras, optax and DeepSpeed derive them."""
    beta1, beta2 = h.betas
    if h.convention == "deepspeed":  # its betas are C floats: 1 - beta2 for 0.999 is 1.3e-5 (relative) below torch's
        beta1, beta2 = element_math.as_float32(beta1), element_math.as_float32(beta2)
    bias_correction1 = 1.0 - element_math.power_of_step(beta1, step)
    bias_correction2 = 1.0 - element_math.power_of_step(beta2, step)
    bias_correction2_sqrt = math.sqrt(bias_correction2)
    lr, weight_decay = h.lr, h.weight_decay
    eps_hat = h.convention == "keras" or h.convention == "sklearn"
    return element_math.scalar_fields(AdamScalars, (
        -1.0 if h.maximize else 1.0,                                    # grad_sign
        weight_decay,                                                   # weight_decay
        1.0 - lr * weight_decay if h.decoupled_weight_decay else 1.0,   # decay_factor
        weight_decay * lr,                                              # decay_rate
        beta1,
        1.0 - beta1,
        beta2,
        1.0 - beta2,
        bias_correction1,
        bias_correction2,
        bias_correction2_sqrt,
        1.0 / bias_correction2_sqrt,                                    # inverse_bias_correction2_sqrt
        lr * bias_correction2_sqrt / bias_correction1 if eps_hat else lr / bias_correction1,  # step_size
        lr,
        h.eps,
        h.eps_root,
    ))


def adam_flags(h) -> AdamFlags:
    decays = h.weight_decay != 0.0
    return AdamFlags(
        amsgrad=h.amsgrad,
        l2_decay=decays and not h.decoupled_weight_decay,
        decoupled_decay=decays and h.decoupled_weight_decay,
        eps_hat=h.convention == "keras" or h.convention == "sklearn",
        keras_moments=h.convention == "keras",
        optax=h.convention == "optax",
        deepspeed=h.convention == "deepspeed",
    )


@njit(inline="always")
def adam_rule(param, grad, state, s, flags):
    r"""Adam, AdamW and AMSGrad for one real element in the conventions of the module docstring.

    ``state`` is ``(exp_avg, exp_avg_sq, max_exp_avg_sq)``; ``max_exp_avg_sq`` is
    returned unchanged unless ``flags.amsgrad``. The maximum propagates NaN like
    ``numpy.maximum``. Every expression is evaluated left to right, as written.
    """
    exp_avg, exp_avg_sq, max_exp_avg_sq = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    if flags.keras_moments:
        exp_avg = exp_avg + (grad - exp_avg) * s.one_minus_beta1
        exp_avg_sq = exp_avg_sq + (element_math.square(grad) - exp_avg_sq) * s.one_minus_beta2
    else:
        exp_avg = s.beta1 * exp_avg + s.one_minus_beta1 * grad
        exp_avg_sq = s.beta2 * exp_avg_sq + s.one_minus_beta2 * element_math.square(grad)
    if flags.optax:
        second_moment = exp_avg_sq / s.bias_correction2
    else:
        second_moment = exp_avg_sq
    if flags.amsgrad:
        if second_moment > max_exp_avg_sq or second_moment != second_moment:
            max_exp_avg_sq = second_moment
        second_moment = max_exp_avg_sq
    if flags.optax:
        update = (exp_avg / s.bias_correction1) / (math.sqrt(second_moment + s.eps_root) + s.eps)
        if flags.decoupled_decay:
            update = update + s.weight_decay * param
        param = param - s.lr * update
    elif flags.eps_hat:
        if flags.decoupled_decay:
            param = param - param * s.decay_rate
        param = param - (exp_avg * s.step_size) / (math.sqrt(second_moment) + s.eps)
    elif flags.deepspeed:
        if flags.decoupled_decay:
            param = param - s.decay_rate * param
        param = param - exp_avg / (math.sqrt(second_moment) * s.inverse_bias_correction2_sqrt + s.eps) * s.step_size
    else:
        if flags.decoupled_decay:
            param = s.decay_factor * param
        denom = math.sqrt(second_moment) / s.bias_correction2_sqrt + s.eps
        param = param - s.step_size * exp_avg / denom
    return param, (exp_avg, exp_avg_sq, max_exp_avg_sq)


ADAM = Algorithm(
    name="adam", title="Adam",
    hyperparameters=(
        Hyperparameter("lr", 1e-3, lambda name, value: validate.check_lr(value), r"Learning rate :math:`\eta` (>= 0)."),
        Hyperparameter("betas", (0.9, 0.999), lambda name, value: validate.check_betas(value),
                       r":math:`(\beta_1, \beta_2)`, each in [0, 1)."),
        Hyperparameter("eps", 1e-8, validate.check_nonnegative,
                       r":math:`\epsilon` (>= 0): after the bias-corrected square root (torch), "
                       r"Keras's :math:`\hat\epsilon`, or optax's ``eps``, as ``convention`` says."),
        Hyperparameter("weight_decay", 0.0, validate.check_nonnegative,
                       r"Weight decay :math:`\lambda` (>= 0): L2 or decoupled."),
        Hyperparameter("amsgrad", False, validate.check_flag,
                       "Keep the running maximum of the second moment (Reddi et al. 2018).", per_group=False),
        Hyperparameter("maximize", False, validate.check_flag, "Ascend instead of descend."),
        Hyperparameter("decoupled_weight_decay", False, validate.check_flag,
                       "Decay the parameters directly (AdamW) instead of adding L2 to the gradient."),
        _common.convention(CONVENTIONS, "Whose arithmetic: 'torch' (the default), 'keras', 'optax', 'sklearn' "
                                       "or 'deepspeed' (one division fewer; other bits than torch's)."),
        Hyperparameter("eps_root", 0.0, validate.check_nonnegative,
                       r"optax's :math:`\epsilon_{root}`, added to :math:`\hat v` inside the square root "
                       "(convention='optax' only)."),
    ),
    state=(
        StateKind("exp_avg", "the first moment m"),
        StateKind("exp_avg_sq", "the second moment v", nonnegative=True, magnitude=True),
        StateKind("max_exp_avg_sq", "the running maximum of exp_avg_sq", nonnegative=True,
                  present=lambda h: h.amsgrad, when="amsgrad=True", magnitude=True),
    ),
    scalars=adam_scalars, flags=adam_flags, rule=adam_rule,
    check_combination=_common.eps_root_needs_optax,
    doc=r"""Adam (Kingma & Ba 2015) over a tree of NumPy or CuPy arrays, updated in place.

Each call ``opt.step(grads)`` takes step :math:`t` (counting from 1) for every
element of every parameter, complex numbers as pairs of reals:

.. math::

    g &\leftarrow -g \text{ if maximize}, \qquad
    g \leftarrow g + \lambda p \text{ (L2) or } p \leftarrow p(1-\eta\lambda) \text{ (decoupled)} \\
    m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
    v \leftarrow \beta_2 v + (1-\beta_2)\, g^2, \qquad
    \hat v \leftarrow \max(\hat v, v) \text{ (AMSGrad)} \\
    p &\leftarrow p - \frac{\eta}{1-\beta_1^t}\, m \Big/
          \Bigl(\frac{\sqrt{\hat v}}{\sqrt{1-\beta_2^t}} + \epsilon\Bigr)

with :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
:math:`\epsilon` = ``eps`` and :math:`\lambda` = ``weight_decay``. This is
``torch.optim.Adam``'s update for the same options: ``eps`` comes after the
bias-corrected square root, AMSGrad keeps the maximum of the raw ``v``, and
``decoupled_weight_decay=True`` gives AdamW (Loshchilov & Hutter 2019).
``convention="keras"`` (or ``"sklearn"``) computes Keras 3's (scikit-learn's
MLP's) update, with :math:`\hat\epsilon` added to :math:`\sqrt{v}` and the
bias corrections folded into the step size; ``convention="optax"`` computes
optax's, with ``eps_root`` and AMSGrad on the bias-corrected :math:`v`;
``convention="deepspeed"`` computes ``DeepSpeedCPUAdam``'s, with one division
fewer than torch's and a few units in the last place from its bits
(see :doc:`/algorithm`).

Parameters
----------
params : array or dict/list/tuple tree of arrays
    float32, float64, complex64 or complex128 NumPy or CuPy arrays, or float16
    and bfloat16 ones (whose state is float32), all on one backend, writable
    and not sharing memory; subtrees may be wrapped in :class:`numadam.Group`
    to give them their own hyperparameters. They are
    updated in place; their layout and writability are checked here, once,
    so an array made read-only later is still updated.
lr, betas, eps, weight_decay, maximize, decoupled_weight_decay, eps_root
    May be changed between steps, e.g. ``opt.lr = 1e-4``, and per group.
amsgrad : bool
    Keep ``max_exp_avg_sq`` (Reddi et al. 2018). Set at construction, and by
    :meth:`load_state_dict` to the loaded state's value.
convention : {"torch", "keras", "optax", "sklearn", "deepspeed"}
    Whose arithmetic the update follows; set at construction.
schedule : callable or None
    A learning-rate schedule (see :mod:`numadam.schedules`, or any callable
    ``step_count -> lr``): before each step ``lr`` is set to
    ``schedule(step_count)``, so the ``lr`` argument only matters while no
    step has been taken. A schedule's ``state_dict()`` is saved with the
    optimizer's; for :class:`~numadam.schedules.ReduceOnPlateau` report
    losses with ``opt.schedule.observe(loss)``.

Every array of a real dtype is updated by one kernel pass per step. Passing
the same gradient arrays every step (filled in place) also skips re-reading
their layout.""",
    example=r""">>> import numpy as np, numadam
>>> w = np.array([1.0, 2.0])
>>> opt = numadam.Adam({"w": w}, lr=0.1)
>>> for _ in range(100):
...     opt.step({"w": 2 * w})          # gradient of sum(w**2)
>>> bool(np.all(np.abs(w) < 0.1))
True

Keras's ``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=False)``:

>>> opt = numadam.Adam(w, lr=0.001, betas=(0.9, 0.999), eps=1e-07, amsgrad=False, convention="keras")""",
    references=(
        'Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.',
        'Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.',
        'Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.',
    ),
    step_doc=r"""For every element (complex arrays as pairs of reals), with :math:`t` = ``step``,
:math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
:math:`\lambda` = ``weight_decay``:

.. math::

    g &\leftarrow -g \text{ if maximize} \\
    g &\leftarrow g + \lambda p \;\text{(L2; or, decoupled: } p \leftarrow p(1-\eta\lambda)) \\
    m &\leftarrow \beta_1 m + (1-\beta_1)\, g \\
    v &\leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
    \hat v &\leftarrow \max(\hat v, v) \text{ (AMSGrad; else } \hat v = v) \\
    p &\leftarrow p - \frac{\eta}{1-\beta_1^t}\, m \Big/ \Bigl(\frac{\sqrt{\hat v}}{\sqrt{1-\beta_2^t}} + \epsilon\Bigr)

This is the update of ``torch.optim.Adam``/``AdamW``: ``eps`` is added after the
bias-corrected square root (Keras adds its "epsilon hat" before the bias
correction: ``convention="keras"``), and AMSGrad keeps the maximum of the raw
``v`` (Reddi et al. 2018 as torch implements it). Arithmetic runs in the array's
real dtype; the scalars are derived in float64 and rounded once. The options
are :class:`numadam.Adam`'s.

NumPy arrays run on the CPU kernel; CuPy arrays and any array with
``__cuda_array_interface__`` run on the CUDA kernel. Every check runs before
anything is written: on error, no array has changed.

Parameters
----------
param, grad, exp_avg, exp_avg_sq : arrays of one dtype and shape
    float32, float64, complex64 or complex128; ``grad`` is only read.
step : int
    The number of this step, starting at 1.
max_exp_avg_sq : array, required when ``amsgrad`` is true""",
    step_example=r""">>> import numpy as np, numadam
>>> p = np.array([1.0, -2.0]); g = np.array([0.5, 0.5])
>>> m, v = np.zeros(2), np.zeros(2)
>>> numadam.adam_step(p, g, m, v, step=1, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
>>> p                     # the first step moves each element by about lr
array([ 0.9, -2.1])""",
    variants=(Variant("AdamW", r"""AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.

Before the moment updates, every parameter is multiplied by
:math:`1 - \eta\lambda`; the gradient itself gets no decay term. This is
``torch.optim.AdamW``'s update, and ``Adam(..., decoupled_weight_decay=True)``;
its default ``weight_decay`` is torch's, 1e-2.

Examples
--------
>>> import numpy as np, numadam
>>> w = np.ones(3, np.float32)
>>> opt = numadam.AdamW([w], lr=0.1, weight_decay=0.5)
>>> opt.step([np.zeros(3, np.float32)])   # zero gradient: only the decay acts
>>> w
array([0.95, 0.95, 0.95], dtype=float32)""", defaults={"weight_decay": 1e-2},
                      pinned={"decoupled_weight_decay": True}),),
)
