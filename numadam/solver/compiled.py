r"""The whole of :func:`numadam.minimize` in one Numba function, for Numba objectives.

When ``fun`` (and ``jac``, unless ``jac=True``) are ``@numba.njit`` functions, the
loop itself compiles: the objective, the gradient's checks and cast, the
clipping, the family's step (:mod:`numadam.jit`, the rule and host scalars the
optimizer objects run), the projection onto the bounds, the learning-rate
schedule and the stop rules (:mod:`numadam.solver.rules`) run in machine code,
with no Python between iterations. Each piece is the code the Python loop runs
(the same functions, compiled), so a compiled solve takes the Python loop's
iterates bit for bit.

:func:`prepared` decides whether a solve compiles and why not; :class:`CompiledSolve`
writes the solve's source for its configuration (the family, which options are on,
the schedule's shape, the objective), compiles it once per process and, where the
objective is a module-level function of a file, caches the machine code on disk:
the source is written to a file named by a hash of itself, of numadam's sources
and of the objective's module sources, so a second process loads the machine code
and an edit to either compiles anew.
"""

import copy
import enum
import functools
import hashlib
import importlib.util
import math
import os
import pathlib
import sys
import sysconfig
import textwrap
import threading
import time
import types as pytypes
from typing import NamedTuple

import numpy as np
from numba import typeof, types
from numba.core.registry import CPUDispatcher

from .. import jit as jit_steps
from ..core.pipeline import OPTIONS
from ..schedules import Constant, CosineDecay, ExponentialDecay, LinearWarmup, StepDecay
from ..targets.block_labels import fresh_block_labels
from ..targets.cpu import factored_step, kernels as cpu_kernels
from ..targets import fingerprint
from ..targets.fingerprint import code_names, python_function

#: What a compiled run returns in its status where the gradient's shape is not x's.
BAD_SHAPE = -2

#: How many values of ``fun`` a compiled solve's history holds before it grows (by doubling; one more,
#: since the loop runs two iterations a pass and keeps room for both): 8 MiB,
#: which the OS backs page by page as the values are written, so that a long solve neither copies
#: its history as it grows nor pays for pages it never writes.
HISTORY_CAPACITY = 1 << 20

#: The policy options a compiled solve applies (bounds, as a projection); every other must be at its default.
_PROJECTIONS = ("bounds", "nonneg")
_POLICY_DEFAULTS = {option.name: option.default for option in OPTIONS}


class NormsSolveKernel(NamedTuple):
    """What a solve of a family with norms steps with: the optimizer's one-call norms kernel's
    arguments (:class:`~numadam.targets.cpu.kernels.NormsStepArguments`, or
    :class:`~numadam.targets.cpu.factored_step.FactoredStepArguments` with factored state), and
    the gradient array they are bound to, which the solve fills before each call."""

    arguments: tuple
    step_grad: object


#: The ints Numba types as int64 in a solve's arguments (those beyond: as uint64, or not at all).
_INT64 = (-(1 << 63), 1 << 63)


def _int_outside_int64(argument):
    """The first int outside int64 in ``argument``, itself or within its (nested) tuples; ``None``
    where there is none."""
    if type(argument) is int:
        return None if _INT64[0] <= argument < _INT64[1] else argument
    if type(argument) is tuple:
        for item in argument:
            outside = _int_outside_int64(item)
            if outside is not None:
                return outside
    return None


class NotCompilable(Exception):
    """Why a solve cannot compile, in words (see :func:`prepared`)."""


def prepared(fun, jac, args, x, optimizer, family, schedule, clip, box, stop_rules, callback, progress, nonfinite,
             compiled):
    """The :class:`CompiledSolve` of a solve, or ``None`` where it runs in Python.

    ``compiled`` is ``None`` (compile where possible), ``True`` (compile, or raise a
    ``TypeError`` saying why not) or ``False``. ``x`` is the solver's working copy of
    ``x0`` and ``optimizer`` the optimizer over it that the Python loop would step:
    its hyperparameters and policies are the checked ones.
    """
    if compiled is False:
        return None
    try:
        if type(args) is not tuple:  # (minimize makes a tuple of anything else but its subclasses)
            raise NotCompilable(f"args is a {type(args).__name__}, which the compiled solve cannot unpack into "
                                "fun's arguments; pass a plain tuple")
        for k, argument in enumerate(args):
            outside = _int_outside_int64(argument)
            if outside is not None:
                raise NotCompilable(f"args[{k}] holds the int {outside}, outside int64: " + (
                    "Numba types it as uint64 inside the arguments' tuple, after which its dispatcher fails on a "
                    "tuple holding a negative int; pass numpy.uint64 of it" if 0 <= outside < 1 << 64 else
                    "Numba has no type for it"))
        _check_compilable(fun, jac, x, optimizer, schedule, clip, callback, progress, nonfinite)
        return CompiledSolve(fun, jac, args, x, optimizer, family, schedule, clip, box, stop_rules)
    except NotCompilable as reason:
        if compiled:
            raise TypeError(f"compiled=True: the solve cannot compile: {reason}") from None
        return None


