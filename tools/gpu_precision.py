"""The precision studies' steps on a GPU at 1e8 elements: CUDA-event time per step and the
bandwidth of the step's bytes, next to a device-to-device copy of the same bytes.

    python3 tools/gpu_precision.py LABEL [NUMADAM_ROOT]     (prints one line per study)

``NUMADAM_ROOT`` (default: this checkout) is put first on ``sys.path``, so that two
commits can be timed on one machine, a process each (see ``tools/gpu_steps.py``).
Each time is the median of five batches of 20 steps queued back to back, after two
steps. Gradients are standard normal (they never vanish, so no subnormal squares).
CuPy has no bfloat16, so the 16-bit parameter studies take float16 parameters.
"""

import os
import statistics
import sys

sys.path.insert(0, sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), ".."))

import cupy  # noqa: E402
import numpy as np  # noqa: E402

import numadam  # noqa: E402
from numadam.bench.cuda_timing import CudaClock  # noqa: E402

SIZE = 100_000_000

#: study: (parameter dtype, options, bytes moved per element: read + written)
STUDIES = {
    "float32": ("float32", {}, 16 + 12),
    "bfloat16 state": ("float32", {"state_dtype": "bfloat16"}, 12 + 8),
    "int8 state": ("float32", {"state_dtype": "int8"}, 10 + 6),
    "float16 parameters": ("float16", {}, 12 + 10),
    "float16 parameters, master weights": ("float16", {"master_weights": True}, 16 + 14),
    "float16 parameters, stochastic rounding": ("float16", {"stochastic_rounding": True, "seed": 0}, 12 + 10),
}


def median_ms(step, clock, batches=5, reps=20):
    """Median over ``batches`` of the CUDA-event ms per call of ``step``, ``reps`` calls queued each."""
    step()
    step()
    times = []
    for _ in range(batches):
        clock.synchronize()
        clock.start()
        for _ in range(reps):
            step()
        times.append(clock.stop() / reps * 1e3)
    return statistics.median(times)


def main(label):
    clock = CudaClock()
    rng = cupy.random.default_rng(0)
    root = os.path.dirname(os.path.dirname(numadam.__file__))
    for name, (dtype, options, nbytes) in STUDIES.items():
        param = rng.standard_normal(SIZE, dtype=cupy.float32).astype(dtype)
        grad = rng.standard_normal(SIZE, dtype=cupy.float32).astype(dtype)
        opt = numadam.Adam([param], lr=1e-3, **options)
        ms = median_ms(lambda: opt.step([grad]), clock)
        source = cupy.empty(SIZE * nbytes // 2, cupy.uint8)
        target = cupy.empty_like(source)
        copy_ms = median_ms(lambda: target.__setitem__(Ellipsis, source), clock)
        finite = bool(cupy.isfinite(param.astype(cupy.float32)).all())
        print(f"{label} {root} | {name}: {ms:.3f} ms, {SIZE * nbytes / ms / 1e6:.0f} GB/s | copy of the same "
              f"bytes {copy_ms:.3f} ms | x copy {ms / copy_ms:.2f} | finite {finite}", flush=True)
        del opt, param, grad, source, target
        cupy.get_default_memory_pool().free_all_blocks()


if __name__ == "__main__":
    main(sys.argv[1])
