"""What a kernel does around a family's rule, the same for every family.

With float16 or bfloat16 parameters the update may read and write a float32
*master* copy and round it into the parameter, or round the parameter
stochastically (the random bits a fixed function of the element's position
and a per-step salt, so the same on every target).

Before the rule, the *effective gradient* is formed: with gradient
accumulation, the micro-batch gradient is added into a float64 buffer
(``accumulate="add"``: the rule is not called at all) or, on the last micro
step, the mean of the buffer and the gradient replaces it and the buffer is
cleared (``"apply"``); it is then scaled (global-norm clipping) and clipped
element by element. After the rule, the parameter is projected onto its
bounds and the exponential moving average of the parameters is updated.

A :class:`Policy` holds these compile-time switches; :class:`PolicyScalars`
the per-step values the kernel reads after the family's own scalars. Policy
operands follow the family's state operands, in :data:`POLICY_OPERANDS` order.
"""

from typing import NamedTuple


class Policy(NamedTuple):
    """The compile-time switches of the prologue and epilogue around the rule."""

    accumulate: str = ""      # "", "add" or "apply"
    grad_scale: bool = False  # multiply the gradient by a scale (global-norm clipping)
    clip_value: bool = False  # clip the gradient to [-c, c]
    bounds: bool = False      # project the parameter onto [low, high] (operands; stride 0 for a scalar)
    ema: bool = False         # update the moving average of the parameter
    reduction: str = "gradient"  # what the pre-pass sums: "gradient" or "norms" (the family's norms rule)
    master: bool = False      # the update reads and writes a float32 master copy; the parameter gets it rounded
    stochastic: bool = False  # the parameter is rounded to its 16-bit storage stochastically

    @property
    def active(self):
        return self != NO_POLICY


NO_POLICY = Policy()


class PolicyScalars(NamedTuple):
    """Per-step values of the policy, after the family's scalars in each scalar row."""

    accumulate_count: float   # k: the mean is (buffer + g) / k
    grad_scale: float
    clip_value: float
    ema_decay: float
    one_minus_ema_decay: float
    salt: float               # an integer below 2**24: this step's share of the stochastic rounding's randomness


NO_POLICY_SCALARS = PolicyScalars(1.0, 1.0, 0.0, 0.0, 1.0, 0.0)

#: The policy's operands, after the family's state, in this order.
POLICY_OPERANDS = ("accumulator", "low", "high", "ema", "master")


def policy_operands(policy):
    """The names of the policy operands a kernel with ``policy`` reads or writes."""
    names = []
    if policy.accumulate:
        names.append("accumulator")
    if policy.bounds:
        names += ["low", "high"]
    if policy.ema:
        names.append("ema")
    if policy.master:
        names.append("master")
    return names
