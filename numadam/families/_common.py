r"""What the family modules share: hyperparameter declarations and the gradient a rule steps with.

A hyperparameter several families take (``lr``, ``betas``, ``eps``, ...) is
declared here once, with its check and its docstring; a family picks its own
default. The element arithmetic that rules and kernels both inline lives below
both, in :mod:`numadam.core.element_math`.
"""

from collections import namedtuple

from numba import njit

from ..core import validate
from ..core.algorithm import Hyperparameter


def lr(default):
    return Hyperparameter("lr", default, lambda name, value: validate.check_lr(value),
                          r"Learning rate :math:`\eta` (>= 0).")


def betas(default):
    count = len(default)
    symbols = ", ".join(rf"\beta_{i}" for i in range(1, count + 1))
    return Hyperparameter("betas", default, lambda name, value: validate.check_betas(value, count),
                          rf":math:`({symbols})`, each in [0, 1).")


def eps(default, doc=r":math:`\epsilon` (>= 0), added to the denominator."):
    return Hyperparameter("eps", default, validate.check_nonnegative, doc)


def eps_root(default=0.0):
    return Hyperparameter("eps_root", default, validate.check_nonnegative,
                          r"optax's :math:`\epsilon_{root}`, added inside the square root (>= 0).")


def weight_decay(default, doc=r"Weight decay :math:`\lambda` (>= 0)."):
    return Hyperparameter("weight_decay", default, validate.check_nonnegative, doc)


def l2_weight_decay():
    """L2 decay added to the gradient, off by default (the classic methods' and Adamax's)."""
    return weight_decay(0.0, r"L2 weight decay :math:`\lambda` (>= 0), added to the gradient.")


def momentum():
    """Heavy-ball momentum, off by default (SGD's and RMSprop's)."""
    return Hyperparameter("momentum", 0.0, validate.check_nonnegative, r"Momentum :math:`\mu` (>= 0; 0: none).")


def decoupled_weight_decay(default=False):
    return Hyperparameter("decoupled_weight_decay", default, validate.check_flag,
                          "Decay the parameters directly (as AdamW) instead of adding L2 to the gradient.")


def maximize():
    return Hyperparameter("maximize", False, validate.check_flag, "Ascend instead of descend.")


def convention(options, doc):
    """The ``convention`` hyperparameter: whose arithmetic, among ``options`` (the first is the default)."""

    def check(name, value):
        if value not in options:
            raise ValueError(f"{name} must be one of {list(options)}; got {value!r}")
        return value

    return Hyperparameter("convention", options[0], check, doc, per_group=False, options=tuple(options))


def eps_root_needs_optax(h):
    """The check of a family whose ``eps_root`` is optax's alone: it needs ``convention="optax"``."""
    if h.eps_root != 0.0 and h.convention != "optax":
        raise ValueError(f"eps_root is optax's (inside the square root); it needs convention='optax', "
                         f"got eps_root={h.eps_root!r} with convention={h.convention!r}")


def grad_sign(h):
    """The gradient's sign: -1 to ascend (``maximize``), else 1."""
    return -1.0 if h.maximize else 1.0


@njit(inline="always")
def decayed_gradient(param, grad, s, flags):
    r"""The gradient a rule steps with: negated to ascend (``s.grad_sign``), plus :math:`\lambda p`
    for L2 decay (``flags.l2_decay``, :math:`\lambda` = ``s.weight_decay``)."""
    grad = s.grad_sign * grad
    if flags.l2_decay:
        grad = grad + s.weight_decay * param
    return grad


@njit(inline="always")
def torch_decay_and_moments(param, grad, exp_avg, exp_avg_sq, s, flags):
    r"""The first half of torch's NAdam and RAdam steps: decoupled decay
    :math:`p \leftarrow (1 - \gamma\lambda) p` (``flags.decoupled_decay``, the factor
    ``s.decay_factor``), then :math:`m \leftarrow m + (1 - \beta_1)(g - m)` (torch's ``lerp``) and
    :math:`v \leftarrow \beta_2 v + (1 - \beta_2) g^2`. Returns ``(param, exp_avg, exp_avg_sq)``."""
    if flags.decoupled_decay:
        param = s.decay_factor * param
    exp_avg = exp_avg + s.one_minus_beta1 * (grad - exp_avg)
    exp_avg_sq = s.beta2 * exp_avg_sq + s.one_minus_beta2 * (grad * grad)
    return param, exp_avg, exp_avg_sq


#: The compile-time switch of a family whose only one is L2 decay added to the gradient.
L2Flags = namedtuple("L2Flags", "l2_decay")


def l2_flags(h) -> L2Flags:
    """``L2Flags`` of hyperparameters ``h``: on where ``weight_decay`` is not zero."""
    return L2Flags(h.weight_decay != 0.0)
