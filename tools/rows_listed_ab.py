"""A minibatch's rows two ways in one process: the CPU's listed plan against the table of every row.

SparseAdam steps 1% of the rows of a float32 table (``N`` elements, ``W`` wide), 16 draws of rows
in turn, new arrays every step, random order: each row once ("uni") or with repeats ("rep", then
summed and ascending). One optimizer goes through :class:`numadam.targets.arrays.ListedPlan`
(each row laid out as the kernel updates it), the other through the segment table of every row,
which is what the CPU backend makes when it has no ``listed_plan`` (switched off for its steps).
The rounds interleave both with the dense Adam step of the same table; medians of 9 rounds of 32
steps, with each study's ratio to the dense step.

    N=3.5e7 W=16 python tools/rows_listed_ab.py
"""

import os
import time

import numpy as np

import numadam
from numadam.targets.cpu.backend import CpuBackend

WIDTH = int(os.environ.get("W", 16))
ROWS = int(float(os.environ.get("N", 2e7))) // WIDTH
DRAWS = 16
ROUNDS, STEPS = 9, 32


def _stepper(optimizer, indices, values, listed):
    """One Rows step of ``optimizer`` a call, the next draw each time, with or without listed plans."""
    own = CpuBackend.listed_plan

    def step(k):
        CpuBackend.listed_plan = own if listed else None
        optimizer.step(numadam.Rows(indices[k % DRAWS], values[k % DRAWS]))
        CpuBackend.listed_plan = own

    return step


def main():
    rng = np.random.default_rng(0)
    count = ROWS // 100
    repeated = [rng.choice(ROWS, count, replace=True).astype(np.int64) for _ in range(DRAWS)]
    unique = [rng.choice(ROWS, count, replace=False).astype(np.int64) for _ in range(DRAWS)]
    values = [rng.standard_normal((count, WIDTH)).astype(np.float32) for _ in range(DRAWS)]
    listed_table, other_table, dense_table = (np.ones((ROWS, WIDTH), np.float32) for _ in range(3))
    listed, other = numadam.SparseAdam(listed_table), numadam.SparseAdam(other_table)
    dense, dense_grad = numadam.Adam(dense_table), np.ones_like(dense_table)
    studies = {"rep listed": _stepper(listed, repeated, values, True),
               "rep table": _stepper(other, repeated, values, False),
               "uni listed": _stepper(listed, unique, values, True),
               "uni table": _stepper(other, unique, values, False),
               "dense": lambda k: dense.step(dense_grad)}
    for step in studies.values():
        step(0), step(1)
    seconds = {name: [] for name in studies}
    for _ in range(ROUNDS):
        for name, step in studies.items():
            started = time.perf_counter()
            for k in range(STEPS):
                step(k)
            seconds[name].append((time.perf_counter() - started) / STEPS)
    dense_median = np.median(seconds["dense"])
    print(f"# {ROWS} x {WIDTH} float32, {count} rows a step")
    for name, times in seconds.items():
        print(f"{name:12s} {1e3 * np.median(times):.3f} ms  {np.median(times) / dense_median:.3f} x dense")


if __name__ == "__main__":
    main()
