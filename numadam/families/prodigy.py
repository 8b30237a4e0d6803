r"""Prodigy (Mishchenko & Defazio 2023): Adam whose step size :math:`d` is estimated from the run
itself, in the arithmetic of the ``prodigyopt`` package (1.1.2, ``prodigyopt/prodigy.py``).

With :math:`\eta` the learning rate (1: no tuning), :math:`\hat\beta =
\sqrt{1-\beta_2^{k+1}}/(1-\beta_1^{k+1})` with ``use_bias_correction`` (else
1), :math:`\delta = d\,\eta\,\hat\beta`, and :math:`g` the gradient (plus
:math:`\lambda p` with coupled decay), one step is two passes over every
parameter. The first (the engine's norms pass) moves the moments and
:math:`s` with the old :math:`d` and sums two numbers over **every** parameter
of every group:

.. math::

    m &\leftarrow \beta_1 m + d (1-\beta_1) g, \qquad
    v \leftarrow \beta_2 v + d^2 (1-\beta_2) g^2, \qquad
    s \leftarrow \beta_3 s + \frac{d}{d_0}\,\delta\, g
    \quad (\tfrac{d}{d_0}\, d\, g \text{ with safeguard\_warmup}) \\
    A &= \sum \langle g, p_0 - p \rangle, \qquad D = \sum \|s\|_1

where :math:`p_0` is each parameter at the first step. The host then takes

.. math::

    N \leftarrow \beta_3 N + \frac{d}{d_0}\,\delta\, A, \quad \hat d = c\,N / D, \quad
    d \leftarrow \max(d, \hat d) \text{ while } d = d_0, \quad
    d_{max} \leftarrow \max(d_{max}, \hat d), \quad d \leftarrow \min(d_{max}, d \cdot r)

(:func:`prodigy_total`), and the second pass moves the parameters with the old
:math:`\delta` and the new :math:`d`:
:math:`p \leftarrow p - \lambda \delta p` (decoupled decay), then
:math:`p \leftarrow p - \delta\, m / (\sqrt v + d\,\epsilon)`, or with
:math:`\beta_1 = 0` (no :math:`m` kept) :math:`p \leftarrow p - \delta\, d\, g /
(\sqrt v + d\,\epsilon)`. When :math:`D = 0` (every gradient zero so far) the
step ends after the first pass, as prodigyopt's does: the moments and
:math:`s` moved, :math:`d`, :math:`N` and :math:`k` did not, no parameter
moved.

:math:`d`, :math:`d_{max}`, :math:`N`, :math:`D` and :math:`k` are one set of
numbers for the whole optimizer (prodigyopt keeps a copy in every group and
reads the first group's); they are the family's carry, one equal row per group
in the state dict (:data:`PRODIGY_CARRY`).
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math, validate
from ..core.algorithm import Algorithm, Carry, Hyperparameter, Norms, StateKind
from . import _common

#: The carry's fields (one row per group, all equal): the estimate d (-1 before the first step:
#: d0), its running maximum d_max (-1: d0), the numerator N and the denominator D of its last
#: estimate, the count k of steps that moved the parameters, and the step size delta and the 0/1
#: factor ``moved`` the last step's second pass took.
PRODIGY_CARRY = ("d", "d_max", "d_numerator", "d_denom", "k", "dlr", "moved")

ProdigyScalars = namedtuple("ProdigyScalars", "active first_step beta1 beta2 beta3 first_moment_weight "
                                              "second_moment_weight s_weight coupled_decay step_size decay_rate "
                                              "d_eps plain_step_size")

ProdigyFlags = namedtuple("ProdigyFlags", "momentum coupled_decay decoupled_decay sampled")


def _estimate(carry, h):
    """``(d, d_max)`` of ``carry``, each d0 before the first step."""
    d, d_max = carry[0], carry[1]
    return (h.d0 if d < 0.0 else d), (h.d0 if d_max < 0.0 else d_max)


def _beta3(h):
    return math.sqrt(h.betas[1]) if h.beta3 is None else float(h.beta3)  # (float: a number in Numba's typing)


def _delta(d, k, lr, h):
    """The step size :math:`\\delta = d\\,\\eta\\,\\hat\\beta` of a step after ``k`` moving steps."""
    beta1, beta2 = h.betas
    bias_correction = (math.sqrt(1.0 - beta2 ** (k + 1)) / (1.0 - beta1 ** (k + 1))
                       if h.use_bias_correction else 1.0)
    return d * lr * bias_correction


def prodigy_scalars(step, h, carry) -> ProdigyScalars:
    """Both passes' scalars from ``carry``: the first pass reads its fields from the carry before
    :func:`prodigy_total` (the old d), the update its own from the carry after it (the new d, the
    old delta)."""
    beta1, beta2 = h.betas
    d, _ = _estimate(carry, h)
    k, dlr, moved = carry[4], carry[5], carry[6]
    delta = _delta(d, k, h.lr, h)  # (a group that adds to the sums has the largest lr)
    ratio = d / h.d0
    step_size = dlr * moved
    return element_math.scalar_fields(ProdigyScalars, (
        1.0 if h.lr > 0.0 else 0.0,
        1.0 if step == 1 else 0.0,
        beta1, beta2, _beta3(h),
        d * (1.0 - beta1),
        d * d * (1.0 - beta2),
        ratio * (d if h.safeguard_warmup else delta),
        h.weight_decay if not h.decouple else 0.0,
        step_size,
        h.weight_decay * step_size,
        d * h.eps,
        step_size * d,
    ))


def prodigy_flags(h) -> ProdigyFlags:
    decays = h.weight_decay != 0.0
    return ProdigyFlags(h.betas[0] > 0.0, decays and not h.decouple, decays and h.decouple, h.slice_p > 1)


def _advance(step, h, carry):
    """The carry as it was: it moves with the first pass's sums (:func:`prodigy_total`). A new
    tuple, so that in Numba a carry that was None (``numadam.jit``'s first step) comes out a
    plain tuple, not an optional one, which the scalars could not index."""
    d, d_max, numerator, denominator, k, dlr, moved = carry
    return (d, d_max, numerator, denominator, k, dlr, moved)


@njit(inline="always")
def _gradient(param, grad, s, flags):
    if flags.coupled_decay:
        return grad + s.coupled_decay * param
    return grad


@njit(inline="always")
def prodigy_moments(param, grad, state, s, flags):
    """Prodigy's first pass for one real element: the moments and s with the old d, and the two
    terms summed over every parameter, :math:`g (p_0 - p)` and :math:`|s|` (0 where the group's
    lr is 0: it adds nothing and keeps its moments). :math:`p_0` is the parameter at the first
    step, as prodigyopt takes it (whatever was loaded into it after the optimizer was made).
    With ``slice_p > 1`` (``flags.sampled``) only the moments move here: s and
    :math:`p_0` are kept on every ``slice_p``-th element, and :func:`prodigy_sample`
    gives the terms there."""
    exp_avg, exp_avg_sq, s_sum, start = state
    if s.first_step != 0.0:
        start = param
    if s.active == 0.0:  # (zero in the compute dtype, whatever the parameter holds)
        return (exp_avg, exp_avg_sq, s_sum, start), (s.active, s.active)
    grad = _gradient(param, grad, s, flags)
    if flags.momentum:
        exp_avg = s.beta1 * exp_avg + s.first_moment_weight * grad
    exp_avg_sq = s.beta2 * exp_avg_sq + s.second_moment_weight * (grad * grad)
    if flags.sampled:
        nothing = s.active - s.active  # (zero in the compute dtype)
        return (exp_avg, exp_avg_sq, s_sum, start), (nothing, nothing)
    s_sum = s.beta3 * s_sum + s.s_weight * grad
    return (exp_avg, exp_avg_sq, s_sum, start), (grad * (start - param), abs(s_sum))


@njit(inline="always")
def prodigy_rule(param, grad, state, s, flags):
    """Prodigy's second pass for one real element: the decoupled decay and the step, with the old
    delta and the new d; the state as the first pass left it."""
    exp_avg, exp_avg_sq, s_sum, start = state
    denominator = math.sqrt(exp_avg_sq) + s.d_eps
    if flags.decoupled_decay:
        param = param + (-s.decay_rate) * param
    if flags.momentum:
        param = param + (-s.step_size) * (exp_avg / denominator)
    else:
        param = param + (-s.plain_step_size) * (_gradient(param, grad, s, flags) / denominator)
    return param, (exp_avg, exp_avg_sq, s_sum, start)


def prodigy_sample(param, grad, state, s, flags):
    r"""The first pass's part on a sampled element with ``slice_p > 1`` (prodigyopt's
    ``p.flatten()[::slice_p]``), where s and :math:`p_0` are kept: with the old d, as
    :func:`prodigy_moments` takes them,

    .. math::

        p_0 \leftarrow p \text{ (the first step)}, \qquad
        s \leftarrow \beta_3 s + w\, g, \qquad
        \text{terms } g (p_0 - p) \text{ and } |s|

    (:math:`w` as there; nothing moves and both terms are 0 where the group's lr is 0). Plain
    arithmetic, so that it applies to one element (the CPU's compiled pass) or to the whole sample
    as arrays (NumPy's, CuPy's: :mod:`numadam.engine.sampled`)."""
    s_sum, start = state
    if s.first_step != 0.0:
        start = param
    if s.active == 0.0:
        return (s_sum, start), (s.active, s.active)
    if flags.coupled_decay:  # (as _gradient, written out: arrays of CuPy's run this code too)
        grad = grad + s.coupled_decay * param
    s_sum = s.beta3 * s_sum + s.s_weight * grad
    return (s_sum, start), (grad * (start - param), abs(s_sum))


def prodigy_total(first, second, carry, hypers):
    """The carry after a step's first pass, from its two sums over every parameter (``first``:
    :math:`A`, ``second``: :math:`D`), the carry before it and the hyperparameters of the groups
    that hold parameters (the first group's set the shared ones, as in prodigyopt). Numba compiles
    it too (:mod:`numadam.jit`'s step passes one group's as a tuple)."""
    h = hypers[0]
    d, d_max = _estimate(carry, h)
    k = carry[4]
    largest_lr = h.lr
    for group in hypers:
        largest_lr = max(largest_lr, group.lr)
    delta = _delta(d, k, largest_lr, h)
    if second == 0.0:  # nothing to estimate from: the moments moved, nothing else
        return (carry[0], carry[1], carry[2], carry[3], k, delta, 0.0)
    numerator = carry[2] * _beta3(h) + (d / h.d0) * delta * first
    d_hat = h.d_coef * numerator / second
    if d == h.d0:
        d = max(d, d_hat)
    d_max = max(d_max, d_hat)
    d = min(d_max, d * h.growth_rate)
    return (d, d_max, numerator, second, k + 1, delta, 1.0)


def check_groups(hypers):
    """prodigyopt's rule for groups: every lr is the largest one or 0 (one delta for all)."""
    largest = max(h.lr for h in hypers)
    for h in hypers:
        if h.lr not in (largest, 0.0):
            raise ValueError(f"every group's lr must be the largest lr ({largest!r}) or 0, since Prodigy takes "
                             f"one step size for all; got lr={h.lr!r}")


def _check_beta3(name, value):
    return None if value is None else validate.check_beta(name, value)


def _check_growth_rate(name, value):
    checked = float(validate._real_number(name, value))
    if not checked > 0.0:  # inf is allowed (the default: no limit)
        raise ValueError(f"{name} must be > 0 (inf: no limit); got {value!r}")
    return checked


def _check_slice_p(name, value):
    return validate.check_count(name, value, minimum=1)


def _slice_p(h):
    return h.slice_p


PRODIGY = Algorithm(
    name="prodigy", title="Prodigy",
    hyperparameters=(
        _common.lr(1.0),
        Hyperparameter("betas", (0.9, 0.999), lambda name, value: validate.check_betas(value),
                       r":math:`(\beta_1, \beta_2)`, each in [0, 1); :math:`\beta_1 = 0` keeps no first moment.",
                       per_group=False),
        Hyperparameter("beta3", None, _check_beta3,
                       r":math:`\beta_3` of :math:`s` and of the numerator, in [0, 1); None: "
                       r":math:`\sqrt{\beta_2}`.", per_group=False),
        Hyperparameter("eps", 1e-8, validate.check_positive,
                       r":math:`\epsilon` (> 0, as prodigyopt requires), times d, added to the denominator."),
        _common.weight_decay(0.0, r"Weight decay :math:`\lambda` (>= 0): decoupled, or added to the gradient "
                                  r"(``decouple=False``)."),
        Hyperparameter("decouple", True, validate.check_flag,
                       "Decay the parameters directly (AdamW's way) instead of adding it to the gradient.",
                       per_group=False),
        Hyperparameter("use_bias_correction", False, validate.check_flag,
                       "Take Adam's bias correction into the step size.", per_group=False),
        Hyperparameter("safeguard_warmup", False, validate.check_flag,
                       r"Weigh :math:`s` by d instead of :math:`\delta` (keeps lr out of the estimate's "
                       r"denominator during a warm-up).", per_group=False),
        Hyperparameter("d0", 1e-6, validate.check_positive, "The estimate d before the first step (> 0).",
                       per_group=False),
        Hyperparameter("d_coef", 1.0, validate.check_positive, r"The coefficient :math:`c` of the estimate (> 0).",
                       per_group=False),
        Hyperparameter("growth_rate", math.inf, _check_growth_rate,
                       "The largest factor d may grow by in a step (> 0; inf: no limit).", per_group=False),
        Hyperparameter("slice_p", 1, _check_slice_p,
                       r"Keep :math:`s` and :math:`p_0` on every ``slice_p``-th element of each parameter (in C "
                       r"order, as prodigyopt): 1/slice_p of their memory, and the estimate's two sums over "
                       r"those elements only (>= 1).", per_group=False),
    ),
    state=(StateKind("exp_avg", "the first moment m (times d)", present=lambda h: h.betas[0] > 0.0,
                     when="betas[0] > 0"),
           StateKind("exp_avg_sq", "the second moment v (times d squared)", nonnegative=True),
           StateKind("s", "the weighted sum of gradients s of the estimate's denominator", sampled=_slice_p),
           StateKind("p0", "the parameter at the first step", initial="param", sampled=_slice_p)),
    scalars=prodigy_scalars, flags=prodigy_flags, rule=prodigy_rule,
    carry=Carry(PRODIGY_CARRY, (-1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0), _advance),
    norms=Norms(prodigy_moments, None, lambda h: True, None, terms=True, total=prodigy_total,
                check_groups=check_groups, update_reads_gradient=lambda h: h.betas[0] == 0.0,
                sampled=prodigy_sample),
    doc=r"""Prodigy (Mishchenko & Defazio 2023) over a tree of arrays, updated in place: Adam whose step
size d it estimates itself, so that ``lr`` stays 1.

.. math::

    s \leftarrow \beta_3 s + \tfrac{d}{d_0}\,\delta\, g, \quad
    N \leftarrow \beta_3 N + \tfrac{d}{d_0}\,\delta \sum \langle g, p_0 - p\rangle, \quad
    d \leftarrow \max\bigl(d, \tfrac{N}{\sum \|s\|_1}\bigr), \quad
    p \leftarrow p - \delta\, \frac{m}{\sqrt{v} + d\,\epsilon}

with :math:`\delta = d\,\eta` and Adam's moments scaled by d, the sums over
every parameter: the ``prodigyopt`` package's arithmetic. See
:doc:`/families/prodigy`.""",
    example=r""">>> import numpy as np, numadam
>>> w = np.array([1.0, -1.0, 0.5])
>>> opt = numadam.Prodigy(w)
>>> for _ in range(300):
...     opt.step(2 * w)
>>> bool(np.all(np.abs(w) < 0.05))
True""",
    references=(
        'Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", ICML 2024 '
        "(arXiv:2306.06101, 2023).",
    ),
)
