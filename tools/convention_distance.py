"""How far Adam's ``convention="deepspeed"`` (one division fewer) lands from torch's convention:
the figures of docs/algorithm.md's "DeepSpeed's arithmetic".

Two measures:

- one step from the same random state (parameters and gradients over six decades, steps 1 to
  1e5, betas that float32 holds exactly): the largest difference of the parameters in units in
  the last place of the larger of :math:`|p|` before and after the step;
- a run: the least-squares fit :math:`\\min_x \\tfrac12\\|Ax - b\\|^2` (A 400 x 200, Gaussian),
  lr 1e-2, default betas, from zero. After ``steps`` steps, the relative distance
  :math:`\\|x_{ds} - x_{torch}\\| / \\|x_{torch,64}\\|` in float32 and float64, beside float32's own
  rounding (float32 against float64, both torch's convention).

Usage: ``python tools/convention_distance.py [elements] [steps ...]`` (default 1000000 100 2000).
"""

import sys

import numpy as np

import numadam

EXACT_BETAS = (0.875, 1 - 2.0**-10)


def one_step_ulps(elements, dtype, decoupled, seed=1):
    """The largest one-step parameter difference, in ulps of max(|p| before, |p| after)."""
    rng = np.random.default_rng(seed)
    largest = 0.0
    for step in (1, 2, 10, 100, 1000, 10**5):
        spread = 10.0 ** rng.integers(-3, 3, elements)
        param = (rng.standard_normal(elements) * spread).astype(dtype)
        grad = (rng.standard_normal(elements) * spread[::-1]).astype(dtype)
        exp_avg = (rng.standard_normal(elements) * 0.1).astype(dtype)
        exp_avg_sq = (np.abs(rng.standard_normal(elements)) * 0.01).astype(dtype)
        stepped = []
        for convention in ("torch", "deepspeed"):
            p = param.copy()
            numadam.adam_step(p, grad, exp_avg.copy(), exp_avg_sq.copy(), step=step, lr=1e-3, betas=EXACT_BETAS,
                              weight_decay=0.1, decoupled_weight_decay=decoupled, convention=convention)
            stepped.append(p)
        torch_p, deepspeed_p = stepped
        ulps = np.abs(deepspeed_p - torch_p) / np.spacing(np.maximum(np.abs(param), np.abs(torch_p)))
        largest = max(largest, float(ulps.max()))
    return largest


def fit(dtype, convention, steps, seed=3):
    """The least-squares fit's parameters after ``steps`` Adam steps, in float64."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((400, 200)).astype(dtype), rng.standard_normal(400).astype(dtype)
    x = np.zeros(200, dtype)
    opt = numadam.Adam([x], lr=1e-2, convention=convention)
    for _ in range(steps):
        opt.step([a.T @ (a @ x - b)])
    return x.astype(np.float64)


def run_distances(steps):
    """``{name: relative distance}`` after ``steps`` steps (see the module docstring)."""
    exact = fit(np.float64, "torch", steps)
    single = fit(np.float32, "torch", steps)

    def distance(a, b):
        return np.linalg.norm(a - b) / np.linalg.norm(exact)

    return {
        "float32, deepspeed - torch": distance(fit(np.float32, "deepspeed", steps), single),
        "float32 torch - float64 torch": distance(single, exact),
        "float64, deepspeed - torch": distance(fit(np.float64, "deepspeed", steps), exact),
    }


def main(argv):
    elements = int(float(argv[0])) if argv else 1_000_000
    step_counts = [int(arg) for arg in argv[1:]] or [100, 2000]
    print(f"one step, betas {EXACT_BETAS}, {elements} elements x 6 steps: the parameters' largest difference")
    for dtype in (np.float32, np.float64):
        for decoupled in (False, True):
            decay = "decoupled decay" if decoupled else "L2 decay"
            print(f"  {np.dtype(dtype).name:8} {decay:16} {one_step_ulps(elements, dtype, decoupled):5.0f} ulps")
    for steps in step_counts:
        distances = ", ".join(f"{name} {value:.2g}" for name, value in run_distances(steps).items())
        print(f"least squares after {steps} steps: {distances}")


if __name__ == "__main__":
    main(sys.argv[1:])
