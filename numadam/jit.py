"""The update as Numba functions, to call from your own ``@numba.njit`` code.

A solver that runs its own compiled loop (a 10-parameter fit iterated 1e5
times, say) pays a Python call per :meth:`numadam.Adam.step`, about a thousand
times the update itself. This module gives each family's update as functions
that njit code can call, made from the very rule and host scalars the engine
compiles (never a copy):

- ``<family>_rule``: the family's scalar rule,
  ``rule(param, grad, state, scalars, flags) -> (param, state)``;
- ``<family>_scalars(step, *hyperparameters)``: the per-step scalars, in
  float64, as the optimizer objects compute them on the host;
- ``<family>_flags(*hyperparameters)``: the rule's switches (which branches
  of the rule the hyperparameters take);
- ``<family>_step(param, grad, *state, step, *hyperparameters)``: one step on
  1-D float32 or float64 arrays, updated in place, the scalars rounded once to
  the arrays' dtype as the objects round them: the same bits as
  ``numadam.<Family>`` over the same arrays.

The hyperparameters follow the order of the class signature (``betas`` as a
tuple), with its defaults; families with running host values (NAdam's momentum
product, schedule-free AdamW's weights) take them as a last argument ``carry``
(``None`` on the first step) and return the new ``carry``. ``adam_step`` is
torch's Adam with L2 decay and a fixed signature::

    adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay)

State that only some options keep (AMSGrad's running maximum, SGD's momentum
buffer, RMSprop's centered average) comes by name, after the hyperparameters
(``max_exp_avg_sq=...``); leave it out (None) when the option is off. A string hyperparameter (``convention``) must be a constant of the
calling code, and each value compiles a step of its own; one that may be
None (AdEMAMix's warm-ups, ADOPT's ``clip_lambda``) takes None or a number,
never a Python callable. LAMB's step makes two passes, as the objects do: the
first updates the state and sums the squares of the parameter and of the
update direction (in float64, chunk by chunk as the objects' CPU pre-pass),
the second applies the update with the trust ratio. Those sums are added in
the objects' order (their CPU pre-pass's chunks and tiles, the tiles' sums
vectorized alike), so LAMB takes the objects' bits in float64 too.

Prodigy's step is a one-array Prodigy (as the functional ``prodigy_step``):
its first pass moves the state and sums its two terms over the array, in the
objects' order; their total (:func:`numadam.families.prodigy.prodigy_total`)
gives the new carry (d and the rest of
:data:`~numadam.families.prodigy.PRODIGY_CARRY`), which the step returns; the
update then takes the scalars of that carry. Pass ``carry=None`` on the first
step and the returned carry after; ``exp_avg`` comes by name (none with
``betas[0] == 0``). ``prodigy_scalars`` gives the first pass's scalars of a
carry, which it returns unchanged: the sums and their total are the step's.

Adafactor's step takes ``param, grad, row_var, col_var``: a matrix with its
row factor ``(R, 1)`` and column factor ``(1, C)``, or a vector with its full
second moment as ``row_var`` (``col_var`` is then not read); factors of other
shapes are refused with a ValueError before anything is written. It makes the
objects' three passes in one call: the factors (sums of squares in float64,
in order), the norms, the update; ``eps=(None, 1e-3)`` takes None or a number
first. The sums' order differs from the objects' blocked sums, so the two may
differ by an ulp.

Example
-------
>>> import numpy as np
>>> from numba import njit
>>> from numadam import jit
>>> @njit
... def fit(x, target, steps):
...     m, v, g = np.zeros_like(x), np.zeros_like(x), np.empty_like(x)
...     for t in range(1, steps + 1):
...         g[:] = 2 * (x - target)
...         jit.adam_step(x, g, m, v, t, 0.05, 0.9, 0.999, 1e-8, 0.0)
...     return x
>>> fit(np.zeros(3), np.array([1.0, -2.0, 0.5]), 2000).round(3)
array([ 1. , -2. ,  0.5])
"""

