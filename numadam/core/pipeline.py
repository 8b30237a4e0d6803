r"""The policy pipeline: what every optimizer does around its family's rule, declared once.

A step runs these stages, in this order (:data:`STAGES`):

1. ``accumulate=k``: the first ``k - 1`` calls of ``step`` add their gradients
   into a float64 *accumulator*; the ``k``-th updates with the mean and clears it.
2. ``nonfinite``: ``"propagate"`` (the default: NaN and infinity flow into the
   update, as in torch), ``"raise"`` (a ``FloatingPointError`` naming the first
   parameter whose gradient holds one; nothing changes) or ``"skip"`` (nothing is
   written, the step count does not advance, ``skipped_steps`` counts it).
3. ``clip_global_norm=c``: the gradients scaled by :math:`\min(1, c/\|g\|)`, the
   norm over every parameter (numadam.clip_by_global_norm's rule:
   :func:`~numadam.core.clip_math.norm_and_scale`), taken by a reduction
   pre-pass; the gradients themselves are not modified.
4. ``clip_value=c``: each gradient element clipped to :math:`[-c, c]`
   (:func:`~numadam.core.clip_math.clamped`).
5. The family's rule (LAMB: its norms pass, then its update).
6. ``bounds=(low, high)``: each parameter projected onto its box; ``low``/``high``
   are numbers, ``None`` (unbounded) or trees shaped like the parameters whose
   leaves are numbers, ``None`` or arrays of the parameter's shape.
   ``nonneg=True`` is ``bounds=(0, None)``.
7. ``ema=d``: :math:`\bar p \leftarrow d\,\bar p + (1-d)\,p` after every update
   (started at the parameters); ``ema_bias_correction=True`` starts it at zero
   and divides by :math:`1-d^t` when read (optax's ``ema(debias=True)``).
8. How a float16 or bfloat16 parameter takes the float32 result:
   ``master_weights=True`` keeps a float32 copy that the update reads and
   writes, rounded into the parameter; ``stochastic_rounding=True`` (the
   alternative without a copy) rounds up or down at random with the
   probabilities that make it exact on average, the same for a given ``seed``
   on every target; ``compensation="kahan"`` keeps a compensation in the
   parameter's dtype and stores with Kahan's summation
   (:func:`numadam.targets.body._compensated_store`): with :math:`p` and
   :math:`c` widened and :math:`p'` the float32 result,
   :math:`y = (p' - p) + c`, :math:`p \leftarrow \operatorname{round}(p + y)`,
   :math:`c \leftarrow \operatorname{round}(y - (p_\text{new} - p))`. One
   of the three at most.

Two more options say how the numbers are kept (:data:`OPTIONS`):

- ``state_dtype``: ``"float32"`` (the default for float16 and bfloat16
  parameters; the parameters' own dtype otherwise), ``"bfloat16"`` or
  ``"int8"``: 8-bit codes in blocks of 256 elements with a float32 scale each
  (:mod:`numadam.targets.quantization`), for parameters of 4096 elements and
  more (smaller ones keep the default);
- ``complex_mode``: ``"pairs"`` (the default, torch's): each complex number is
  two reals, each with its own second moment; ``"magnitude"``: the second
  moment is one real number per complex element, accumulating
  :math:`|g|^2 = (\operatorname{Re} g)^2 + (\operatorname{Im} g)^2` (optax's
  complex Adam), so the update commutes with a rotation :math:`p \to e^{i\phi} p`
  and that state takes half the memory. Families whose state kinds are marked
  ``magnitude`` (:class:`numadam.core.algorithm.StateKind`) take it.

From this module come the optimizers' keyword options, their defaults and
checks (:func:`checked_policies`), the kernels' compile-time switches
(:class:`Policy`) and per-step values (:class:`PolicyScalars`), the operands
the kernels read after the family's state (:data:`POLICY_OPERANDS`) with
their dtypes (:func:`operand_dtype`), what ``complex_mode="magnitude"`` and
16-bit parameters take, and the one decision of a reduced step
(:func:`skip_or_scale`).
"""

