"""SparseAdam's, Adafactor's (50 small matrices, then one matrix of each size) and LAMB's steps
on a GPU: CUDA-event and host time per step.

    python3 tools/gpu_steps.py LABEL [NUMADAM_ROOT]     (prints one line)

``NUMADAM_ROOT`` (default: this checkout) is put first on ``sys.path``, so that
two commits can be timed on one machine, a process each: unpack the other with
``git archive COMMIT numadam | tar -x -C OTHER`` and run the script once with
each root. Times are per step over 20 steps queued back to back, after one;
when the host is the slower, the CUDA-event time is the host's.
"""

import os
import sys
import time

sys.path.insert(0, sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), ".."))

import cupy  # noqa: E402
import numpy as np  # noqa: E402

import numadam  # noqa: E402
from numadam.bench.cuda_timing import CudaClock  # noqa: E402


def timed(step, reps=20):
    """``(CUDA-event ms, host ms)`` per call of ``step`` over ``reps`` calls queued back to back."""
    clock = CudaClock()
    step()
    clock.synchronize()
    clock.start()
    started = time.perf_counter()
    for _ in range(reps):
        step()
    host = (time.perf_counter() - started) / reps * 1e3
    return clock.stop() / reps * 1e3, host


def main(label):
    rng = np.random.default_rng(0)
    found = [label, os.path.dirname(os.path.dirname(numadam.__file__))]
    table = cupy.ones((1_000_000, 16), cupy.float32)
    index = cupy.asarray(np.sort(rng.choice(1_000_000, 10_000, replace=False)))
    values = cupy.full((10_000, 16), 0.5, cupy.float32)
    sparse = numadam.SparseAdam([table], lr=1e-3)
    found.append("SparseAdam 1%% of 1e6 x 16: %.3f ms (host %.3f)" % timed(
        lambda: sparse.step([numadam.Rows(index, values)])))
    many = [cupy.ones((256, 256), cupy.float32) for _ in range(50)]
    many_grads = [cupy.full((256, 256), 0.5, cupy.float32) for _ in range(50)]
    opt = numadam.Adafactor(many, lr=1e-3)
    found.append("Adafactor 50 x (256, 256): %.3f ms (host %.3f)" % timed(lambda: opt.step(many_grads)))
    for shape in [(1000, 1000), (30000, 1000), (10000, 10000)]:
        param, grad = cupy.ones(shape, cupy.float32), cupy.asarray(rng.standard_normal(shape, dtype=np.float32))
        opt = numadam.Adafactor([param], lr=1e-3)
        found.append(f"Adafactor {shape}: " + "%.3f ms (host %.3f)" % timed(lambda: opt.step([grad])))
        del opt, param, grad
    for size, name in [(1_000_000, "1e6"), (100_000_000, "1e8")]:
        param, grad = cupy.ones(size, cupy.float32), cupy.full(size, 0.5, cupy.float32)
        opt = numadam.LAMB([param], lr=1e-3)
        found.append(f"LAMB {name}: " + "%.3f ms (host %.3f)" % timed(lambda: opt.step([grad])))
    print(" | ".join(found), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