#: Solves prepared by :func:`prepared`, by their configuration (:func:`configuration_key`), without
#: their start, arguments, stop rules or state: a call of ``minimize`` that repeats a configuration
#: (a fit in a loop, a benchmark) skips the optimizer's and the objective's checks, which cost more
#: than a short solve. At most :data:`_PREPARED_LIMIT`, the oldest dropped first, each holding at
#: most :data:`_PREPARED_BYTES` of arrays (its bounds'); kept and dropped under :data:`_PREPARED_LOCK`.
_PREPARED = {}
_PREPARED_LIMIT = 64
_PREPARED_BYTES = 1 << 20
_PREPARED_LOCK = threading.Lock()


def configuration_key(fun, jac, args, x0, optimizer_type, bounds, clip, schedule, callback, progress, nonfinite,
                      hyperparameters):
    """A key of everything :func:`prepared` reads of a ``minimize`` call but its start's values, the
    arguments' values and the stop rules, where each part is a plain value that equals only what
    passes the same checks (a number by its type and sign, a string, ``None``, a tuple of them; a
    NumPy ``x0`` by dtype and shape; ``args``, a tuple of arrays and numbers, by what decides their
    Numba types, :func:`_type_key`); ``None`` (nothing is reused) for anything else: bounds, a
    callback, a callable clip, a schedule that is not a closed form, other arguments."""
    if callback is not None or progress is not False or nonfinite != "stop" or bounds is not None:
        return None
    if type(x0) is not np.ndarray or not _is_numba_function(fun) or not (jac is True or _is_numba_function(jac)):
        return None
    if type(args) is not tuple or not all(type(argument) in (np.ndarray, float, bool) or (
            type(argument) is int and _int_outside_int64(argument) is None) for argument in args):
        return None
    rate = None
    if schedule is not None:
        rate_params = []
        source = _rate_source(schedule, "nit", rate_params)
        rate = (source, _plain(tuple(rate_params)))
        if source is None or rate[1] is None:
            return None
    parts = (_plain(clip), _plain(tuple(sorted(hyperparameters.items()))))
    if any(part is None for part in parts):
        return None
    return (fun, jac, optimizer_type, x0.dtype, x0.shape, _type_key(args), rate) + parts


def _plain(value):
    """``value`` as a key that equals only an equal value of the same type (a float with its sign, so
    that -0.0 is not 0.0); ``None`` where it is not a number, string, ``None`` or a tuple of them."""
    kind = type(value)
    if kind is float:
        return kind, value, math.copysign(1.0, value)
    if kind in (bool, int, str) or value is None:
        return kind, value
    if kind is tuple:
        items = tuple(_plain(item) for item in value)
        return None if None in items else (kind, items)
    return None


def reused(key, x0, args, stop_rules):
    """The solve prepared for ``key`` (:func:`configuration_key`), restarted from a working copy of
    ``x0`` with ``args`` and ``stop_rules``; ``None`` where none was prepared."""
    template = None if key is None else _PREPARED.get(key)
    if template is None:
        return None
    x = x0.astype(template.x.dtype, copy=True)  # (minimize's working copy of a NumPy x0)
    if not x.flags.c_contiguous:  # (a layout the key does not tell apart: checked the long way)
        return None
    return template.restarted(x, args, stop_rules)


def remember(key, solve):
    """Keep ``solve`` (prepared by :func:`prepared`, and run) for calls of the configuration ``key``:
    one that owns its state and holds at most :data:`_PREPARED_BYTES` of bounds, kept without its
    start, arguments, stop rules and state."""
    if key is None or solve is None or not solve.owns_its_state:
        return
    if sum(bound.nbytes for bound in (solve.low, solve.high) if bound is not None) > _PREPARED_BYTES:
        return
    template = copy.copy(solve)
    template.x = np.empty((0,), solve.x.dtype)  # (its dtype only: the user's result keeps the start)
    template.args = template.stop_rules = template.state = None
    with _PREPARED_LOCK:
        while len(_PREPARED) >= _PREPARED_LIMIT:
            del _PREPARED[next(iter(_PREPARED))]
        _PREPARED[key] = template


def _is_numba_function(value):
    return isinstance(value, CPUDispatcher)


def _check_compilable(fun, jac, x, optimizer, schedule, clip, callback, progress, nonfinite):
    """Raise :class:`NotCompilable` naming the first thing that keeps the solve in Python."""
    if getattr(optimizer, "algorithm", None) is None:
        raise NotCompilable(f"{type(optimizer).__name__}'s step multiplies whole matrices through the array "
                            "library (its Newton–Schulz iteration), which a compiled solve does not call")
    algorithm = optimizer.algorithm
    step = algorithm.sample_step(algorithm.Hyper(**{**optimizer.hyperparameters(), **optimizer.pinned}))
    if step > 1:
        raise NotCompilable(f"slice_p={step} keeps {algorithm.title}'s statistics on a sample, which the compiled "
                            "step (numadam.jit's, on every element) does not")
    if not _is_numba_function(fun):
        raise NotCompilable("fun is not a Numba function (decorate it with @numba.njit)")
    if jac is not True and not _is_numba_function(jac):
        raise NotCompilable("jac is not a Numba function (decorate it with @numba.njit, or pass jac=True)")
    if type(x) is not np.ndarray or x.dtype.kind != "f":
        raise NotCompilable(f"x0 is not a real NumPy array (float32 or float64); got {type(x).__name__} of "
                            f"dtype {x.dtype}")
    if not x.flags.c_contiguous:
        raise NotCompilable("x0 is not in C order (a compiled solve walks the iterate flat, in C order)")
    if callback is not None:
        raise NotCompilable("a callback is Python code, called between iterations")
    if progress:
        raise NotCompilable("progress=True draws a Python progress bar between iterations")
    if nonfinite != "stop":
        raise NotCompilable(f"nonfinite={nonfinite!r} (a compiled solve stops at a non-finite value: 'stop')")
    if clip is not None and not isinstance(clip, tuple):
        raise NotCompilable("a callable clip is Python code; pass ('value', c), ('norm', c) or ('global_norm', c)")
    if not is_closed_form(schedule):
        raise NotCompilable(f"the schedule {schedule!r} is not a closed form of the step (Constant, StepDecay, "
                            "ExponentialDecay, CosineDecay, or LinearWarmup of one)")
    policies = optimizer.policies
    for name, value in policies.items():
        if name not in _PROJECTIONS and value != _POLICY_DEFAULTS[name] and name != "complex_mode":
            raise NotCompilable(f"the option {name}={value!r} (a compiled solve applies only bounds and nonneg)")


