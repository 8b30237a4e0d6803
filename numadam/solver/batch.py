r"""Many independent small problems at once: :func:`minimize_batch`.

Problem :math:`i` of :math:`P` is :func:`numadam.minimize` of
``fun(x_i, *args, *(a[i] for a in batched_args))`` from its own start
:math:`x_{0,i}`, with its own optimizer state and its own stop rules. Where the
solve compiles (an ``@numba.njit`` objective, a family without norms, the options
:func:`numadam.minimize` compiles), the whole batch is one Numba function: a
``prange`` loop over the problems, each running the compiled solve of
:mod:`numadam.solver.compiled` on its row of ``x``, its rows of ``batched_args``
and a state of its own. Each problem's iterates are therefore those of
``minimize(..., compiled=True)`` on that problem alone, bit for bit. The loop
hands problems to threads one at a time (Numba's parallel chunk size 1), so a
problem that stops early frees its thread for the next. Elsewhere the problems
are solved one after another by :func:`numadam.minimize`. Problems in Dask arrays
are solved a chunk of problems a task, each task such a batch.
"""

import concurrent.futures
import functools
import inspect
import itertools
import math
import threading
import time

import numba
import numpy as np

from ..adapters.dask import is_dask_array
from ..core import validate
from ..registry import optimizer_class
from .minimize import _ArrayIterate, _family_name, _StopRules, check_solve_options, compiled_message, minimize
from .rules import SUCCESS


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
    fun, jac, method, bounds, maxiter, gtol, ftol, xtol, patience, schedule, clip, nonfinite, **hyperparameters
        As in :func:`numadam.minimize`, for every problem. A stateful schedule
        (:class:`~numadam.schedules.ReduceOnPlateau`) carries its state from
        one problem into the next.
    x0 : array_like, NumPy or Dask
        ``(P, *shape)``: one start per problem, each problem's ``x`` of shape
        ``shape`` (so that matrix-shaped methods work as in
        :func:`numadam.minimize`); or one-dimensional ``(n,)``: the same start for
        every problem, ``P`` then taken from ``batched_args``. Where ``x0`` or an
        array of ``batched_args`` is a Dask array, each chunk of problems (along
        the first axis of the first Dask array) is solved by a task, and the
        result gathered in problem order as NumPy arrays.
    args : tuple
        Arguments every problem shares, after ``x``.
    batched_args : tuple of arrays
        Arguments with one entry per problem along their first axis (each of
        length ``P``): problem ``i`` gets ``a[i]`` of each, after ``args``.
    callback : callable or None
        Called after every step of every problem, as :func:`numadam.minimize`
        calls it, the problems solved one after another; an
        ``intermediate_result`` also holds ``problem``, the problem's index. A
        compiled batch cannot run it inside its parallel loop: ``compiled=True``
        with a callback is refused, and ``compiled=None`` then solves in Python.
    progress : bool
        A tqdm progress bar counting finished problems (a compiled batch then
        runs in slices of problems, the bar moving after each).
    compiled : None, True or False
        As in :func:`numadam.minimize`: ``True`` demands the compiled batch and
        raises a ``TypeError`` saying why where it cannot (a family with norms,
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
    if validate.check_flag("vectorized", vectorized):
        return _vectorized(fun, x0, args, batched_args, method, compiled, callback, progress,
                           dict(jac=jac, bounds=bounds, maxiter=maxiter, gtol=gtol, ftol=ftol, xtol=xtol,
                                patience=patience, schedule=schedule, clip=clip, nonfinite=nonfinite,
                                **hyperparameters))
    if is_dask_array(x0) or (isinstance(batched_args, (tuple, list)) and any(map(is_dask_array, batched_args))):
        return _dask_batch(fun, x0, args, batched_args, method, compiled, callback, progress,
                           dict(jac=jac, bounds=bounds, maxiter=maxiter, gtol=gtol, ftol=ftol, xtol=xtol,
                                patience=patience, schedule=schedule, clip=clip, nonfinite=nonfinite,
                                **hyperparameters))
    batched = _checked_batched_args(batched_args)
    starts = _checked_starts(x0, batched)
    optimizer_type = optimizer_class(method)
    progress = validate.check_flag("progress", progress)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None; got {callback!r}")
    if compiled is True and callback is not None:
        raise TypeError("compiled=True: a compiled batch cannot call a callback inside its parallel loop; pass "
                        "callback=None, or compiled=None to solve the problems in Python with it")
    options = dict(jac=jac, bounds=bounds, maxiter=maxiter, gtol=gtol, ftol=ftol, xtol=xtol, patience=patience,
                   schedule=schedule, clip=clip, nonfinite=nonfinite, **hyperparameters)
    first_args = args + tuple(a[0] for a in batched)
    found = None
    if compiled is not False and callback is None:
        found = _compiled_first(fun, starts[0], first_args, optimizer_type, compiled, options)
    if found is not None:
        return _compiled_batch(*found, starts, args, batched, progress)
    return _python_batch(fun, starts, args, batched, method, compiled, callback, progress, options)


def _vectorized(fun, x0, args, batched_args, method, compiled, callback, progress, options):
    """The checks of a vectorized batch, then :func:`numadam.solver.vectorized.vectorized_batch`."""
    from . import vectorized
    from .minimize import _scipy_style_callback

    if compiled is True:
        raise TypeError("compiled=True: a vectorized batch runs its objective as one call on arrays, in Python; "
                        "pass compiled=None")
    if not isinstance(batched_args, (tuple, list)):
        raise TypeError(f"batched_args must be a tuple of arrays, each with one entry per problem along its first "
                        f"axis; got {type(batched_args).__name__}")
    on_device = [a if hasattr(a, "__cuda_array_interface__") else np.asarray(a) for a in batched_args]
    for k, array in enumerate(on_device):
        if array.ndim == 0 or array.dtype == object:
            raise ValueError(f"batched_args[{k}] must be an array with one entry per problem along its first axis; "
                             f"got {'a scalar' if array.ndim == 0 else 'an array of dtype object'}")
    _check_lengths([array.shape[0] for array in on_device])
    starts = x0 if hasattr(x0, "__cuda_array_interface__") else np.asarray(x0)
    if starts.dtype == object:
        raise TypeError("x0 must be one array of numbers, (P, *shape) or (n,); got an array of dtype object")
    problems = _problem_count(starts.shape, [array.shape[0] for array in on_device])
    if starts.ndim == 1:
        starts = vectorized.array_module(starts).broadcast_to(starts, (problems,) + starts.shape)
    optimizer_type = optimizer_class(method)
    reason = vectorized.refusal(optimizer_type, options)
    if reason is not None:
        raise ValueError(reason)
    notify = _scipy_style_callback(callback)
    bar = _bar(validate.check_flag("progress", progress), problems)
    try:
        return vectorized.vectorized_batch(fun, starts, args, tuple(on_device), optimizer_type, options, notify, bar)
    finally:
        if bar is not None:
            bar.close()


def _checked_batched_args(batched_args):
    """``batched_args`` as a tuple of NumPy arrays of one length ``P`` along their first axis."""
    if not isinstance(batched_args, (tuple, list)):
        raise TypeError(f"batched_args must be a tuple of arrays, each with one entry per problem along its first "
                        f"axis; got {type(batched_args).__name__}")
    arrays = []
    for k, given in enumerate(batched_args):
        array = np.asarray(given)
        if array.dtype == object or array.ndim == 0:
            raise ValueError(f"batched_args[{k}] must be an array with one entry per problem along its first axis; "
                             f"got {'a scalar' if array.ndim == 0 else 'an array of dtype object'}")
        arrays.append(np.ascontiguousarray(array))
    _check_lengths([len(array) for array in arrays])
    return tuple(arrays)


def _check_lengths(lengths):
    if len(set(lengths)) > 1:
        raise ValueError("every array of batched_args must have one entry per problem (the same length along its "
                         f"first axis); got lengths {lengths}")


def _checked_starts(x0, batched):
    """The ``(P, *shape)`` starts: ``x0`` itself, or a one-dimensional ``x0`` repeated ``P`` times."""
    array = np.asarray(x0)
    if array.dtype == object:
        raise TypeError("x0 must be one array of numbers, (P, *shape) or (n,); got an array of dtype object")
    problems = _problem_count(array.shape, [len(a) for a in batched])
    return np.broadcast_to(array, (problems,) + array.shape) if array.ndim == 1 else array


def _problem_count(x0_shape, lengths):
    """P, from the shape of ``x0`` and the ``lengths`` of the batched arguments (checked equal)."""
    problems = lengths[0] if lengths else None
    if len(x0_shape) == 1:
        if problems is None:
            raise ValueError(f"x0 of shape {x0_shape} is one start for every problem, and without batched_args "
                             "nothing says how many problems there are: pass x0 of shape (P, n)")
    elif len(x0_shape) == 0:
        raise ValueError("x0 must be (P, *shape), one start per problem, or (n,), one start for all; got a scalar")
    elif problems is not None and x0_shape[0] != problems:
        raise ValueError(f"x0 has {x0_shape[0]} starts (shape {x0_shape}) but batched_args have {problems} "
                         "entries: one start per problem, or a one-dimensional x0 for all")
    else:
        problems = x0_shape[0]
    if problems == 0:
        raise ValueError(f"there must be at least one problem; x0 has shape {x0_shape}")
    return problems


def _compiled_first(fun, start, first_args, optimizer_type, compiled, options):
    """``(the compiled solve of the first problem, which every problem runs, the box of its bounds)``,
    or ``None`` where the problems are solved in Python."""
    from . import compiled as compiled_solver  # (numadam.jit's steps: imported when a solve starts)

    stop_rules = _StopRules(options["maxiter"], options["gtol"], options["ftol"], options["xtol"],
                            options["patience"])
    hyperparameters = {k: v for k, v in options.items()
                       if k not in ("jac", "bounds", "maxiter", "gtol", "ftol", "xtol", "patience", "schedule",
                                    "clip", "nonfinite")}
    iterate = _ArrayIterate(fun, start, first_args, options["jac"], optimizer_type, options["bounds"],
                            options["clip"], options["schedule"], hyperparameters)
    solve = compiled_solver.prepared(fun, options["jac"], first_args, iterate.x, iterate.optimizer,
                                     _family_name(optimizer_type), options["schedule"], options["clip"], iterate.box,
                                     stop_rules, None, False, options["nonfinite"], compiled)
    if solve is not None and not solve.owns_its_state:
        if compiled:
            raise TypeError(f"compiled=True: {optimizer_type.algorithm.title}'s compiled solve steps its optimizer's "
                            "own state, one problem at a time; pass compiled=None to solve the problems in turn")
        return None
    return None if solve is None else (solve, iterate.box)


def _compiled_batch(solve, box, starts, args, batched, progress):
    """Every problem through ``solve``'s compiled loop, on Numba's number of threads; the stacked
    result."""
    from scipy.optimize import OptimizeResult

    from . import compiled as compiled_solver

    problems, shape = starts.shape[0], starts.shape[1:]
    x = np.array(starts, dtype=solve.x.dtype, order="C")  # (a fresh copy: the problems' iterates)
    if box is not None:
        low, high = box
        np.clip(x, low, high, out=x)
    flat = x.reshape(problems, -1)
    state = solve.stacked_state(flat)
    stop_rules = solve.stop_rules
    width = min(stop_rules.maxiter, compiled_solver.HISTORY_CAPACITY - 1) + 1
    out = _Outputs(problems, flat.shape[1], width, flat.dtype)
    driver = _driver(solve.function, len(state), len(batched))
    fixed = (tuple(solve.hyper), solve.carry, solve.rate_params, compiled_solver._or_empty(solve.low, solve.x),
             compiled_solver._or_empty(solve.high, solve.x), solve.clip_limit, stop_rules.gtol,
             -1.0 if stop_rules.ftol is None else stop_rules.ftol, -1.0 if stop_rules.xtol is None else stop_rules.xtol,
             stop_rules.patience, stop_rules.maxiter)
    arguments = (x.reshape(problems, *shape), args, batched, *fixed, state, solve.kernel,
                 compiled_solver.HISTORY_CAPACITY, *out.arrays())
    started = time.perf_counter()
    if not driver.overloads:
        driver.compile((numba.int64, numba.int64) + tuple(numba.typeof(a) for a in arguments))
    compile_time = time.perf_counter() - started
    _run_in_threads(driver, arguments, problems, progress)
    if (out.status == compiled_solver.BAD_SHAPE).any():
        k = int(np.argmax(out.status == compiled_solver.BAD_SHAPE))
        raise ValueError(f"problem {k}: the gradient must have x's shape {shape}")
    messages = [compiled_message(int(s), int(n), int(f), float(v), float(c), float(g), stop_rules)
                for s, n, f, v, c, g in zip(out.status, out.nit, out.nfev, out.value, out.candidate, out.peak)]
    longest = int(out.nit.max()) + 1
    return OptimizeResult(x=x, fun=out.value.copy(), jac=out.grad.reshape(x.shape), nit=out.nit.copy(),
                          nfev=out.nfev.copy(), njev=out.nfev.copy(), status=out.status.copy(),
                          success=np.isin(out.status, SUCCESS), message=messages,
                          skipped=np.zeros(problems, np.int64), history=out.history[:, :longest].copy(),
                          compiled=True, compile_time=compile_time)


class _Outputs:
    """The arrays a compiled batch writes each problem's results into, one row per problem."""

    def __init__(self, problems, size, width, dtype):
        self.status, self.nit, self.nfev = (np.zeros(problems, np.int64) for _ in range(3))
        self.value, self.candidate, self.peak = (np.zeros(problems) for _ in range(3))
        self.grad = np.zeros((problems, size), dtype)
        self.history = np.full((problems, width), np.nan)

    def arrays(self):
        return self.status, self.nit, self.nfev, self.value, self.candidate, self.peak, self.grad, self.history


def _run_in_threads(driver, arguments, problems, progress):
    """``driver(first, last, *arguments)`` over every problem, on Numba's number of threads
    (:func:`numba.get_num_threads`): each thread takes the next few problems as it finishes its
    last ones, so that a problem that stops early frees its thread. The driver runs without the GIL."""
    threads = min(numba.get_num_threads(), problems)
    size = max(1, min(16, problems // (8 * threads)))  # a few problems a call: the call costs microseconds
    bar = _bar(progress, problems)
    lock, taken = threading.Lock(), itertools.count(0, size)

    def work():
        while True:
            with lock:
                first = next(taken)
            if first >= problems:
                return
            last = min(first + size, problems)
            driver(first, last, *arguments)
            if bar is not None:
                with lock:
                    bar.update(last - first)

    try:
        if threads == 1:
            work()
        else:
            helpers = [_pool(threads - 1).submit(work) for _ in range(threads - 1)]
            try:
                work()  # this thread is one of them
            finally:
                for done in helpers:
                    done.result()
    finally:
        if bar is not None:
            bar.close()


@functools.cache
def _pool(threads):
    """A pool of ``threads`` threads, kept for the next batch (starting threads costs more than a
    small batch)."""
    return concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="numadam-batch")


def _bar(progress, problems):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=problems, unit="problem")


_DRIVER = '''
def solve_problems(first, last, x, args, batched, hyper, carry, rate_params, low, high, clip_limit, gtol, ftol, xtol,
                   patience, maxiter, state, kernel, history_capacity, status, nit, nfev, value, candidate, peak, grad,
                   history):
    for i in range(first, last):
        found = solve(x[i], args + ({rows}), hyper, carry, rate_params, low, high, clip_limit, gtol, ftol, xtol,
                      patience, maxiter, ({states}), kernel, history_capacity)
        status[i] = found[0]
        nit[i] = found[1]
        nfev[i] = found[2]
        value[i] = found[3]
        candidate[i] = found[4]
        peak[i] = found[5]
        kept = found[6]
        n = min(kept.size, history.shape[1])
        history[i, :n] = kept[:n]
        grad[i, :] = found[7]
'''


@functools.cache
def _driver(solve, n_state, n_batched):
    """The loop over problems ``first:last`` around the compiled ``solve`` (one per solve and arity),
    compiled to run without the GIL."""
    source = _DRIVER.format(rows="".join(f"batched[{k}][i], " for k in range(n_batched)),
                            states="".join(f"state[{k}][i], " for k in range(n_state)))
    namespace = {"solve": solve}
    exec(compile(source, f"<numadam batch of {n_state} state, {n_batched} batched>", "exec"), namespace)
    return numba.njit(nogil=True)(namespace["solve_problems"])


def _python_batch(fun, starts, args, batched, method, compiled, callback, progress, options):
    """Each problem by :func:`numadam.minimize` in turn; the stacked result."""
    from scipy.optimize import OptimizeResult

    bar = _bar(progress, len(starts))
    results = []
    try:
        for i, start in enumerate(starts):
            results.append(minimize(fun, start, args + tuple(a[i] for a in batched), method=method,
                                    callback=_problem_callback(callback, i), compiled=compiled, **options))
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


#: The fields of a batch's result with one number per problem.
_PER_PROBLEM = ("fun", "nit", "nfev", "njev", "status", "success", "skipped")


def _joined(batches):
    """The results of consecutive batches of problems as one, in their order (histories NaN-padded)."""
    from scipy.optimize import OptimizeResult

    longest = max(batch.history.shape[1] for batch in batches)
    history = np.full((sum(len(batch.history) for batch in batches), longest), np.nan)
    first = 0
    for batch in batches:
        history[first:first + len(batch.history), :batch.history.shape[1]] = batch.history
        first += len(batch.history)
    return OptimizeResult(x=np.concatenate([batch.x for batch in batches]),
                          jac=np.concatenate([batch.jac for batch in batches]),
                          message=[message for batch in batches for message in batch.message], history=history,
                          compiled=all(batch.compiled for batch in batches),
                          compile_time=sum(batch.get("compile_time", 0.0) for batch in batches),
                          **{name: np.concatenate([batch[name] for batch in batches]) for name in _PER_PROBLEM})


def _dask_batch(fun, x0, args, batched_args, method, compiled, callback, progress, options):
    """Problems in Dask arrays: one task per chunk of problems (the chunks of the first Dask array
    among ``x0`` and ``batched_args`` along its first axis), each a :func:`minimize_batch` of its
    rows; the results gathered in problem order, as NumPy arrays."""
    import dask

    if callback is not None:
        raise TypeError("on Dask arrays the problems are solved on workers, which cannot call a callback; pass "
                        "callback=None")
    if validate.check_flag("progress", progress):
        raise ValueError("progress=True counts problems in one process; on Dask arrays watch the tasks with "
                         "Dask's own progress bar (dask.diagnostics.ProgressBar, or distributed's dashboard)")
    if not isinstance(batched_args, (tuple, list)):
        raise TypeError(f"batched_args must be a tuple of arrays, each with one entry per problem along its first "
                        f"axis; got {type(batched_args).__name__}")
    batched = [a if is_dask_array(a) else np.asarray(a) for a in batched_args]
    for k, array in enumerate(batched):
        if array.ndim == 0 or array.dtype == object:
            raise ValueError(f"batched_args[{k}] must be an array with one entry per problem along its first axis; "
                             f"got {'a scalar' if array.ndim == 0 else 'an array of dtype object'}")
        if any(math.isnan(size) for size in array.shape):
            raise ValueError(f"batched_args[{k}] has an unknown shape {array.shape}: compute its chunk sizes first "
                             "(array.compute_chunk_sizes())")
    _check_lengths([array.shape[0] for array in batched])
    starts = x0 if is_dask_array(x0) else np.asarray(x0)
    _problem_count(starts.shape, [array.shape[0] for array in batched])
    optimizer_class(method)
    shared = starts.ndim == 1
    leading = next(a for a in ([starts] if not shared else []) + batched if is_dask_array(a))
    rows = leading.chunks[0]
    blocks = [_row_blocks(array, rows) for array in ([] if shared else [starts]) + batched]
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


def _problem_callback(callback, problem):
    """``callback`` for problem ``problem``'s solve: a new-style one gets the result with ``problem`` set."""
    if callback is None:
        return None
    try:
        parameters = set(inspect.signature(callback).parameters)
    except (TypeError, ValueError):
        return callback
    if parameters != {"intermediate_result"}:
        return callback

    def with_problem(intermediate_result):
        intermediate_result.problem = problem
        return callback(intermediate_result=intermediate_result)

    return with_problem
