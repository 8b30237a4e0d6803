r""":func:`numadam.minimize_batch` with a vectorized objective: one call gives every problem's value and
gradient, and the batch steps as one array.

``fun(X, *args, *batched_args)`` takes the ``(P, *shape)`` array of every
problem's iterate and returns ``(f, G)``: the ``(P,)`` values and the
``(P, *shape)`` gradients (``jac=True``; or ``jac(X, ...)`` returns ``G``), NumPy
or CuPy, written with array operations. One optimizer steps ``X`` as one array
through the engine's kernels, so problem :math:`i`'s step is the family's rule on
its row, with the step count every running problem shares (they all started
together). A problem that has stopped is frozen: the step takes a
:class:`~numadam.Rows` gradient listing the running problems' rows only, which
leaves the other rows and their state as they are. Each problem's stop rules
(:func:`numadam.solver.rules.stop_status`, the same function ``minimize``
runs) are decided on its own row every iteration.

Each problem's iterates equal ``minimize``'s on that problem alone up to the
order of the objective's own arithmetic on the stacked arrays (a sum over a
row may be added in another order than over one problem's array), and, with
``clip=("norm", c)``, of the norm's sum.
"""

import numpy as np
from numba import njit

from ..adapters.rows import Rows
from .rules import CALLBACK, NON_FINITE, NONE, stop_message, stop_status

_stop_status = njit(stop_status)


@njit
def _statuses(nit, values, previous, peaks, changes, x_peaks, quiet_f, quiet_x, rows, status, gtol, ftol, xtol,
              patience, maxiter):
    """:func:`~numadam.solver.rules.stop_status` for each of ``rows``, into ``status``, ``quiet_f``
    and ``quiet_x``."""
    for i in rows:
        status[i], quiet_f[i], quiet_x[i] = _stop_status(nit, values[i], previous[i], peaks[i], changes[i], x_peaks[i],
                                                         quiet_f[i], quiet_x[i], gtol, ftol, xtol, patience, maxiter)


def refusal(optimizer_type, options):
    """Why a vectorized batch cannot run these options, or ``None``."""
    if getattr(optimizer_type, "algorithm", None) is None:
        return (f"{optimizer_type.__name__} orthogonalizes each matrix whole, and the stacked array of every "
                "problem would be one matrix to it; vectorized=True takes the elementwise families")
    if optimizer_type.algorithm.norms is not None or optimizer_type.algorithm.factored:
        return (f"{optimizer_type.algorithm.title} takes norms over each parameter, which over the stacked array "
                "would mix the problems; vectorized=True takes the elementwise families")
    if options["nonfinite"] != "stop":
        return "vectorized=True takes nonfinite='stop' (a problem with a non-finite value stops, status 4)"
    if callable(options["clip"]):
        return "vectorized=True takes clip=None or (rule, limit); a callable clips one problem's gradient"
    from .compiled import is_closed_form

    if not is_closed_form(options["schedule"]):
        return ("vectorized=True takes schedules that are functions of the step; one that observes the objective "
                "(ReduceOnPlateau) would observe every problem's at once")
    return None


