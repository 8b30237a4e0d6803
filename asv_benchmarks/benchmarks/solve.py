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
