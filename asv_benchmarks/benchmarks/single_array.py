"""One array per optimizer: from per-call overhead (1e3) to the memory roofline (1e7)."""

from .common import BACKENDS, DTYPES, VARIANTS, _OptimizerStep

SIZES = [1_000, 100_000, 10_000_000]


class OneArray(_OptimizerStep):
    """``numadam.Adam`` / ``AdamW`` / AMSGrad over a single 1-D array."""

    params = (BACKENDS, DTYPES, SIZES, VARIANTS)
    param_names = ("backend", "dtype", "size", "variant")

    def setup(self, backend, dtype, size, variant):
        self.setup_step(backend, [(size,)], dtype, variant)

    def time_step(self, backend, dtype, size, variant):
        self.step()

    def track_bandwidth(self, backend, dtype, size, variant):
        return self.bandwidth()

    track_bandwidth.unit = "GB/s"


class PeakMemory(_OptimizerStep):
    """Peak memory of the process around a step over 1e7 elements.

    The arrays are drawn in place, so the peak is the interpreter, the
    parameters, the gradients and the optimizer's state, plus whatever the step
    allocates. (At smaller sizes the peak is set by the JIT compiler instead.)
    With CuPy this is host memory: it shows accidental copies to the host.
    """

    params = (BACKENDS, DTYPES, VARIANTS)
    param_names = ("backend", "dtype", "variant")

    def setup(self, backend, dtype, variant):
        self.setup_step(backend, [(10_000_000,)], dtype, variant)

    def peakmem_step(self, backend, dtype, variant):
        self.step()
