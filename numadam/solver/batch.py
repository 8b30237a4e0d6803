r"""Many independent small problems at once: :func:`minimize_batch`.

Problem :math:`i` of :math:`P` is :func:`numadam.minimize` of
``fun(x_i, *args, *(a[i] for a in batched_args))`` from its own start
:math:`x_{0,i}`, with its own optimizer state, its own stop rules and its own
copy of the schedule. Four ways run it:

- where the solve compiles (an ``@numba.njit`` objective, a family without
  norms or Prodigy, the options :func:`numadam.minimize` compiles), the compiled solve runs
  every problem over Numba's threads (:mod:`numadam.solver.batch_threads`): each
  problem's iterates are ``minimize(..., compiled=True)``'s alone, bit for bit;
- elsewhere, :func:`numadam.minimize` solves the problems one after another;
- with ``vectorized=True``, one call of the objective gives every problem's value
  and gradient and the batch steps as one array (:mod:`numadam.solver.vectorized`);
- problems in Dask arrays are solved a chunk of problems a task, each task one of
  the ways above.
"""

import copy
import math

import numpy as np

from ..adapters.dask import is_dask_array
from ..core import validate
from ..registry import optimizer_class
from .minimize import (_ArrayIterate, _family_name, _scipy_style_callback, _StopRules, _value_and_gradient,
                       check_solve_options, compiled_message, minimize)
from .rules import SUCCESS

#: :func:`numadam.minimize`'s options that are not the family's hyperparameters.
SOLVE_OPTIONS = ("jac", "bounds", "maxiter", "gtol", "ftol", "xtol", "patience", "schedule", "clip", "nonfinite")


