"""What the benchmarks share: backends, variants, arrays, and the timed step.

Everything goes through numadam's public API (``numadam.Adam``, ``AdamW``,
``adam_step``), so the suite runs unchanged against any commit.
"""

import statistics
import time
import tracemalloc

import numpy as np

import numadam

BACKENDS = ["numpy", "cupy"]
DTYPES = ["float32", "float64"]
VARIANTS = ["adam", "adamw", "amsgrad"]
LR = 1e-3
WEIGHT_DECAY = 1e-2


def array_module(backend):
    """``numpy`` or ``cupy``; raises NotImplementedError (asv: skipped) when there is no GPU."""
    if backend == "numpy":
        return np
    try:
        import cupy
    except ImportError:
        raise NotImplementedError("cupy is not installed") from None
    if not cupy.cuda.is_available():
        raise NotImplementedError("cupy finds no CUDA device")
    return cupy


def synchronize(xp):
    """Wait for the GPU, so that a timed call includes the work it launched."""
    if xp is not np:
        xp.cuda.runtime.deviceSynchronize()


def random_arrays(xp, shapes, dtype, seed):
    """Standard normal arrays, drawn in place: setup leaves no temporaries in the peak memory."""
    if xp is np:
        rng = np.random.default_rng(seed)
        return [rng.standard_normal(dtype=dtype, out=np.empty(shape, dtype)) for shape in shapes]
    rng = xp.random.default_rng(seed)
    return [rng.standard_normal(size=shape, dtype=dtype) for shape in shapes]


def bytes_per_element(variant, dtype):
    """Least traffic of a step: read p, g, m, v and write p, m, v (AMSGrad: and read+write max v)."""
    return (9 if variant == "amsgrad" else 7) * np.dtype(dtype).itemsize


def make_optimizer(variant, params):
    if variant == "adamw":
        return numadam.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    return numadam.Adam(params, lr=LR, amsgrad=variant == "amsgrad")


def median_step_seconds(step, min_samples=5, budget_seconds=0.1, max_samples=1000):
    """Median wall time of ``step()`` over samples taken for about ``budget_seconds``."""
    samples = []
    start = time.perf_counter()
    while len(samples) < min_samples or (time.perf_counter() - start < budget_seconds
                                         and len(samples) < max_samples):
        before = time.perf_counter()
        step()
        samples.append(time.perf_counter() - before)
    return statistics.median(samples)


class _OptimizerStep:
    """One ``opt.step(grads)`` over the arrays :meth:`setup_step` makes.

    Subclasses set ``params``, call :meth:`setup_step` from ``setup`` and name
    their benchmarks; this base holds what those share.
    """

    timeout = 300

    def setup_step(self, backend, shapes, dtype, variant):
        self.xp = array_module(backend)
        self.params = random_arrays(self.xp, shapes, dtype, seed=1)
        self.grads = random_arrays(self.xp, shapes, dtype, seed=2)
        single = len(shapes) == 1
        self.grad_tree = self.grads[0] if single else self.grads
        self.optimizer = make_optimizer(variant, self.params[0] if single else self.params)
        self.step()  # compiles the kernels
        n_elements = sum(int(np.prod(shape)) for shape in shapes)
        self.bytes_per_step = n_elements * bytes_per_element(variant, dtype)

    def step(self):
        self.optimizer.step(self.grad_tree)
        synchronize(self.xp)

    def bandwidth(self):
        """Effective bandwidth in GB/s: the bytes a step must move over its median time."""
        return self.bytes_per_step / median_step_seconds(self.step) / 1e9

    def allocated_bytes(self):
        """Peak bytes allocated on the host during one step (NumPy arrays included)."""
        tracemalloc.start()
        try:
            self.step()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