def is_closed_form(schedule):
    """Whether ``schedule`` (or ``None``: the constant ``lr``) is a closed form of the step, which a
    compiled solve computes and which needs no objective's value (unlike ReduceOnPlateau's)."""
    return schedule is None or _rate_source(schedule, "k", []) is not None


def _rate_source(schedule, step, params):
    """Source of the rate of ``schedule`` after ``step`` steps (an expression), its numbers appended
    to ``params`` (read as ``rate_params[i]``); ``None`` for a schedule that is not a closed form."""
    def param(value):
        params.append(value)
        return f"rate_params[{len(params) - 1}]"

    kind = type(schedule)
    if kind is Constant:
        return param(schedule.lr)
    if kind is StepDecay:
        return f"step_decay_rate({step}, {param(schedule.lr)}, {param(schedule.step_size)}, {param(schedule.gamma)})"
    if kind is ExponentialDecay:
        return f"exponential_rate({step}, {param(schedule.lr)}, {param(schedule.gamma)})"
    if kind is CosineDecay:
        return (f"cosine_rate({step}, {param(schedule.lr)}, {param(schedule.total_steps)}, "
                f"{param(schedule.min_lr)})")
    if kind is LinearWarmup:
        warmup = param(schedule.warmup_steps)
        first = _rate_source(schedule.schedule, "0", params)
        after = _rate_source(schedule.schedule, f"({step} - {warmup})", params)
        if first is None or after is None:
            return None
        return f"(warmup_rate({step}, {warmup}, {first}) if {step} < {warmup} else {after})"
    return None


