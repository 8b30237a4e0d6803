"""What a new gradient array costs a step, at about 1e3 float32, off the common path: each step
with the same gradients every step and with new ones (a round of 64, each a new object to the
step), interleaved medians in one process: steps with a policy, LAMB, parameters in a dict and
in groups, and steps with a schedule. Runs against any numadam checkout since the policies and groups::

    python tools/new_arrays.py [rounds]
    PYTHONPATH=/path/to/old/checkout python tools/new_arrays.py [rounds]

``asv_benchmarks/per_call.py`` times the common path, Adafactor and torch tensors the same way.
"""

import sys
from pathlib import Path

import numpy as np

import numadam

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "asv_benchmarks"))
from per_call import Call, print_table, warmed_medians  # noqa: E402  (the same calls and timing as the per-call table)

SIZE, LR = 1_000, 1e-3


def _vector(rng):
    return rng.standard_normal(SIZE).astype(np.float32)


def _pair(rng):
    return [rng.standard_normal((30, 30)).astype(np.float32), rng.standard_normal(100).astype(np.float32)]


#: (label, parameters, gradients like them, optimizer of the parameters) of each step timed.
STEPS = [("Adam", _vector, _vector, lambda p: numadam.Adam(p, lr=LR))]
STEPS += [(f"Adam, {label}", _vector, _vector, lambda p, options=options: numadam.Adam(p, lr=LR, **options))
          for label, options in [("clip_global_norm", {"clip_global_norm": 1.0}),
                                 ("nonfinite='skip'", {"nonfinite": "skip"}),
                                 ("clip_value", {"clip_value": 1.0}), ("accumulate=4", {"accumulate": 4}),
                                 ("state_dtype='bfloat16'", {"state_dtype": "bfloat16"})]]
STEPS += [("LAMB", _vector, _vector, lambda p: numadam.LAMB(p, lr=LR)),
          ("LAMB, clip_global_norm", _vector, _vector, lambda p: numadam.LAMB(p, lr=LR, clip_global_norm=1.0)),
          ("Adam, a list of two", _pair, _pair, lambda p: numadam.Adam(p, lr=LR)),
          ("Adam, a dict of two", lambda rng: dict(zip("wb", _pair(rng))), lambda rng: dict(zip("wb", _pair(rng))),
           lambda p: numadam.Adam(p, lr=LR)),
          ("Adam, two groups", _pair, lambda rng: [[array] for array in _pair(rng)],
           lambda p: numadam.Adam([numadam.Group(p[:1], lr=LR), numadam.Group(p[1:], weight_decay=0.1)], lr=LR))]


def _scheduled(family):
    """``family``'s optimizer with a cosine schedule (``lr`` set before every step)."""
    def make(param):
        optimizer = family(param, lr=LR)
        optimizer.schedule = numadam.schedules.CosineDecay(LR, total_steps=10**7)
        return optimizer

    return make


def _matrix(rng):
    return rng.standard_normal((40, 25)).astype(np.float32)


STEPS += [("Adam, a cosine schedule", _vector, _vector, _scheduled(numadam.Adam)),
          ("LAMB, a cosine schedule", _vector, _vector, _scheduled(numadam.LAMB)),
          ("Adafactor 40 x 25, a cosine schedule", _matrix, _matrix, _scheduled(numadam.Adafactor))]


def _calls(label, params, grads, make, rng):
    """The step with the same gradients, then with new ones."""
    found = []
    for new in (False, True):
        optimizer = make(params(rng))
        rounds = [grads(rng) for _ in range(64 if new else 1)]
        turn = [0]

        def step(optimizer=optimizer, rounds=rounds, turn=turn):
            turn[0] += 1
            optimizer.step(rounds[turn[0] % len(rounds)])

        found.append(Call(f"{label}, {'new arrays each step' if new else 'the same arrays'}", step))
    return found


def main(rounds=20):
    rng = np.random.default_rng(0)
    found = [call for step in STEPS for call in _calls(*step, rng)]
    print_table(found, warmed_medians(found, rounds))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