def minimize_batch(fun, x0, args=(), batched_args=(), method="adam", *, jac=None, bounds=None, maxiter=1000,
                   gtol=1e-5, ftol=None, xtol=None, patience=10, schedule=None, clip=None, callback=None,
                   progress=False, nonfinite="stop", compiled=None, vectorized=False, **hyperparameters):
    r"""Minimize ``P`` independent problems at once; return one ``OptimizeResult`` of stacked fields.

    Problem ``i`` calls ``fun(x_i, *args, *(a[i] for a in batched_args))`` (and
    ``jac`` likewise) and is solved as :func:`numadam.minimize` solves it, with
    every option of :func:`numadam.minimize` applied to each problem alone:
    its own optimizer state, stop rules and count of iterations, and every
    per-parameter quantity (LAMB's and Adafactor's norms, Prodigy's d) its own.

    Parameters
    ----------
    fun, jac, method, bounds, maxiter, gtol, ftol, xtol, patience, clip, nonfinite, **hyperparameters
        As in :func:`numadam.minimize`, for every problem.
    x0 : array_like, NumPy, CuPy (with ``vectorized=True``) or Dask
        ``(P, *shape)``: one start per problem, each problem's ``x`` of shape
        ``shape`` (so that matrix-shaped methods work as in
        :func:`numadam.minimize`; scalar problems take ``(P, 1)``); or
        one-dimensional ``(n,)``: the same start for every problem, ``P`` then
        taken from ``batched_args``. Where ``x0`` or an array of ``batched_args``
        is a Dask array, each chunk of problems (along the first axis of the
        first Dask array among them) is solved by a task, and the result
        gathered in problem order as NumPy arrays.
    args : tuple
        Arguments every problem shares, after ``x``.
    batched_args : tuple of arrays
        Arguments with one entry per problem along their first axis (each of
        length ``P``): problem ``i`` gets ``a[i]`` of each, after ``args``.
    schedule : schedule or None
        As in :func:`numadam.minimize`; each problem steps with its own copy
        (a :class:`~numadam.schedules.ReduceOnPlateau` observes its own problem),
        and the one given is left as it is.
    callback : callable or None
        Called after every step of every problem, as :func:`numadam.minimize`
        calls it, the problems solved one after another; an
        ``intermediate_result`` also holds ``problem``, the problem's index. A
        compiled batch cannot run it inside its threads: ``compiled=True`` with a
        callback is refused, and ``compiled=None`` then solves in Python.
    progress : bool
        A tqdm progress bar counting finished problems.
    compiled : None, True or False
        As in :func:`numadam.minimize`: ``True`` demands the compiled batch and
        raises a ``TypeError`` saying why where it cannot (LAMB and Adafactor,
        whose compiled solve steps its optimizer's own state, also); ``None``
        compiles where it can.
    vectorized : bool
        ``fun`` takes every problem at once: ``fun(X, *args, *batched_args)``
        with ``X`` of shape ``(P, *shape)`` (NumPy or CuPy, as ``x0``) and the
        batched arrays whole, and returns the ``(P,)`` values and the
        ``(P, *shape)`` gradients (``jac=True``; or ``jac(X, ...)`` returns the
        gradients). The batch steps as one array through the engine's kernels,
        the problems that stopped frozen (:mod:`numadam.solver.vectorized`);
        each problem's iterates equal its own solve's up to the order of the
        objective's arithmetic. For the elementwise families, without
        ``nonfinite="skip"``, a callable ``clip`` or a schedule that observes the
        objective. The callback, if any, gets the stacked iterate after every
        step (``intermediate_result.running`` marks the problems still running).

    Returns
    -------
    OptimizeResult
        :func:`numadam.minimize`'s fields, each stacked over the problems: ``x``
        and ``jac`` of shape ``(P, *shape)``; ``fun``, ``nit``, ``nfev``,
        ``njev``, ``status``, ``success`` and ``skipped`` of shape ``(P,)``;
        ``message``, a list of ``P`` strings; ``history``, a float64 array of
        shape ``(P, 1 + max(nit))``, problem ``i``'s values
        :math:`f_0, \dots, f_{\mathrm{nit}_i}` followed by NaN. ``compiled``
        says whether the batch ran compiled, and ``compile_time`` the seconds
        it spent compiling.

    Examples
    --------
    >>> import numba, numpy as np, numadam
    >>> @numba.njit
    ... def fun(x, target):                   # each problem's bowl has its own minimum
    ...     r = x - target
    ...     return r @ r, 2 * r
    >>> targets = np.array([[1.0, -2.0], [0.5, 0.0], [-3.0, 4.0]])
    >>> res = numadam.minimize_batch(fun, np.zeros(2), batched_args=(targets,), jac=True, lr=0.1,
    ...                              maxiter=3000, gtol=1e-6)
    >>> res.x.shape, bool(res.success.all()), bool(np.allclose(res.x, targets, atol=1e-5))
    ((3, 2), True, True)
    """
    if not isinstance(args, tuple):
        args = (args,)
    check_solve_options(fun, jac, compiled, nonfinite)
    options = dict(jac=jac, bounds=bounds, maxiter=maxiter, gtol=gtol, ftol=ftol, xtol=xtol, patience=patience,
                   schedule=schedule, clip=clip, nonfinite=nonfinite, **hyperparameters)
    progress = validate.check_flag("progress", progress)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None; got {callback!r}")
    if validate.check_flag("vectorized", vectorized):
        return _vectorized(fun, x0, args, batched_args, method, compiled, callback, progress, options)
    if is_dask_array(x0) or (isinstance(batched_args, (tuple, list)) and any(map(is_dask_array, batched_args))):
        return _dask_batch(fun, x0, args, batched_args, method, compiled, callback, progress, options)
    batched = tuple(np.ascontiguousarray(a) for a in _batched(batched_args, keep=lambda a: False))
    starts = _starts(x0, batched, np)
    optimizer_type = optimizer_class(method)
    if compiled is True and callback is not None:
        raise TypeError("compiled=True: a compiled batch cannot call a callback inside its threads; pass "
                        "callback=None, or compiled=None to solve the problems in Python with it")
    found = None
    if compiled is not False and callback is None:
        found = _compiled_first(fun, starts[0], args + tuple(a[0] for a in batched), optimizer_type, compiled,
                                options)
    if found is not None:
        return _compiled_batch(fun, jac, *found, starts, args, batched, progress)
    return _python_batch(fun, starts, args, batched, method, compiled, callback, progress, options)


# -- the arguments -------------------------------------------------------------------------------------