import functools
import inspect
import math
import operator
import types as pytypes
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import errors, njit, types
from numba.extending import intrinsic, models, overload, register_model

from .targets.cpu.backend import CpuBackend
from .targets.body import NORMS_TILE, norms_sum_lines
from .registry import families

__all__ = []

#: The error model of every step compiled here and of the compiled solve: NumPy's, as the
#: kernels' (IEEE quotients; Python's checks every division for zero, and that branch keeps a
#: loop from vectorizing: jit.adam_step took 3.4 ns an element instead of 0.47 on a Zen 4).
ERROR_MODEL = "numpy"


class _Constant(types.Type):
    """A string hyperparameter (``convention``) fixed when the step compiles.

    The families compare ``h.convention`` with string literals on every step;
    with this type in ``h`` those comparisons fold to constants, so the step
    does no string work at run time (it would cost more than the update of ten
    parameters). Each convention compiles a specialization of its own, as a
    literal argument does.
    """

    def __init__(self, value):
        self.value = value
        super().__init__(name=f"numadam.jit.constant({value!r})")


@register_model(_Constant)
class _ConstantModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.IntType(8))  # the value is in the type; one unused byte


@intrinsic
def _constant(typingctx, value):
    """``value``, a literal or omitted string, as a :class:`_Constant` (njit only)."""
    if isinstance(value, types.StringLiteral):
        fixed = value.literal_value
    elif isinstance(value, types.Omitted) and isinstance(value.value, str):
        fixed = value.value
    else:  # compile the caller again with its argument as a literal (as numba.literally does)
        raise errors.ForceLiteralArg({0}, fold_arguments=lambda args, kws: args)
    return _Constant(fixed)(value), lambda context, builder, signature, args: ir.Constant(ir.IntType(8), 0)


def _folded(compare):
    """``compare`` (``==`` or ``!=``) of a :class:`_Constant` with a string literal, as a constant."""

    def typed(left, right):
        if isinstance(left, _Constant) and isinstance(right, types.StringLiteral):
            result = compare(left.value, right.literal_value)
            return lambda left, right: result

    return typed


overload(operator.eq)(_folded(operator.eq))
overload(operator.ne)(_folded(operator.ne))


@intrinsic
def _optional(typingctx, value):
    """A hyperparameter that may be None (a warm-up, a clipping exponent) as an optional float64:
    the family's ``is None`` tests then run, and its arithmetic types, whatever was passed."""
    optional = types.Optional(types.float64)
    if isinstance(value, types.Omitted):
        value = types.none if value.value is None else typingctx.resolve_value_type(value.value)
    if value is types.none:
        return optional(value), lambda context, builder, signature, args: context.make_optional_none(
            builder, types.float64)
    if isinstance(value, (types.Integer, types.Float)):
        def codegen(context, builder, signature, args):
            number = context.cast(builder, args[0], signature.args[0], types.float64)
            return context.make_optional_value(builder, types.float64, number)
        return optional(value), codegen
    return None


@intrinsic
def _value_of(typingctx, optional):
    """The number in an optional float64 (Numba raises if it is None)."""
    if isinstance(optional, types.Optional) and optional.type == types.float64:
        return types.float64(optional), lambda context, builder, signature, args: context.cast(
            builder, args[0], signature.args[0], types.float64)
    return None


@overload(float)
def _float_of_optional(value):
    if isinstance(value, types.Optional) and value.type == types.float64:
        return lambda value: _value_of(value)


def _may_be_none(hyperparameter):
    """Whether the family declares ``None`` a valid value of ``hyperparameter``."""
    try:
        return hyperparameter.check(hyperparameter.name, None) is None
    except (TypeError, ValueError):
        return False


#: Helpers of the families that also accept a Python callable, and what stands for them in njit
#: code, where a hyperparameter is never one.
_NJIT_FORMS = {"clip_value": "power_clip"}


def _in_dtype_of(value, array):
    """``value`` rounded to the dtype of ``array``'s elements (njit only)."""