import math
import numbers
from collections import namedtuple
from typing import Callable, NamedTuple

import numpy as np

from . import validate
from .clip_math import norm_and_scale

NONFINITE = ("propagate", "raise", "skip")
#: What ``state_dtype`` may name.
STATE_DTYPES = ("float32", "bfloat16", "int8")
#: What ``compensation`` may name: None (16-bit parameters rounded to nearest), or "kahan".
COMPENSATIONS = (None, "kahan")
#: What ``complex_mode`` may name.
COMPLEX_MODES = ("pairs", "magnitude")
#: ``state_dtype`` of 8-bit blockwise state (:mod:`numadam.targets.quantization`).
QUANTIZED_STATE = np.dtype(np.int8)
#: Parameters with fewer (real) elements keep float32 state when ``state_dtype="int8"``:
#: their state is small, and a block's scale would weigh as much as its codes.
QUANTIZE_FROM = 4096


class Operand(NamedTuple):
    """An array a stage's kernel code reads or writes for every element, after the family's state.

    ``dtype`` is ``"sums"`` (float64 for every real number), ``"param"`` (the
    parameter's storage) or ``"compute"`` (the dtype the kernel computes in);
    a ``held`` operand is kept by the optimizer from step to step, starting at
    ``initial`` (a number, or ``"param"``: a copy of the parameter).
    """

    name: str
    dtype: str
    held: bool = True
    initial: object = 0.0


class Stage(NamedTuple):
    """One stage around the rule: the kernel switch it sets, its operands and per-step scalars.

    ``on(policies)`` tells whether checked options turn it on. A stage that
    reads complex numbers as pairs of reals (``pairs``) is refused with
    ``complex_mode="magnitude"``; one that needs float16 or bfloat16 parameters
    (``low_precision``) is refused for others.
    """

    name: str
    switch: str
    on: Callable
    operands: tuple = ()
    scalars: tuple = ()
    pairs: bool = False
    low_precision: bool = False


STAGES = (
    Stage("accumulate", "accumulate", lambda p: p.accumulate > 1, (Operand("accumulator", "sums"),),
          ("accumulate_count",), pairs=True),
    Stage("nonfinite", "", lambda p: p.nonfinite != "propagate", pairs=True),
    Stage("clip_global_norm", "grad_scale", lambda p: p.clip_global_norm is not None, (), ("grad_scale",), pairs=True),
    Stage("clip_value", "clip_value", lambda p: p.clip_value is not None, (), ("clip_value",), pairs=True),
    Stage("bounds", "bounds", lambda p: p.bounds is not None,
          (Operand("low", "param", held=False), Operand("high", "param", held=False))),
    Stage("ema", "ema", lambda p: p.ema is not None,
          (Operand("ema", "compute", initial="param"),), ("ema_decay", "one_minus_ema_decay"), pairs=True),
    Stage("master_weights", "master", lambda p: p.master_weights,
          (Operand("master", "compute", initial="param"),), low_precision=True),
    Stage("compensation", "kahan", lambda p: p.compensation == "kahan",
          (Operand("compensation", "param"),), low_precision=True),
    Stage("stochastic_rounding", "stochastic", lambda p: p.stochastic_rounding, (), ("salt",),
          low_precision=True),
)

#: The policy operands, in the order the kernels take them after the family's state.
POLICY_OPERANDS = tuple(operand.name for stage in STAGES for operand in stage.operands)
_OPERANDS = {operand.name: operand for stage in STAGES for operand in stage.operands}

_KernelSwitches = namedtuple("_KernelSwitches", [s.switch for s in STAGES if s.switch] + ["reduction"],
                             defaults=["" if s.switch == "accumulate" else False for s in STAGES if s.switch]
                             + ["gradient"])


