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

And the precision of the state and of 16-bit parameters:

- ``state_dtype``: ``"float32"`` (the default for float16 and bfloat16
  parameters; the parameters' own dtype otherwise), ``"bfloat16"`` or
  ``"int8"``: 8-bit codes in blocks of 256 elements with a float32 scale each
  (:mod:`numadam.targets.quantization`), for parameters of 4096 elements and
  more (smaller ones keep the default);
- ``master_weights=True`` (float16 and bfloat16 parameters): the update reads
  and writes a float32 copy of the parameters and rounds it into them;
- ``stochastic_rounding=True`` (the alternative without a copy): each
  parameter is rounded up or down at random, with the probabilities that
  make it exact on average; the same for a given ``seed`` on every target.

And how complex parameters are seen:

- ``complex_mode``: ``"pairs"`` (the default, torch's): each complex number is
  two reals, each with its own second moment; ``"magnitude"``: the second
  moment is one real number per complex element, accumulating
  :math:`|g|^2 = (\\operatorname{Re} g)^2 + (\\operatorname{Im} g)^2` (optax's
  complex Adam), so the update commutes with a rotation :math:`p \\to e^{i\\phi} p`
  and that state takes half the memory. Families whose state kinds are marked
  ``magnitude`` (:class:`numadam.core.family.StateKind`) take it.
"""

import math
import numbers
from typing import NamedTuple

import numpy as np

from . import validate
from .pipeline import Policy, PolicyScalars

NONFINITE = ("propagate", "raise", "skip")

#: The policy options of every optimizer class, and their defaults (keyword-only in the signature).
POLICY_DEFAULTS = {"clip_global_norm": None, "clip_value": None, "nonfinite": "propagate", "bounds": None,
                   "nonneg": False, "ema": None, "ema_bias_correction": False, "accumulate": 1,
                   "state_dtype": None, "master_weights": False, "stochastic_rounding": False, "seed": 0,
                   "complex_mode": "pairs"}

#: What ``state_dtype`` may name.
STATE_DTYPES = ("float32", "bfloat16", "int8")
#: What ``complex_mode`` may name.
COMPLEX_MODES = ("pairs", "magnitude")


class Policies(NamedTuple):
    """The checked policy options of one optimizer."""

    clip_global_norm: float | None = None
    clip_value: float | None = None
    nonfinite: str = "propagate"
    bounds: tuple | None = None
    ema: float | None = None
    ema_bias_correction: bool = False
    accumulate: int = 1
    state_dtype: object = None  # a numpy dtype, or None for the default
    master_weights: bool = False
    stochastic_rounding: bool = False
    seed: int = 0
    complex_mode: str = "pairs"

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
        """The kernel :class:`~numadam.core.pipeline.Policy` of a call in ``phase``."""
        if phase == "add":
            return Policy(accumulate="add")
        return Policy(accumulate=phase, grad_scale=self.clip_global_norm is not None,
                      clip_value=self.clip_value is not None, bounds=self.bounds is not None,
                      ema=self.ema is not None, master=self.master_weights, stochastic=self.stochastic_rounding)

    def scalars(self, grad_scale, step=0):
        """The :class:`~numadam.core.pipeline.PolicyScalars` of update ``step`` with ``grad_scale``."""
        decay = 0.0 if self.ema is None else self.ema
        return PolicyScalars(float(self.accumulate), grad_scale,
                             0.0 if self.clip_value is None else self.clip_value, decay, 1.0 - decay,
                             float(_salt(self.seed, step)))

    def as_dict(self):
        """The options as they are saved (bounds are not: they belong to the construction)."""
        return {name: value for name, value in self._asdict().items() if name != "bounds"}


def _salt(seed, step):
    """24 bits mixed from ``seed`` and ``step``: a float32 holds them exactly."""
    mixed = (seed * 0x9E3779B97F4A7C15 + step * 0xD1B54A32D192ED03) & 0xFFFFFFFFFFFFFFFF
    return (mixed ^ (mixed >> 29)) >> 40


def checked_policies(clip_global_norm=None, clip_value=None, nonfinite="propagate", bounds=None, nonneg=False,
                     ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False,
                     stochastic_rounding=False, seed=0, complex_mode="pairs"):
    """The policy options, each checked (see the module docstring)."""
    if clip_global_norm is not None:
        clip_global_norm = validate.check_positive("clip_global_norm", clip_global_norm)
    if clip_value is not None:
        clip_value = validate.check_nonnegative("clip_value", clip_value)
    if nonfinite not in NONFINITE:
        raise ValueError(f"nonfinite must be one of {list(NONFINITE)}; got {nonfinite!r}")
    if validate.check_flag("nonneg", nonneg):
        if bounds is not None:
            raise ValueError("nonneg=True is bounds=(0, None); give one of them, not both")
        bounds = (0.0, None)
    if bounds is not None and not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
        raise TypeError(f"bounds must be a pair (low, high) of numbers, None or trees of them; got {bounds!r}")
    if ema is not None:
        ema = validate.check_beta("ema", ema)
    ema_bias_correction = validate.check_flag("ema_bias_correction", ema_bias_correction)
    if ema_bias_correction and ema is None:
        raise ValueError("ema_bias_correction needs ema=d (the decay of the moving average)")
    accumulate = validate.check_count("accumulate", accumulate, minimum=1)
    if state_dtype is not None:
        if state_dtype not in STATE_DTYPES:
            raise ValueError(f"state_dtype must be one of {list(STATE_DTYPES)} or None (the default); "
                             f"got {state_dtype!r}")
        state_dtype = _named_dtype(state_dtype)
    master_weights = validate.check_flag("master_weights", master_weights)
    stochastic_rounding = validate.check_flag("stochastic_rounding", stochastic_rounding)
    if master_weights and stochastic_rounding:
        raise ValueError("master_weights and stochastic_rounding are two ways of rounding 16-bit parameters; "
                         "choose one")
    seed = validate.check_count("seed", seed, minimum=0)
    if complex_mode not in COMPLEX_MODES:
        raise ValueError(f"complex_mode must be one of {list(COMPLEX_MODES)}; got {complex_mode!r}")
    return Policies(clip_global_norm, clip_value, nonfinite, None if bounds is None else tuple(bounds), ema,
                    ema_bias_correction, accumulate, state_dtype, master_weights, stochastic_rounding, seed,
                    complex_mode)


def _named_dtype(name):
    """The numpy dtype ``name`` ("bfloat16" from ml_dtypes, imported only now)."""
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError as error:
            raise ImportError("state_dtype='bfloat16' stores the state as ml_dtypes.bfloat16: "
                              "pip install ml_dtypes") from error
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


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