class CompiledSolve:
    """One solve's compiled loop and its arguments (see the module docstring); :meth:`run` solves."""

    BAD_SHAPE = BAD_SHAPE

    def __init__(self, fun, jac, args, x, optimizer, family, schedule, clip, box, stop_rules):
        algorithm = optimizer.algorithm
        self.x, self.args, self.stop_rules = x, args, stop_rules
        hyperparameters = optimizer.hyperparameters()
        h = algorithm.Hyper(**{**hyperparameters, **optimizer.pinned})
        flat = x.reshape(-1)
        self.kernel, n_fields, optional_names = (), 0, []
        self._h, self._state_kinds = h, ()
        if algorithm.norms is None or algorithm.sums_every_parameter:
            # numadam.jit's step, on the solve's own state (and Prodigy's: its sums over the one
            # iterate are the whole optimizer's, and its step makes both passes)
            kinds = [kind for kind in algorithm.state if kind.present is None]  # then the options' own, by name
            optional = [kind for kind in algorithm.state_kinds(h) if kind.present is not None]
            self._state_kinds = tuple(kinds + optional)
            self.state = tuple(_initial_state(kind, h, flat) for kind in self._state_kinds)
            optional_names = [kind.name for kind in optional]
        else:  # the optimizer's own norms kernel and state: two passes, their sums as the objects add them
            bound = np.empty_like(x)
            found = optimizer.engine.norms_kernel(bound)
            if found is None:
                raise NotCompilable(f"{algorithm.title} has no one-call norms kernel for these parameters")
            self.kernel = NormsSolveKernel(found.arguments, bound.reshape(-1))
            self.state, n_fields = (), len(algorithm.Scalars._fields)
            self._holder = optimizer  # the kernel's table points into its state: it must outlive the solve
        self.carry = algorithm.initial_carry()
        order = jit_steps.hyperparameter_order(type(optimizer))
        hyper_args, self.hyper = [], []
        for name in order:
            value = hyperparameters[name]
            if name == "lr" and schedule is not None:
                hyper_args.append("lr")
            elif isinstance(value, (str, bool)) or value is None:
                # A switch: a constant of the compiled code, so the rule's branches on it fold away
                # (numadam.jit compares strings at compile time); numbers stay arguments.
                hyper_args.append(repr(value))
            else:
                self.hyper.append(value)
                hyper_args.append(f"hyper[{len(self.hyper) - 1}]")
        rate_params = []
        rate = None if schedule is None else _rate_source(schedule, "nit", rate_params)
        self.rate_params = tuple(rate_params)
        self.low, self.high = _projection(optimizer.policies, x)
        self.clip_limit = 0.0 if clip is None else float(clip[1])
        argument_types = (typeof(x),) + tuple(typeof(a) for a in args)
        _check_objective(fun, jac, argument_types, x)  # so the gradient has x's dimensions
        source = _solve_source(family, x.dtype.name, x.ndim == 1, tuple(optional_names), len(self.state),
                               algorithm.carry is not None, tuple(hyper_args), rate,
                               None if clip is None else clip[0], self.low is not None, box is not None, jac is True,
                               n_fields, algorithm.factored)
        self.function = _compiled(source, fun, None if jac is True else jac)

    @property
    def owns_its_state(self):
        """Whether the solve keeps its own state (the families without norms, and Prodigy), so that other
        starts can be solved with a state of their own (:meth:`stacked_state`); a family with norms
        steps the optimizer's kernel, bound to that optimizer's state."""
        return self.kernel == ()

    def stacked_state(self, rows):
        """The initial state of a solve from each row of ``rows`` (``(P, n)``: flat starts), stacked:
        one ``(P, n)`` array per state array of :attr:`state`, in its order."""
        return tuple(rows.copy() if isinstance(kind.initial_for(self._h), str)
                     else np.full(rows.shape, kind.initial_for(self._h), rows.dtype) for kind in self._state_kinds)

    def restarted(self, x, args, stop_rules):
        """This solve's configuration (its compiled loop, hyperparameters, schedule, projection and
        clipping) from another start ``x`` (a working copy of ``x``'s dtype and shape), with ``args``
        and ``stop_rules`` of their own and a fresh state; a solve that owns its state only."""
        assert self.owns_its_state
        solve = copy.copy(self)
        solve.x, solve.args, solve.stop_rules = x, args, stop_rules
        flat = x.reshape(-1)
        solve.state = tuple(_initial_state(kind, self._h, flat) for kind in self._state_kinds)
        return solve

    def settings(self):
        """The solve's arguments between ``args`` and ``state``, the same for any start: the
        hyperparameters, the carry, the schedule's numbers, the bounds, the clipping limit and the
        stop rules' numbers (``ftol``/``xtol`` -1 when off)."""
        rules_ = self.stop_rules
        return (tuple(self.hyper), self.carry, self.rate_params, _or_empty(self.low, self.x),
                _or_empty(self.high, self.x), self.clip_limit, rules_.gtol,
                -1.0 if rules_.ftol is None else rules_.ftol, -1.0 if rules_.xtol is None else rules_.xtol,
                rules_.patience, rules_.maxiter)

    def run(self):
        """``(status, nit, nfev, value, candidate, grad_peak, history, grad)`` of the compiled loop, and
        the seconds the first call of this configuration spent compiling (0 when it was ready)."""
        arguments = (self.x, self.args, *self.settings(), self.state, self.kernel, HISTORY_CAPACITY)
        ready = (self.function, _type_key(arguments))
        compile_seconds = 0.0
        if ready not in _READY:  # Numba's typeof of these tuples costs more than a short solve
            signature = tuple(typeof(a) for a in arguments)
            if signature not in self.function.overloads:
                started = time.perf_counter()
                fresh_block_labels()
                self.function.compile(signature)
                compile_seconds = time.perf_counter() - started
            _READY.add(ready)
        return self.function(*arguments), compile_seconds


#: ``(solve, _type_key(arguments))`` pairs whose machine code this process holds.
_READY = set()


def _type_key(value):
    """What decides Numba's type of an argument of a solve, cheaply: an array's dtype, dimensions,
    layout and flags, a tuple's items, another value's Python type (an ``int`` by its sign, as
    Numba types those above 2**63 apart). :meth:`CompiledSolve.run` keys its compile-time report by
    it (a key that misses a difference costs only that report: the dispatcher still compiles what
    it has not seen), and :func:`configuration_key` the arguments it takes (arrays and numbers only,
    whose types it tells apart)."""
    kind = type(value)
    if kind is np.ndarray:
        flags = value.flags
        return kind, value.dtype, value.ndim, flags.c_contiguous, flags.f_contiguous, flags.writeable, flags.aligned
    if kind is tuple:
        return kind, tuple(_type_key(item) for item in value)
    if kind is int:
        return kind, value < 0, value.bit_length() > 63
    return kind


def _or_empty(array, x):
    return array if array is not None else np.empty(0, x.dtype)


def _initial_state(kind, h, flat):
    initial = kind.initial_for(h)
    if isinstance(initial, str):  # "param": a copy of the parameter
        return flat.copy()
    return np.full(flat.size, initial, flat.dtype)


def _projection(policies, x):
    """The optimizer's bounds as two flat arrays in ``x``'s dtype (as its engine holds them), or ``(None, None)``."""
    if policies["nonneg"]:
        low, high = 0.0, None
    elif policies["bounds"] is not None:
        low, high = policies["bounds"]
    else:
        return None, None
    return tuple(np.ascontiguousarray(np.broadcast_to(np.asarray(default if side is None else side, x.dtype),
                                                      x.shape)).reshape(-1)
                 for side, default in ((low, -np.inf), (high, np.inf)))