@overload(_in_dtype_of)
def _in_dtype_of_overload(value, array):
    if array.dtype == types.float32:
        return lambda value, array: np.float32(value)
    return lambda value, array: np.float64(value)


def _load(state, i, like):
    """Element ``i`` of optional state, or ``like`` where it is ``None`` (njit only)."""


@overload(_load)
def _load_overload(state, i, like):
    if isinstance(state, types.NoneType):
        return lambda state, i, like: like
    return lambda state, i, like: state[i]


def _store(state, i, value):
    """Write element ``i`` of optional state; nothing where it is ``None`` (njit only)."""


@overload(_store)
def _store_overload(state, i, value):
    if isinstance(state, types.NoneType):
        return lambda state, i, value: None

    def store(state, i, value):
        state[i] = value

    return store


def _jitted(function):
    """``function`` compiled by Numba, with the plain Python helpers it calls from the family
    modules (directly or as ``_common.name``) compiled too: the same code, made callable from
    njit. Functions Numba already compiles are kept."""
    if hasattr(function, "py_func") or not isinstance(function, pytypes.FunctionType):
        return function
    namespace = dict(function.__globals__)
    for name in function.__code__.co_names:
        if name in _NJIT_FORMS and _NJIT_FORMS[name] in namespace:
            namespace[name] = namespace[_NJIT_FORMS[name]]
        value = namespace.get(name)
        if isinstance(value, pytypes.FunctionType) and value.__module__.startswith("numadam.families"):
            namespace[name] = _jitted(value)
        elif isinstance(value, pytypes.ModuleType) and value.__name__.startswith("numadam.families"):
            proxy = pytypes.ModuleType(value.__name__ + "_jitted")
            for attribute, member in vars(value).items():
                setattr(proxy, attribute, _jitted(member) if isinstance(member, pytypes.FunctionType) else member)
            namespace[name] = proxy
    copy = pytypes.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__,
                                function.__closure__)
    return njit(inline="always")(copy)


def hyperparameter_order(cls):
    """The names of the class's hyperparameters in signature order (pinned ones left out): the
    order ``<family>_step`` takes them in."""
    names = [h.name for h in cls.algorithm.hyperparameters if h.name not in cls.pinned]
    order = list(inspect.signature(cls).parameters)
    return sorted(names, key=order.index)


class Offered(NamedTuple):
    """What this module offers of one family (``<family>_rule``, ``_scalars``, ``_flags``, ``_step``)."""

    rule: object
    scalars: object
    flags: object
    step: object


