"""How many elements a GPU thread takes at once, whether as vector accesses, and the register cap:
every configuration timed.

    python3 tools/gpu_launch.py [RESULTS_DIR]      (from the repository root; writes launch.md)
    python3 tools/gpu_launch.py --pick LAUNCH_MD   (prints the winner's settings as shell exports)

The settings are read when numadam is imported (``NUMADAM_CUDA_ELEMENTS_PER_THREAD`` and
``NUMADAM_CUDA_VECTOR_LOADS``, see ``numadam/targets/body.py``; ``NUMADAM_CUDA_MAX_REGISTERS``, see
``numadam/targets/cuda/kernels.py``), so each configuration runs in a process of its own
(``--one``). Each process times, at 1e8 float32 elements, the object steps of every elementwise family
against the same-traffic CuPy kernel (``p += g`` and ``s += g`` per state array), and Adam
beside ``torch.optim.Adam(fused=True)`` where torch has CUDA: CUDA-event time per step over
20 queued steps, the median of 5 such runs. The table has one row per configuration and family.
"""

import os
import statistics
import subprocess
import sys

N = 100_000_000
#: ``(elements per thread, vector accesses, register cap)``: today's kernel first (cap 0: none). With
#: vector accesses a thread takes four neighbours at once, whatever the elements per thread. The
#: 2026-11-28 H200 run (docs/bench/cuda-h200-2026-11-28-launch.txt) chose vector accesses at a cap of
#: 96; these settle the cap (RAdam and Yogi ran faster at 64 there).
CONFIGURATIONS = ((1, 1, 96), (1, 1, 80), (1, 1, 64), (1, 1, 0))
#: ``(family, options)`` timed in each configuration: every elementwise family (LAMB, Prodigy and
#: Adafactor make two passes; SparseAdam is Adam's kernel). Each one's state arrays are counted after
#: its first step, for its same-traffic kernel.
FAMILIES = (("adam", {}), ("adamw", {"weight_decay": 0.01}), ("adam", {"amsgrad": True}),
            ("sgd", {"momentum": 0.9}), ("lion", {}), ("rmsprop", {}), ("nadam", {}), ("radam", {}),
            ("yogi", {}), ("schedule_free_adamw", {}), ("adabelief", {}), ("adamax", {}), ("ademamix", {}),
            ("adopt", {}), ("adagrad", {}), ("adadelta", {}), ("rprop", {}), ("asgd", {}))


def one():
    """The rows of this process's configuration (its environment's)."""
    import cupy
    import numpy as np

    import numadam
    from numadam.bench.cuda_contenders import elementwise_traffic_kernel
    from numadam.bench.cuda_timing import CudaClock

    def timed(step, reps=20, runs=5):
        clock, found = CudaClock(), []
        step()
        clock.synchronize()
        for _ in range(runs):
            clock.start()
            for _ in range(reps):
                step()
            found.append(clock.stop() / reps * 1e3)
        return statistics.median(found)

    per_thread = os.environ.get("NUMADAM_CUDA_ELEMENTS_PER_THREAD", "1")
    vector = os.environ.get("NUMADAM_CUDA_VECTOR_LOADS", "0")
    cap = os.environ.get("NUMADAM_CUDA_MAX_REGISTERS", "64")
    grad = cupy.random.default_rng(0).standard_normal(N, dtype=np.float32)
    rows = []
    for name, options in FAMILIES:
        param = cupy.ones(N, cupy.float32)
        optimizer = numadam.families()[name](param, lr=1e-3, **options)
        ms = timed(lambda: optimizer.step(grad))
        n_states = sum(1 for value in optimizer.state_dict().values() if getattr(value, "size", 0) == N)
        states, copy = [cupy.zeros(N, cupy.float32) for _ in range(n_states)], cupy.ones(N, cupy.float32)
        kernel = elementwise_traffic_kernel(n_states)
        reference = timed(lambda: kernel(grad, copy, *states))
        torch_ms = ""
        if name == "adam" and not options:
            try:
                import torch

                tensor = torch.from_dlpack(param.copy())
                tensor.grad = torch.from_dlpack(grad)
                torch_ms = f"{timed(torch.optim.Adam([tensor], lr=1e-3, fused=True).step):.3f}"
            except Exception as error:  # no torch, or none with CUDA
                torch_ms = f"({type(error).__name__})"
        gigabytes = 4 * N * (3 + 2 * n_states) / 1e9
        label = name + "".join(f", {k}={v}" for k, v in options.items())
        rows.append(f"| {per_thread} | {vector} | {cap} | {label} | {ms:.3f} | {gigabytes / ms * 1e3:.0f} | {reference:.3f} "
                    f"| {ms / reference:.3f} | {torch_ms} |")
        del optimizer, param, states, copy
        cupy.get_default_memory_pool().free_all_blocks()
    print("\n".join(rows), flush=True)


def main(out):
    lines = ["| elements a thread | vector accesses | register cap | step | ms | GB/s | same-traffic ms "
             "| × same-traffic | torch fused ms |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for per_thread, vector, cap in CONFIGURATIONS:
        environment = {**os.environ, "NUMADAM_CUDA_ELEMENTS_PER_THREAD": str(per_thread),
                       "NUMADAM_CUDA_VECTOR_LOADS": str(vector), "NUMADAM_CUDA_MAX_REGISTERS": str(cap)}
        done = subprocess.run([sys.executable, __file__, "--one"], env=environment, capture_output=True, text=True)
        found = [line for line in done.stdout.splitlines() if line.startswith("|")]
        lines += found or [f"| {per_thread} | {vector} | {cap} | failed: {done.stderr.strip().splitlines()[-1:]} |"]
        print("\n".join(lines[-len(found or [0]):]), flush=True)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "launch.md"), "w") as file:  # after each configuration: a cut run keeps its rows
            file.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def pick(path):
    """The configuration of ``path`` (a launch.md) whose geometric mean of × same-traffic over the
    families it timed is least, among those that timed every family; as shell exports."""
    ratios = {}
    for line in open(path):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0].isdigit():
            ratios.setdefault(tuple(cells[:3]), []).append(float(cells[7]))
    complete = {key: values for key, values in ratios.items() if len(values) == len(FAMILIES)}
    if not complete:
        raise SystemExit(f"gpu_launch: no configuration in {path} timed every family")
    mean = lambda values: statistics.geometric_mean(values)  # noqa: E731
    best = min(complete, key=lambda key: mean(complete[key]))
    for key, values in sorted(complete.items(), key=lambda item: mean(item[1])):
        print(f"# {key}: geometric mean {mean(values):.3f}, worst {max(values):.3f}", file=sys.stderr)
    print(f"export NUMADAM_CUDA_ELEMENTS_PER_THREAD={best[0]} NUMADAM_CUDA_VECTOR_LOADS={best[1]} "
          f"NUMADAM_CUDA_MAX_REGISTERS={best[2]}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--one"]:
        one()
    elif sys.argv[1:2] == ["--pick"]:
        pick(sys.argv[2])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "gpu-results")