def _check_objective(fun, jac, argument_types, x):
    """Compile the objective for the iterate's type and refuse what it returns unless it is a real
    scalar and (with ``jac=True``, as a pair) a gradient array of ``x``'s dimensions and a real dtype."""
    returned = _return_type(fun, argument_types)
    expected_gradient = f"a real array of {x.ndim} dimension{'s' if x.ndim != 1 else ''} (x's shape {x.shape})"
    if jac is True:
        if not (isinstance(returned, types.BaseTuple) and len(returned) == 2):
            raise TypeError(f"with jac=True, fun must return (value, gradient): a real scalar and "
                            f"{expected_gradient}; it returns {returned}")
        value, gradient = returned
    else:
        value, gradient = returned, _return_type(jac, argument_types)
    if isinstance(value, types.Array) or (isinstance(gradient, types.Array)
                                           and isinstance(gradient.dtype, types.Boolean)):
        raise NotCompilable(f"fun returns {value} and {gradient}: a compiled solve takes a real scalar value and "
                            "a float or integer gradient")  # the Python loop takes a one-element array too
    if not (isinstance(value, (types.Float, types.Integer)) and not isinstance(value, types.Boolean)):
        raise TypeError(f"fun must return a real scalar as its value; it returns {value}")
    if not (isinstance(gradient, types.Array) and gradient.ndim == x.ndim
            and isinstance(gradient.dtype, (types.Float, types.Integer))):
        raise TypeError(f"the gradient must be {expected_gradient}; {'fun' if jac is True else 'jac'} returns "
                        f"{gradient}")


def _return_type(function, argument_types):
    compiled = function.overloads.get(argument_types)
    if compiled is None:  # (compile() looks it up too, behind a stack of Numba's event timers)
        fresh_block_labels()
        function.compile(argument_types)
        compiled = function.overloads[argument_types]
    return compiled.signature.return_type


# -- the source of a compiled solve ------------------------------------------------------------------


_TEMPLATE = """
def solve(x, args, hyper, carry, rate_params, low, high, clip_limit, gtol, ftol, xtol, patience, maxiter, state,
          kernel, history_capacity):
    flat = x.reshape(-1)
    grad = np.empty_like(flat)
    grad_odd = np.empty_like(flat)
    previous = flat.copy()
    previous_odd = np.empty_like(flat)
    {step_buffer}
    {state}
    history = np.empty(min(maxiter, history_capacity - 1) + 2)
    value = 0.0
{evaluate_grad}
    nfev = 1
{peak_grad}
    history[0] = value
    nit = 0
    quiet_f = 0
    quiet_x = 0
    candidate = value
    if math.isfinite(value) and math.isfinite(peak):
        status, quiet_f, quiet_x = stop_status(0, value, value, peak, 0.0, 0.0, quiet_f, quiet_x, gtol, ftol,
                                               xtol, patience, maxiter)
    else:
        status = NON_FINITE
    while status == NONE:
        if nit + 2 >= history.size:  # grown outside the iterations' loop (see _ITERATION)
            longer = np.empty(min(2 * history.size, maxiter + 2))
            longer[:history.size] = history
            history = longer
        while status == NONE and nit + 2 < history.size:
{from_even}
            if status != NONE:
                break
{from_odd}
    kept = history[:nit + 1]
    return (status, nit, nfev, value, candidate, peak, (kept.copy() if 2 * kept.size < history.size else kept),
            grad if nit % 2 == 0 else grad_odd)
"""


#: One iteration of the solve from iterate :math:`x_k`, at the indentation of the outer loop's body.
#: Its invariant: one pair's gradient array (``grad`` or ``grad_odd``) holds :math:`\nabla f(x_k)`
#: cast to ``x``'s dtype and its ``previous`` array holds :math:`x_k`, the iterate a non-finite
#: candidate steps back to and the one the ``xtol`` rule compares :math:`x_{k+1}` with. The
#: candidate's gradient is cast into the other pair's gradient array and the candidate into its
#: ``previous`` as it is measured, one pass:
#: accepted, they hold the invariant of the next iteration, which reads that pair (the template
#: writes two iterations a pass of its loop, from an even and from an odd :math:`k`); refused, the
#: accepted pair is left as it was. No array variable is reassigned in the loop (an array variable
#: reassigned in the hot loop cost 45 ns an iteration on a Zen 5, its reference counted at every
#: iteration: nearly half of a 10-parameter Rosenbrock step), so the loop grows the history outside
#: the iterations' loop, which runs two while it has room for both.
_ITERATION = """
        {clip}
        {rate}
        {step}
        {project}
{evaluate_candidate}
        nfev += 1
        candidate = value_fresh
{peak_candidate}
        if not (math.isfinite(candidate) and math.isfinite(candidate_peak)):
            copy_into(flat, {previous})
            status = NON_FINITE
            break
        nit += 1
        value = candidate
        peak = candidate_peak
        history[nit] = value
        change = 0.0
        largest = 0.0
        if xtol >= 0.0:
            change = largest_difference(flat, {previous})
            largest = largest_magnitude(flat)
        status, quiet_f, quiet_x = stop_status(nit, value, history[nit - 1], peak, change, largest, quiet_f,
                                               quiet_x, gtol, ftol, xtol, patience, maxiter)
"""


def _objective_source(result, jac_true, indent):
    """Lines evaluating the objective at ``x``: the value as a float64 ``result``, the gradient as
    ``gradient``, refused (with :data:`BAD_SHAPE`) unless it has ``x``'s shape."""
    if jac_true:
        lines = ["returned = fun(x, *args)", f"{result} = float(returned[0])", "gradient = returned[1]"]
    else:
        lines = [f"{result} = float(fun(x, *args))", "gradient = jac(x, *args)"]
    lines += ["if gradient.shape != x.shape:",
              "    return BAD_SHAPE, 0, 0, 0.0, 0.0, 0.0, history[:1], grad"]
    return _indented(lines, indent)


