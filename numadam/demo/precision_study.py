"""How much accuracy low-precision storage costs on the demo's own problems.

``python -m numadam.demo.precision_study --output docs/precision`` trains the
digits MLP and the LSTM, and solves the deconvolution (at n = 4096, so that its
state is quantized), once per :data:`STORAGES` entry and seed, and writes
``precision.txt`` (the table docs/precision.md includes), ``precision.png`` and
``kahan.png``.

- MLP: test accuracy and the final training loss (the epoch's mean
  cross-entropy) after 100 epochs, means over the seeds.
- LSTM: test MSE after 1200 steps, mean over the seeds.
- Deconvolution: the relative objective gap to L-BFGS-B's solution after 2000
  Adam iterations (float64 parameters: 16-bit parameters and bfloat16 state do
  not apply).
- Kahan's compensation (``kahan.png`` and the line under the table): the MLP's
  training loss per epoch with bfloat16 parameters and a float32 master copy
  (final loss :math:`L`), without a remedy (:math:`L_\text{plain}`) and with
  ``compensation="kahan"`` (:math:`L_\text{kahan}`), means over the seeds,
  and the ratio :math:`|L_\text{kahan} - L| / |L_\text{plain} - L|` (issue 57
  asks for at most 0.1).
"""

import argparse
import pathlib
import time
from typing import NamedTuple

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
    Storage("bfloat16 parameters, Kahan compensation", "bfloat16", {"compensation": "kahan"}),
)
#: The labels of kahan.png's three curves: the reference, no remedy, the compensation.
KAHAN_CURVES = ("bfloat16 parameters, master weights", "bfloat16 parameters",
                "bfloat16 parameters, Kahan compensation")
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


class Measured(NamedTuple):
    """One storage's results: per seed for the networks."""

    accuracies: np.ndarray  #: the MLP's test accuracy
    mses: np.ndarray  #: the LSTM's test MSE
    gap: object  #: the deconvolution's relative gap to L-BFGS-B (None where it does not apply)
    losses: np.ndarray  #: the MLP's training loss per epoch, seeds by epochs


def measure(storage, seeds=SEEDS, quick=False):
    """The :class:`Measured` results of one storage."""
    import ml_dtypes  # noqa: F401  (bfloat16 parameters need it)

    mlps = [mlp_digits.run(quick=quick, seed=s, out=_quiet, storage=storage) for s in seeds]
    mses = [sequence_lstm.run(quick=quick, seed=s, out=_quiet, storage=storage).metrics["test_mse"] for s in seeds]
    gap = None  # float64 parameters: 16-bit parameters and bfloat16 state do not apply
    if storage.param_dtype is None and storage.options.get("state_dtype") != "bfloat16":
        gap = deconvolution_gap(storage, maxiter=200 if quick else 2000)
    losses = [dict((label, values) for label, _, values in mlp.curves)["training (epoch mean)"] for mlp in mlps]
    return Measured(np.array([mlp.metrics["test_accuracy"] for mlp in mlps]), np.array(mses), gap, np.array(losses))


def kahan_ratio(results):
    """:math:`|L_\text{kahan} - L| / |L_\text{plain} - L|` of the MLP's final training loss (mean
    over the seeds), with :data:`KAHAN_CURVES`' three storages from ``results``."""
    final = {storage.label: measured.losses[:, -1].mean() for storage, measured in results}
    reference, plain, kahan = (final[label] for label in KAHAN_CURVES)
    return abs(kahan - reference) / abs(plain - reference)


def table(results):
    """The markdown table of ``results`` ((storage, measure's tuple) pairs), against the first."""
    base = results[0][1]
    lines = ["| storage | MLP test accuracy | vs float32 | MLP final training loss | LSTM test MSE | vs float32 "
             "| deconvolution gap to L-BFGS-B |",
             "|---|---|---|---|---|---|---|"]
    for storage, measured in results:
        accuracy, mse, gap = measured.accuracies.mean(), measured.mses.mean(), measured.gap
        lines.append(
            f"| {storage.label} | {100 * accuracy:.2f}% | {100 * (accuracy - base.accuracies.mean()):+.2f} pt "
            f"| {measured.losses[:, -1].mean():.5f} | {mse:.5f} | {100 * (mse / base.mses.mean() - 1):+.1f}% "
            f"| {'n/a' if gap is None else f'{gap:.2e}'} |")
    labels = {storage.label for storage, _ in results}
    if labels.issuperset(KAHAN_CURVES):
        lines.append(f"\n|L_kahan - L| / |L_plain - L| = {kahan_ratio(results):.4f} (the MLP's final training loss; "
                     f"L with a float32 master copy)")
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


def plot_kahan(results, path):
    """The MLP's training loss per epoch (mean over the seeds) of :data:`KAHAN_CURVES`' storages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {storage.label: result for storage, result in results}
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for label, style in zip(KAHAN_CURVES, ("-", "--", ":")):
        losses = measured[label].losses.mean(axis=0)
        axis.plot(np.arange(1, losses.size + 1), losses, style, label=label)
    axis.set_yscale("log")
    axis.set_xlabel("epoch")
    axis.set_ylabel("training cross-entropy (epoch mean)")
    axis.set_title(f"Digits MLP, bfloat16 parameters, {len(measured[KAHAN_CURVES[0]].losses)} seeds")
    axis.legend(fontsize=8)
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
    plot_kahan(results, output / "kahan.png")


if __name__ == "__main__":
    main()