def _batched(batched_args, keep):
    """``batched_args`` as a list of arrays of one length along their first axis: each kept as it is
    where ``keep(it)`` (a Dask or CuPy array), else as a NumPy array; checked, naming the argument."""
    if not isinstance(batched_args, (tuple, list)):
        raise TypeError(f"batched_args must be a tuple of arrays, each with one entry per problem along its first "
                        f"axis; got {type(batched_args).__name__}")
    arrays = [_array(given, f"batched_args[{k}]", keep) for k, given in enumerate(batched_args)]
    for k, array in enumerate(arrays):
        if array.ndim == 0:
            raise ValueError(f"batched_args[{k}] must be an array with one entry per problem along its first axis; "
                             "got a scalar")
    lengths = [array.shape[0] for array in arrays]
    if len(set(lengths)) > 1:
        raise ValueError("every array of batched_args must have one entry per problem (the same length along its "
                         f"first axis); got lengths {lengths}")
    return arrays


def _array(given, name, keep):
    """``given`` as an array of numbers (kept as it is where ``keep(given)``), or an error naming it."""
    if keep(given):
        array = given
    else:
        try:
            array = np.asarray(given)
        except ValueError as error:  # a ragged list
            raise ValueError(f"{name} must be an array of numbers; NumPy cannot make one of it: {error}") from None
    if array.dtype == object:
        raise TypeError(f"{name} must be an array of numbers; got an array of dtype object")
    if any(isinstance(size, float) and math.isnan(size) for size in array.shape):
        raise ValueError(f"{name} has an unknown shape {array.shape}: compute its chunk sizes first "
                         "(array.compute_chunk_sizes())")
    return array


def _starts(x0, batched, xp, keep=lambda a: False):
    """The ``(P, *shape)`` starts: ``x0`` itself, or a one-dimensional ``x0`` repeated ``P`` times
    (``P`` from ``batched``)."""
    starts = _array(x0, "x0", keep)
    lengths = [array.shape[0] for array in batched]
    problems = lengths[0] if lengths else None
    if starts.ndim == 0:
        raise ValueError("x0 must be (P, *shape), one start per problem, or (n,), one start for all; got a scalar")
    if starts.ndim == 1:
        if problems is None:
            raise ValueError(f"x0 of shape {starts.shape} is one start for every problem, and without batched_args "
                             "nothing says how many problems there are: pass x0 of shape (P, n)")
        starts = xp.broadcast_to(starts, (problems,) + starts.shape)
    elif problems is not None and starts.shape[0] != problems:
        raise ValueError(f"x0 has {starts.shape[0]} starts (shape {starts.shape}) but batched_args have {problems} "
                         "entries: one start per problem, or a one-dimensional x0 for all")
    if starts.shape[0] == 0:
        raise ValueError("there must be at least one problem; " + (
            "batched_args have no entries" if problems == 0 else f"x0 has shape {starts.shape}"))
    return starts


def _hyperparameters(options):
    return {name: value for name, value in options.items() if name not in SOLVE_OPTIONS}


def _own_schedule(options):
    """``options`` with a copy of its schedule: one problem's to step and observe."""
    return options if options["schedule"] is None else {**options, "schedule": copy.deepcopy(options["schedule"])}


# -- compiled, over threads -------------------------------------------------------------------------


def _compiled_first(fun, start, first_args, optimizer_type, compiled, options):
    """``(the compiled solve of the first problem, which every problem runs, the box of its bounds)``,
    or ``None`` where the problems are solved in Python."""
    from . import compiled as compiled_solver  # (numadam.jit's steps: imported when a solve starts)

    options = _own_schedule(options)
    stop_rules = _StopRules(options["maxiter"], options["gtol"], options["ftol"], options["xtol"],
                            options["patience"])
    iterate = _ArrayIterate(fun, start, first_args, options["jac"], optimizer_type, options["bounds"],
                            options["clip"], options["schedule"], _hyperparameters(options))
    solve = compiled_solver.prepared(fun, options["jac"], first_args, iterate.x, iterate.optimizer,
                                     _family_name(optimizer_type), options["schedule"], options["clip"], iterate.box,
                                     stop_rules, None, False, options["nonfinite"], compiled)
    if solve is not None and not solve.owns_its_state:
        if compiled:
            raise TypeError(f"compiled=True: {optimizer_type.algorithm.title}'s compiled solve steps its optimizer's "
                            "own state, one problem at a time; pass compiled=None to solve the problems in turn")
        return None
    return None if solve is None else (solve, iterate.box)


