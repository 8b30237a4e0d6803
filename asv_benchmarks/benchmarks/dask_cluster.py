"""numadam over Dask arrays on a 2-worker LocalCluster: one step of 1e7 float32 in 16 chunks.

The same measurement as ``numadam bench --cases dask`` (which runs 1e8), kept
small enough for every asv run; the time includes waiting for the new
parameters and state to be persisted on the workers: after each step
(``time_step``), or after four steps in flight (``time_four_steps_in_flight``,
the time of all four).
"""

import numpy as np


class DaskStep:
    params = (["numpy"], [10_000_000])
    param_names = ("backend", "size")
    timeout = 300

    def setup(self, backend, size):
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise NotImplementedError("distributed is not installed") from None
        from numadam.bench.cases import VARIANTS
        from numadam.bench.contenders import Problem
        from numadam.bench.dask_contenders import NumadamOnDask

        rng = np.random.default_rng(7)
        problem = Problem([rng.standard_normal(size, dtype=np.float32)], [rng.standard_normal(size, dtype=np.float32)],
                          single=True)
        self.contender = NumadamOnDask(problem, VARIANTS[0])  # Adam with the bench's lr, betas and eps
        self.in_flight = NumadamOnDask(problem, VARIANTS[0], in_flight=4)
        self.contender.step()  # the workers compile their kernels
        self.in_flight.step()

    def time_step(self, backend, size):
        self.contender.step()

    def time_four_steps_in_flight(self, backend, size):
        self.in_flight.step()
