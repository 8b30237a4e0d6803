"""Muon on a GPU, beyond its tests: how far CuPy and CUDA tensors land from the references, what
TF32 tensor cores give the bfloat16 iteration, and where a step's time goes.

    python tools/gpu_muon.py            (on a machine with a GPU, from the repository root)
    python tools/gpu_muon.py --dry      (NumPy in place of CuPy: checks this script on any machine)

Prints markdown: accuracy (the largest element difference over the largest movement after 20
steps), the iteration's time with and without tensor cores, and a step cut into its passes.
"""

import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import numadam  # noqa: E402
from numadam.muon import newton_schulz  # noqa: E402
from reference_muon import muon_step  # noqa: E402

DRY = "--dry" in sys.argv


def _library():
    if DRY:
        return np, np.asarray, np.asarray, lambda: None
    import cupy

    return cupy, cupy.asarray, cupy.asnumpy, cupy.cuda.Device().synchronize


xp, to_device, to_host, synchronize = _library()


def _worst(result, expected, start):
    return float(np.abs(result - expected).max() / np.abs(expected - start).max())


def accuracy(ns_dtype, steps=20):
    """Worst difference over movement: device against the reference, host against it, device against host."""
    rng = np.random.default_rng(10)
    shapes = [(24, 8), (8, 40), (64, 256), (6, 2, 3, 3)]
    starts = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    reference, buffers = [s.copy() for s in starts], [np.zeros_like(s) for s in starts]
    host, device = [s.copy() for s in starts], [to_device(s.copy()) for s in starts]
    on_host, on_device = numadam.Muon(host, ns_dtype=ns_dtype), numadam.Muon(device, ns_dtype=ns_dtype)
    for _ in range(steps):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        on_host.step(grads)
        on_device.step([to_device(g) for g in grads])
        for p, g, b in zip(reference, grads, buffers):
            muon_step(p, g, b, ns_dtype=ns_dtype)
    rows = []
    for shape, s, r, h, d in zip(shapes, starts, reference, host, device):
        d = to_host(d)
        rows.append(f"| {ns_dtype} | {shape} | {_worst(d, r, s):.3g} | {_worst(h, r, s):.3g} | {_worst(d, h, s):.3g} |")
    return rows


def torch_parity(steps=30):
    """numadam.Muon on CUDA tensors against torch.optim.Muon (bfloat16, torch's defaults)."""
    try:
        import torch
    except ImportError:
        return ["torch is not installed"]
    if DRY or not torch.cuda.is_available():
        return ["no CUDA tensors here"]
    rng = np.random.default_rng(14)
    rows = []
    for shape in [(256, 96), (96, 256), (128, 128)]:
        start = rng.standard_normal(shape).astype(np.float32)
        ours = torch.tensor(start, device="cuda")
        theirs = torch.nn.Parameter(torch.tensor(start, device="cuda"))
        opt, reference = numadam.Muon([ours]), torch.optim.Muon([theirs])
        for _ in range(steps):
            g = torch.tensor(rng.standard_normal(shape).astype(np.float32), device="cuda")
            opt.step([g.clone()])
            theirs.grad = g.clone()
            reference.step()
        rows.append(f"| {shape} | {_worst(ours.cpu().numpy(), theirs.detach().cpu().numpy(), start):.3g} |")
    return rows


def product_errors():
    """The largest error of float32 products against float64 ones, over the sum of |terms|."""
    rng = np.random.default_rng(17)
    first = rng.standard_normal((8, 256, 512)).astype(np.float32)
    second = rng.standard_normal((8, 512, 256)).astype(np.float32)
    exact = first.astype(np.float64) @ second.astype(np.float64)
    scale = np.abs(first).astype(np.float64) @ np.abs(second).astype(np.float64)
    on_device = to_device(first), to_device(second)
    out = xp.empty((8, 256, 256), dtype=np.float32)
    runs = {"matmul, float32": lambda: xp.matmul(*on_device, out=out)}
    if not DRY and newton_schulz._has_tf32_tensor_cores():
        runs["TF32 tensor cores (float32 values)"] = lambda: newton_schulz._tf32_products(*on_device, out, False)
    rows = []
    for name, run in runs.items():
        run()
        rows.append(f"| {name} | {float((np.abs(to_host(out) - exact) / scale).max()):.3g} |")
    return rows


def pass_differences():
    """The elementwise passes on the device against the host's: elements that differ, and by how many ulps."""
    from numadam.muon.elementwise import apply_step, momentum_step

    rng = np.random.default_rng(18)
    shape = (256, 256)
    update, grad, buffer, param, orthogonal = (rng.standard_normal(shape).astype(np.float32) for _ in range(5))
    host = {"update": update.copy(), "buffer": buffer.copy(), "param": param.copy()}
    device = {name: to_device(value) for name, value in host.items()}
    for arrays, g, o in ((host, grad, orthogonal), (device, to_device(grad), to_device(orthogonal))):
        momentum_step(arrays["update"], g, arrays["buffer"], step=3, momentum=0.95, nesterov=True)
        apply_step(arrays["param"], o, step=3, lr=1e-3, weight_decay=0.1, ratio=1.0)
    rows = []
    for name in host:
        ulps = np.abs(to_host(device[name]).view(np.int32).astype(np.int64) - host[name].view(np.int32))
        rows.append(f"| {name} | {int((ulps > 0).sum())} of {ulps.size} | {int(ulps.max())} |")
    return rows