def _compiled_batch(fun, jac, solve, box, starts, args, batched, progress):
    """Every problem through ``solve``'s compiled loop over threads; the stacked result."""
    from scipy.optimize import OptimizeResult

    from . import batch_threads
    from .compiled import BAD_SHAPE

    bar = _bar(progress, starts.shape[0])
    try:
        out, histories, compile_time = batch_threads.run(solve, box, starts, args, batched, bar)
    finally:
        if bar is not None:
            bar.close()
    if (out.status == BAD_SHAPE).any():
        k = int(np.argmax(out.status == BAD_SHAPE))
        gradient = _value_and_gradient(fun, jac, args + tuple(a[k] for a in batched), out.x[k])[1]
        raise ValueError(f"problem {k}: the gradient must have x's shape {starts.shape[1:]}; got shape "
                         f"{np.shape(gradient)}")
    rules = solve.stop_rules
    messages = [compiled_message(int(s), int(n), int(f), float(v), float(c), float(g), rules)
                for s, n, f, v, c, g in zip(out.status, out.nit, out.nfev, out.value, out.candidate, out.peak)]
    return OptimizeResult(x=out.x, fun=out.value, jac=out.grad.reshape(out.x.shape), nit=out.nit, nfev=out.nfev,
                          njev=out.nfev.copy(), status=out.status, success=np.isin(out.status, SUCCESS),
                          message=messages, skipped=np.zeros(len(out.x), np.int64), history=_padded(histories),
                          compiled=True, compile_time=compile_time)


def _padded(histories):
    """Histories of different lengths as the rows of one float64 array, each NaN after its end."""
    stacked = np.full((len(histories), max(len(h) for h in histories)), np.nan)
    for row, history in zip(stacked, histories):
        row[:len(history)] = history
    return stacked


def _bar(progress, problems):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=problems, unit="problem")


# -- in Python, one problem after another ---------------------------------------------------------


def _python_batch(fun, starts, args, batched, method, compiled, callback, progress, options):
    """Each problem by :func:`numadam.minimize` in turn; the stacked result."""
    from scipy.optimize import OptimizeResult

    notify = _scipy_style_callback(callback)
    bar = _bar(progress, len(starts))
    results = []
    try:
        for i, start in enumerate(starts):
            results.append(minimize(fun, start, args + tuple(a[i] for a in batched), method=method,
                                    callback=_problem_callback(notify, i), compiled=compiled,
                                    **_own_schedule(options)))
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    as_batches = [OptimizeResult(**{**result, "x": result.x[None], "jac": result.jac[None],
                                    "message": [result.message], "history": result.history[None],
                                    **{name: np.array([result[name]]) for name in _PER_PROBLEM}})
                  for result in results]
    return _joined(as_batches)


def _problem_callback(notify, problem):
    """A new-style callback of problem ``problem``'s solve: the result, with ``problem`` set, to ``notify``."""
    if notify is None:
        return None

    def with_problem(intermediate_result):
        intermediate_result.problem = problem
        notify(intermediate_result)

    return with_problem


#: The fields of a batch's result with one number per problem.
_PER_PROBLEM = ("fun", "nit", "nfev", "njev", "status", "success", "skipped")


def _joined(batches):
    """The results of consecutive batches of problems as one, in their order (histories NaN-padded)."""
    from scipy.optimize import OptimizeResult

    return OptimizeResult(x=np.concatenate([batch.x for batch in batches]),
                          jac=np.concatenate([batch.jac for batch in batches]),
                          message=[message for batch in batches for message in batch.message],
                          history=_padded([row[:nit + 1] for batch in batches
                                           for row, nit in zip(batch.history, batch.nit)]),
                          compiled=all(batch.compiled for batch in batches),
                          compile_time=sum(batch.get("compile_time", 0.0) for batch in batches),
                          **{name: np.concatenate([batch[name] for batch in batches]) for name in _PER_PROBLEM})


