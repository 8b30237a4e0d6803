"""``numadam.adam_step`` on one array: the functional API's per-call cost."""

import numadam

from .common import BACKENDS, DTYPES, LR, array_module, random_arrays, synchronize


class AdamStep:
    """One validated ``adam_step`` call, the state kept by the caller."""

    params = (BACKENDS, DTYPES, [1_000, 10_000_000])
    param_names = ("backend", "dtype", "size")
    timeout = 300

    def setup(self, backend, dtype, size):
        self.xp = array_module(backend)
        self.param, self.grad = random_arrays(self.xp, [(size,), (size,)], dtype, seed=3)
        self.exp_avg = self.xp.zeros(size, dtype)
        self.exp_avg_sq = self.xp.zeros(size, dtype)
        self.step = 0
        self.time_adam_step(backend, dtype, size)  # compiles the kernel

    def time_adam_step(self, backend, dtype, size):
        self.step += 1
        numadam.adam_step(self.param, self.grad, self.exp_avg, self.exp_avg_sq, step=self.step, lr=LR,
                          betas=(0.9, 0.999), eps=1e-8)
        synchronize(self.xp)


class JitStep:
    """``numadam.jit.adam_step`` called from an njit loop: 10_000 steps on 10 float64 parameters
    (the time of one step is the reported time over 10_000)."""

    params = (["numpy"],)
    param_names = ("backend",)

    def setup(self, backend):
        from numba import njit

        from numadam import jit

        @njit
        def loop(x, g, m, v, steps):
            for t in range(1, steps + 1):
                jit.adam_step(x, g, m, v, t, LR, 0.9, 0.999, 1e-8, 0.0)

        self.loop = loop
        self.arrays = random_arrays(array_module(backend), [(10,)] * 4, "float64", seed=5)
        self.arrays[3] = abs(self.arrays[3])  # a second moment
        loop(*self.arrays, 10)  # compiles

    def time_10_000_steps(self, backend):
        self.loop(*self.arrays, 10_000)