def _median_ms(run, rounds=9):
    run()
    synchronize()
    times = []
    for _ in range(rounds):
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def iteration_times():
    """The bfloat16 iteration with TF32 tensor cores and with cuBLAS's float32 products."""
    rows = []
    coefficients = numadam.muon.optimizer.NS_COEFFICIENTS
    rng = np.random.default_rng(15)
    for count, m, n in [(1, 1024, 4096), (64, 256, 256)]:
        stack = to_device(rng.standard_normal((count, m, n)).astype(np.float32))
        work = newton_schulz.Workspace(stack)
        found = work.tensor_cores
        times = {}
        for cores in ([True, False] if found else [False]):
            work.tensor_cores = cores
            times[cores] = _median_ms(
                lambda: newton_schulz.orthogonalized(stack, coefficients, 5, 1e-7, "bfloat16", work))
        work.tensor_cores = False
        without = to_host(newton_schulz.orthogonalized(stack, coefficients, 5, 1e-7, "bfloat16", work)).copy()
        differs = float("nan")
        if found:
            work.tensor_cores = True
            with_cores = to_host(newton_schulz.orthogonalized(stack, coefficients, 5, 1e-7, "bfloat16", work))
            differs = float(np.abs(with_cores - without).max() / np.abs(without).max())
        rows.append(f"| {count} x {m} x {n} | {times.get(True, float('nan')):.2f} | {times[False]:.2f} | "
                    f"{differs:.3g} |")
    return rows


def step_parts(count=64, m=256, n=256):
    """One step of ``count`` matrices cut into its passes (host time with a synchronization after each)."""
    rng = np.random.default_rng(16)
    params = [to_device(rng.standard_normal((m, n)).astype(np.float32)) for _ in range(count)]
    grads = [to_device(rng.standard_normal((m, n)).astype(np.float32)) for _ in range(count)]
    opt = numadam.Muon(params)
    opt.step([g.copy() for g in grads])
    stack = opt._stacks[0]
    h = opt._hyper
    coefficients = h["ns_coefficients"]
    orthogonal = newton_schulz.orthogonalized(stack.updates, coefficients, 5, 1e-7, "bfloat16", stack.workspace)
    parts = {
        "whole step (new gradient arrays)": lambda: opt.step([g.copy() for g in grads]),
        "the gradients' copies alone": lambda: [g.copy() for g in grads],
        "momentum pass (gather + one launch)": lambda: stack.moved(grads, 2, 0.95, True),
        "Newton-Schulz iteration": lambda: newton_schulz.orthogonalized(
            stack.updates, coefficients, 5, 1e-7, "bfloat16", stack.workspace),
        "decay-and-update pass (one launch)": lambda: stack.applied(orthogonal, 1e-3, 0.1, 1.0),
    }
    return [f"| {name} | {_median_ms(run):.3f} |" for name, run in parts.items()]


def _section(title, header, rows):
    """Print one table; a section that fails prints its error and lets the others run."""
    print(f"\n## {title}\n\n{header}")
    try:
        print("\n".join(rows()))
    except Exception:  # a report of what failed, so that the rest still runs on the lent GPU
        traceback.print_exc(file=sys.stdout)
    sys.stdout.flush()


def main():
    _section("Accuracy after 20 steps (largest difference / largest movement)",
             "| ns_dtype | shape | device vs reference | host vs reference | device vs host |\n|---|---|---|---|---|",
             lambda: accuracy("float32") + accuracy("bfloat16"))
    _section("float32 products: largest error over the sum of |terms| (8 x 256 x 512 by 512 x 256)",
             "| products | error |\n|---|---|", product_errors)
    _section("The elementwise passes, device against host (one step, 256 x 256)",
             "| array | elements that differ | largest difference in ulps |\n|---|---|---|", pass_differences)
    _section("numadam.Muon on CUDA tensors against torch.optim.Muon, 30 steps",
             "| shape | worst / movement |\n|---|---|", torch_parity)
    _section("The bfloat16 iteration (5 steps), median of 9, ms",
             "| stack | TF32 tensor cores | float32 products | largest difference / largest value |\n|---|---|---|---|",
             iteration_times)
    _section("A step of 64 matrices of 256 x 256, its parts, median of 9, ms", "| part | ms |\n|---|---|",
             step_parts)


if __name__ == "__main__":
    main()