class Policy(_KernelSwitches):
    """A kernel's compile-time switches around the rule, one per stage that has kernel code.

    ``accumulate`` is ``""``, ``"add"`` (the call only adds the gradient into
    the accumulator; the rule is not called) or ``"apply"`` (the mean of the
    accumulator and the gradient replaces it, and the accumulator is cleared);
    ``reduction`` says what the pre-pass sums: ``"gradient"`` or ``"norms"``
    (the family's norms rule). ``stochastic`` is ``True`` (the random bits of
    an element come from its position in the table's sequence) or
    :data:`CHUNK_POSITIONS`.
    """

    __slots__ = ()

    @property
    def active(self):
        return self != NO_POLICY

    def operands(self):
        """The names of the policy operands a kernel with these switches reads or writes."""
        return [operand.name for stage in STAGES if stage.switch and getattr(self, stage.switch)
                for operand in stage.operands]


NO_POLICY = Policy()
#: ``Policy.stochastic`` of a kernel over a chunk of a parameter (a Dask chunk's): the random bits
#: of an element come from its position in the whole parameter, which the table gives per segment
#: (:func:`~numadam.targets.segments.position_column`).
CHUNK_POSITIONS = "positions"

#: Per-step values of the stages, after the family's scalars in each scalar row.
PolicyScalars = namedtuple("PolicyScalars", [name for stage in STAGES for name in stage.scalars])
NO_POLICY_SCALARS = PolicyScalars(accumulate_count=1.0, grad_scale=1.0, clip_value=0.0, ema_decay=0.0,
                                  one_minus_ema_decay=1.0, salt=0.0)


def operand_dtype(name, storage, compute):
    """The dtype of policy operand ``name`` beside parameters stored as ``storage`` and computed in
    ``compute`` (real dtypes)."""
    kind = _OPERANDS[name].dtype
    return np.dtype(np.float64) if kind == "sums" else storage if kind == "param" else compute


def held_operands(policies):
    """The policy operands an optimizer with ``policies`` keeps beside the family's state, in
    order, each with its initial value (the moving average starts at zero when bias corrected)."""
    held = []
    for stage in STAGES:
        if stage.on(policies):
            for operand in stage.operands:
                if operand.held:
                    initial = 0.0 if operand.name == "ema" and policies.ema_bias_correction else operand.initial
                    held.append(operand._replace(initial=initial))
    return held


class Option(NamedTuple):
    """A keyword option of every optimizer class."""

    name: str
    default: object


#: The options, in the order of the optimizers' signatures (keyword-only).
OPTIONS = (Option("clip_global_norm", None), Option("clip_value", None), Option("nonfinite", "propagate"),
           Option("bounds", None), Option("nonneg", False), Option("ema", None), Option("ema_bias_correction", False),
           Option("accumulate", 1), Option("state_dtype", None), Option("master_weights", False),
           Option("stochastic_rounding", False), Option("compensation", None), Option("seed", 0),
           Option("complex_mode", "pairs"))
POLICY_DEFAULTS = {option.name: option.default for option in OPTIONS}
#: Options that belong to a stage (the others say how numbers are kept).
_STAGE_OF_OPTION = {"clip_global_norm": "clip_global_norm", "clip_value": "clip_value", "nonfinite": "nonfinite",
                    "bounds": "bounds", "nonneg": "bounds", "ema": "ema", "ema_bias_correction": "ema",
                    "accumulate": "accumulate", "master_weights": "master_weights",
                    "stochastic_rounding": "stochastic_rounding", "compensation": "compensation",
                    "seed": "stochastic_rounding"}
_STAGES_BY_NAME = {stage.name: stage for stage in STAGES}


