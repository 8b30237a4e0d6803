r"""Muon's elementwise parts, as two rules the engine compiles for every backend.

Around its Newton–Schulz iteration (:mod:`numadam.muon.newton_schulz`), a
Muon step is two passes over each matrix, written once here and compiled by
the engine (CPU, CUDA, torch tensors) as every family's rule is:

1. **Momentum**, in ``torch.optim.Muon``'s ``lerp`` calls:

   .. math::

       b \leftarrow \operatorname{lerp}(b, g, 1 - \mu), \qquad
       u = \operatorname{lerp}(g, b, \mu) \ \text{(Nesterov)}, \qquad u = b \ \text{(otherwise)}

   where :math:`\operatorname{lerp}(x, y, w) = x + w (y - x)` for
   :math:`|w| < 0.5` and :math:`y - (y - x)(1 - w)` otherwise, torch's two
   forms. The rule's "parameter" is the array ``u`` that the iteration reads.
2. **Decay and update**, with the orthogonalized :math:`O` as the gradient:

   .. math::

       p \leftarrow p\,(1 - \eta\lambda) - \eta'\,O

   where :math:`\eta' = \eta \cdot` ``ratio`` is the learning rate adjusted to
   the matrix's shape and the decay takes the unadjusted :math:`\eta`.
"""

from collections import namedtuple

from numba import njit

from ..core import validate
from ..core.algorithm import Algorithm, Hyperparameter, StateKind
from ..functional import step_function
from ..optimizers import Optimizer


MomentumScalars = namedtuple("MomentumScalars", "buffer_weight buffer_rest update_weight update_rest")


MomentumFlags = namedtuple("MomentumFlags", "nesterov buffer_small update_small")


def momentum_scalars(step, h, carry) -> MomentumScalars:
    mu = h.momentum
    return MomentumScalars(1.0 - mu, 1.0 - (1.0 - mu), mu, 1.0 - mu)


def momentum_flags(h) -> MomentumFlags:
    return MomentumFlags(h.nesterov, abs(1.0 - h.momentum) < 0.5, abs(h.momentum) < 0.5)


@njit(inline="always")
def lerp(start, end, weight, rest, small):
    """torch's ``start.lerp(end, weight)``: ``rest`` is ``1 - weight``, ``small`` says ``|weight| < 0.5``."""
    if small:
        return start + weight * (end - start)
    return end - (end - start) * rest


@njit(inline="always")
def momentum_rule(update, grad, state, s, flags):
    """The momentum of one element; ``state`` is ``(momentum_buffer,)``, ``update`` is overwritten."""
    (buffer,) = state
    buffer = lerp(buffer, grad, s.buffer_weight, s.buffer_rest, flags.buffer_small)
    if flags.nesterov:
        update = lerp(grad, buffer, s.update_weight, s.update_rest, flags.update_small)
    else:
        update = buffer
    return update, (buffer,)


MOMENTUM = Algorithm(
    name="muon_momentum", title="MuonMomentum",
    hyperparameters=(
        Hyperparameter("momentum", 0.95, validate.check_nonnegative, r"Momentum :math:`\mu` (>= 0)."),
        Hyperparameter("nesterov", True, validate.check_flag, "Nesterov momentum."),
    ),
    state=(StateKind("momentum_buffer", "the momentum b"),),
    scalars=momentum_scalars, flags=momentum_flags, rule=momentum_rule,
    doc="Muon's momentum pass (see :mod:`numadam.muon.elementwise`).",
)


ApplyScalars = namedtuple("ApplyScalars", "keep step")


ApplyFlags = namedtuple("ApplyFlags", "decays")


def apply_scalars(step, h, carry) -> ApplyScalars:
    return ApplyScalars(1.0 - h.lr * h.weight_decay, h.lr * h.ratio)


def apply_flags(h) -> ApplyFlags:
    return ApplyFlags(h.weight_decay != 0.0)


@njit(inline="always")
def apply_rule(param, orthogonal, state, s, flags):
    """Decay and update of one element; no state."""
    if flags.decays:
        param = param * s.keep
    return param - s.step * orthogonal, state


APPLY = Algorithm(
    name="muon_apply", title="MuonApply",
    hyperparameters=(
        Hyperparameter("lr", 1e-3, lambda name, value: validate.check_lr(value), r"Learning rate :math:`\eta`."),
        Hyperparameter("weight_decay", 0.1, validate.check_nonnegative, r"Decoupled decay :math:`\lambda`."),
        Hyperparameter("ratio", 1.0, validate.check_nonnegative, "The shape's learning-rate ratio."),
    ),
    state=(),
    scalars=apply_scalars, flags=apply_flags, rule=apply_rule,
    doc="Muon's decay and update pass (see :mod:`numadam.muon.elementwise`).",
)


class MuonMomentum(Optimizer):
    algorithm = MOMENTUM


class MuonApply(Optimizer):
    algorithm = APPLY


#: ``momentum_step(update, grad, momentum_buffer, step=k, momentum=..., nesterov=...)``: pass 1, in place.
momentum_step = step_function(MuonMomentum, "momentum_step", "Muon's momentum pass over one matrix, in place.")

#: ``apply_step(param, orthogonal, step=k, lr=..., weight_decay=..., ratio=...)``: pass 2, in place.
apply_step = step_function(MuonApply, "apply_step", "Muon's decay and update over one matrix, in place.")
