"""What one call costs at 1e3 float32, interleaved medians in one process, for any numadam version.

NumPy's in-place Adam step, numadam's object and functional Adam steps (the
object's with the same gradient arrays every step, and with new ones, for one
array and for ten; Adafactor's of a 40 x 25 matrix, both ways), SparseAdam's
step of a minibatch's 64 rows of an embedding table (new arrays every step),
every family's object step, ``clip_global_norm`` with ``nonfinite="skip"``
(both ways), and torch tensors, with the same ``.grad`` and with a new one each
step, beside torch's fused Adam (if torch is installed). It uses only what every version since
the family engine has, so the same script times an old checkout::

    python asv_benchmarks/per_call.py [rounds]
    PYTHONPATH=/path/to/old/checkout python asv_benchmarks/per_call.py [rounds]

``numadam bench --cases small`` times the same rows with the rest of the bench.
"""

import sys

import numpy as np

import numadam
from numadam.bench.numpy_adam import InPlaceAdam
from numadam.bench.timing import interleaved_medians

SIZE, LR = 1_000, 1e-3


class Call:
    def __init__(self, label, step):
        self.label, self.step = label, step


def _new_gradients(label, start, grads, family=numadam.Adam, **options):
    """``family``'s step (with ``options``) of parameters like ``start`` (one array, or a list) with
    other gradient arrays at every step: a round of 64 sets of arrays of ``grads``' values, each a
    new object to the step."""
    single = isinstance(start, np.ndarray)
    optimizer = family(start.copy() if single else [array.copy() for array in start], lr=LR, **options)
    rounds = [[grad.copy() for grad in grads] for _ in range(64)]
    turn = [0]

    def step():
        turn[0] += 1
        arrays = rounds[turn[0] & 63]
        optimizer.step(arrays[0] if single else list(arrays))

    return Call(label, step)


def calls():
    rng = np.random.default_rng(0)
    start = rng.standard_normal(SIZE).astype(np.float32)
    grad = rng.standard_normal(SIZE).astype(np.float32)
    found = []
    numpy_adam, grads = InPlaceAdam([start.copy()], LR, (0.9, 0.999), 1e-8), [grad]
    found.append(Call("NumPy in place", lambda: numpy_adam.step(grads)))
    adam = numadam.Adam(start.copy(), lr=LR)
    found.append(Call("Adam.step", lambda: adam.step(grad)))
    found.append(_new_gradients("Adam.step, a new gradient array each step", start, [grad]))
    tenth = [rng.standard_normal(SIZE // 10).astype(np.float32) for _ in range(10)]
    ten = numadam.Adam([t.copy() for t in tenth], lr=LR)
    ten_grads = [rng.standard_normal(SIZE // 10).astype(np.float32) for _ in range(10)]
    found.append(Call("Adam.step, 10 arrays, the same ones", lambda: ten.step(ten_grads)))
    found.append(_new_gradients("Adam.step, 10 arrays, new ones each step", tenth, ten_grads))
    matrix, matrix_grad = start.reshape(40, 25), grad.reshape(40, 25)
    adafactor = numadam.Adafactor(matrix.copy(), lr=LR)
    found.append(Call("Adafactor.step, 40 x 25, the same array", lambda: adafactor.step(matrix_grad)))
    found.append(_new_gradients("Adafactor.step, 40 x 25, a new gradient array each step", matrix, [matrix_grad],
                                numadam.Adafactor))
    param, exp_avg, exp_avg_sq, count = start.copy(), np.zeros(SIZE, np.float32), np.zeros(SIZE, np.float32), [0]

    def functional():
        count[0] += 1
        numadam.adam_step(param, grad, exp_avg, exp_avg_sq, step=count[0], lr=LR)

    found.append(Call("adam_step", functional))
    if hasattr(numadam, "Rows"):  # a minibatch's rows of an embedding table, as asv's calls.MinibatchRows
        table = rng.standard_normal((200_000, 32)).astype(np.float32)
        sparse = numadam.SparseAdam(table, lr=LR)
        batches = [numadam.Rows(rng.integers(0, 200_000, 64), rng.standard_normal((64, 32)).astype(np.float32))
                   for _ in range(64)]
        turn = [0]

        def minibatch():
            turn[0] += 1
            sparse.step(batches[turn[0] & 63])

        found.append(Call("SparseAdam.step, 64 random rows of 200000 x 32", minibatch))
    reduced = numadam.Adam(start.copy(), lr=LR, clip_global_norm=1e30, nonfinite="skip")
    found.append(Call("clip_global_norm + skip", lambda: reduced.step(grad)))
    found.append(_new_gradients("clip_global_norm + skip, a new gradient array each step", start, [grad],
                                clip_global_norm=1e30, nonfinite="skip"))
    for name, cls in numadam.families().items():
        if name not in ("adam", "adamw"):
            optimizer = cls(start.copy(), lr=LR)
            found.append(Call(cls.__name__, lambda optimizer=optimizer: optimizer.step(grad)))
    try:
        import torch
    except ImportError:
        return found
    tensor = torch.from_numpy(start.copy()).requires_grad_()
    tensor.grad = torch.from_numpy(grad.copy())
    on_tensors = numadam.Adam([tensor], lr=LR)
    found.append(Call("torch tensors", on_tensors.step))
    fresh = torch.from_numpy(start.copy()).requires_grad_()
    new_grads, turn = [torch.from_numpy(grad.copy()) for _ in range(64)], [0]
    on_fresh = numadam.Adam([fresh], lr=LR)

    def new_grad():  # (zero_grad(), then backward(): a new .grad tensor every step)
        turn[0] += 1
        fresh.grad = new_grads[turn[0] & 63]
        on_fresh.step()

    found.append(Call("torch tensors, a new .grad each step", new_grad))
    theirs = torch.from_numpy(start.copy()).requires_grad_()
    fused = torch.optim.Adam([theirs], lr=LR, fused=True)

    def torch_fused():
        turn[0] += 1
        theirs.grad = new_grads[turn[0] & 63]
        fused.step()

    found.append(Call("torch.optim.Adam(fused=True), a new .grad each step", torch_fused))
    return found


def warmed_medians(found, rounds):
    """Each call's median seconds over ``rounds`` interleaved rounds, after 200 calls of each (its
    kernels compiled, its plans made)."""
    for call in found:
        for _ in range(200):
            call.step()
    return interleaved_medians(found, rounds, 0.02)


def main(rounds=30):
    found = calls()
    medians = warmed_medians(found, rounds)
    print_table(found, medians, {"x NumPy": medians[0], "x Adam.step": medians[1]})


def print_table(found, medians, bases=None):
    """Each call's median in µs, and over each of ``bases`` (``{column: seconds}``)."""
    bases = bases or {}
    width = max(len(call.label) for call in found)
    print(f"{'call':{width}s} {'us':>8s}" + "".join(f" {name:>{max(8, len(name))}s}" for name in bases))
    for call, seconds in zip(found, medians):
        print(f"{call.label:{width}s} {seconds * 1e6:8.2f}"
              + "".join(f" {seconds / base:{max(8, len(name))}.2f}" for name, base in bases.items()))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
