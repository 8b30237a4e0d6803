"""How much accuracy low-precision storage costs on the demo's own problems.

``python -m numadam.demo.precision_study --output docs/precision`` trains the
digits MLP and the LSTM, and solves the deconvolution (at n = 4096, so that its
state is quantized), once per :data:`STORAGES` entry and seed, and writes
``precision.txt`` (the table docs/precision.md includes) and ``precision.png``.

- MLP: test accuracy after 100 epochs, mean over the seeds.
- LSTM: test MSE after 1200 steps, mean over the seeds.
- Deconvolution: the relative objective gap to L-BFGS-B's solution after 2000
  Adam iterations (float64 parameters: 16-bit parameters and bfloat16 state do
  not apply).
"""

import argparse
import pathlib
import time

import numpy as np

import numadam

from . import deconvolution, mlp_digits, sequence_lstm
from .storage import FLOAT32, Storage

STORAGES = (
    FLOAT32,
    Storage("int8 state", None, {"state_dtype": "int8"}),
    Storage("bfloat16 state", None, {"state_dtype": "bfloat16"}),
    Storage("bfloat16 parameters", "bfloat16"),
    Storage("bfloat16 parameters, master weights", "bfloat16", {"master_weights": True}),
    Storage("bfloat16 parameters, stochastic rounding", "bfloat16", {"stochastic_rounding": True, "seed": 0}),
)
SEEDS = (0, 1, 2)


def _quiet(*args, **kwargs):
    pass


def deconvolution_gap(storage, n=4096, maxiter=2000, lr=0.1):
    """(Adam's objective - L-BFGS-B's) / L-BFGS-B's on the deconvolution of ``n`` points."""
    from scipy.optimize import minimize as scipy_minimize

    objective, _, _, x_true, _ = deconvolution.make_problem(np.random.default_rng(0), n=n)
    x0 = np.zeros(n)
    schedule = numadam.schedules.CosineDecay(lr, total_steps=maxiter)
    adam = numadam.minimize(objective, x0, jac=True, lr=lr, schedule=schedule, maxiter=maxiter, gtol=0.0,
                            **storage.options)
    lbfgs = scipy_minimize(objective, x0, jac=True, method="L-BFGS-B",
                           options={"maxiter": 20000, "gtol": 1e-12, "ftol": 1e-16})
    return (adam.fun - lbfgs.fun) / lbfgs.fun


def measure(storage, seeds=SEEDS, quick=False):
    """``(accuracies, mses, gap)`` of one storage: per seed for the networks."""
    import ml_dtypes  # noqa: F401  (bfloat16 parameters need it)

    accuracies = [mlp_digits.run(quick=quick, seed=s, out=_quiet, storage=storage).metrics["test_accuracy"]
                  for s in seeds]
    mses = [sequence_lstm.run(quick=quick, seed=s, out=_quiet, storage=storage).metrics["test_mse"] for s in seeds]
    gap = None  # float64 parameters: 16-bit parameters and bfloat16 state do not apply
    if storage.param_dtype is None and storage.options.get("state_dtype") != "bfloat16":
        gap = deconvolution_gap(storage, maxiter=200 if quick else 2000)
    return np.array(accuracies), np.array(mses), gap


def table(results):
    """The markdown table of ``results`` ((storage, measure's tuple) pairs), against the first."""
    _, (base_accuracy, base_mse, _) = results[0]
    lines = ["| storage | MLP test accuracy | vs float32 | LSTM test MSE | vs float32 | deconvolution gap to L-BFGS-B |",
             "|---|---|---|---|---|---|"]
    for storage, (accuracy, mse, gap) in results:
        lines.append(
            f"| {storage.label} | {100 * accuracy.mean():.2f}% | {100 * (accuracy.mean() - base_accuracy.mean()):+.2f} pt "
            f"| {mse.mean():.5f} | {100 * (mse.mean() / base_mse.mean() - 1):+.1f}% "
            f"| {'n/a' if gap is None else f'{gap:.2e}'} |")
    return "\n".join(lines) + "\n"


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [storage.label.replace(", ", ",\n") for storage, _ in results]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, index, title in [(left, 0, "MLP test accuracy (%)"), (right, 1, "LSTM test MSE")]:
        values = [result[index] * (100 if index == 0 else 1) for _, result in results]
        axis.boxplot(values, showmeans=True)
        axis.set_xticks(range(1, len(labels) + 1), labels, rotation=60, ha="right", fontsize=7)
        axis.set_title(title + f", {len(values[0])} seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="numadam-precision", help="folder for precision.txt and precision.png")
    parser.add_argument("--quick", action="store_true", help="short runs, one seed (a check, not a measurement)")
    args = parser.parse_args(argv)
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    results = []
    for storage in STORAGES:
        start = time.perf_counter()
        results.append((storage, measure(storage, seeds=SEEDS[:1] if args.quick else SEEDS, quick=args.quick)))
        print(f"{storage.label}: {time.perf_counter() - start:.1f} s")
    text = table(results)
    print(text)
    (output / "precision.txt").write_text(text)
    plot(results, output / "precision.png")


if __name__ == "__main__":
    main()
