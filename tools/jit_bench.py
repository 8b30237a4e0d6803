"""Nanoseconds per step of each ``numadam.jit.<family>_step`` on 10 float64 parameters, inside an njit loop.

    python tools/jit_bench.py

Each loop runs 1e5 steps; the table shows the best of 7 runs (the machine's
noise only ever adds time). The asv suite tracks Adam's over time
(``asv_benchmarks/benchmarks.py``, ``JitStep``).
"""

import time

import numpy as np
from numba import njit

import numadam
from numadam import jit

STEPS = 100_000


def best_ns_per_step(loop, *arrays):
    loop(*arrays, 10)  # compile
    runs = []
    for _ in range(7):
        start = time.perf_counter()
        loop(*arrays, STEPS)
        runs.append(time.perf_counter() - start)
    return min(runs) / STEPS * 1e9


@njit
def torch_signature_loop(x, g, m, v, steps):
    for t in range(1, steps + 1):
        jit.adam_step(x, g, m, v, t, 1e-3, 0.9, 0.999, 1e-8, 0.0)


def family_loop(name):
    """An njit loop calling ``<name>_step`` with the class defaults written as constants."""
    cls = numadam.families()[name]
    defaults = {**cls._class_defaults, **cls.pinned}
    hyper = ", ".join(repr(defaults[h]) for h in jit.hyperparameter_order(cls))
    state = ", ".join(f"s{i}" for i, kind in enumerate(cls.algorithm.state) if kind.present is None)
    carried = cls.algorithm.carry is not None
    source = (f"def loop(x, g, {state}, steps):\n    carry = None\n    for t in range(1, steps + 1):\n"
              f"        {'carry = ' if carried else ''}step(x, g, {state}, t, {hyper}{', carry' if carried else ''})\n")
    namespace = {"step": jit._functions()[name].step}
    exec(source, namespace)
    return njit(namespace["loop"]), state.count(",") + 1


def main():
    rng = np.random.default_rng(0)
    print("| function | ns per step |\n|---|---:|")
    arrays = [rng.random(10) for _ in range(4)]
    print(f"| adam_step (torch's signature) | {best_ns_per_step(torch_signature_loop, *arrays):.0f} |")
    for name in numadam.families():
        loop, n_state = family_loop(name)
        state = [np.full(10, 1e-3) for _ in range(n_state)]
        print(f"| {name}_step | {best_ns_per_step(loop, rng.random(10), rng.random(10) * 1e-3, *state):.0f} |")


if __name__ == "__main__":
    main()
