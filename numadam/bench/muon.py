r"""``numadam bench --suite muon``: one Muon step, beside its own Newton–Schulz iteration and torch's.

Two cases, float32, ``ns_dtype="bfloat16"`` (torch's), each timed in one
interleaved run (:func:`~numadam.bench.timing.interleaved_medians`), with new
gradient arrays of the same values each step:

- **one 1024 x 4096 matrix**: where the products take nearly all the time, so
  the elementwise passes (momentum, decay and update) should cost nearly
  nothing over the iteration alone;
- **64 matrices of 256 x 256**: where numadam stacks them into one batched
  iteration and ``torch.optim.Muon`` steps one matrix at a time.

The contenders: ``numadam.Muon`` on NumPy arrays; the iteration alone
(:func:`numadam.muon.newton_schulz.orthogonalized` on the same stack, with the
same rounding and its arrays kept, as the step keeps them): the floor of the
NumPy step; and, where torch is installed, ``numadam.Muon`` on CPU torch
tensors and ``torch.optim.Muon``. With ``--device cuda`` the same on the GPU:
CuPy arrays for NumPy's, CUDA tensors for torch's, each step synchronized
before its time is read.
"""

import sys

import numpy as np

from .timing import interleaved_medians

#: (label, matrices, rows, columns) of the cases; ``--quick`` takes the small ones.
CASES = (("one 1024 x 4096 matrix", 1, 1024, 4096), ("64 matrices of 256 x 256", 64, 256, 256))
QUICK_CASES = (("one 128 x 512 matrix", 1, 128, 512), ("8 matrices of 64 x 64", 8, 64, 64))
#: The step over the iteration alone, at most (one large matrix); over torch's loop, at most (many).
TARGETS = {"step × iteration alone": 1.10, "step × torch's loop": 1.0}


class _Contender:
    def __init__(self, label, step):
        self.label, self.step = label, step


def _libraries(device):
    """``(xp, to_array, synchronize, torch_device)`` of ``device`` ("cpu" or "cuda")."""
    if device == "cpu":
        return np, (lambda a: a), (lambda: None), "cpu"
    import cupy

    def synchronize():
        cupy.cuda.Device().synchronize()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.synchronize()

    return cupy, cupy.asarray, synchronize, "cuda"


def contenders(count, rows, columns, seed=0, device="cpu"):
    """The contenders of one case (those torch needs only where it is installed), on ``device``."""
    import numadam
    from numadam.muon import newton_schulz

    xp, to_array, synchronize, torch_device = _libraries(device)
    kind = "NumPy" if device == "cpu" else "CuPy"
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal((rows, columns)).astype(np.float32) for _ in range(count)]
    grads = [to_array(rng.standard_normal((rows, columns)).astype(np.float32)) for _ in range(count)]
    params = [to_array(start.copy()) for start in starts]
    muon = numadam.Muon(params)
    stack = xp.stack(grads)
    workspace = newton_schulz.Workspace(stack)
    coefficients = numadam.muon.optimizer.NS_COEFFICIENTS

    def timed(step):
        def run():
            step()
            synchronize()
        return run

    found = [
        _Contender(f"numadam.Muon, {kind}", timed(lambda: muon.step([g.copy() for g in grads]))),
        _Contender(f"the iteration alone, {kind}", timed(
            lambda: newton_schulz.orthogonalized(stack, coefficients, 5, 1e-7, "bfloat16", workspace))),
    ]
    try:
        import torch
    except ImportError:
        return found, "torch is not installed: numadam on torch tensors and torch.optim.Muon not timed"
    tensors = [torch.from_numpy(start.copy()).to(torch_device) for start in starts]
    on_tensors = numadam.Muon(tensors)
    torch_grads = [torch.as_tensor(np.asarray(g if device == "cpu" else g.get()), device=torch_device)
                   for g in grads]
    theirs = [torch.nn.Parameter(torch.from_numpy(start.copy()).to(torch_device)) for start in starts]
    torch_muon = torch.optim.Muon(theirs)

    def torch_step():
        for p, g in zip(theirs, torch_grads):
            p.grad = g.clone()
        torch_muon.step()

    where = "torch tensors" if device == "cpu" else "CUDA tensors"
    found += [_Contender(f"numadam.Muon, {where}", timed(lambda: on_tensors.step([g.clone() for g in torch_grads]))),
              _Contender("torch.optim.Muon (one matrix at a time)", timed(torch_step))]
    return found, ""


def run(rounds=7, quick=False, progress=print, device="cpu"):
    """``[(case label, [(contender label, seconds)], note)]`` for each case, on ``device``."""
    results = []
    for label, count, rows, columns in QUICK_CASES if quick else CASES:
        found, note = contenders(count, rows, columns, device=device)
        for contender in found:
            contender.step()  # compiled and warm
        progress(f"{label}: timing {len(found)} contenders, {rounds} interleaved rounds")
        medians = interleaved_medians(found, rounds, 0.0)
        results.append((label, [(c.label, seconds) for c, seconds in zip(found, medians)], note))
    return results


def markdown(results):
    """The tables of :func:`run`, each time over the iteration alone and over torch's loop; the targets."""
    lines = []
    for case, rows, note in results:
        seconds = dict(rows)
        kind = "NumPy" if "numadam.Muon, NumPy" in seconds else "CuPy"
        alone = seconds[f"the iteration alone, {kind}"]
        torch_loop = seconds.get("torch.optim.Muon (one matrix at a time)")
        lines += [f"### {case}, float32, ns_dtype bfloat16", "",
                  "| contender | time per step | × the iteration alone | × torch.optim.Muon |", "|---|---|---|---|"]
        lines += [f"| {label} | {value * 1e3:.2f} ms | {value / alone:.2f} | "
                  f"{'' if torch_loop is None else f'{value / torch_loop:.2f}'} |" for label, value in rows]
        ratio = seconds[f"numadam.Muon, {kind}"] / alone
        lines += ["", f"numadam.Muon on {kind} over the iteration alone: {ratio:.2f} (target ≤ "
                      f"{TARGETS['step × iteration alone']:g} for one large matrix)."]
        if torch_loop is not None:
            for label in [name for name in seconds if name.startswith("numadam.Muon")]:
                lines.append(f"{label} over torch.optim.Muon: {seconds[label] / torch_loop:.2f}.")
        if note:
            lines.append(note + ".")
        lines.append("")
    return "\n".join(lines)
