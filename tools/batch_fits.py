"""Issue 58's speed case: 300 fits of a 3-parameter exponential decay (50 points each, 300 Adam
iterations, an njit objective), per fit, in one process, each way the best of ``--repeat`` runs:

- ``numadam.minimize_batch`` on 1 thread and on Numba's threads;
- a loop of ``numadam.minimize(..., compiled=True)`` calls, and of ``compiled=False`` calls (a tenth of
  the fits: it is slow);
- a hand-written ``@njit`` loop over all fits, one thread: Adam with torch's arithmetic, the same
  iterations (the floor a batch should come near).

    python tools/batch_fits.py [--repeat 5]
"""

import argparse
import math
import time

import numba
import numpy as np

import numadam

FITS, POINTS, ITERATIONS, LR = 300, 50, 300, 0.05


@numba.njit
def decay(x, t, y):
    """Mean squared residual of a exp(-k t) + c against y, and its gradient."""
    a, k, c = x[0], x[1], x[2]
    e = np.exp(-k * t)
    r = a * e + c - y
    grad = np.empty(3)
    grad[0] = 2.0 * (r @ e) / t.size
    grad[1] = 2.0 * (r @ (-a * t * e)) / t.size
    grad[2] = 2.0 * r.sum() / t.size
    return (r @ r) / t.size, grad


@numba.njit
def hand_loop(starts, t, y, lr, iterations):
    """Adam (torch's arithmetic, betas 0.9/0.999, eps 1e-8) on every fit in turn, in place."""
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


def problems():
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 5.0, POINTS)
    truth = np.column_stack([rng.uniform(1, 2, FITS), rng.uniform(0.5, 1.5, FITS), rng.uniform(-0.2, 0.2, FITS)])
    y = truth[:, :1] * np.exp(-truth[:, 1:2] * t) + truth[:, 2:] + 0.01 * rng.standard_normal((FITS, POINTS))
    return t, y


def best_of(repeat, run, fits):
    run()  # compiled, warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times) / fits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    t, y = problems()
    x0 = np.array([1.0, 1.0, 0.0])
    options = dict(jac=True, lr=LR, maxiter=ITERATIONS, gtol=0.0)
    threads = numba.get_num_threads()
    rows = {}
    for name, count in (("minimize_batch, 1 thread", 1), (f"minimize_batch, {threads} threads", threads)):
        def batch(count=count):
            numba.set_num_threads(count)
            try:
                numadam.minimize_batch(decay, x0, args=(t,), batched_args=(y,), **options)
            finally:
                numba.set_num_threads(threads)
        rows[name] = best_of(repeat, batch, FITS)
    rows["hand-written njit loop, 1 thread"] = best_of(
        repeat, lambda: hand_loop(np.tile(x0, (FITS, 1)), t, y, LR, ITERATIONS), FITS)
    rows["loop of minimize(compiled=True)"] = best_of(
        repeat, lambda: [numadam.minimize(decay, x0, args=(t, y[i]), compiled=True, **options) for i in range(FITS)],
        FITS)
    tenth = FITS // 10
    rows["loop of minimize(compiled=False)"] = best_of(
        max(1, repeat // 2),
        lambda: [numadam.minimize(decay, x0, args=(t, y[i]), compiled=False, **options) for i in range(tenth)], tenth)
    hand = rows["hand-written njit loop, 1 thread"]
    print(f"{FITS} fits of a*exp(-k t) + c, {POINTS} points, {ITERATIONS} Adam iterations; best of {repeat}; "
          f"numba {numba.__version__}, numadam {numadam.__version__}, {threads} Numba threads\n")
    print("| way | per fit | × hand-written loop |")
    print("|---|---:|---:|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds * 1e3:.3f} ms | {seconds / hand:.2f} |")


if __name__ == "__main__":
    main()