def _make(name, cls):
    algorithm = cls.algorithm
    always = [kind.name for kind in algorithm.state if kind.present is None]
    n_state = len(algorithm.state)
    hyper = hyperparameter_order(cls)
    defaults = {**cls._class_defaults, **cls.pinned}
    fields = algorithm.Hyper._fields
    carried = algorithm.carry is not None
    scalars_of = _jitted(algorithm.scalars)
    flags_of = _jitted(algorithm.flags)
    advance = _jitted(algorithm.carry.advance) if carried else None
    n_fields = len(algorithm.Scalars._fields)

    # ``<name>_scalars(step, *hyperparameters[, carry])``: float64 scalars (and the new carry).
    signature = ", ".join(f"{h}={defaults[h]!r}" for h in hyper)

    optional = {h.name for h in algorithm.hyperparameters if _may_be_none(h)}

    def field(h):
        value = h if h in hyper else repr(defaults[h])
        if isinstance(defaults[h], str):
            return f"constant({value})"
        if isinstance(defaults[h], tuple) and None in defaults[h]:  # Adafactor's eps: (None or a number, a number)
            return "(" + ", ".join(f"optional({value}[{j}])" if item is None else f"{value}[{j}]"
                                   for j, item in enumerate(defaults[h])) + ")"
        return f"optional({value})" if h in optional else value

    hyper_tuple = "Hyper(" + ", ".join(field(h) for h in fields) + ")"
    carry_arg = ", carry=None" if carried else ""
    # ``scalars_at(step, h, carry)``: what both functions below compute from ``h``, inlined into each.
    lines = ["def scalars_at(step, h, carry):"]
    if carried:
        lines += ["    if carry is None:", "        carry = initial", "    carry = advance(float(step), h, carry)",
                  "    return scalars_of(float(step), h, carry), carry"]
    else:
        lines.append("    return scalars_of(float(step), h, ()), None")
    # ``<name>_scalars(step, *hyperparameters[, carry])``: float64 scalars (and the new carry).
    lines += [f"def {name}_scalars(step, {signature}{carry_arg}):",
              f"    h = {hyper_tuple}",
              f"    return scalars_at(step, h, {'carry' if carried else '()'}){'' if carried else '[0]'}"]
    # ``<name>_flags(*hyperparameters)``: the rule's compile-time switches.
    lines += [f"def {name}_flags({signature}):", f"    return flags_of({hyper_tuple})"]
    # ``<name>_step(param, grad, *state, step, *hyperparameters[, carry])``
    state_args = "".join(f"{kind}, " for kind in always)  # each with its comma: a family may keep none
    # State only some options keep (AMSGrad's maximum, SGD's momentum) comes by keyword, None without them.
    optional_state = [kind.name for kind in algorithm.state if kind.present is not None]
    optional_args = "".join(f", {kind}=None" for kind in optional_state)
    lines += [f"def {name}_step(param, grad, {state_args}step, {signature}{carry_arg}{optional_args}):",
              f"    h = {hyper_tuple}"]
    for k, kind in enumerate(k for k in algorithm.state if k.present is not None):  # refused if left out
        lines += [f"    if {kind.name} is None and present_{k}(h):",
                  f"        raise ValueError('{name}_step: {kind.when} keeps {kind.name}; pass it by name "
                  f"({kind.name}=an array like param)')"]
    sampled = next((kind for kind in algorithm.state if kind.sampled is not None), None)
    if sampled is not None:  # (Prodigy's slice_p: a sample's state has its own shape, which this step does not take)
        lines += ["    if sample_step(h) != 1:",
                  f"        raise ValueError('{name}_step keeps {sampled.name} on every element: it takes slice_p=1; "
                  f"numadam.{algorithm.title} keeps it on a sample')"]
    lines.append(f"    wide, carry = scalars_at(step, h, {'carry' if carried else '()'})")
    narrowed = [f"narrow(wide[{j}], param)" for j in range(n_fields)]
    lines += ["    scalars = Scalars(" + ", ".join(narrowed) + ")",
              "    flags = flags_of(h)",
              "    like = narrow(0.0, param)"]
    if algorithm.factored:  # a step of its own shape: the factors, the norms, the update
        return _make_factored(name, algorithm, lines, narrowed, scalars_of, flags_of)
    loads = ", ".join(f"{kind.name}[i]" if kind.name in always else f"load({kind.name}, i, like)"
                      for kind in algorithm.state)
    loads = f"({loads}{',' if n_state == 1 else ''})"
    stores = [f"{kind}[i] = state[{k}]" if kind in always else f"store({kind}, i, state[{k}])"
              for k, kind in enumerate(k.name for k in algorithm.state)]
    # The first pass's arguments: the state (optional kinds included: None where absent).
    pass_args = state_args + "".join(f"{kind}, " for kind in optional_state)
    if algorithm.norms is not None:  # a first pass: the state, and each parameter's sums of squares
        # As the objects' CPU pre-pass sums: in chunks of its size, each in tiles of NORMS_TILE (the
        # rule's loop, then the sums' loop, compiled with reassociation like the kernel's: see
        # numadam.targets.body._tiled_norm_loops), added in order. The field the sums set is then
        # rounded once, like the others.
        lines += ["    param_squares = direction_squares = 0.0",
                  f"    for start in range(0, param.size, {CpuBackend.chunk_size}):",
                  f"        a, b = norm_sums(param, grad, {pass_args}start, min(param.size, start + "
                  f"{CpuBackend.chunk_size}), scalars, flags, like)",
                  "        param_squares += a",
                  "        direction_squares += b"]
        if algorithm.sums_every_parameter:  # the sums give the carry (Prodigy's d), the carry the scalars
            # (a new name: ``carry``, once None, is an optional of Numba's, which the scalars refuse)
            lines += ["    moved = total(param_squares, direction_squares, carry, (h,))",
                      "    wide = scalars_of(float(step), h, moved)"]
        else:
            field = algorithm.Scalars._fields.index(algorithm.norms.field)
            narrowed[field] = (f"narrow(value(param_squares, direction_squares), param) if applies(h) "
                               f"else {narrowed[field]}")
        lines += ["    scalars = Scalars(" + ", ".join(narrowed) + ")"]
        # The two sums, as the kernels' norms pass adds them (squares, or the rule's two terms).
        added = ["            " + line for line in
                 norms_sum_lines(algorithm.norms.terms, "tile[np.uint64(i - first)]", "a")
                 + norms_sum_lines(algorithm.norms.terms, f"tile[np.uint64({NORMS_TILE} + i - first)]", "b")]
        read = ["            p, direction = direction"] if algorithm.norms.terms else []
        lines = [f"def norm_sums(param, grad, {pass_args}start, stop, scalars, flags, like):",
                 "    a = b = 0.0",
                 f"    tile = np.empty({2 * NORMS_TILE}, param.dtype)",
                 f"    for first in range(start, stop, {NORMS_TILE}):",
                 f"        last = min(first + {NORMS_TILE}, stop)",
                 "        for signed in range(first, last):",
                 "            i = np.uint64(signed)  # no negative index to wrap: the loop vectorizes",
                 "            p = param[i]",
                 f"            state, direction = moments(p, grad[i], {loads}, scalars, flags)"] + [
                 f"            {store}" for store in stores] + read + [
                 "            tile[np.uint64(i - first)] = p",
                 f"            tile[np.uint64({NORMS_TILE} + i - first)] = direction",
                 "        for i in range(first, last):"] + added + ["    return a, b"] + lines
    lines += ["    for i in range(param.size):",
              f"        p, state = rule(param[i], grad[i], {loads}, scalars, flags)",
              "        param[i] = p"]
    lines += [f"        {store}" for store in stores]
    lines.append(("    return moved" if algorithm.sums_every_parameter else "    return carry") if carried
                 else "    return None")
    namespace = {"Hyper": algorithm.Hyper, "Scalars": algorithm.Scalars, "scalars_of": scalars_of, "flags_of": flags_of,
                 "advance": advance, "initial": algorithm.initial_carry(), "rule": algorithm.rule, "np": np,
                 "inf": math.inf,  # (a default: Prodigy's growth_rate)
                 "float64": np.float64,
                 "narrow": _in_dtype_of, "constant": _constant, "optional": _optional, "load": _load,
                 "store": _store}
    if algorithm.norms is not None:
        namespace.update(moments=algorithm.norms.rule, value=_jitted(algorithm.norms.value),
                         applies=_jitted(algorithm.norms.applies), total=_jitted(algorithm.norms.total))
    if sampled is not None:
        namespace["sample_step"] = _jitted(sampled.sampled)
    namespace.update({f"present_{k}": _jitted(kind.present)
                      for k, kind in enumerate(k for k in algorithm.state if k.present is not None)})
    exec("\n".join(lines), namespace)
    namespace["scalars_at"] = njit(inline="always")(namespace["scalars_at"])
    if algorithm.norms is not None:
        namespace["norm_sums"] = njit(fastmath={"reassoc"}, error_model=ERROR_MODEL)(namespace["norm_sums"])
    return Offered(algorithm.rule, njit(namespace[f"{name}_scalars"]), njit(namespace[f"{name}_flags"]),
                   njit(error_model=ERROR_MODEL)(namespace[f"{name}_step"]))