def vectorized_batch(fun, x0, args, batched, optimizer_type, options, hyperparameters, notify, bar):
    """The batch of :func:`numadam.minimize_batch` with ``vectorized=True`` (see the module docstring);
    ``x0`` is the ``(P, *shape)`` starts, NumPy or CuPy, ``options`` minimize's (``hyperparameters``
    the family's among them), ``notify`` the scipy-style callback or ``None``."""
    from scipy.optimize import OptimizeResult

    from .minimize import _StopRules, _box, _clip_into, _non_finite_stop, _solver_dtype

    xp = array_module(x0)
    x = xp.array(x0, dtype=_solver_dtype(x0.dtype), order="C")
    problems, shape = x.shape[0], x.shape[1:]
    rules = _StopRules(options["maxiter"], options["gtol"], options["ftol"], options["xtol"], options["patience"])
    box = None if options["bounds"] is None else _box(options["bounds"], x[0])
    bounds = None
    if box is not None:
        _clip_into(x, box)
        bounds = tuple(xp.ascontiguousarray(xp.broadcast_to(side, x.shape)) for side in box)
    optimizer = optimizer_type(x, schedule=options["schedule"], bounds=bounds, **hyperparameters)
    evaluate = _Evaluations(fun, options["jac"], args, batched, x, xp)
    clip = _clipper(options["clip"], xp)

    value, grad = evaluate()
    peak = _peaks(x, grad, box, xp)
    nit = np.zeros(problems, np.int64)
    nfev = np.ones(problems, np.int64)
    history = np.full((problems, min(rules.maxiter + 1, 1024)), np.nan)  # (doubled as the solve goes on)
    history[:, 0] = value
    status = np.full(problems, NONE, np.int64)
    quiet_f, quiet_x = np.zeros(problems, np.int64), np.zeros(problems, np.int64)
    messages = [None] * problems
    finite = np.isfinite(value) & np.isfinite(peak)
    for i in np.flatnonzero(~finite):
        status[i], messages[i] = NON_FINITE, _non_finite_at_start(value[i])
    ftol = -1.0 if rules.ftol is None else rules.ftol
    xtol = -1.0 if rules.xtol is None else rules.xtol
    zeros = np.zeros(problems)
    _statuses(0, value, value, peak, zeros, zeros, quiet_f, quiet_x, np.flatnonzero(finite), status, rules.gtol,
              ftol, xtol, rules.patience, rules.maxiter)
    done = int((status != NONE).sum())
    _advance(bar, done)
    iteration = 0
    while (status == NONE).any():
        running = np.flatnonzero(status == NONE)
        iteration += 1
        previous = x.copy()
        step_grad = clip(grad.copy())
        if running.size == problems:
            optimizer.step(step_grad)
        else:
            listed = xp.asarray(running)
            optimizer.step(Rows(listed, xp.ascontiguousarray(step_grad[listed])))
        candidate, fresh = evaluate()
        candidate_peak = _peaks(x, fresh, box, xp)
        nfev[running] += 1
        failed = running[~(np.isfinite(candidate[running]) & np.isfinite(candidate_peak[running]))]
        if failed.size:
            rows = xp.asarray(failed)
            x[rows] = previous[rows]
            for i in failed:
                status[i], messages[i] = _non_finite_stop(float(candidate[i]), int(nit[i]), "stop", 1)
        accepted = np.setdiff1d(running, failed, assume_unique=True)
        nit[accepted] = iteration
        value[accepted] = candidate[accepted]
        peak[accepted] = candidate_peak[accepted]
        rows = xp.asarray(accepted)
        grad[rows] = fresh[rows]
        if iteration == history.shape[1]:
            history = np.concatenate([history, np.full((problems, min(history.shape[1], rules.maxiter + 1
                                                                     - history.shape[1])), np.nan)], axis=1)
        history[accepted, iteration] = candidate[accepted]
        changes = x_peaks = zeros
        if rules.xtol is not None:
            changes = _row_peaks(x - previous, xp)
            x_peaks = _row_peaks(x, xp)
        _statuses(iteration, value, history[:, iteration - 1], peak, changes, x_peaks, quiet_f, quiet_x, accepted,
                  status, rules.gtol, ftol, xtol, rules.patience, rules.maxiter)
        if notify is not None:
            try:
                notify(OptimizeResult(x=x.copy(), fun=value.copy(), jac=grad.copy(), nit=nit.copy(), nfev=nfev.copy(),
                                      running=status == NONE))
            except StopIteration:
                for i in np.flatnonzero(status == NONE):
                    status[i], messages[i] = CALLBACK, "stopped: callback raised StopIteration"
        finished = int((status != NONE).sum())
        _advance(bar, finished - done)
        done = finished
    for i in range(problems):
        if messages[i] is None:
            messages[i] = stop_message(int(status[i]), float(peak[i]), rules.gtol, rules.ftol, rules.xtol,
                                       rules.patience, rules.maxiter)
    return OptimizeResult(x=x, fun=value, jac=grad, nit=nit, nfev=nfev, njev=nfev.copy(), status=status,
                          success=np.isin(status, (0, 2, 3)), message=messages, skipped=np.zeros(problems, np.int64),
                          history=history[:, :int(nit.max()) + 1].copy(), compiled=False, compile_time=0.0)