def _indented(lines, indent):
    return "\n".join(indent + line for line in lines)


def _cast_source(into, dtype, one_dimensional, indent, previous_into=None):
    """Lines casting ``gradient`` into ``into`` (``x``'s ``dtype``, by NumPy's name), in C order, and
    copying the iterate into ``previous_into`` (if given) on the way; then ``measured``: the cast
    gradient's largest magnitude as a float64, NaN if any element is NaN, as an integer maximum of
    the magnitudes' bits (:func:`~numadam.core.magnitudes.magnitude_bits`: it vectorizes). A vector is
    indexed (the fastest walk); other arrays, of any layout, are walked by ``.flat``, which is C
    order (``np.nditer`` walks the memory's order: a Fortran-ordered gradient would land
    transposed)."""
    body = [f"    {into}[i] = {'gradient[i]' if one_dimensional else 'element'}"]
    if previous_into is not None:
        body.append(f"    {previous_into}[i] = flat[i]")
    body.append(f"    top = max(top, magnitude_bits({into}[i]))")
    walk = (["for i in range(gradient.size):"] + body if one_dimensional
            else ["i = 0", "for element in gradient.flat:"] + body + ["    i += 1"])
    return _indented([f"top = magnitude_bits(np.{dtype}(0))"] + walk + ["measured = peak_of_bits(top)"], indent)


def _evaluate_source(result, dtype, jac_true, one_dimensional, indent):
    """Lines evaluating the objective at the first iterate :math:`x_0` into ``grad``, measured: kept
    even when it is not finite (the solve then stops at once and returns it)."""
    return _objective_source(result, jac_true, indent) + "\n" + _cast_source("grad", dtype, one_dimensional, indent)


def _peak_source(name, gradient, projected_gtol, indent):
    """``name = `` the gradient's measure for ``gtol``: as measured, or projected."""
    return f"{indent}{name} = " + (f"projected_peak(flat, {gradient}, low, high)" if projected_gtol else "measured")


@functools.lru_cache(maxsize=256)
def _solve_source(family, dtype, one_dimensional, optional, n_state, carried, hyper_args, rate, clip, projects,
                  projected_gtol, jac_true, n_fields, factored=False):
    """The source of ``solve`` for one configuration (see :data:`_TEMPLATE`) over an iterate of ``dtype``
    (its name, as NumPy's) and a gradient that is a vector or not (``one_dimensional``): ``n_state`` state arrays,
    the last of them the ``optional`` kinds (passed to the step by name). ``n_fields`` > 0: a family
    with norms, stepped by the optimizer's norms kernel (``kernel``: its arguments, then the gradient
    array they are bound to), whose scalar rows take the family's ``n_fields`` scalars each step;
    ``factored``: its one-call factored step, whose group row takes them
    (:func:`numadam.targets.cpu.factored_step.factored_step_serial`)."""
    state_names = [f"s{k}" for k in range(n_state)]
    positional, by_name = state_names[:n_state - len(optional)], state_names[n_state - len(optional):]
    reads_grad = clip is None and not n_fields  # the step reads the accepted gradient itself, never writes it
    if n_fields:
        scalars = f"wide = family_scalars(nit + 1, {', '.join(hyper_args)})"
        if factored:
            rows = [f"kernel.arguments.group_scalars[0, {j}] = wide[{j}]" for j in range(n_fields)]
            fields = factored_step.FactoredStepArguments._fields
        else:
            rows = [f"kernel.arguments.{row}[{j}] = wide[{j}]" for row in ("first_scalars", "scalars")
                    for j in range(n_fields)]
            fields = cpu_kernels.NormsStepArguments._fields
        call = f"norms_kernel({', '.join(f'kernel.arguments.{field}' for field in fields)})"
        norms_step = "\n        ".join([scalars] + rows + [call])

        def step(gradient):  # (the kernel reads kernel.step_grad)
            return norms_step

        tail = (f"\n\nfamily_scalars = inlined(jit_steps.offered({family!r}).scalars)\n"
                + ("norms_kernel = factored_step.factored_step_serial\n" if factored
                   else "norms_kernel = cpu_kernels.norms_then_update_serial\n"))
    else:
        def step(gradient):
            return (("carry = " if carried else "") + f"step(flat, {gradient}, "
                    + f"{''.join(n + ', ' for n in positional)}nit + 1, "
                    + ", ".join(list(hyper_args) + (["carry"] if carried else [])
                                + [f"{kind}={name}" for kind, name in zip(optional, by_name)]) + ")")

        tail = f"\n\nstep = inlined(jit_steps.offered({family!r}).step)\n"

    def from_pair(accepted, previous, candidate_grad, candidate_previous):
        """The iteration from the pair (``accepted``, ``previous``), its candidate into the other."""
        copy = "pass" if reads_grad else f"copy_into(step_grad, {accepted})"
        return textwrap.indent(_ITERATION.lstrip("\n").format(
            clip=copy if clip is None else (  # the step reads its gradient, never writes it
                copy + "\n        " + ("clip_value_in_place" if clip == "value" else "clip_norm_in_place")
                + "(step_grad, clip_limit)"),
            rate="pass" if rate is None else f"lr = {rate}",
            step=step(accepted if reads_grad else "step_grad"),
            project="project(flat, low, high)" if projects and not n_fields else "pass",  # the norms kernel projects
            evaluate_candidate=(_objective_source("value_fresh", jac_true, "        ") + "\n"
                                + _cast_source(candidate_grad, dtype, one_dimensional, "        ",
                                               candidate_previous)),
            peak_candidate=_peak_source("candidate_peak", candidate_grad, projected_gtol, "        "),
            previous=previous,
        ), "    ").rstrip("\n")

    return _TEMPLATE.format(
        state="; ".join(f"{name} = state[{k}]" for k, name in enumerate(state_names)),
        step_buffer=("step_grad = kernel.step_grad" if n_fields else "pass" if reads_grad
                     else "step_grad = np.empty_like(flat)"),
        evaluate_grad=_evaluate_source("value", dtype, jac_true, one_dimensional, "    "),
        peak_grad=_peak_source("peak", "grad", projected_gtol, "    "),
        from_even=from_pair("grad", "previous", "grad_odd", "previous_odd"),
        from_odd=from_pair("grad_odd", "previous_odd", "grad", "previous"),
    ) + tail


