r"""``minimize``: Adam behind a ``scipy.optimize.minimize``-shaped front door.

:func:`minimize` runs Adam (or AdamW) on a copy of ``x0`` until a stop rule
fires and returns a :class:`scipy.optimize.OptimizeResult`;
:func:`adam_minimizer` is the same solver in the form that
``scipy.optimize.minimize(..., method=numadam.adam_minimizer)`` calls. SciPy is
imported only when a solve starts; tqdm only when ``progress=True``.
"""

import inspect
import math
import numbers
import sys
import warnings

import numpy as np

from ..core import dtypes, validate
from ..targets.dispatch import backend_for
from ..adapters.dask import is_dask_array
from ..adapters.foreign import adopt, is_foreign, is_jax, is_tensor, tensor_like
from ..clipping import clip_by_global_norm, clip_by_norm, clip_by_value
from ..registry import method_name, optimizer_class
from .rules import (CALLBACK, NON_FINITE, NONE, SUCCESS, clip_norm_in_place, clip_value_in_place,
                           non_finite_message, stop_message, stop_status)

_CLIPPERS = {"value": clip_by_value, "norm": clip_by_norm, "global_norm": clip_by_global_norm}
#: The clippers of real NumPy gradients: the compiled solve's, so both loops clip alike, bit for bit.
_NUMPY_CLIPPERS = {"value": clip_value_in_place, "norm": clip_norm_in_place, "global_norm": clip_norm_in_place}

if sys.version_info >= (3, 14):
    import annotationlib

    # Python 3.14 evaluates annotations when asked for them: read a signature without doing so, as SciPy does.
    _SIGNATURE_OPTIONS = {"annotation_format": annotationlib.Format.FORWARDREF}
else:
    _SIGNATURE_OPTIONS = {}


#: The dtypes ``minimize`` iterates in: a solver's iterate and its stop rules need 24 bits or more.
_SOLVER_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.float64, np.complex64, np.complex128))


