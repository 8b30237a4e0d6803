r"""``numadam bench --device cuda --suite``: the studies of :mod:`numadam.bench.catalog` on CuPy arrays.

Each study runs as on the CPU (:mod:`numadam.bench.suites`), its arrays placed
on the current GPU, beside its same-traffic kernel: a ``cupy.ElementwiseKernel``
that reads every array of the study and writes those the step writes, with
trivial arithmetic (:func:`traffic_operation`). Times are CUDA-event times of
steps queued back to back (:func:`~numadam.bench.cuda_timing.cuda_interleaved_medians`),
every contender of a suite in one interleaved run.

CuPy has no bfloat16, so the studies of bfloat16 parameters run with float16
parameters (the same bytes), named so; "bfloat16 parameters" itself is left
out, "float16 parameters" being its twin (:func:`on_the_gpu`). No other
library's step is timed here: ``numadam bench --device cuda --cases`` races
torch's fused step.
"""

from . import catalog
from .cuda_timing import cuda_interleaved_medians
from .suites import Timed, OptimizerStep

#: The GPU's stand-in for a 16-bit parameter dtype CuPy lacks.
_CUPY_DTYPES = {"bfloat16": "float16"}


def on_the_gpu(studies):
    """The studies of a suite as they run on CuPy arrays: bfloat16 parameters become float16
    parameters (the study renamed), and a study whose renamed twin is already there is left out."""
    placed = {}
    for study in studies.values():
        dtype = _CUPY_DTYPES.get(study.param_dtype, study.param_dtype)
        if dtype != study.param_dtype:
            study = study._replace(name=study.name.replace(study.param_dtype, dtype), param_dtype=dtype)
        if study.name not in placed:
            placed[study.name] = study
    return placed


def traffic_operation(n_written, n_read):
    """``(in_params, out_params, operation)`` of a CuPy elementwise kernel over ``n_written`` arrays
    it reads and writes (``w0``, ...) and ``n_read`` it only reads (``r0``, ...): each written array
    gets a tiny multiple of the sum of every array's element added (the values stay near 1 step
    after step), converted to its own type. Each array has its own type placeholder (CuPy takes a
    single capital letter as one: ``A``... for the written arrays, ``N``... for the read ones), so
    any mix of dtypes goes through one kernel."""
    if n_written > 13 or n_read > 13:
        raise ValueError(f"the same-traffic kernel takes at most 13 written and 13 read arrays, not "
                         f"{n_written} and {n_read}")
    read = [(chr(ord("N") + k), f"r{k}") for k in range(n_read)]
    written = [(chr(ord("A") + k), f"w{k}") for k in range(n_written)]
    in_params = ", ".join(f"{kind} {name}" for kind, name in read)
    out_params = ", ".join(f"{kind} {name}" for kind, name in written)
    total = " + ".join(f"(float){name}" for _, name in written + read)
    operation = f"float total = {total}; " + " ".join(f"{name} = ({kind})((float){name} + 1e-30f * total);"
                                                      for kind, name in written)
    return in_params, out_params, operation


def held_bytes(name):
    """The bytes per element of ``size`` a GPU run of suite ``name`` holds at once: every study's
    arrays and its same-traffic kernel's."""
    return sum(study.footprint * (1 + study.moved) for study in on_the_gpu(catalog.SUITES[name]()).values())


class CupyTraffic:
    """The study's same-traffic kernel on the GPU over ``size * study.moved`` elements."""

    def __init__(self, cupy, study, size):
        size = max(1, int(size * study.moved))
        self.written = [cupy.ones(size, dtype) for dtype in study.written]
        self.read = [cupy.ones(size, dtype) for dtype in study.read]
        self.kernel = cupy.ElementwiseKernel(*traffic_operation(len(self.written), len(self.read)),
                                             "numadam_bench_traffic")
        self.step()

    def step(self):
        self.kernel(*self.read, *self.written)


def run_cuda_suite(name, size, rounds, min_batch_seconds, progress=print):
    """Time every study of suite ``name`` (:func:`on_the_gpu`) at ``size`` elements on the current
    GPU; return :class:`~numadam.bench.suites.Timed` rows (no other library's time)."""
    import cupy

    studies = list(on_the_gpu(catalog.SUITES[name]()).values())
    contenders = []
    for study in studies:
        progress(f"{name} (GPU): preparing {study.name}")
        optimizer, grads = catalog.build(study, size, place=cupy.asarray)
        optimizer.step(grads)  # compile before timing
        contenders += [OptimizerStep(optimizer, grads), CupyTraffic(cupy, study, size)]
    progress(f"{name} (GPU): timing {len(contenders)} contenders, {rounds} rounds")
    medians = cuda_interleaved_medians(contenders, rounds, min_batch_seconds)
    device_seconds = [median[0] for median in medians]
    return [Timed(study, device_seconds[2 * k], device_seconds[2 * k + 1]) for k, study in enumerate(studies)]
