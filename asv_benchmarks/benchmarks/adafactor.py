"""Adafactor over one float32 matrix of 3e7 elements, from tall and narrow (an embedding table's
shape, one short row after another) to short and wide: the cost of a matrix's rows beside its
elements."""

import numadam

from .common import BACKENDS, array_module, random_arrays, synchronize

#: ``rows x columns`` of each matrix: the same elements, rows of 100 to 10000.
SHAPES = {"300000 x 100": (300_000, 100), "30000 x 1000": (30_000, 1_000), "3000 x 10000": (3_000, 10_000)}


class AdafactorMatrix:
    """``numadam.Adafactor(p, lr=1e-3).step(g)`` over one matrix of :data:`SHAPES`."""

    params = (BACKENDS, list(SHAPES))
    param_names = ("backend", "shape")
    timeout = 300

    def setup(self, backend, shape):
        self.xp = array_module(backend)
        self.param, self.grad = (random_arrays(self.xp, [SHAPES[shape]], "float32", seed=seed)[0] for seed in (1, 2))
        self.optimizer = numadam.Adafactor(self.param, lr=1e-3)
        self.time_step(backend, shape)  # compiles the kernels

    def time_step(self, backend, shape):
        self.optimizer.step(self.grad)
        synchronize(self.xp)