def minimize(fun, x0, args=(), jac=None, method="adam", *, bounds=None, maxiter=1000, gtol=1e-5, ftol=None,
             xtol=None, patience=10, schedule=None, clip=None, callback=None, progress=False, nonfinite="stop",
             compiled=None, **hyperparameters):
    r"""Minimize ``fun`` from ``x0`` with Adam (or any family); return a ``scipy.optimize.OptimizeResult``.

    Iterate :math:`k = 0, 1, \dots` from :math:`x_0` (a copy of ``x0``; ``x0``
    itself is never modified): evaluate :math:`f_k = f(x_k)` and
    :math:`g_k = \nabla f(x_k)`, check the stop rules, then take one step of
    the optimizer ``method`` names (:class:`numadam.Adam` for ``"adam"``, any
    name of :func:`numadam.families`) with the gradient :math:`g_k`, clipped if
    ``clip`` says so.
    With :math:`\|\cdot\|_\infty` the largest magnitude over the real numbers of
    an array (complex parts separately), the rules are, in this order:

    .. math::

        \text{status } 0:&\quad \|g_k\|_\infty \le \texttt{gtol} \\
        \text{status } 2:&\quad |f_k - f_{k-1}| \le \texttt{ftol}\,\max(|f_k|, |f_{k-1}|, 1)
            \text{ for } \texttt{patience} \text{ iterations in a row} \\
        \text{status } 3:&\quad \|x_k - x_{k-1}\|_\infty \le \texttt{xtol}\,\max(\|x_k\|_\infty, 1)
            \text{ for } \texttt{patience} \text{ iterations in a row} \\
        \text{status } 1:&\quad k = \texttt{maxiter}

    Statuses 0, 2 and 3 are successes. Adam's steps do not shrink to zero on
    their own, so ``ftol``/``xtol`` (off by default) need ``patience`` to ignore
    single quiet iterations. A value or gradient holding NaN or infinity stops
    the solve with status 4 and ``success=False``; the result is then the last
    iterate where both were finite (or ``x0``, if the very first evaluation
    failed). A callback raising ``StopIteration`` stops it with status 99 and
    ``success=False``, as in SciPy.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args)`` returns the objective, a real scalar; with ``jac=True``
        it returns ``(value, gradient)``. It receives the solver's current
        iterate (read-only for NumPy); copy it to keep it.
    x0 : array_like, NumPy or CuPy
        Start: one array of numbers (for a dict or list of arrays, use
        :class:`numadam.Adam`, or join them into one vector). Its shape is kept
        (no flattening); integers become float64; float32, float64, complex64
        and complex128 are kept, in native byte order (a big-endian ``>f4``
        from a FITS or HDF5 file becomes float32), and a CuPy ``x0`` keeps the
        whole solve on the GPU. For complex ``x``, the gradient is
        :math:`\partial f/\partial \operatorname{Re} x + i\,\partial f/\partial \operatorname{Im} x`.
    args : tuple
        Extra arguments of ``fun`` and ``jac``.
    jac : True or callable
        ``True`` if ``fun`` returns the gradient too, else ``jac(x, *args)``. The
        gradient must have ``x``'s shape and backend; it is cast to ``x``'s dtype.
        Adam needs a gradient: ``None`` (finite differences) is refused.
    method : str
        Any name of :func:`numadam.families` ("adam" by default), or "muon"
        (:class:`numadam.Muon`, for a 2-D ``x0``, without ``bounds``). With
        "schedule_free_adamw" the result's ``x`` is the last iterate :math:`y`;
        evaluate the averaged iterate with the class itself.
    **hyperparameters
        The family's hyperparameters (for Adam ``lr``, ``betas``, ``eps``,
        ``weight_decay``, ``amsgrad``, ...: see the class). ``weight_decay``
        changes the steps, not the reported ``fun``.
    bounds : scipy.optimize.Bounds, sequence of (low, high) pairs, or None
        A box for ``x`` (real ``x`` only): ``x0`` is moved into it, every step
        is projected onto it (the optimizer's ``bounds`` policy), and the
        ``gtol`` rule measures the *projected* gradient
        :math:`x - \operatorname{clip}(x - g, l, u)`, as L-BFGS-B's ``pgtol``.
        Projected Adam keeps every iterate feasible and its fixed points are the
        box's KKT points; like Adam itself it has no monotone-descent guarantee.
    maxiter : int >= 0
        The most steps to take.
    gtol : float >= 0
    ftol, xtol : float >= 0 or None
        ``None`` turns the rule off.
    patience : int >= 1
        How many iterations in a row the ``ftol``/``xtol`` conditions must hold.
    schedule : callable or None
        A learning-rate schedule (:mod:`numadam.schedules`); it overrides ``lr``.
        Its ``observe`` method, if any, receives every :math:`f_k` before step
        :math:`k + 1`, so :class:`~numadam.schedules.ReduceOnPlateau` works as is.
        Stateful schedules carry their state from one solve into the next.
    clip : None, ``(rule, limit)`` or callable
        Clip each gradient before its step: ``("value", c)`` bounds every entry
        (:func:`numadam.clip_by_value`), ``("norm", c)`` or ``("global_norm", c)``
        bounds the L2 norm (the same thing for a single array;
        :func:`numadam.clip_by_norm`). A callable is called as ``clip(grad)`` on
        the solver's own copy of the gradient and either clips it in place and
        returns ``None`` or returns the clipped gradient, an array of ``grad``'s
        shape (anything else is a ``TypeError``: ``lambda g:
        numadam.clip_by_norm(g, c)`` returns the norm, not the gradient).
        ``res.jac`` and the stop rules always see the unclipped gradient.
    callback : callable or None
        Called after every step, as SciPy calls it: a callable whose only
        parameter is named ``intermediate_result`` gets
        ``callback(intermediate_result=res)``, an ``OptimizeResult`` holding
        copies of ``x`` and ``jac`` and ``fun``, ``nit``, ``nfev``; any other
        callable gets ``callback(xk)``, a copy of the iterate. Raise
        ``StopIteration`` to stop.
    nonfinite : {"stop", "skip"}
        What a non-finite value or gradient does: ``"stop"`` ends the solve
        with status 4; ``"skip"`` (for stochastic objectives) evaluates ``fun``
        again at the same point, up to ``patience`` times in a row, and counts
        the skipped evaluations in the result's ``skipped``.
    progress : bool
        Show a tqdm progress bar (with the current objective) on stderr; needs
        tqdm, and raises ``ImportError`` before the solve if it is missing.
    compiled : None, True or False
        Run the whole solve as one Numba function (:mod:`numadam.solver.compiled`):
        the objective, the step, the schedule, the clipping, the bounds and the
        stop rules in machine code, with the Python loop's iterates bit for bit.
        That takes ``fun`` (and ``jac``, unless ``jac=True``) as ``@numba.njit``
        functions of a real NumPy ``x0``, no ``callback``, ``progress=False``,
        ``nonfinite="stop"``, a clipping rule (not a callable), a closed-form
        schedule (not :class:`~numadam.schedules.ReduceOnPlateau`) and no
        optimizer option but ``bounds``/``nonneg``. ``None`` (the default)
        compiles where it can; ``True`` demands it and raises a ``TypeError``
        saying why where it cannot; ``False`` keeps the Python loop. The
        compiled solve is cached on disk (``$NUMADAM_CACHE_DIR``, else
        ``~/.cache/numadam``) where ``fun`` is a module-level function of a
        file, so a new process reuses it.

    Returns
    -------
    OptimizeResult
        ``x`` (an array on ``x0``'s backend), ``fun``, ``jac`` (the unclipped
        gradient at ``x``), ``nit`` (the Adam steps that led to ``x``), ``nfev``,
        ``njev``, ``status``, ``success``, ``message``, ``skipped`` (see ``nonfinite``) and
        ``history``: a float64
        NumPy array of :math:`f_0, \dots, f_{\mathrm{nit}}`. ``x`` is the last
        iterate, not necessarily the best one seen. ``compiled`` says whether
        the solve ran compiled; a compiled one also has ``compile_time``, the
        seconds spent compiling it (or loading it from the disk cache) before
        it ran, 0.0 when this process had it ready.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> def fun(x):                                   # a bowl with its minimum at (1, -2)
    ...     r = x - np.array([1.0, -2.0])
    ...     return r @ r, 2 * r
    >>> res = numadam.minimize(fun, np.zeros(2), jac=True, lr=0.1, maxiter=2000, gtol=1e-6)
    >>> res.success, res.status, np.round(res.x, 5)
    (True, 0, array([ 1., -2.]))
    >>> len(res.history) == res.nit + 1
    True

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    from scipy.optimize import OptimizeResult

    if not isinstance(args, tuple):
        args = (args,)
    check_solve_options(fun, jac, compiled, nonfinite)
    optimizer_type = optimizer_class(method)
    stop_rules = _StopRules(maxiter, gtol, ftol, xtol, patience)
    if is_dask_array(x0) and getattr(optimizer_type, "algorithm", None) is None:  # Muon
        from ..muon.arrays import DASK_REFUSAL

        raise TypeError(f"method={method!r}: {DASK_REFUSAL}")
    from . import compiled as compiled_solver  # (numadam.jit's steps: imported when a solve starts)

    key = None if compiled is False else compiled_solver.configuration_key(
        fun, jac, args, x0, optimizer_type, bounds, clip, schedule, callback, progress, nonfinite, hyperparameters)
    solve = compiled_solver.reused(key, x0, args, stop_rules)  # a configuration checked and prepared before
    if solve is not None:
        return _compiled_result(solve, fun, jac, args, stop_rules, OptimizeResult)
    iterate = (_DaskIterate if is_dask_array(x0) else _ArrayIterate)(fun, x0, args, jac, optimizer_type, bounds,
                                                                        clip, schedule, hyperparameters)
    notify = _scipy_style_callback(callback)
    progress = validate.check_flag("progress", progress)
    solve = compiled_solver.prepared(fun, jac, args, iterate.x, iterate.optimizer, _family_name(optimizer_type),
                                     schedule, clip, iterate.box, stop_rules, callback, progress, nonfinite, compiled)
    if solve is not None:
        result = _compiled_result(solve, fun, jac, args, stop_rules, OptimizeResult)
        compiled_solver.remember(key, solve)  # (once it has compiled and run)
        return result
    iterate.install_state()
    bar = _progress_bar(progress, stop_rules.maxiter)
    observe = getattr(schedule, "observe", None)
    nit = skipped = 0
    try:
        value, grad_peak = iterate.evaluate()
        history = [value]
        if math.isfinite(value) and math.isfinite(grad_peak):
            status, message = stop_rules.check(nit, history, grad_peak, iterate.x, iterate.previous_x)
        else:
            status, message = NON_FINITE, non_finite_message(value, 0) + "; returning x0"
        while status is None:
            if observe is not None:
                observe(value)
            iterate.step()
            (candidate, candidate_peak), failures, retries = _evaluated_until_finite(
                iterate.evaluate_candidate, nonfinite, stop_rules.patience)
            skipped += retries
            if failures > retries:
                iterate.step_back()
                status, message = _non_finite_stop(candidate, nit, nonfinite, failures)
                break
            nit += 1
            iterate.accept()
            value, grad_peak = candidate, candidate_peak
            history.append(value)
            if bar is not None:
                bar.set_postfix(fun=f"{value:.6g}", refresh=False)
                bar.update()
            if notify is not None:
                try:
                    notify(OptimizeResult(x=iterate.shown(iterate.x), fun=value, jac=iterate.shown(iterate.grad),
                                          nit=nit, nfev=iterate.nfev))
                except StopIteration:
                    status, message = CALLBACK, "stopped: callback raised StopIteration"
                    break
            status, message = stop_rules.check(nit, history, grad_peak, iterate.x, iterate.previous_x)
    finally:
        if bar is not None:
            bar.close()
    x, jac = iterate.result()
    return OptimizeResult(x=x, fun=value, jac=jac, nit=nit, nfev=iterate.nfev, njev=iterate.nfev, status=status,
                          success=status in SUCCESS, message=message, skipped=skipped,
                          history=np.array(history, dtype=np.float64), compiled=False)


def check_solve_options(fun, jac, compiled, nonfinite):
    """Raise unless ``fun``, ``jac``, ``compiled`` and ``nonfinite`` are as :func:`minimize` takes them."""
    if not callable(fun):
        raise TypeError(f"fun must be callable; got {fun!r}")
    if not (jac is True or callable(jac)):
        raise TypeError(
            f"jac must be True (fun returns (value, gradient)) or a callable returning the gradient; got {jac!r}: "
            "Adam needs the gradient"
        )
    if compiled not in (None, True, False):
        raise TypeError(f"compiled must be None (compile where possible), True or False; got {compiled!r}")
    if nonfinite not in ("stop", "skip"):
        raise ValueError(f"nonfinite must be 'stop' (status 4) or 'skip' (evaluate again); got {nonfinite!r}")


def _family_name(optimizer_type):
    return method_name(optimizer_type)


def _compiled_result(solve, fun, jac, args, stop_rules, OptimizeResult):
    """Run the compiled ``solve``; its result as the Python loop would give it."""
    (status, nit, nfev, value, candidate, grad_peak, history, grad), compile_time = solve.run()
    x = solve.x
    if status == type(solve).BAD_SHAPE:
        gradient = _value_and_gradient(fun, jac, args, x)[1]
        raise ValueError(f"the gradient must have x's shape {x.shape}; got shape {np.shape(gradient)}")
    message = compiled_message(status, nit, nfev, value, candidate, grad_peak, stop_rules)
    return OptimizeResult(x=x, fun=value, jac=grad.reshape(x.shape), nit=nit, nfev=nfev, njev=nfev, status=status,
                          success=status in SUCCESS, message=message, skipped=0, history=history,
                          compiled=True, compile_time=compile_time)


def compiled_message(status, nit, nfev, value, candidate, grad_peak, stop_rules):
    """The message of a compiled solve that ended with ``status``, as the Python loop words it."""
    if status == NON_FINITE:
        return (non_finite_message(value, 0) + "; returning x0" if nfev == 1
                else _non_finite_stop(candidate, nit, "stop", 1)[1])
    return stop_message(status, grad_peak, stop_rules.gtol, stop_rules.ftol, stop_rules.xtol, stop_rules.patience,
                        stop_rules.maxiter)


class _ArrayIterate:
    """The iterate of a solve over one NumPy or CuPy array: a copy of ``x0`` the optimizer updates in place.

    ``grad`` holds the gradient at ``x``; a step gives the optimizer a copy
    (clipped, if asked), keeping ``x``'s last value in ``previous_x``; the next
    gradient lands in ``fresh_grad`` and becomes ``grad`` once accepted.
    """

    def __init__(self, fun, x0, args, jac, optimizer_type, bounds, clip, schedule, hyperparameters):
        x = _working_copy(x0)
        box = None if bounds is None else _box(bounds, x)
        if box is not None:
            _clip_into(x, box)
        # Checked now; its state is made only if the Python loop steps it (a compiled solve keeps its own).
        self.optimizer = optimizer_type._checked_without_state(x, schedule=schedule, bounds=box, **hyperparameters)
        self.box = box
        self.clipper = _clipper(clip)
        self.evaluations = _Evaluations(fun, jac, args, x, box, x0)
        self.x, self.x0 = x, x0
        self.grad, self.fresh_grad, self.step_grad, self.previous_x = x.copy(), x.copy(), x.copy(), x.copy()

    @property
    def nfev(self):
        return self.evaluations.nfev

    def install_state(self):
        """Make the optimizer's state before the Python loop steps it (see ``__init__``)."""
        self.optimizer._install_state()

    def evaluate(self):
        """``(value, max |gradient|)`` at ``x``, the gradient into ``grad``."""
        return self.evaluations.evaluate_into(self.grad)

    def evaluate_candidate(self):
        """``(value, max |gradient|)`` at ``x`` after a step, the gradient into ``fresh_grad``."""
        return self.evaluations.evaluate_into(self.fresh_grad)

    def step(self):
        self.step_grad[...] = self.grad
        if self.clipper is not None:
            clipped = self.clipper(self.step_grad)
            if clipped is not None and clipped is not self.step_grad:
                self.step_grad[...] = _checked_clip_result(clipped, self.step_grad)
        self.previous_x[...] = self.x
        self.optimizer.step(self.step_grad)

    def accept(self):
        self.grad, self.fresh_grad = self.fresh_grad, self.grad

    def step_back(self):
        self.x[...] = self.previous_x

    def shown(self, array):
        """A copy of ``array`` for a callback, as ``x0``'s kind (a torch tensor for a torch ``x0``)."""
        return tensor_like(array.copy(), self.x0)

    def result(self):
        return tensor_like(self.x, self.x0), tensor_like(self.grad, self.x0)


