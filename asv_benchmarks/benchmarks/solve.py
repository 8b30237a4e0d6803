"""A whole solve: Adam on the 10-parameter Rosenbrock function, 1e5 iterations (see ``numadam bench --solve``).

``numadam.minimize`` with a Numba objective compiles the whole loop; beside it,
the hand-written ``@njit`` loop calling ``numadam.jit.adam_step`` that it is held
to (at most 1.5x its time) and the Python loop (``compiled=False``, 1e3
iterations: a fiftieth of its time per iteration is the compiled solve's target).
"""

import numpy as np

import numadam
from numadam.bench.solve import hand_written_loop, rosenbrock

ITERATIONS = 100_000


class WholeSolve:
    params = (["compiled minimize", "hand-written njit loop", "Python loop, 1e3 iterations"],)
    param_names = ("loop",)
    timeout = 600

    def setup(self, loop):
        x0 = np.zeros(10)
        if loop == "compiled minimize":
            self.solve = lambda: numadam.minimize(rosenbrock, x0, jac=True, lr=1e-3, maxiter=ITERATIONS, gtol=0.0,
                                                  compiled=True)
        elif loop == "hand-written njit loop":
            self.solve = lambda: hand_written_loop(x0.copy(), ITERATIONS, 1e-3)
        else:
            self.solve = lambda: numadam.minimize(rosenbrock.py_func, x0, jac=True, lr=1e-3, maxiter=1_000, gtol=0.0,
                                                  compiled=False)
        self.solve()  # compiled (or loaded from the disk cache) before timing

    def time_solve(self, loop):
        self.solve()


class SolveCompile:
    """The first compiled solve of a process: compiling it, or loading it from numadam's disk cache."""

    timeout = 600

    def track_compile_or_load_seconds(self):
        res = numadam.minimize(rosenbrock, np.zeros(10), jac=True, lr=1e-3, maxiter=10, gtol=0.0, compiled=True)
        return res.compile_time

    track_compile_or_load_seconds.unit = "seconds"


class ManyFits:
    """300 small fits at once (see ``numadam bench --batch``): ``numadam.minimize_batch`` on one
    thread and on all, beside the hand-written ``@njit`` loop over the fits it is held to (at most
    1.2x its time on one thread). Skipped on commits before ``minimize_batch``."""

    params = (["minimize_batch, 1 thread", "minimize_batch, all threads", "hand-written njit loop"],)
    param_names = ("way",)
    timeout = 600

    def setup(self, way):
        if not hasattr(numadam, "minimize_batch"):
            raise NotImplementedError("this commit has no numadam.minimize_batch")
        import numba

        from numadam.bench import batch

        t, y = batch.problems()
        x0 = np.array([1.0, 1.0, 0.0])
        threads = 1 if way.endswith("1 thread") else numba.get_num_threads()
        if way.startswith("minimize_batch"):
            def solve():
                before = numba.get_num_threads()
                numba.set_num_threads(threads)
                try:
                    numadam.minimize_batch(batch.decay, x0, args=(t,), batched_args=(y,), jac=True, lr=batch.LR,
                                           maxiter=batch.ITERATIONS, gtol=0.0)
                finally:
                    numba.set_num_threads(before)
            self.solve = solve
        else:
            self.solve = lambda: batch.hand_written_loop(np.tile(x0, (batch.FITS, 1)), t, y, batch.LR,
                                                         batch.ITERATIONS)
        self.solve()  # compiled before timing

    def time_fits(self, way):
        self.solve()