def array_module(array):
    if isinstance(array, np.ndarray):
        return np
    import cupy

    return cupy


def _non_finite_at_start(value):
    from .rules import non_finite_message

    return non_finite_message(float(value), 0) + "; returning x0"


class _Evaluations:
    """``fun`` (and ``jac``) on the stacked iterate: ``(values as float64 NumPy, gradients in x's dtype)``,
    each checked for its shape."""

    def __init__(self, fun, jac, args, batched, x, xp):
        self.fun, self.jac, self.arguments, self.x, self.xp = fun, jac, (*args, *batched), x, xp

    def __call__(self):
        if self.jac is True:
            found = self.fun(self.x, *self.arguments)
            if not (isinstance(found, tuple) and len(found) == 2):
                raise TypeError("with jac=True and vectorized=True, fun must return (values, gradients): "
                                f"shapes ({self.x.shape[0]},) and {self.x.shape}; it returned {type(found).__name__}")
            values, gradients = found
        else:
            values, gradients = self.fun(self.x, *self.arguments), self.jac(self.x, *self.arguments)
        values = np.asarray(values.get() if hasattr(values, "get") else values, dtype=np.float64)
        if values.shape != (self.x.shape[0],):
            raise ValueError(f"with vectorized=True, fun must return one value per problem, shape "
                             f"({self.x.shape[0]},); got shape {values.shape}")
        if getattr(gradients, "shape", None) != self.x.shape:
            raise ValueError(f"with vectorized=True, the gradients must have x's shape {self.x.shape}; got "
                             f"shape {getattr(gradients, 'shape', None)}")
        return values, self.xp.asarray(gradients, dtype=self.x.dtype)


def _row_peaks(array, xp):
    """The largest magnitude in each row, as float64 NumPy (complex parts apart, as minimize measures)."""
    flat = array.reshape(array.shape[0], -1)
    if flat.dtype.kind == "c":
        flat = xp.concatenate([flat.real, flat.imag], axis=1)
    peaks = xp.abs(flat).max(axis=1).astype(xp.float64)
    return peaks.get() if hasattr(peaks, "get") else np.asarray(peaks)


def _peaks(x, grad, box, xp):
    """Each problem's measure for ``gtol``: its gradient's largest magnitude, or its projected
    gradient's on a box (as minimize measures it)."""
    if box is None:
        return _row_peaks(grad, xp)
    low, high = box
    return _row_peaks(x - xp.clip(x - grad, low, high), xp)


def _clipper(clip, xp):
    """The gradient clipping of ``clip`` applied to each problem's row: by value, or by its norm."""
    if clip is None:
        return lambda grad: grad
    rule, limit = clip
    if rule == "value":
        return lambda grad: xp.clip(grad, -limit, limit, out=grad)
    if rule in ("norm", "global_norm"):
        def by_norm(grad):
            flat = grad.reshape(grad.shape[0], -1)
            norms = xp.sqrt((xp.abs(flat).astype(xp.float64) ** 2).sum(axis=1))
            scale = xp.where(norms > limit, limit / xp.where(norms > 0, norms, 1.0), 1.0)
            flat *= scale.astype(grad.real.dtype)[:, None]
            return grad
        return by_norm
    raise ValueError(f"clip must be None or (rule, limit) with rule 'value', 'norm' or 'global_norm'; got {clip!r}")


def _advance(bar, count):
    if bar is not None and count:
        bar.update(count)