class _DaskIterate:
    """The iterate of a solve over a Dask array: each step's new persisted array (the optimizer's
    ``params``); values and gradient norms are computed by Dask and come back as NumPy scalars.
    Clipping and bounds are the optimizer's own policies, applied in each chunk's task."""

    def __init__(self, fun, x0, args, jac, optimizer_type, bounds, clip, schedule, hyperparameters):
        self.box = None if bounds is None else _number_box(bounds)
        x0 = x0.astype(_solver_dtype(x0.dtype))
        if self.box is not None:
            x0 = x0.clip(*self.box)  # the first iterate must be feasible
        self.optimizer = optimizer_type(x0, schedule=schedule, bounds=self.box, **_dask_clip_options(clip),
                                        **hyperparameters)
        self.fun, self.jac, self.args = fun, jac, args
        self.nfev = 0
        self.x = self.previous_x = self.optimizer.params
        self.grad = self.fresh_grad = None

    def install_state(self):
        """Nothing: a Dask optimizer makes its state when it is made."""

    def _evaluated(self, x):
        import dask

        self.nfev += 1
        value, gradient = _value_and_gradient(self.fun, self.jac, self.args, x)
        if not is_dask_array(gradient):
            raise TypeError(f"the gradient of a Dask x must be a Dask array; got {type(gradient).__name__}")
        if gradient.shape != x.shape:
            raise ValueError(f"the gradient must have x's shape {x.shape}; got shape {gradient.shape}")
        value, gradient = dask.persist(value, gradient.astype(x.dtype))
        measured = gradient if self.box is None else x - (x - gradient).clip(*self.box)  # the projected gradient
        parts = (measured.real, measured.imag) if measured.dtype.kind == "c" else (measured,)
        value, *peaks = dask.compute(value, *(abs(part).max() for part in parts))
        peaks = [float(peak) for peak in peaks]
        return _objective_value(value), (math.nan if any(map(math.isnan, peaks)) else max(peaks)), gradient

    def evaluate(self):
        value, peak, self.grad = self._evaluated(self.x)
        return value, peak

    def evaluate_candidate(self):
        value, peak, self.fresh_grad = self._evaluated(self.x)
        return value, peak

    def step(self):
        self.previous_x = self.x
        self.x = self.optimizer.step(self.grad)

    def accept(self):
        self.grad = self.fresh_grad

    def step_back(self):
        self.x = self.previous_x

    def shown(self, array):
        return array

    def result(self):
        return self.x, self.grad