def _make_factored(name, algorithm, lines, narrowed, scalars_of, flags_of):
    """The :class:`Offered` of a family with factored state (:mod:`numadam.core.factors`): its step
    takes ``param, grad, row_var, col_var`` (a matrix and its factors, or a vector, its full second
    moment and ``col_var`` ignored) and makes the objects' three passes in one call: the factors'
    sums (in float64, in order), the norms, the update. ``lines`` hold the generated source up to
    the step's narrowed scalars (``scalars``; the factored step names its own ``s``)."""
    field = algorithm.Scalars._fields.index(algorithm.norms.field)
    wide = "Scalars(" + ", ".join(f"wide[{j}]" for j in range(len(narrowed))) + ")"
    narrowed = list(narrowed)
    narrowed_field = f"narrow(value(sums[0], sums[1], param.size, {wide}), param)"
    derived = "".join(f"{kind.name}, " for kind in algorithm.state if kind.derived)
    lines = [line.replace(f"def {name}_step(param, grad, row_var, col_var, {derived}step,",
                          f"def {name}_step(param, grad, row_var, col_var, step,") for line in lines]
    # A matrix's direction from its factors' scales, a vector's from its full second moment.
    narrowed[algorithm.Scalars._fields.index("factored")] = "narrow(1.0 if param.ndim >= 2 else 0.0, param)"
    lines += ["    s = Scalars(" + ", ".join(narrowed) + ")",
              "    weight, floor = factor_weights(s)",
              "    mean, row_scale, col_scale = moved_factors(param, grad, row_var, col_var, weight, s.one - weight, "
              "floor)",
              "    sums = factored_sums(param, grad, row_var, col_var, mean, row_scale, col_scale, s, flags)",
              "    s = Scalars(" + ", ".join(narrowed[:field] + [narrowed_field] + narrowed[field + 1:]) + ")",
              "    factored_update(param, grad, row_var, col_var, mean, row_scale, col_scale, s, flags)",
              "    return None"]
    namespace = {"Hyper": algorithm.Hyper, "Scalars": algorithm.Scalars, "scalars_of": scalars_of,
                 "flags_of": flags_of, "narrow": _in_dtype_of, "constant": _constant, "optional": _optional,
                 "value": _jitted(algorithm.norms.value), "factor_weights": _jitted(algorithm.factors),
                 "moved_factors": _moved_factors, "factored_sums": _factored_passes(algorithm.norms.rule, True),
                 "factored_update": _factored_passes(algorithm.rule, False)}
    exec("\n".join(lines), namespace)
    namespace["scalars_at"] = njit(inline="always")(namespace["scalars_at"])
    return Offered(algorithm.rule, njit(namespace[f"{name}_scalars"]), njit(namespace[f"{name}_flags"]),
                   njit(error_model=ERROR_MODEL)(namespace[f"{name}_step"]))


