"""Prodigy's step at 3e7 float32 with slice_p 1 and 11 (and Adam), interleaved rounds of 9, a new gradient array each step: `python tools/prodigy_slice_speed.py`."""
import time, numpy as np, numadam
n = 30_000_000
rng = np.random.default_rng(0)
grads = [rng.standard_normal(n, dtype=np.float32) for _ in range(2)]
opts = {}
for k in (1, 11):
    p = rng.standard_normal(n, dtype=np.float32)
    opts[k] = numadam.Prodigy(p, slice_p=k)
    for i in range(3):
        opts[k].step(grads[i % 2].copy())
adam_p = rng.standard_normal(n, dtype=np.float32); adam = numadam.Adam(adam_p, lr=1e-3)
for i in range(3): adam.step(grads[i % 2].copy())
times = {1: [], 11: [], "adam": []}
for r in range(9):
    for key in (1, 11, "adam"):
        g = grads[r % 2].copy()
        o = adam if key == "adam" else opts[key]
        t = time.perf_counter(); o.step(g); times[key].append(time.perf_counter() - t)
for key, ts in times.items():
    print(f"{key!s:>5}: median {np.median(ts)*1e3:.2f} ms  (min {min(ts)*1e3:.2f})")
state = {k: sum(a.nbytes for name in ("exp_avg", "exp_avg_sq", "s", "p0") for a in [opts[k].state_dict()[name]]) for k in opts}
print("state bytes:", {k: v / n for k, v in state.items()}, "per element")