class Policies(namedtuple("Policies", [o.name for o in OPTIONS if o.name != "nonneg"],
                          defaults=[o.default for o in OPTIONS if o.name != "nonneg"])):
    """The checked options of one optimizer (``nonneg`` is folded into ``bounds``)."""

    __slots__ = ()

    @property
    def plain(self):
        """No policy at all: the rule alone."""
        return self == _PLAIN

    def stages(self):
        """The stages these options turn on, in order."""
        return [stage for stage in STAGES if stage.on(self)]

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
        """The kernel :class:`Policy` of a call in ``phase``."""
        if phase == "add":
            return Policy(accumulate="add")
        switches = {stage.switch: True for stage in self.stages() if stage.switch and stage.switch != "accumulate"}
        return Policy(accumulate=phase, **switches)

    def scalars(self, grad_scale, step=0):
        """The :class:`PolicyScalars` of update ``step`` with ``grad_scale`` (the salt of stochastic
        rounding is 0 without it: no kernel reads it then)."""
        decay = 0.0 if self.ema is None else self.ema
        salt = float(_salt(self.seed, step)) if self.stochastic_rounding else 0.0
        return PolicyScalars(float(self.accumulate), grad_scale, 0.0 if self.clip_value is None else self.clip_value,
                             decay, 1.0 - decay, salt)

    def given(self):
        """The names of the options set to other than their defaults (``bounds`` for ``nonneg``)."""
        return [name for name in self._fields if getattr(self, name) != getattr(_PLAIN, name)]

    def pairs_only(self):
        """The options given that read complex numbers as pairs of reals (refused with ``complex_mode="magnitude"``)."""
        taken = [name for name in self.given() if name in _STAGE_OF_OPTION
                 and _STAGES_BY_NAME[_STAGE_OF_OPTION[name]].pairs]
        return taken + (["state_dtype"] if self.state_dtype is not None else [])

    def low_precision_only(self):
        """The options given that round float16 and bfloat16 parameters."""
        return [name for name in ("master_weights", "stochastic_rounding", "compensation") if getattr(self, name)]


_PLAIN = Policies()


def _salt(seed, step):
    """24 bits mixed from ``seed`` and ``step``: a float32 holds them exactly."""
    mixed = (seed * 0x9E3779B97F4A7C15 + step * 0xD1B54A32D192ED03) & 0xFFFFFFFFFFFFFFFF
    return (mixed ^ (mixed >> 29)) >> 40