def _moved_factors(param, grad, row_var, col_var, weight, one_minus_weight, floor):
    """The factors of ``param`` moved toward ``grad``'s squares (njit only), by the CPU factors' pass
    (:mod:`numadam.targets.cpu.factor_sums`) from its sums, over its blocks; returns the floored row
    mean and the rows' and columns' scales (1 and two empty arrays for a vector, whose ``row_var`` is
    its full second moment). Factors of other shapes are refused: Numba would read and write past
    their ends."""


@overload(_moved_factors)
def _moved_factors_overload(param, grad, row_var, col_var, weight, one_minus_weight, floor):
    from .targets.cpu.factor_sums import matrix_squares, moved_factors_from_sums, moved_variance

    if param.ndim == 1:
        def vector(param, grad, row_var, col_var, weight, one_minus_weight, floor):
            if grad.shape != param.shape or row_var.shape != param.shape:
                raise ValueError("adafactor_step: grad and row_var (the full second moment) of a vector must "
                                 "have its shape")
            moved_variance(grad, _in_dtype_of(1.0, param), _in_dtype_of(np.inf, param), row_var, weight,
                           one_minus_weight)
            return _in_dtype_of(1.0, param), np.empty((0, 1), row_var.dtype), np.empty((1, 0), row_var.dtype)
        return vector
    if param.ndim != 2:
        raise errors.TypingError("numadam.jit's factored steps take a vector or a matrix")

    def matrix(param, grad, row_var, col_var, weight, one_minus_weight, floor):
        n_rows, n_columns = param.shape
        if grad.shape != param.shape or row_var.shape != (n_rows, 1) or col_var.shape != (1, n_columns):
            raise ValueError("adafactor_step: the grad of an (R, C) matrix must have its shape, row_var the "
                             "shape (R, 1) and col_var (1, C)")
        row_sums, column_sums = matrix_squares(grad, _in_dtype_of(1.0, grad), _in_dtype_of(np.inf, grad))
        mean = np.empty(1, row_var.dtype)
        row_scale, col_scale = np.empty((n_rows, 1), row_var.dtype), np.empty((1, n_columns), row_var.dtype)
        moved_factors_from_sums(row_sums, column_sums, row_var.T, col_var, mean, row_scale.T, col_scale, weight,
                                one_minus_weight, floor)
        return mean[0], row_scale, col_scale
    return matrix