def _evaluated_until_finite(evaluate, nonfinite, patience):
    """``(result, failures, retries)``: ``evaluate()``'s ``(value, gradient peak, ...)``, drawn again
    at the same point while it is not finite (a stochastic objective) with ``nonfinite="skip"``, at
    most ``patience`` times in a row. The result is finite unless ``failures > retries``."""
    failures = retries = 0
    result = evaluate()
    while not (math.isfinite(result[0]) and math.isfinite(result[1])):
        failures += 1
        if nonfinite == "stop" or failures >= patience:
            break
        retries += 1
        result = evaluate()
    return result, failures, retries


def _non_finite_stop(value, nit, nonfinite, failures):
    """The status and message of a solve that met a non-finite value after iterate ``nit``."""
    tries = "" if nonfinite == "stop" else f" {failures} times in a row"
    return NON_FINITE, (non_finite_message(value, nit + 1) + tries
                        + f"; returning the last finite iterate (iteration {nit})")


class _StopRules:
    """The stop rules of :func:`minimize`, in their order; ``ftol``/``xtol`` count quiet iterations."""

    def __init__(self, maxiter, gtol, ftol, xtol, patience):
        self.maxiter = validate.check_count("maxiter", maxiter, minimum=0)
        self.gtol = validate.check_limit("gtol", gtol)
        self.ftol = None if ftol is None else validate.check_limit("ftol", ftol)
        self.xtol = None if xtol is None else validate.check_limit("xtol", xtol)
        self.patience = validate.check_count("patience", patience, minimum=1)
        self.quiet_f = self.quiet_x = 0

    def check(self, nit, history, grad_peak, x, previous_x):
        """``(status, message)`` if iterate ``nit`` ends the solve, else ``(None, None)``
        (:func:`numadam.solver.rules.stop_status`, as the compiled solve decides)."""
        measure_x = nit > 0 and self.xtol is not None
        status, self.quiet_f, self.quiet_x = stop_status(
            nit, history[-1], history[-2] if nit > 0 else history[-1], grad_peak,
            _largest_magnitude(x - previous_x) if measure_x else 0.0, _largest_magnitude(x) if measure_x else 0.0,
            self.quiet_f, self.quiet_x, self.gtol, -1.0 if self.ftol is None else self.ftol,
            -1.0 if self.xtol is None else self.xtol, self.patience, self.maxiter)
        if status == NONE:
            return None, None
        return status, stop_message(status, grad_peak, self.gtol, self.ftol, self.xtol, self.patience, self.maxiter)