def checked_policies(clip_global_norm=None, clip_value=None, nonfinite="propagate", bounds=None, nonneg=False,
                     ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False,
                     stochastic_rounding=False, compensation=None, seed=0, complex_mode="pairs"):
    """The options, each checked (see the module docstring)."""
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
    if compensation not in COMPENSATIONS:
        raise ValueError(f"compensation must be one of {list(COMPENSATIONS)}; got {compensation!r}")
    if compensation is not None and (master_weights or stochastic_rounding):
        taken = "master_weights" if master_weights else "stochastic_rounding"
        raise ValueError(f"compensation={compensation!r} and {taken} are two ways of rounding 16-bit parameters; "
                         "choose one")
    seed = validate.check_count("seed", seed, minimum=0)
    if complex_mode not in COMPLEX_MODES:
        raise ValueError(f"complex_mode must be one of {list(COMPLEX_MODES)}; got {complex_mode!r}")
    return Policies(clip_global_norm, clip_value, nonfinite, None if bounds is None else tuple(bounds), ema,
                    ema_bias_correction, accumulate, state_dtype, master_weights, stochastic_rounding, compensation,
                    seed,
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


def skip_or_scale(policies, squares, bad, grad_paths):
    """The decision of a step whose gradients were reduced: ``None`` to skip it (``nonfinite="skip"``),
    else the gradients' scale :math:`\\min(1, c/\\|g\\|)` with :math:`c` = ``clip_global_norm``
    (:func:`~numadam.core.clip_math.norm_and_scale`; 1 without it). ``squares`` and ``bad`` hold
    each gradient's sum of squares and count of non-finite numbers; the norm adds the sums of
    squares in parameter order.

    Raises ``FloatingPointError`` for ``nonfinite="raise"``, naming the first gradient at fault.
    """
    bad, squares = _numbers(bad), _numbers(squares)
    if any(bad):
        if policies.nonfinite == "raise":
            path = grad_paths[next(k for k, count in enumerate(bad) if count)]
            raise FloatingPointError(f"{path} holds NaN or infinity (nonfinite='raise'); nothing was changed")
        if policies.nonfinite == "skip":
            return None
    if policies.clip_global_norm is None:
        return 1.0
    total = 0.0
    for square in squares:
        total += square
    return norm_and_scale.py_func(policies.clip_global_norm, 1.0, total)[1]


def _numbers(values):
    """``values`` (a NumPy array or a sequence) as a list of Python numbers."""
    return values.tolist() if hasattr(values, "tolist") else list(values)


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


def check_options_for(policies, algorithm, parameter_dtypes, paths):
    """The options against the algorithm and the parameters' dtypes, before anything is made.

    ``master_weights`` and ``stochastic_rounding`` round 16-bit parameters; a
    16-bit state holds real numbers of float32 arithmetic (rounding float64 to
    bfloat16 through float32 would round twice); 8-bit state quantizes moments
    updated in one pass; ``complex_mode="magnitude"`` needs an algorithm with
    magnitude state and no option that reads complex numbers as pairs.
    """
    from . import dtypes
    from .algorithm import ALGORITHMS

    wide = [(path, dtype) for dtype, path in zip(parameter_dtypes, paths) if not dtypes.is_low_precision(dtype)]
    for name in policies.low_precision_only():
        if wide:
            raise ValueError(f"{name} rounds float16 and bfloat16 parameters; {wide[0][0]} is {wide[0][1]}")
    complex_leaves = [path for dtype, path in zip(parameter_dtypes, paths) if dtype.kind == "c"]
    state_dtype = policies.state_dtype
    if state_dtype is not None and state_dtype.itemsize < 4 and complex_leaves:
        raise ValueError(f"state_dtype={state_dtype.name!r} holds real numbers; {complex_leaves[0]} is complex")
    if state_dtype is not None and state_dtype.itemsize == 2:
        doubles = [path for dtype, path in zip(parameter_dtypes, paths) if dtypes.real_itemsize(dtype) == 8]
        if doubles:
            raise ValueError(f"state_dtype='bfloat16' rounds float32 arithmetic; {doubles[0]} is float64 "
                             "(keep its float64 state, or take state_dtype='int8')")
    if state_dtype == QUANTIZED_STATE:
        if algorithm.norms is not None:
            raise ValueError(f"state_dtype='int8' is not available for {algorithm.title}: its first pass "
                             "updates the moments to take their norms, and 8-bit moments are rescaled "
                             "block by block in the pass that writes them; use 'bfloat16'")
        iterates = [kind.name for kind in algorithm.state if isinstance(kind.initial, str)]
        if iterates:
            raise ValueError(f"state_dtype='int8' is not available for {algorithm.title}: its state "
                             f"{iterates[0]!r} is an iterate (it starts at the parameters), which 8-bit "
                             "codes cannot carry; use 'bfloat16'")
    if algorithm.factored:
        _check_factored(policies, algorithm, parameter_dtypes, paths)
    if policies.complex_mode != "magnitude" or not complex_leaves:
        return
    if not algorithm.takes_magnitude:
        takes = [other.title for other in ALGORITHMS.values() if other.takes_magnitude]
        raise ValueError(f"complex_mode='magnitude' shares a second moment between the parts of a complex "
                         f"number; {algorithm.title} has none to share (it is available for {', '.join(takes)})")
    taken = policies.pairs_only()
    if taken:
        raise ValueError(f"complex_mode='magnitude' is not available with {taken[0]}= (it reads complex "
                         f"parameters as pairs of reals); {complex_leaves[0]} is complex")


def _check_factored(policies, algorithm, parameter_dtypes, paths):
    """What a family with factored state (:mod:`numadam.core.factors`) refuses: complex parameters
    (torch's Adafactor refuses them too), state in another dtype than the step's, and accumulation."""
    from . import dtypes, factors

    for dtype, path in zip(parameter_dtypes, paths):
        factors.check_real_parameter(algorithm.title, dtype, path)
        if policies.state_dtype is not None and policies.state_dtype != dtypes.compute_dtype(dtype):
            raise ValueError(f"state_dtype={policies.state_dtype.name!r} is not available for {algorithm.title}: "
                             f"its factors hold R + C numbers per R x C matrix, kept in the dtype its step "
                             f"computes in ({dtypes.compute_dtype(dtype).name} for {path})")
    if policies.accumulate > 1:
        raise ValueError(f"accumulate={policies.accumulate} is not available for {algorithm.title}: its factors' "
                         "pass reads the step's gradient whole; average the micro-batches' gradients and "
                         "step once")