# -- a vectorized objective -------------------------------------------------------------------------


def _vectorized(fun, x0, args, batched_args, method, compiled, callback, progress, options):
    """The checks of a vectorized batch, then :func:`numadam.solver.vectorized.vectorized_batch`."""
    from . import vectorized

    if compiled is True:
        raise TypeError("compiled=True: a vectorized batch runs its objective as one call on arrays, in Python; "
                        "pass compiled=None")
    on_device = lambda array: hasattr(array, "__cuda_array_interface__")  # noqa: E731
    batched = _batched(batched_args, keep=on_device)
    starts = _array(x0, "x0", on_device)
    starts = _starts(starts, batched, vectorized.array_module(starts), keep=on_device)
    optimizer_type = optimizer_class(method)
    reason = vectorized.refusal(optimizer_type, options)
    if reason is not None:
        raise ValueError(reason)
    bar = _bar(progress, starts.shape[0])
    try:
        return vectorized.vectorized_batch(fun, starts, args, tuple(batched), optimizer_type, options,
                                           _hyperparameters(options), _scipy_style_callback(callback), bar)
    finally:
        if bar is not None:
            bar.close()


# -- Dask arrays of problems ----------------------------------------------------------------------------


def _dask_batch(fun, x0, args, batched_args, method, compiled, callback, progress, options):
    """Problems in Dask arrays: one task per chunk of problems (the chunks of the first Dask array
    among a per-problem ``x0`` and ``batched_args`` along its first axis), each a
    :func:`minimize_batch` of its rows; the results gathered in problem order, as NumPy arrays."""
    import dask

    if callback is not None:
        raise TypeError("on Dask arrays the problems are solved on workers, which cannot call a callback; pass "
                        "callback=None")
    if progress:
        raise ValueError("progress=True counts problems in one process; on Dask arrays watch the tasks with "
                         "Dask's own progress bar (dask.diagnostics.ProgressBar, or distributed's dashboard)")
    batched = _batched(batched_args, keep=is_dask_array)
    starts = _array(x0, "x0", is_dask_array)
    if starts.ndim == 1 and is_dask_array(starts):
        starts = starts.compute()  # one shared start: small
    _starts(starts, batched, np, keep=is_dask_array)  # (the checks)
    optimizer_class(method)
    _StopRules(options["maxiter"], options["gtol"], options["ftol"], options["xtol"], options["patience"])
    shared = starts.ndim == 1
    per_problem = ([] if shared else [starts]) + batched
    if not any(map(is_dask_array, per_problem)):
        return minimize_batch(fun, starts, args, tuple(batched), method, compiled=compiled, **options)
    rows = next(array for array in per_problem if is_dask_array(array)).chunks[0]
    blocks = [_row_blocks(array, rows) for array in per_problem]
    tasks = []
    for k in range(len(rows)):
        chunk_starts = starts if shared else blocks[0][k]
        chunk_batched = tuple(block[k] for block in blocks[0 if shared else 1:])
        tasks.append(dask.delayed(_chunk_batch)(fun, chunk_starts, args, chunk_batched, method, compiled, options))
    return _joined(list(dask.compute(*tasks)))


def _row_blocks(array, rows):
    """``array``'s blocks of the problems' rows ``rows`` (Dask delayed or NumPy slices), whole along the
    other axes."""
    if not is_dask_array(array):
        bounds = np.cumsum((0,) + tuple(rows))
        return [array[first:last] for first, last in zip(bounds[:-1], bounds[1:])]
    whole = array.rechunk((rows,) + tuple(-1 for _ in array.shape[1:]))
    return list(whole.to_delayed().reshape(-1))


def _chunk_batch(fun, starts, args, batched, method, compiled, options):
    """One Dask task: :func:`minimize_batch` of a chunk of problems."""
    return minimize_batch(fun, starts, args, tuple(batched), method, compiled=compiled, **options)
