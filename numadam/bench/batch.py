r"""``numadam bench --batch``: many small fits at once, per fit (issue 58's case).

300 fits of a 3-parameter exponential decay :math:`a e^{-kt} + c` (50 points
each, 300 Adam iterations at lr 0.05, an ``@njit`` objective), timed together in
one interleaved run (:func:`~numadam.bench.timing.interleaved_medians`), per fit:

- ``numadam.minimize_batch`` on one thread and on Numba's threads;
- a hand-written ``@njit`` loop over all fits on one thread: Adam with torch's
  arithmetic and the same iterations, no stop rules or checks (the floor);
- a loop of ``numadam.minimize(..., compiled=True)`` calls, and of
  ``compiled=False`` calls (over a tenth of the fits: it is slow).
"""

import math

import numba
import numpy as np

from .timing import interleaved_medians

FITS, POINTS, ITERATIONS, LR = 300, 50, 300, 0.05
#: The batch on one thread over the hand-written loop, at most; on Numba's threads over one, at least.
TARGETS = {"one thread × hand-written loop": 1.2, "speed-up on the threads": 1.8}


@numba.njit
def decay(x, t, y):
    """The mean squared residual of :math:`a e^{-kt} + c` against ``y``, and its gradient."""
    a, k, c = x[0], x[1], x[2]
    e = np.exp(-k * t)
    r = a * e + c - y
    grad = np.empty(3)
    grad[0] = 2.0 * (r @ e) / t.size
    grad[1] = 2.0 * (r @ (-a * t * e)) / t.size
    grad[2] = 2.0 * r.sum() / t.size
    return (r @ r) / t.size, grad


@numba.njit
def hand_written_loop(starts, t, y, lr, iterations):
    """Adam (torch's arithmetic, betas 0.9/0.999, eps 1e-8) on every fit in turn, ``starts`` in place."""
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for i in range(starts.shape[0]):
        x = starts[i]
        m = np.zeros(3)
        v = np.zeros(3)
        for step in range(1, iterations + 1):
            _, g = decay(x, t, y[i])
            bias1 = 1.0 - beta1 ** step
            bias2 = 1.0 - beta2 ** step
            for j in range(3):
                m[j] = beta1 * m[j] + (1.0 - beta1) * g[j]
                v[j] = beta2 * v[j] + (1.0 - beta2) * g[j] * g[j]
                x[j] -= lr / bias1 * m[j] / (math.sqrt(v[j]) / math.sqrt(bias2) + eps)
    return starts


def problems(fits=FITS, seed=0):
    """``(t, y)``: the sample times and one noisy decay per fit (a row of ``y``)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 5.0, POINTS)
    truth = np.column_stack([rng.uniform(1, 2, fits), rng.uniform(0.5, 1.5, fits), rng.uniform(-0.2, 0.2, fits)])
    return t, truth[:, :1] * np.exp(-truth[:, 1:2] * t) + truth[:, 2:] + 0.01 * rng.standard_normal((fits, POINTS))


class _Fits:
    """One contender: ``step()`` runs ``steps_per_call`` fits."""

    def __init__(self, label, run, fits):
        self.label, self.step, self.steps_per_call = label, run, fits


def contenders(threads, fits=FITS, iterations=ITERATIONS):
    import numadam

    t, y = problems(fits)
    x0 = np.array([1.0, 1.0, 0.0])
    options = dict(jac=True, lr=LR, maxiter=iterations, gtol=0.0)

    def batch(count):
        def run():
            before = numba.get_num_threads()
            numba.set_num_threads(count)
            try:
                numadam.minimize_batch(decay, x0, args=(t,), batched_args=(y,), **options)
            finally:
                numba.set_num_threads(before)
        return run

    tenth = max(1, fits // 10)
    return [
        _Fits("minimize_batch, 1 thread", batch(1), fits),
        _Fits(f"minimize_batch, {threads} threads", batch(threads), fits),
        _Fits("hand-written @njit loop, 1 thread",
              lambda: hand_written_loop(np.tile(x0, (fits, 1)), t, y, LR, iterations), fits),
        _Fits("loop of minimize(compiled=True)",
              lambda: [numadam.minimize(decay, x0, args=(t, y[i]), compiled=True, **options) for i in range(fits)],
              fits),
        _Fits("loop of minimize(compiled=False)",
              lambda: [numadam.minimize(decay, x0, args=(t, y[i]), compiled=False, **options) for i in range(tenth)],
              tenth),
    ]


def run(rounds=7, fits=FITS, iterations=ITERATIONS, progress=print):
    """Time the contenders; ``(rows, same)``: ``(label, seconds per fit)`` rows, and whether the batch
    took every fit's iterates of ``minimize(..., compiled=True)`` alone, bit for bit."""
    import numadam

    threads = numba.get_num_threads()
    found = contenders(threads, fits, iterations)
    t, y = problems(fits)
    x0 = np.array([1.0, 1.0, 0.0])
    batch = numadam.minimize_batch(decay, x0, args=(t,), batched_args=(y,), jac=True, lr=LR, maxiter=iterations,
                                   gtol=0.0)
    alone = [numadam.minimize(decay, x0, args=(t, y[i]), jac=True, lr=LR, maxiter=iterations, gtol=0.0,
                              compiled=True) for i in range(0, fits, max(1, fits // 10))]
    same = all(np.array_equal(batch.x[k * max(1, fits // 10)], a.x) for k, a in enumerate(alone))
    for contender in found:
        contender.step()  # compiled and warm
    progress(f"timing {len(found)} contenders, {rounds} interleaved rounds")
    medians = interleaved_medians(found, rounds, 0.0)
    return [(c.label, seconds) for c, seconds in zip(found, medians)], same


def markdown(rows, same, fits=FITS, iterations=ITERATIONS):
    """The table of :func:`run`: time per fit, each over the hand-written loop's; the targets."""
    seconds = dict(rows)
    hand = rows[2][1]
    one, many = rows[0][1], rows[1][1]
    lines = [f"{fits} fits of a*exp(-k t) + c ({POINTS} points each, {iterations} Adam iterations, lr {LR:g}, an "
             f"@njit objective), per fit. The batch took each fit's iterates of minimize(compiled=True) alone, "
             f"bit for bit: {'yes' if same else 'NO'}.",
             "",
             "| way | per fit | × hand-written loop |",
             "|---|---|---|"]
    lines += [f"| {label} | {value * 1e3:.3f} ms | {value / hand:.2f} |" for label, value in seconds.items()]
    lines += ["",
              f"The batch on one thread: {one / hand:.2f}x the hand-written loop (target ≤ "
              f"{TARGETS['one thread × hand-written loop']:g}: {'met' if one / hand <= 1.2 else 'not met'}); on "
              f"{rows[1][0].split(', ')[1]}: {one / many:.2f}x its speed on one (target ≥ "
              f"{TARGETS['speed-up on the threads']:g}: {'met' if one / many >= 1.8 else 'not met'})."]
    return "\n".join(lines) + "\n"