# -- compiling it, and caching the machine code ------------------------------------------------------------


_HEADER = '''"""A solve compiled by numadam.solver.compiled (generated; safe to delete)."""
import math

import numpy as np
from numba import njit

from numadam import jit as jit_steps
from numadam import schedules
from numadam.solver import rules
from numadam.solver.compiled import BAD_SHAPE
from numadam.targets.cpu import factored_step, kernels as cpu_kernels
from numadam.targets.disk_cache import cached_njit
from numadam.solver.rules import NONE, NON_FINITE


def inlined(function):
    """``function`` (plain Python or a Numba function) compiled into the solve: no call is left."""
    return njit(inline="always")(getattr(function, "py_func", function))


stop_status, clip_norm_in_place, clip_value_in_place, copy_into, largest_difference, largest_magnitude, \\
    project, projected_peak = map(inlined, (
        rules.stop_status, rules.clip_norm_in_place, rules.clip_value_in_place, rules.copy_into,
        rules.largest_difference, rules.largest_magnitude, rules.project, rules.projected_peak))
from numadam.core.magnitudes import magnitude_bits, peak_of_bits
cosine_rate, exponential_rate, step_decay_rate, warmup_rate = map(inlined, (
    schedules.cosine_rate, schedules.exponential_rate, schedules.step_decay_rate, schedules.warmup_rate))
'''


_COMPILED = {}


def _compiled(source, fun, jac):
    """The dispatcher of ``solve`` in ``source`` calling ``fun`` (and ``jac``): from a file of the disk
    cache where the objective is a module-level function of a file, else compiled in this process;
    made once per process for each source and objective."""
    found = _COMPILED.get((source, fun, jac))
    if found is None:
        found = _COMPILED[source, fun, jac] = _dispatcher(source, fun, jac)
    return found


def _dispatcher(source, fun, jac):
    importable = [_import_line(name, f) for name, f in (("fun", fun), ("jac", jac)) if f is not None]
    directory = _cache_directory()
    if directory is not None and all(line is not None for line in importable) and _numadam_sources_digest():
        return _cached_solve(directory, source, importable, [f for f in (fun, jac) if f is not None])
    namespace = {"fun": fun, "jac": jac}
    exec(compile(_HEADER + source, "<numadam compiled solve>", "exec"), namespace)
    from numba import njit

    return njit(error_model=jit_steps.ERROR_MODEL)(namespace["solve"])


def _import_line(name, function):
    """``from module import function as name`` where ``function`` is found by name in a module with a
    file (what a new process finds again); else ``None``."""
    python = function.py_func
    module = sys.modules.get(python.__module__)
    if module is None or getattr(module, "__file__", None) is None or "<" in python.__qualname__ \
            or "." in python.__qualname__ or getattr(module, python.__name__, None) is not function:
        return None
    if python.__module__ == "__main__":
        return f"{name} = __import__('__main__').{python.__name__}"
    return f"from {python.__module__} import {python.__name__} as {name}"


def cache_folder():
    """Where compiled solves are kept: ``$NUMADAM_CACHE_DIR/solves``, else ``numadam/solves`` in the
    user's cache folder."""
    root = os.environ.get("NUMADAM_CACHE_DIR")
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "numadam")
    return pathlib.Path(root) / "solves"


def cache_files():
    """Every file of the compiled solves' cache: the generated sources and Numba's files beside them."""
    folder = cache_folder()
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else []


def _cache_directory():
    """:func:`cache_folder`, made if need be; ``None`` if it cannot be written."""
    directory = cache_folder()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory if os.access(directory, os.W_OK) else None


