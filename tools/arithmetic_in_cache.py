"""What each element's arithmetic costs, apart from its memory: every elementwise family's step over
arrays that fit the L2 cache, against the same-traffic kernel of its bytes, on the calling thread.

Past the last-level cache a step takes the longer of its memory time and its arithmetic time, and
a little more where they do not overlap. With 2 threads and memory at 90 GB/s, a float32 Adam step
(28 bytes an element) has about 0.62 ns per element and thread of memory time; an arithmetic time
near it shows through (issue 54, item 5). Run with one Numba thread::

    NUMBA_NUM_THREADS=1 python tools/arithmetic_in_cache.py [elements] [rounds] [family,family,...]
    NUMBA_NUM_THREADS=1 python tools/arithmetic_in_cache.py --divider [elements] [rounds]

The first form prints, per family (and per Adam's other arithmetic, ``convention='deepspeed'``),
ns per element of its step (a Python call included: divide
its microseconds by the elements), of the same-traffic kernel, and their difference. The second
times bare loops of Adam's float32 update with torch's arithmetic (two divisions and a square
root an element) and with parts of it left out, to show what the divider costs.
"""

import math
import sys
import time

import numpy as np
from numba import njit

import numadam
from numadam.bench import catalog
from numadam.bench.roofline import traffic_kernel
from numadam.core.element_math import divided


def _medians(calls, elements, rounds):
    """Median ns per element of each of ``calls`` (name -> function), interleaved over ``rounds``."""
    inner = max(1, int(2e7 // elements))
    found = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            call()
            start = time.perf_counter()
            for _ in range(inner):
                call()
            found[name].append((time.perf_counter() - start) / inner / elements * 1e9)
    return {name: float(np.median(times)) for name, times in found.items()}


def families(elements, rounds, only=None):
    calls = {}
    for name, study in catalog.families().items():
        if name == "adafactor" or (only and study.method not in only):  # (Adafactor: two passes; its own suite)
            continue
        optimizer, grads = catalog.build(study, elements)
        arrays = [np.ones(elements, dtype) for dtype in study.written + study.read]
        kernel = traffic_kernel(study.written, study.read, False)
        calls[name] = lambda optimizer=optimizer, grads=grads: optimizer.step(grads)
        calls[name + " (same traffic)"] = lambda kernel=kernel, arrays=arrays: kernel(*arrays)
    times = _medians(calls, elements, rounds)
    print(f"{elements} float32 elements, one thread: ns per element")
    print(f"{'family':30s} {'step':>6s} {'traffic':>8s} {'arithmetic':>10s}")
    for name in calls:
        if not name.endswith("(same traffic)"):
            step, traffic = times[name], times[name + " (same traffic)"]
            print(f"{name:30s} {step:6.3f} {traffic:8.3f} {step - traffic:10.3f}")


#: Adam's float32 update with torch's arithmetic, and with parts of it changed: the bare loops of
#: :func:`divider`. Each line sets ``denominator`` and ``param[i]`` from ``first`` and ``second``.
UPDATES = {
    "torch's: sqrt(v) / c + eps, then m / that": "d = math.sqrt(second) / c + eps\n        param[i] -= size * first / d",
    "the same, / c as a float64 product (divided)": ("d = divided(math.sqrt(second), c) + eps\n"
                                                     "        param[i] -= size * first / d"),
    "no square root": "d = second / c + eps\n        param[i] -= size * first / d",
    "* c instead of / c (one division)": "d = math.sqrt(second) * c + eps\n        param[i] -= size * first / d",
    "no division (the square root only)": "d = math.sqrt(second) * c + eps\n        param[i] -= size * first * d",
    "neither": "d = second * c + eps\n        param[i] -= size * first * d",
}


def _update_loop(update):
    source = f"""
def loop(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, c, size, eps):
    for i in range(param.size):
        g = grad[i]
        first = beta1 * exp_avg[i] + one_minus_beta1 * g
        second = beta2 * exp_avg_sq[i] + one_minus_beta2 * (g * g)
        exp_avg[i] = first
        exp_avg_sq[i] = second
        {update}
"""
    namespace = {"math": math, "divided": divided}
    exec(source, namespace)
    return njit(error_model="numpy")(namespace["loop"])


def divider(elements, rounds):
    rng = np.random.default_rng(0)
    param, grad, exp_avg = (rng.standard_normal(elements).astype(np.float32) for _ in range(3))
    exp_avg_sq = np.abs(rng.standard_normal(elements)).astype(np.float32)
    scalars = tuple(np.float32(x) for x in (0.9, 0.1, 0.999, 0.001, 0.7, 1e-3, 1e-8))
    arrays = (param, grad, exp_avg, exp_avg_sq)
    calls = {name: (lambda loop=_update_loop(update): loop(*arrays, *scalars)) for name, update in UPDATES.items()}
    times = _medians(calls, elements, rounds)
    print(f"Adam's float32 update, bare loops over {elements} elements, one thread: ns per element")
    for name, value in times.items():
        print(f"{name:48s} {value:6.3f}")


def main(argv):
    bare = "--divider" in argv
    argv = [a for a in argv if a != "--divider"]
    elements = int(float(argv[0])) if argv else 32768
    rounds = int(argv[1]) if len(argv) > 1 else 15
    if bare:
        divider(elements, rounds)
    else:
        families(elements, rounds, argv[2].split(",") if len(argv) > 2 else None)
    print(f"numadam {numadam.__version__}")


if __name__ == "__main__":
    main(sys.argv[1:])