def adam_minimizer(fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None, constraints=(),
                   callback=None, **options):
    """:func:`minimize` as a custom method of ``scipy.optimize.minimize``.

    ``scipy.optimize.minimize(fun, x0, method=numadam.adam_minimizer, jac=...,
    options={...})`` calls this with SciPy's arguments plus the entries of
    ``options``, which are :func:`minimize`'s keyword arguments (``lr``,
    ``maxiter``, ``gtol``, ...). SciPy's ``tol`` sets ``gtol`` unless ``gtol`` is
    given. The callback may be new-style (one parameter named
    ``intermediate_result``) or old-style ``callback(xk)``, as SciPy decides for
    its own methods. SciPy's ``bounds`` make the solve projected Adam (see
    :func:`minimize`); constraints are refused; ``hess``/``hessp`` are ignored
    with a ``RuntimeWarning``. Options that :func:`minimize` and the chosen
    family do not take (``disp``, ``maxfun``, ``return_all``, ...: other
    methods' options) are ignored with a ``scipy.optimize.OptimizeWarning``
    that lists them, as SciPy's own methods do.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> from scipy.optimize import minimize
    >>> res = minimize(lambda x: ((x - 3) ** 2).sum(), np.zeros(3), jac=lambda x: 2 * (x - 3),
    ...                method=numadam.adam_minimizer, options={"lr": 0.1, "maxiter": 5000}, tol=1e-8)
    >>> res.success, np.allclose(res.x, 3)
    (True, True)
    """
    if constraints is not None and len(constraints) > 0:
        raise ValueError(f"numadam.adam_minimizer takes bounds, not constraints; got constraints={constraints!r}")
    for name, value in (("hess", hess), ("hessp", hessp)):
        if value is not None:
            warnings.warn(f"numadam.adam_minimizer uses no second derivatives; {name} is ignored",
                          RuntimeWarning, stacklevel=3)
    from scipy.optimize import OptimizeWarning

    tol = options.pop("tol", None)
    if tol is not None:
        options.setdefault("gtol", tol)
    solver_options = [name for name, parameter in inspect.signature(minimize).parameters.items()
                      if name not in ("fun", "x0", "args", "jac", "callback", "bounds")
                      and parameter.kind is not parameter.VAR_KEYWORD]
    family_options = [name for name in optimizer_class(options.get("method", "adam")).__signature__.parameters
                      if name not in ("params", "schedule", "bounds")]
    known = solver_options + family_options
    unknown = [name for name in options if name not in known]
    if unknown:
        warnings.warn(f"Unknown solver options: {', '.join(unknown)}; numadam.adam_minimizer ignores them "
                      f"(it takes {', '.join(known)})", OptimizeWarning, stacklevel=3)
    options = {name: value for name, value in options.items() if name in known}
    return minimize(fun, x0, args, jac, bounds=bounds, callback=callback, **options)