@functools.cache
def _numadam_sources_digest():
    """A hash of every source file of numadam: any edit, or an upgrade, compiles solves anew; ``None``
    where a file changed after this process began importing numadam (or is gone): its code may not
    be the file's, so this process's solves are its own, compiled here and never saved
    (:func:`numadam.targets.fingerprint.source_digest` keeps kernels apart by the same rule)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_bytes()
            if fingerprint.changed_since_import(path.stat()):  # (read first: an edit between is caught)
                return None
        except OSError:
            return None
        digest.update(str(path.relative_to(root)).encode())
        digest.update(text)
    return digest.hexdigest()


def _objective_digest(functions):
    """A hash of what the objective's machine code is made of beyond numadam, from two sides.

    What this process runs: the code objects of every function of the user's own code that the
    objective reaches (not the standard library's, nor an installed package's), their default
    arguments, the options of their Numba dispatchers, and the globals they read, which Numba
    freezes into the code: the bytes of every array, every number, string, enum member and class
    by value or name, tuples item by item. And the source file of every user module reached (its
    overloads, jitclasses and whatever else the walk does not follow).

    A new process with an edited objective, or other data, compiles anew. A process that imported
    the objective and then saw its file edited hashes the new file but the old code: the code keeps
    the key apart from the new file's own process. What neither side sees is an edit made after the
    import that changes none of the reached code, defaults, options or globals (an ``@overload``'s
    body, say): that one the next process could load."""
    digest, modules = hashlib.sha256(), set()
    seen, pending = set(), []

    def reach(name, value):
        if isinstance(value, np.ndarray):
            digest.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
            if not value.dtype.hasobject:  # (an object array cannot be compiled in)
                digest.update(hashlib.sha256(np.ascontiguousarray(value).view(np.uint8)).digest())
        elif _is_constant(value):
            digest.update(f"{name}={type(value).__qualname__}:{value!r}".encode())
        elif isinstance(value, tuple):
            for k, item in enumerate(value):
                reach(f"{name}[{k}]", item)
        elif isinstance(value, type):
            digest.update(f"{name}=class {value.__module__}.{value.__qualname__}".encode())
            if issubclass(value, enum.Enum):
                digest.update(repr([(member.name, member.value) for member in value]).encode())
        elif python_function(value) is not None:
            options = getattr(value, "targetoptions", None)
            if options:
                digest.update(f"{name} options {sorted(options.items())!r}".encode())
            pending.append(value)

    for k, objective in enumerate(functions):
        reach(f"<objective {k}>", objective)
    while pending:
        function = python_function(pending.pop())
        if function is None or id(function) in seen or not _is_users(sys.modules.get(function.__module__)):
            continue
        seen.add(id(function))
        modules.add(function.__module__)
        digest.update(f"{function.__module__}.{function.__qualname__}".encode())
        _update_with_code(digest, function.__code__)
        reach("<defaults>", function.__defaults__ or ())
        for keyword, value in sorted((function.__kwdefaults__ or {}).items()):
            reach(f"<default {keyword}>", value)
        names = code_names(function.__code__)
        for name in sorted(names):
            value = function.__globals__.get(name)
            if isinstance(value, pytypes.ModuleType):
                if _is_users(value):
                    modules.add(value.__name__)
                    for attribute in sorted(names):
                        reach(f"{value.__name__}.{attribute}", getattr(value, attribute, None))
            else:
                reach(name, value)
        for cell in function.__closure__ or ():
            try:
                reach("<closure>", cell.cell_contents)
            except ValueError:  # a cell not yet filled
                pass
    for name in sorted(modules):
        digest.update(name.encode())
        digest.update(pathlib.Path(sys.modules[name].__file__).read_bytes())
    return digest.hexdigest()


def _is_constant(value):
    """Whether Numba freezes ``value`` as a constant of the code: a number, a string, ``None`` or an
    enum member (a tuple is walked item by item)."""
    return value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic, enum.Enum))


def _update_with_code(digest, code):
    """Hash what ``code`` computes: its bytecode, names, constants and exception table, and the code
    nested in it; not its line numbers."""
    digest.update(code.co_code)
    digest.update(code.co_exceptiontable)
    digest.update(repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags,
                        code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)).encode())
    for constant in code.co_consts:
        if isinstance(constant, pytypes.CodeType):
            _update_with_code(digest, constant)
        elif isinstance(constant, frozenset):  # (its order follows the strings' hashes, which vary by process)
            digest.update(repr(sorted(map(repr, constant))).encode())
        else:
            digest.update(f"{type(constant).__qualname__}:{constant!r}".encode())


#: Where the standard library and installed packages live: code there is not the user's.
_INSTALLED = tuple({os.path.realpath(path) for key, path in sysconfig.get_paths().items()
                    if key in ("stdlib", "platstdlib", "purelib", "platlib")})


def _is_users(module):
    """Whether ``module`` is the user's own code: a file outside the standard library, the installed
    packages and numadam (whose own sources key the cache apart)."""
    path = getattr(module, "__file__", None)
    if path is None or module.__name__.partition(".")[0] == "numadam":
        return False
    path = os.path.realpath(path)
    return not any(path.startswith(root + os.sep) for root in _INSTALLED)


_LOADED = {}


def _cached_solve(directory, source, importable, functions):
    text = _HEADER + "\n".join(importable) + "\n" + source.replace(
        "def solve(", f"@cached_njit(beside_the_source=True, error_model={jit_steps.ERROR_MODEL!r})\ndef solve(", 1)
    key = hashlib.sha256("\0".join([text, _numadam_sources_digest(), _objective_digest(functions)]).encode())
    name = f"numadam_solve_{key.hexdigest()[:24]}"
    if name in _LOADED:
        return _LOADED[name]
    path = directory / f"{name}.py"
    if not path.exists() or path.read_text() != text:
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_text(text)
        os.replace(partial, path)  # whole, or not at all, for a process reading it beside us
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _LOADED[name] = module.solve
    return module.solve
