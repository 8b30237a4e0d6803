"""What the benchmarks share: backends, arrays, and the timed step.

The steps go through numadam's public API (``numadam.Adam``, ``AdamW``,
``adam_step``). The cases (variants, their bytes per element, the CNN's shapes,
the studies of :mod:`numadam.bench.catalog`) are those of ``numadam bench``,
loaded from this checkout's ``numadam/bench/cases.py``: one definition for both, which
also holds when asv installs an older commit of numadam.
"""

import importlib.util
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np

import numadam


def _checkout_cases():
    """``numadam/bench/cases.py`` of the checkout these benchmarks belong to, loaded by path."""
    path = Path(__file__).resolve().parents[2] / "numadam" / "bench" / "cases.py"
    spec = importlib.util.spec_from_file_location("numadam_bench_cases_of_this_checkout", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = _checkout_cases()
LR, BENCH_VARIANTS = CASES.LR, CASES.VARIANTS

BACKENDS = ["numpy", "cupy"]
DTYPES = ["float32", "float64"]
VARIANTS = [variant.name for variant in BENCH_VARIANTS]
_VARIANT = {variant.name: variant for variant in BENCH_VARIANTS}


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
    """Least traffic of a step (:meth:`numadam.bench.cases.Variant.bytes_per_element`)."""
    return _VARIANT[variant].bytes_per_element(dtype)


def make_optimizer(variant, params):
    options = _VARIANT[variant]
    kind = numadam.AdamW if options.decoupled else numadam.Adam
    return kind(params, lr=LR, weight_decay=options.weight_decay, amsgrad=options.amsgrad)


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