def _scipy_style_callback(callback):
    """A function of an ``OptimizeResult`` that calls ``callback`` as SciPy would, or ``None``.

    SciPy's rule: a callable whose parameters are exactly ``intermediate_result``
    gets the result by keyword; any other gets ``xk``. A callable without a
    signature to read (some builtins) gets ``xk``.
    """
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable or None; got {callback!r}")
    try:
        parameters = set(inspect.signature(callback, **_SIGNATURE_OPTIONS).parameters)
    except (TypeError, ValueError):
        parameters = set()
    if parameters == {"intermediate_result"}:
        return lambda result: callback(intermediate_result=result)
    return lambda result: callback(result.x)


class _Evaluations:
    """Calls of ``fun`` and ``jac`` on the iterate, with their results checked and counted."""

    def __init__(self, fun, jac, args, x, box, x0):
        self.fun, self.jac, self.args = fun, jac, args
        self.x = x
        self.box = box
        self.visible_x = x
        if is_tensor(x0):  # a torch x0: fun sees the iterate as a tensor (sharing its memory)
            self.visible_x = tensor_like(x, x0)
        elif isinstance(x, np.ndarray):
            self.visible_x = x.view()
            self.visible_x.flags.writeable = False
        self.nfev = self.njev = 0

    def evaluate_into(self, target):
        """``(value, max |gradient|)`` at the iterate, the gradient cast into ``target``."""
        self.nfev += 1
        self.njev += 1
        value, gradient = _value_and_gradient(self.fun, self.jac, self.args, self.visible_x)
        value = _objective_value(value)
        target[...] = self._checked_gradient(gradient)
        if self.box is None:
            return value, _largest_magnitude(target)
        return value, _largest_magnitude(_projected_gradient(self.x, target, self.box))

    def _checked_gradient(self, gradient):
        x = self.x
        if is_foreign(gradient):
            gradient = adopt([gradient], ["the gradient"], [False]).arrays[0]
        if isinstance(x, np.ndarray) and not hasattr(gradient, "__cuda_array_interface__"):
            gradient = np.asarray(gradient)
        backend_for([x, gradient], ["x", "the gradient"])
        if not np.can_cast(gradient.dtype, x.dtype, "same_kind"):
            raise TypeError(f"the gradient has dtype {gradient.dtype}, which does not cast to x's dtype {x.dtype}")
        if gradient.shape != x.shape:
            raise ValueError(f"the gradient must have x's shape {x.shape}; got shape {gradient.shape}")
        return gradient


