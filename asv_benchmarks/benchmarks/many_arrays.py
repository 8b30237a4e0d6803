"""Many arrays per optimizer: the per-array overhead, against one flat array of the same size."""

from .common import BACKENDS, CASES, VARIANTS, _OptimizerStep, random_arrays, synchronize


LAYOUTS = {
    "1 x 1e6": [(1_000_000,)],
    "1000 x 1e3": [(1_000,)] * 1_000,
    "cnn": list(CASES.cnn_shapes()),
}


class ManyArrays(_OptimizerStep):
    """One optimizer over a list of float32 arrays.

    "1 x 1e6" is the element count of "1000 x 1e3" in one array: their ratio is
    the cost of having many arrays. The dtype is fixed because per-array costs
    do not depend on it (:class:`~benchmarks.single_array.OneArray` covers float64).
    """

    params = (BACKENDS, list(LAYOUTS), VARIANTS)
    param_names = ("backend", "layout", "variant")

    def setup(self, backend, layout, variant):
        self.setup_step(backend, LAYOUTS[layout], "float32", variant)
        other = random_arrays(self.xp, LAYOUTS[layout], "float32", seed=3)
        self.other_grad_tree = other[0] if len(other) == 1 else other

    def time_step(self, backend, layout, variant):
        self.step()

    def time_step_new_gradient_arrays(self, backend, layout, variant):
        """Two steps, each with gradient arrays the optimizer has not seen in the step before."""
        self.optimizer.step(self.other_grad_tree)
        self.optimizer.step(self.grad_tree)
        synchronize(self.xp)

    def track_bandwidth(self, backend, layout, variant):
        return self.bandwidth()

    track_bandwidth.unit = "GB/s"

    def track_step_allocations(self, backend, layout, variant):
        """Bytes the step allocates on the host: 0 arrays' worth for a step without temporaries."""
        return self.allocated_bytes()

    track_step_allocations.unit = "bytes"
