"""The policies every optimizer takes around its family's update, checked and decided per step.

Options (all keyword-only, on every optimizer class):

- ``clip_global_norm=c``: scale the gradients by :math:`\\min(1, c/\\|g\\|)`, the
  norm over every parameter (numadam.clip_by_global_norm's rule), computed by
  a reduction pre-pass; the gradients themselves are not modified.
- ``clip_value=c``: clip each gradient element to :math:`[-c, c]` inside the update.
- ``nonfinite``: ``"propagate"`` (the default: NaN and infinity flow into the
  update, as in torch), ``"raise"`` (a ``FloatingPointError`` naming the first
  parameter whose gradient holds one; nothing changes) or ``"skip"`` (nothing is
  written, the step count does not advance, ``skipped_steps`` counts it).
- ``bounds=(low, high)``: project each parameter onto its box after the update;
  ``low``/``high`` are numbers, ``None`` (unbounded) or trees shaped like the
  parameters whose leaves are numbers, ``None`` or arrays of the parameter's
  shape. ``nonneg=True`` is ``bounds=(0, None)``.
- ``ema=d``: keep :math:`\\bar p \\leftarrow d\\,\\bar p + (1-d)\\,p` after every
  update (started at the parameters); ``ema_bias_correction=True`` starts it at
  zero and divides by :math:`1-d^t` when read (optax's ``ema(debias=True)``).
- ``accumulate=k``: the first ``k - 1`` calls of ``step`` add their gradients into
  a float64 buffer; the ``k``-th updates with the mean and clears the buffer.
"""

import math
import numbers
from typing import NamedTuple

from . import _validate
from ._kernels.policy import Policy, PolicyScalars

NONFINITE = ("propagate", "raise", "skip")

#: The policy options of every optimizer class, and their defaults (keyword-only in the signature).
POLICY_DEFAULTS = {"clip_global_norm": None, "clip_value": None, "nonfinite": "propagate", "bounds": None,
                   "nonneg": False, "ema": None, "ema_bias_correction": False, "accumulate": 1}


class Policies(NamedTuple):
    """The checked policy options of one optimizer."""

    clip_global_norm: float | None = None
    clip_value: float | None = None
    nonfinite: str = "propagate"
    bounds: tuple | None = None
    ema: float | None = None
    ema_bias_correction: bool = False
    accumulate: int = 1

    @property
    def plain(self):
        """No policy at all: the rule alone."""
        return self == Policies()

    @property
    def reduces(self):
        """Whether steps need the reduction pre-pass (some step may skip it: see :meth:`needs_reduction`)."""
        return self.clip_global_norm is not None or self.nonfinite != "propagate"

    def needs_reduction(self, phase):
        return self.nonfinite != "propagate" or (self.clip_global_norm is not None and phase != "add")

    def phase(self, micro_step):
        """``""`` (no accumulation), ``"add"`` or ``"apply"`` for micro step ``micro_step`` (from 1)."""
        if self.accumulate == 1:
            return ""
        return "apply" if micro_step == self.accumulate else "add"

    def policy(self, phase):
        """The kernel :class:`~numadam._kernels.policy.Policy` of a call in ``phase``."""
        if phase == "add":
            return Policy(accumulate="add")
        return Policy(accumulate=phase, grad_scale=self.clip_global_norm is not None,
                      clip_value=self.clip_value is not None, bounds=self.bounds is not None,
                      ema=self.ema is not None)

    def scalars(self, grad_scale):
        """The :class:`~numadam._kernels.policy.PolicyScalars` of an update with ``grad_scale``."""
        decay = 0.0 if self.ema is None else self.ema
        return PolicyScalars(float(self.accumulate), grad_scale,
                             0.0 if self.clip_value is None else self.clip_value, decay, 1.0 - decay)

    def as_dict(self):
        """The options as they are saved (bounds are not: they belong to the construction)."""
        return {name: value for name, value in self._asdict().items() if name != "bounds"}


def checked_policies(clip_global_norm=None, clip_value=None, nonfinite="propagate", bounds=None, nonneg=False,
                     ema=None, ema_bias_correction=False, accumulate=1):
    """The policy options, each checked (see the module docstring)."""
    if clip_global_norm is not None:
        clip_global_norm = _validate.check_positive("clip_global_norm", clip_global_norm)
    if clip_value is not None:
        clip_value = _validate.check_nonnegative("clip_value", clip_value)
    if nonfinite not in NONFINITE:
        raise ValueError(f"nonfinite must be one of {list(NONFINITE)}; got {nonfinite!r}")
    if _validate.check_flag("nonneg", nonneg):
        if bounds is not None:
            raise ValueError("nonneg=True is bounds=(0, None); give one of them, not both")
        bounds = (0.0, None)
    if bounds is not None and not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
        raise TypeError(f"bounds must be a pair (low, high) of numbers, None or trees of them; got {bounds!r}")
    if ema is not None:
        ema = _validate.check_beta("ema", ema)
    ema_bias_correction = _validate.check_flag("ema_bias_correction", ema_bias_correction)
    if ema_bias_correction and ema is None:
        raise ValueError("ema_bias_correction needs ema=d (the decay of the moving average)")
    accumulate = _validate.check_count("accumulate", accumulate, minimum=1)
    return Policies(clip_global_norm, clip_value, nonfinite, None if bounds is None else tuple(bounds), ema,
                    ema_bias_correction, accumulate)


def global_scale(clip_global_norm, sum_of_squares):
    """The factor of global-norm clipping: :math:`c/\\|g\\|` where the norm exceeds :math:`c`, else 1."""
    norm = math.sqrt(sum_of_squares)
    return clip_global_norm / norm if norm > clip_global_norm else 1.0


def leaf_bound(value, path, side):
    """One leaf's bound as given: ``None``, a finite-or-infinite real number, or an array."""
    if value is None:
        return -math.inf if side == "low" else math.inf
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isnan(value):
            raise ValueError(f"the {side} bound of {path} must not be NaN")
        return float(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    raise TypeError(f"the {side} bound of {path} must be a number, None or an array; got {type(value).__name__}")

