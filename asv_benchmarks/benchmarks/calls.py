"""What one call costs: a step of 1e3 float32, where the fixed cost of a call is the whole cost.

Beside numadam's steps, NumPy's in-place Adam step (the same arithmetic in a
dozen ufunc calls) is timed too: what a call of numadam's costs is read as a
fraction of it (``numadam bench --cases small`` times the same rows
interleaved, in one run).
"""

import numpy as np

import numadam

from .common import LR

SIZE = 1_000


def _step_of(call, param, grad):
    """The step function of ``call``: a family's object step, the functional step, a policy step or NumPy's."""
    if call == "numpy in place":
        from numadam.bench.numpy_adam import InPlaceAdam

        optimizer, grads = InPlaceAdam([param], LR, (0.9, 0.999), 1e-8), [grad]
        return lambda: optimizer.step(grads)
    if call in ("adam_step", "lamb_step"):  # the functional steps of two moments
        step_function, step = getattr(numadam, call), [0]
        exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)

        def functional():
            step[0] += 1
            step_function(param, grad, exp_avg, exp_avg_sq, step=step[0], lr=LR)

        return functional
    if call == "adafactor_step 40 x 25":
        matrix, matrix_grad = param.reshape(40, 25), grad.reshape(40, 25)
        row_var, col_var, step = np.zeros((40, 1), np.float32), np.zeros((1, 25), np.float32), [0]

        def functional_adafactor():
            step[0] += 1
            numadam.adafactor_step(matrix, matrix_grad, row_var, col_var, step=step[0], lr=LR)

        return functional_adafactor
    if call == "adam, clip_global_norm + nonfinite='skip'":
        optimizer = numadam.Adam(param, lr=LR, clip_global_norm=1e30, nonfinite="skip")
    else:
        optimizer = numadam.families()[call](param, lr=LR)
    return lambda: optimizer.step(grad)


class CallCost:
    """One step of one float32 array of 1e3 elements."""

    params = (["numpy in place", "adam_step", "lamb_step", "adafactor_step 40 x 25",
               "adam, clip_global_norm + nonfinite='skip'"]
              + list(numadam.families()),)
    param_names = ("call",)
    timeout = 300

    def setup(self, call):
        rng = np.random.default_rng(7)
        param, grad = (rng.standard_normal(SIZE).astype(np.float32) for _ in range(2))
        self.step = _step_of(call, param, grad)
        for _ in range(10):  # compiles the kernels, and the same gradient's plan is made
            self.step()

    def time_step(self, call):
        self.step()


class NewGradientArrays:
    """Adam's step of 1e3 float32 in one array or ten (and of one with ``clip_global_norm`` and
    ``nonfinite="skip"``), and Adafactor's of one 40 x 25 matrix, with the same gradient arrays
    every step or other ones (a round of 64 sets, each a new object to the step): users compute
    new arrays."""

    params = (["one array", "ten arrays", "clip_global_norm + skip, one array", "Adafactor, one 40 x 25 matrix"],
              ["the same arrays", "new arrays"])
    param_names = ("parameters", "gradients")
    timeout = 300

    def setup(self, parameters, gradients):
        rng = np.random.default_rng(7)
        count = 10 if parameters == "ten arrays" else 1
        shape = (40, 25) if parameters.startswith("Adafactor") else (SIZE // count,)
        params = [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
        sets = [[rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
                for _ in range(64 if gradients == "new arrays" else 1)]
        family = numadam.Adafactor if parameters.startswith("Adafactor") else numadam.Adam
        options = dict(clip_global_norm=1e30, nonfinite="skip") if parameters.startswith("clip") else {}
        optimizer = family(params[0] if count == 1 else params, lr=LR, **options)
        turn = [0]

        def step():
            turn[0] += 1
            arrays = sets[turn[0] % len(sets)]
            optimizer.step(arrays[0] if count == 1 else (arrays if len(sets) == 1 else list(arrays)))

        self.step = step
        for _ in range(130):  # compiled, and every set of arrays seen
            step()

    def time_step(self, parameters, gradients):
        self.step()


class MinibatchRows:
    """SparseAdam's step of a 200000 x 32 float32 embedding table with a minibatch's rows: 64
    random rows (a repeat now and then), new index and values arrays every step (a round of 64).
    Issue 54's target on the Xeon it names: at most 15 us."""

    timeout = 300

    def setup(self):
        rng = np.random.default_rng(7)
        table = rng.standard_normal((200_000, 32)).astype(np.float32)
        self.optimizer = numadam.SparseAdam(table, lr=LR)
        self.batches = [numadam.Rows(rng.integers(0, 200_000, 64), rng.standard_normal((64, 32)).astype(np.float32))
                        for _ in range(64)]
        self.turn = 0
        for _ in range(130):  # compiled, and every batch seen
            self.time_step()

    def time_step(self):
        self.turn += 1
        self.optimizer.step(self.batches[self.turn & 63])
