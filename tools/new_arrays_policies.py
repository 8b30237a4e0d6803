"""What a new gradient array costs a step with a policy, at 1e3 float32: each option's step with the
same gradient array every step and with a new one (a round of 64, each a new object to the step),
interleaved medians in one process. Runs against any numadam checkout since the policies::

    python tools/new_arrays_policies.py [rounds]
    PYTHONPATH=/path/to/old/checkout python tools/new_arrays_policies.py [rounds]
"""

import sys

import numpy as np

import numadam
from numadam.bench.timing import interleaved_medians

SIZE, LR = 1_000, 1e-3

#: (label, family, options) of each step timed.
STEPS = [("Adam", numadam.Adam, {}),
         ("Adam, clip_global_norm", numadam.Adam, {"clip_global_norm": 1.0}),
         ("Adam, nonfinite='skip'", numadam.Adam, {"nonfinite": "skip"}),
         ("Adam, clip_value", numadam.Adam, {"clip_value": 1.0}),
         ("Adam, accumulate=4", numadam.Adam, {"accumulate": 4}),
         ("Adam, state_dtype='bfloat16'", numadam.Adam, {"state_dtype": "bfloat16"}),
         ("LAMB", numadam.LAMB, {}),
         ("LAMB, clip_global_norm", numadam.LAMB, {"clip_global_norm": 1.0})]


class Call:
    def __init__(self, label, step):
        self.label, self.step = label, step


def _calls(label, family, options, rng):
    """The step with the same gradient array, then with new ones."""
    found = []
    for new in (False, True):
        optimizer = family(rng.standard_normal(SIZE).astype(np.float32), lr=LR, **options)
        grads = [rng.standard_normal(SIZE).astype(np.float32) for _ in range(64 if new else 1)]
        turn = [0]

        def step(optimizer=optimizer, grads=grads, turn=turn):
            turn[0] += 1
            optimizer.step(grads[turn[0] % len(grads)])

        found.append(Call(f"{label}, {'a new array each step' if new else 'the same array'}", step))
    return found


def main(rounds=20):
    rng = np.random.default_rng(0)
    found = [call for label, family, options in STEPS for call in _calls(label, family, options, rng)]
    for call in found:
        for _ in range(200):  # compiled, and the plans made
            call.step()
    medians = interleaved_medians(found, rounds, 0.02)
    width = max(len(call.label) for call in found)
    print(f"{'call':{width}s} {'us':>8s}")
    for call, seconds in zip(found, medians):
        print(f"{call.label:{width}s} {seconds * 1e6:8.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
