r"""Example 3: an LSTM predicts the next value of noisy two-tone signals.

Each sequence is a sum of two sines with random amplitudes, frequencies and phases,

.. math::

    s(t) = a_1 \sin(\omega_1 t + \phi_1) + a_2 \sin(\omega_2 t + \phi_2),

observed with Gaussian noise, :math:`x_t = s(t) + \sigma \xi_t`. At every step the
model reads :math:`x_t` and predicts the clean next value :math:`s(t + 1)`: an
LSTM with 32 hidden units (:mod:`numadam.demo.nn`, backpropagation through time)
followed by a dense readout, trained on the mean squared error over all steps with
Adam on fresh mini-batches, the gradients clipped to a global norm of 0.1
(``numadam.clip_by_global_norm``; Pascanu et al. 2013). The test error is compared
with persistence, the forecast :math:`\hat s(t+1) = x_t`.

References: S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural
Comput. 9, 1997; R. Pascanu, T. Mikolov and Y. Bengio, "On the difficulty of
training recurrent neural networks", ICML 2013.
"""

import time

import numpy as np

import numadam

from . import nn
from .report import ExampleResult, Table, report_points
from .storage import Storage

TITLE = "LSTM next-value regression"


def make_sequences(rng, count, length=50, noise=0.05):
    """Return float32 ``(inputs, targets)`` of shape ``(length, count, 1)``: noisy :math:`x_t` and :math:`s(t+1)`.

    >>> inputs, targets = make_sequences(np.random.default_rng(0), count=3, length=5, noise=0.0)
    >>> inputs.shape, bool(np.array_equal(inputs[1:], targets[:-1]))
    ((5, 3, 1), True)
    """
    amplitudes = rng.uniform(0.3, 0.7, size=(2, count))
    frequencies = rng.uniform(0.1, 0.6, size=(2, count))
    phases = rng.uniform(0, 2 * np.pi, size=(2, count))
    t = np.arange(length + 1)[:, None, None]
    clean = np.sum(amplitudes * np.sin(frequencies * t + phases), axis=1)
    inputs = clean[:-1] + noise * rng.standard_normal((length, count))
    return inputs[..., None].astype(np.float32), clean[1:, :, None].astype(np.float32)


def init_params(rng, hidden=32, inputs=1):
    """Uniform :math:`\\pm 1/\\sqrt{H}` LSTM weights, forget-gate bias 1, zero readout bias."""
    scale = 1 / np.sqrt(hidden)
    bias = np.zeros(4 * hidden)
    bias[hidden : 2 * hidden] = 1
    params = {
        "Wx": rng.uniform(-scale, scale, (inputs, 4 * hidden)),
        "Wh": rng.uniform(-scale, scale, (hidden, 4 * hidden)),
        "b": bias,
        "Wy": rng.uniform(-scale, scale, (hidden, 1)),
        "by": np.zeros(1),
    }
    return {name: value.astype(np.float32) for name, value in params.items()}


def predict(params, inputs):
    """Run the LSTM from zero state; return the predictions and the caches for :func:`backward`."""
    hidden = params["Wh"].shape[0]
    zeros = np.zeros((inputs.shape[1], hidden), dtype=np.float32)
    hs, lstm = nn.lstm_forward(inputs, zeros, zeros, params["Wx"], params["Wh"], params["b"])
    prediction, readout = nn.dense_forward(hs, params["Wy"], params["by"])
    return prediction, (lstm, readout)


def backward(dprediction, caches, grads):
    """Write the parameter gradients into the arrays of ``grads``."""
    lstm, readout = caches
    dhs, grads["Wy"][...], grads["by"][...] = nn.dense_backward(dprediction, readout)
    _, _, _, grads["Wx"][...], grads["Wh"][...], grads["b"][...] = nn.lstm_backward(dhs, lstm)


def run(quick=False, seed=0, steps=None, lr=5e-3, batch_size=32, max_norm=0.1, out=print, storage=None):
    """Train the LSTM, printing a loss table; return an :class:`ExampleResult`.

    ``steps`` defaults to 1200, or 80 with ``quick``. ``metrics`` holds the final
    ``test_mse``, the ``initial_test_mse``, the ``persistence_mse`` of the baseline
    and ``clipped_fraction``, the share of steps whose gradient norm exceeded
    ``max_norm``.
    ``storage`` (a :class:`~numadam.demo.storage.Storage`) sets the precision of the
    parameters and of Adam's state (float32 by default).
    """
    steps = steps if steps is not None else (80 if quick else 1200)
    rng = np.random.default_rng(seed)
    test_inputs, test_targets = make_sequences(rng, 256)
    persistence_mse = float(np.mean((test_inputs - test_targets) ** 2))
    params = init_params(rng)
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    opt = Storage.of(storage).optimizer(params, lr)

    def test_mse():
        return nn.mean_squared_error(predict(params, test_inputs)[0], test_targets)[0]

    initial_test_mse = test_mse()
    out(
        f"sequences of {test_inputs.shape[0]} steps, batch {batch_size}; Adam lr={lr:g}, "
        f"{steps} steps, gradients clipped to global norm {max_norm:g}"
    )
    table = Table(out, [("step", "d"), ("train mse", ".5f"), ("test mse", ".5f"), ("norm before clip", ".3f")])
    evaluated = report_points(steps, rows=41)
    shown = set(evaluated[::4]) | {evaluated[-1]}
    losses, test_losses, clipped = [], [], 0
    start = time.perf_counter()
    for step in range(steps):
        inputs, targets = make_sequences(rng, batch_size)
        prediction, caches = predict(params, inputs)
        loss, dprediction = nn.mean_squared_error(prediction, targets)
        backward(dprediction, caches, grads)
        norm = numadam.clip_by_global_norm(grads, max_norm)
        clipped += norm > max_norm
        opt.step(grads)
        losses.append(loss)
        if step in evaluated:
            test_losses.append(test_mse())
        if step in shown:
            table.row(step + 1, loss, test_losses[-1], norm)
    seconds = time.perf_counter() - start
    final_test_mse = test_losses[-1]
    out(
        f"test mse {final_test_mse:.5f} vs {persistence_mse:.5f} for persistence (x_t as the forecast) "
        f"and {initial_test_mse:.5f} before training; {clipped}/{steps} steps clipped"
    )
    return ExampleResult(
        title=TITLE,
        xlabel="Adam step",
        ylabel="mean squared error",
        curves=[
            ("training mini-batch", np.arange(1, steps + 1), np.array(losses)),
            ("test set", np.array(evaluated) + 1, np.array(test_losses)),
        ],
        seconds=seconds,
        summary=f"test mse {final_test_mse:.4f} ({persistence_mse / final_test_mse:.1f}x below persistence)",
        metrics={
            "test_mse": final_test_mse,
            "initial_test_mse": initial_test_mse,
            "persistence_mse": persistence_mse,
            "clipped_fraction": clipped / steps,
        },
    )