def _number_box(bounds):
    """``(low, high)`` numbers (``None``: unbounded) from ``Bounds(lb, ub)`` with numbers, or one pair:
    the bounds a Dask x takes (per-element bounds would be Dask arrays of their own: not yet)."""
    from scipy.optimize import Bounds

    low, high = (bounds.lb, bounds.ub) if isinstance(bounds, Bounds) else (
        bounds if isinstance(bounds, tuple) and len(bounds) == 2 else (None, None))
    if np.size(low) != 1 or np.size(high) != 1 or not isinstance(bounds, (Bounds, tuple)):
        raise ValueError("on a Dask x0, bounds are scipy.optimize.Bounds(lb, ub) with numbers, or one pair "
                         f"(low, high) for every element; got {bounds!r}")
    sides = [None if value is None or abs(float(np.asarray(value).reshape(()))) == math.inf
             else float(np.asarray(value).reshape(())) for value in (low, high)]
    return tuple(sides)


def _dask_clip_options(clip):
    """``clip`` as the optimizer's own policies, which a Dask step applies in each chunk's task."""
    if clip is None:
        return {}
    if isinstance(clip, tuple) and len(clip) == 2 and clip[0] in ("value", "norm", "global_norm"):
        return {"clip_value": clip[1]} if clip[0] == "value" else {"clip_global_norm": clip[1]}
    raise ValueError(f"on a Dask x0, clip is ('value', c), ('norm', c) or ('global_norm', c); got {clip!r}")


def _box(bounds, x):
    """``(low, high)`` arrays of ``x``'s shape and dtype from SciPy's forms of bounds.

    ``scipy.optimize.Bounds(lb, ub)`` (numbers, or arrays of one number per element of ``x`` in C
    order), or a sequence of ``(low, high)`` pairs, one per element of ``x`` in C order, ``None``
    for no bound.
    """
    from scipy.optimize import Bounds

    if x.dtype.kind == "c":
        raise TypeError(f"bounds apply to real x; x0 is {x.dtype}")
    if isinstance(bounds, Bounds):
        low, high = bounds.lb, bounds.ub
    else:
        pairs = list(bounds)
        if len(pairs) != x.size or any(not (isinstance(p, (tuple, list)) and len(p) == 2) for p in pairs):
            raise ValueError(f"bounds must be scipy.optimize.Bounds or {x.size} pairs (low, high), one per element "
                             f"of x; got {len(pairs)} items")
        low = [-np.inf if p[0] is None else p[0] for p in pairs]
        high = [np.inf if p[1] is None else p[1] for p in pairs]
    xp = sys.modules.get("cupy") if not isinstance(x, np.ndarray) else np
    sides = []
    for side, values in (("low", low), ("high", high)):
        values = np.asarray(values, dtype=np.float64)
        if values.size not in (1, x.size):
            raise ValueError(f"the {side} bounds must be one number or one per element of x ({x.size}); "
                             f"got {values.size}")
        host = values.reshape(x.shape) if values.size == x.size else np.broadcast_to(values.reshape(()), x.shape)
        sides.append(xp.asarray(np.array(host, dtype=x.dtype)))
    return tuple(sides)


def _clip_into(x, box):
    """Move ``x`` into the box (the first iterate must be feasible)."""
    low, high = box
    x[...] = x.clip(low, high)


def _projected_gradient(x, grad, box):
    r""":math:`x - \operatorname{clip}(x - g, l, u)`: zero where a bound holds x against the gradient
    (L-BFGS-B's projected gradient, the measure of stationarity on a box)."""
    low, high = box
    return x - (x - grad).clip(low, high)


