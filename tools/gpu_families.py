"""The families added after Adam on a GPU: each object's step against a same-traffic CuPy kernel.

    python3 tools/gpu_families.py [RESULTS_DIR]     (run from the repository root; writes families.md)

At 1e8 float32 elements: SGD (with and without momentum), RMSprop (plain, and
centered with momentum), Adagrad and Adam, each against an elementwise kernel
that reads and writes what the step must (``p += g`` and ``s += g`` per state
array). Adafactor at three shapes against the same-traffic ``p += g`` and
``torch.optim.Adafactor(foreach=True)`` where torch has CUDA. A row-sparse
SparseAdam step touching 1% of the rows of a 1e6 x 16 table against the dense
Adam step. Times are CUDA-event times per step over back-to-back steps.
"""

import os
import sys

import cupy
import numpy as np

import numadam
from numadam.bench.cuda_contenders import elementwise_traffic_kernel
from numadam.bench.cuda_timing import CudaClock

N = 100_000_000


def timed(step, reps=20):
    """Milliseconds per call of ``step`` over ``reps`` calls queued back to back, after one warm-up."""
    clock = CudaClock()
    step()
    clock.synchronize()
    clock.start()
    for _ in range(reps):
        step()
    return clock.stop() / reps * 1e3


def free():
    cupy.get_default_memory_pool().free_all_blocks()


def elementwise_families(grad):
    rows = ["| step | ms per step | GB/s | same-traffic ms | × same-traffic |", "|---|---:|---:|---:|---:|"]
    for name, make, n_states in [
        ("SGD", lambda p: numadam.SGD([p], lr=1e-3), 0),
        ("SGD, momentum", lambda p: numadam.SGD([p], lr=1e-3, momentum=0.9), 1),
        ("RMSprop", lambda p: numadam.RMSprop([p], lr=1e-3), 1),
        ("RMSprop, centered, momentum", lambda p: numadam.RMSprop([p], lr=1e-3, centered=True, momentum=0.9), 3),
        ("Adagrad", lambda p: numadam.Adagrad([p], lr=1e-3), 1),
        ("Adam", lambda p: numadam.Adam([p], lr=1e-3), 2),
    ]:
        param = cupy.ones(N, cupy.float32)
        opt = make(param)
        ms = timed(lambda: opt.step([grad]))
        states, copy = [cupy.zeros(N, cupy.float32) for _ in range(n_states)], cupy.ones(N, cupy.float32)
        kernel = elementwise_traffic_kernel(n_states)
        reference = timed(lambda: kernel(grad, copy, *states))
        gigabytes = 4 * N * (3 + 2 * n_states) / 1e9
        rows.append(f"| {name} | {ms:.3f} | {gigabytes / ms * 1e3:.0f} | {reference:.3f} | {ms / reference:.2f} |")
        del opt, param, states, copy
        free()
    return rows


def adafactor(rng):
    rows = ["| Adafactor, float32 | ms per step | same-traffic ms (p += g) | × same-traffic | torch foreach ms "
            "| torch / numadam |", "|---|---:|---:|---:|---:|---:|"]
    kernel = elementwise_traffic_kernel(0)
    for shape in [(10000, 10000), (30000, 1000), (100, 1000, 1000)]:
        param, grad = cupy.ones(shape, cupy.float32), rng.standard_normal(shape, dtype=np.float32)
        opt = numadam.Adafactor([param], lr=1e-3)
        ms = timed(lambda: opt.step([grad]))
        reference = timed(lambda: kernel(grad, param))
        torch_ms = float("nan")
        try:
            import torch

            tensor = torch.from_dlpack(param.copy())
            tensor.grad = torch.from_dlpack(grad)
            torch_ms = timed(torch.optim.Adafactor([tensor], lr=1e-3, foreach=True).step, 10)
        except Exception as error:  # no torch, or no CUDA in it
            print("torch:", error)
        rows.append(f"| {shape} | {ms:.3f} | {reference:.3f} | {ms / reference:.2f} | {torch_ms:.3f} "
                    f"| {torch_ms / ms:.2f} |")
        del opt, param, grad
        free()
    return rows


def sparse_adam():
    table = cupy.ones((1_000_000, 16), cupy.float32)
    index = cupy.asarray(np.sort(np.random.default_rng(0).choice(1_000_000, 10_000, replace=False)))
    values = cupy.full((10_000, 16), 0.5, cupy.float32)
    sparse = numadam.SparseAdam([table], lr=1e-3)
    ms = timed(lambda: sparse.step([numadam.Rows(index, values)]))
    dense_grad = cupy.full((1_000_000, 16), 0.5, cupy.float32)
    dense = numadam.Adam([cupy.ones((1_000_000, 16), cupy.float32)], lr=1e-3)
    dense_ms = timed(lambda: dense.step([dense_grad]))
    return ["| SparseAdam, 1% of the rows of 1e6 x 16 | dense Adam step | sparse / dense |", "|---|---|---:|",
            f"| {ms:.3f} ms | {dense_ms:.3f} ms | {ms / dense_ms:.2f} |"]


def main(out):
    rng = cupy.random.default_rng(0)
    grad = rng.standard_normal(N, dtype=np.float32)
    lines = elementwise_families(grad) + [""]
    del grad
    free()
    lines += adafactor(rng) + [""] + sparse_adam()
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "families.md"), "w") as file:
        file.write(text)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu-results")
