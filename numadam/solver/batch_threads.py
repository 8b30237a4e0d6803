r"""A compiled batch of :func:`numadam.minimize_batch`: the compiled solve of
:mod:`numadam.solver.compiled`, run for every problem on Numba's number of threads.

The solve is compiled once, for the first problem. A loop over problems
``first:last`` around it (:func:`driver`), compiled to run without Python's lock,
calls it on each problem's row of ``x``, its rows of ``batched_args`` and a state
of its own, and writes its results into that problem's rows of the outputs.
Threads (:func:`numba.get_num_threads` of them, kept in a pool between batches)
each take the next few problems as they finish their last ones, so a problem
that stops early frees its thread. Each problem's iterates are therefore
``minimize(..., compiled=True)``'s on that problem alone, bit for bit, whatever
the number of threads.

It is not a ``prange`` loop: Numba's parallel loops cannot pass the solve's
tuples of hyperparameters and arguments into their bodies. An objective
compiled with ``parallel=True`` is then called from several threads at once,
which Numba's ``omp`` and ``tbb`` threading layers allow and its ``workqueue``
layer does not.
"""

import concurrent.futures
import functools
import itertools
import os
import threading
import time

import numba
import numpy as np
from numba.typed import List

from ..targets.block_labels import fresh_block_labels

#: Problems a thread takes at once, at most: a call of the loop costs microseconds.
PROBLEMS_A_CALL = 16


def run(solve, box, starts, args, batched, bar):
    """Every problem of ``starts`` (``(P, *shape)``) through ``solve`` (a
    :class:`~numadam.solver.compiled.CompiledSolve` of the first problem), from its start clipped into
    ``box``; ``(outputs, histories, compile seconds)``, ``outputs`` a :class:`Outputs`."""
    from .compiled import HISTORY_CAPACITY

    problems, shape = starts.shape[0], starts.shape[1:]
    x = np.array(starts, dtype=solve.x.dtype, order="C")  # (a fresh copy: the problems' iterates)
    if box is not None:
        low, high = box
        np.clip(x, low, high, out=x)
    flat = x.reshape(problems, -1)
    state = solve.stacked_state(flat)
    out = Outputs(x, flat.shape[1])
    loop = driver(solve.function, len(state), len(batched))
    arguments = (x.reshape(problems, *shape), args, batched, *solve.settings(), state, solve.kernel,
                 HISTORY_CAPACITY, *out.arrays())
    signature = (numba.int64, numba.int64) + tuple(numba.typeof(a) for a in arguments)
    started = time.perf_counter()
    if signature not in loop.overloads:
        fresh_block_labels()
        loop.compile(signature)
    compile_seconds = time.perf_counter() - started
    histories = in_threads(loop, arguments, problems, bar)
    return out, histories, compile_seconds


class Outputs:
    """The arrays the loop writes each problem's results into, a row per problem; ``x`` the iterates."""

    def __init__(self, x, size):
        problems = x.shape[0]
        self.x = x
        self.status, self.nit, self.nfev = (np.zeros(problems, np.int64) for _ in range(3))
        self.value, self.candidate, self.peak = (np.zeros(problems) for _ in range(3))
        self.grad = np.zeros((problems, size), x.dtype)

    def arrays(self):
        return self.status, self.nit, self.nfev, self.value, self.candidate, self.peak, self.grad


def in_threads(loop, arguments, problems, bar):
    """``loop(first, last, *arguments)`` over every problem on Numba's number of threads; each
    problem's history (the loop returns those of its problems), in problem order."""
    threads = min(numba.get_num_threads(), problems)
    size = max(1, min(PROBLEMS_A_CALL, problems // (8 * threads)))
    lock, taken = threading.Lock(), itertools.count(0, size)
    histories = [None] * problems

    def work():
        while True:
            with lock:
                first = next(taken)
            if first >= problems:
                return
            last = min(first + size, problems)
            kept = loop(first, last, *arguments)
            with lock:
                histories[first:last] = list(kept)
                if bar is not None:
                    bar.update(last - first)

    if threads == 1:
        work()
    else:
        helpers = [_pool(threads - 1).submit(work) for _ in range(threads - 1)]
        try:
            work()  # this thread is one of them
        finally:
            for done in helpers:
                done.result()
    return histories


@functools.cache
def _pool(threads):
    """A pool of ``threads`` threads, kept for the next batch (starting threads costs more than a
    small batch); a forked child makes its own (its parent's threads do not exist there)."""
    return concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="numadam-batch")


os.register_at_fork(after_in_child=_pool.cache_clear)


_LOOP = '''
def solve_problems(first, last, x, args, batched, hyper, carry, rate_params, low, high, clip_limit, gtol, ftol, xtol,
                   patience, maxiter, state, kernel, history_capacity, status, nit, nfev, value, candidate, peak,
                   grad):
    histories = List()
    for i in range(first, last):
        found = solve(x[i], args + ({rows}), hyper, carry, rate_params, low, high, clip_limit, gtol, ftol, xtol,
                      patience, maxiter, ({states}), kernel, history_capacity)
        status[i] = found[0]
        nit[i] = found[1]
        nfev[i] = found[2]
        value[i] = found[3]
        candidate[i] = found[4]
        peak[i] = found[5]
        histories.append(found[6])
        grad[i, :] = found[7]
    return histories
'''


@functools.cache
def driver(solve, n_state, n_batched):
    """The loop over problems ``first:last`` around the compiled ``solve`` (one per solve and arity),
    compiled to run without the GIL; it returns those problems' histories."""
    source = _LOOP.format(rows="".join(f"batched[{k}][i], " for k in range(n_batched)),
                          states="".join(f"state[{k}][i], " for k in range(n_state)))
    namespace = {"solve": solve, "List": List}
    exec(compile(source, f"<numadam batch of {n_state} state, {n_batched} batched>", "exec"), namespace)
    return numba.njit(nogil=True)(namespace["solve_problems"])