def _working_copy(x0):
    """A fresh, writable float/complex copy of ``x0`` on its own backend, in native byte order."""
    # x0 is only read: a JAX array is copied like any array_like, torch and DLPack arrays are read in place
    array = adopt([x0], ["x0"], [False]).arrays[0] if is_foreign(x0) and not is_jax(x0) else x0
    if not hasattr(array, "__cuda_array_interface__"):
        try:
            array = np.asarray(array)
        except ValueError:  # a list of arrays of different shapes
            array = None
    if array is None or array.dtype == object:
        described = "an array of dtype object" if isinstance(x0, np.ndarray) else f"a {type(x0).__name__}"
        raise TypeError(
            f"x0 must be one array (an array_like of numbers); got {described}. For a tree of arrays, step "
            "numadam.Adam over it, or pass one vector such as np.concatenate([a.ravel() for a in arrays]) "
            "and split it inside fun"
        )
    dtype = _solver_dtype(array.dtype)
    if array.size == 0:
        raise ValueError(f"x0 must hold at least one number; got shape {array.shape}")
    return array.astype(dtype, copy=True)


def _solver_dtype(given):
    """The dtype ``minimize`` iterates in for an ``x0`` of dtype ``given``: integers become float64,
    floats their native byte order ('>f4' from FITS or HDF5 becomes float32)."""
    dtype = np.dtype(given)
    if dtype.kind in "biu":
        dtype = np.dtype(np.float64)
    elif dtype.kind in "fc":
        dtype = np.dtype(dtype.type)
    if not dtypes.is_supported(dtype) or dtypes.is_low_precision(dtype):
        raise TypeError(f"x0 has dtype {given}; minimize works in {dtypes.names(_SOLVER_DTYPES)} (16-bit "
                        "parameters: step numadam.Adam with master_weights=True, stochastic_rounding=True or "
                        "compensation='kahan')")
    return dtype


def _value_and_gradient(fun, jac, args, x):
    """``(value, gradient)`` at ``x``: from ``fun`` with ``jac=True``, else from ``fun`` and ``jac``."""
    if jac is not True:
        return fun(x, *args), jac(x, *args)
    returned = fun(x, *args)
    if not isinstance(returned, (tuple, list)) or len(returned) != 2:
        raise TypeError(f"with jac=True, fun must return (value, gradient); got {_short(returned)}")
    return returned


def _objective_value(value):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if is_tensor(value) and value.numel() == 1 and not value.is_complex():
        return float(value.detach().reshape(()))
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(value, "size", None) == 1 and np.dtype(dtype).kind in "fiu":
        return float(value.reshape(()))
    raise TypeError(f"fun must return a real scalar; got {_short(value)}")


def _largest_magnitude(array):
    """The largest ``|a_i|`` over the real numbers of ``array`` (complex parts separately); NaN wins."""
    parts = (array.real, array.imag) if array.dtype.kind == "c" else (array,)
    peaks = [float(abs(part).max()) for part in parts]
    return math.nan if any(map(math.isnan, peaks)) else max(peaks)


def _clipper(clip):
    """A function that clips a gradient array in place (or returns the clipped one), or ``None``."""
    if clip is None or callable(clip):
        return clip
    if not (isinstance(clip, tuple) and len(clip) == 2 and clip[0] in _CLIPPERS):
        raise TypeError(f"clip must be None, a callable or a pair (rule, limit) with rule in {list(_CLIPPERS)}; "
                        f"got {clip!r}")
    rule, limit = clip
    clip_with, clip_numpy = _CLIPPERS[rule], _NUMPY_CLIPPERS[rule]
    limit = validate.check_limit("max_value" if rule == "value" else "max_norm", limit)

    def clip_in_place(grad):
        if type(grad) is np.ndarray and grad.dtype.kind == "f":
            clip_numpy(grad.reshape(-1), limit)
        else:
            clip_with(grad, limit)

    return clip_in_place


def _checked_clip_result(clipped, grad):
    """What a callable ``clip`` returned, refused unless it is an array that can replace ``grad`` as it is.

    Never broadcast: the float that :func:`numadam.clip_by_norm` returns (the norm) would otherwise
    overwrite every entry of the gradient.
    """
    is_array = isinstance(clipped, np.ndarray) or hasattr(clipped, "__cuda_array_interface__")
    if not (is_array and clipped.shape == grad.shape and np.can_cast(clipped.dtype, grad.dtype, "same_kind")):
        raise TypeError(f"clip(grad) must clip grad in place and return None, or return the clipped gradient: "
                        f"a {grad.dtype} array of shape {grad.shape}; got {_short(clipped)}")
    backend_for([grad, clipped], ["the gradient", "the clipped gradient"])
    return clipped


def _progress_bar(enabled, total):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as error:
        raise ImportError("progress=True draws a tqdm progress bar: install tqdm, or pass progress=False") from error
    return tqdm(total=total, desc="numadam.minimize", unit="step")


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