def _factored_passes(rule, norms):
    """The norms pass (``norms``: it returns the float64 sums of squares of the parameter and of the
    direction) or the update of a factored rule over a vector or a matrix (njit only)."""

    def stub(param, grad, row_var, col_var, mean, row_scale, col_scale, s, flags):
        pass

    @overload(stub)
    def implementation(param, grad, row_var, col_var, mean, row_scale, col_scale, s, flags):
        if param.ndim == 1:
            def vector(param, grad, row_var, col_var, mean, row_scale, col_scale, s, flags):
                a = b = 0.0
                for i in range(param.size):
                    state = (row_var[i], s.one, mean, s.one - s.one, s.one - s.one)
                    if norms:
                        _, direction = rule(param[i], grad[i], state, s, flags)
                        wide = np.float64(param[i])
                        a += wide * wide
                        wide = np.float64(direction)
                        b += wide * wide
                    else:
                        param[i] = rule(param[i], grad[i], state, s, flags)[0]
                return a, b
            return vector

        def matrix(param, grad, row_var, col_var, mean, row_scale, col_scale, s, flags):
            a = b = 0.0
            for r in range(param.shape[0]):
                for c in range(param.shape[1]):
                    state = (row_var[r, 0], col_var[0, c], mean, row_scale[r, 0], col_scale[0, c])
                    if norms:
                        _, direction = rule(param[r, c], grad[r, c], state, s, flags)
                        wide = np.float64(param[r, c])
                        a += wide * wide
                        wide = np.float64(direction)
                        b += wide * wide
                    else:
                        param[r, c] = rule(param[r, c], grad[r, c], state, s, flags)[0]
            return a, b
        return matrix

    return stub


@functools.cache
def _functions():
    """The functions of every family (:func:`numadam.families`)."""
    return {name: _make(name, cls) for name, cls in families().items()}


def offered(name):
    """The :class:`Offered` functions of family ``name`` (a name of :func:`numadam.families`)."""
    return _functions()[name]


def _torch_adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """Adam with torch's defaults and L2 decay (see the module docstring)."""
    return _adam_generic(param, grad, exp_avg, exp_avg_sq, step, lr, (beta1, beta2), eps, weight_decay)


def __getattr__(attribute):
    for name, offered in _functions().items():
        for kind, function in offered._asdict().items():
            if attribute == f"{name}_{kind}" and attribute != "adam_step":
                return function
    raise AttributeError(f"module 'numadam.jit' has no attribute {attribute!r}")


_adam_generic = njit(inline="always")(_functions()["adam"].step.py_func)  # no call left: no reference counting
adam_step = njit(error_model=ERROR_MODEL)(_torch_adam_step)
__all__ = ["adam_step"] + [f"{name}_{kind}" for name in _functions() for kind in Offered._fields
                           if f"{name}_{kind}" != "adam_step"]


def __dir__():
    return sorted(list(globals()) + __all__)
