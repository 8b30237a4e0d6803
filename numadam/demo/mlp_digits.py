r"""Example 2: a 64-64-10 MLP classifying the UCI handwritten digits with Adam.

The classic "784-64-10" MLP, scaled to 8x8 images: 64 inputs (pixels / 16), one
hidden layer of 64 ReLU units, 10 softmax outputs, mean cross-entropy loss,
trained with ``numadam.Adam(lr=1e-3)`` on shuffled mini-batches of 128 in float32.
The 1797 digits ship with numadam (``data/digits.npz``, CC BY 4.0; see
``data/README.md``) and are split once, with a fixed seed, into 75 % training and
25 % test images.

Data: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits",
UCI Machine Learning Repository, 1998, https://doi.org/10.24432/C50P49.
"""

import time
from importlib import resources

import numpy as np

import numadam

from . import nn
from .report import ExampleResult, Table, report_points
from .storage import Storage

TITLE = "MLP 64-64-10 on UCI digits"


def load_digits():
    """Return ``(images, labels)``: uint8 arrays of shape ``(1797, 8, 8)`` and ``(1797,)``.

    >>> images, labels = load_digits()
    >>> images.shape, int(images.max()), sorted(set(labels.tolist())) == list(range(10))
    ((1797, 8, 8), 16, True)
    """
    with resources.files(__package__).joinpath("data", "digits.npz").open("rb") as file, np.load(file) as data:
        return data["images"], data["labels"]


def split(images, labels, rng, test_fraction=0.25):
    """Shuffle with ``rng`` and return float32 ``(x_train, y_train, x_test, y_test)``, pixels in [0, 1]."""
    order = rng.permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    x = images.reshape(len(images), -1).astype(np.float32) / 16
    y = labels.astype(np.intp)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def init_params(rng, sizes=(64, 64, 10)):
    """He-initialized (He et al. 2015) float32 weights and zero biases for the dense layers ``sizes``.

    >>> {name: value.shape for name, value in init_params(np.random.default_rng(0)).items()}
    {'W1': (64, 64), 'b1': (64,), 'W2': (64, 10), 'b2': (10,)}
    """
    params = {}
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{k}"] = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)).astype(np.float32)
        params[f"b{k}"] = np.zeros(fan_out, dtype=np.float32)
    return params


def logits_of(params, x):
    """Forward pass; return the logits and the caches for :func:`backward`."""
    hidden, dense1 = nn.dense_forward(x, params["W1"], params["b1"])
    activation, relu = nn.relu_forward(hidden)
    logits, dense2 = nn.dense_forward(activation, params["W2"], params["b2"])
    return logits, (dense1, relu, dense2)


def backward(dlogits, caches, grads):
    """Write the parameter gradients into the arrays of ``grads``."""
    dense1, relu, dense2 = caches
    dactivation, grads["W2"][...], grads["b2"][...] = nn.dense_backward(dlogits, dense2)
    _, grads["W1"][...], grads["b1"][...] = nn.dense_backward(nn.relu_backward(dactivation, relu), dense1)


def evaluate(params, x, y):
    """Return ``(mean cross-entropy, accuracy)`` on ``x, y``."""
    logits, _ = logits_of(params, x)
    loss, _ = nn.softmax_cross_entropy(logits, y)
    return loss, float(np.mean(logits.argmax(axis=1) == y))


def run(quick=False, seed=0, epochs=None, lr=1e-3, batch_size=128, out=print, storage=None):
    """Train the MLP, printing a loss table; return an :class:`ExampleResult`.

    ``epochs`` defaults to 100, or 15 with ``quick``. The curves are the mean
    training loss of each epoch and the test loss after it; ``metrics`` holds
    ``train_accuracy``, ``test_accuracy`` and ``test_loss`` after training.
    ``storage`` (a :class:`~numadam.demo.storage.Storage`) sets the precision of the
    parameters and of Adam's state (float32 by default).
    """
    epochs = epochs if epochs is not None else (15 if quick else 100)
    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = split(*load_digits(), rng)
    params = init_params(rng)
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    opt = Storage.of(storage).optimizer(params, lr)
    out(f"{len(y_train)} training and {len(y_test)} test images; Adam lr={lr:g}, batch {batch_size}, {epochs} epochs")
    table = Table(out, [("epoch", "d"), ("train loss", ".4f"), ("test loss", ".4f"), ("test acc", ".2%")])
    shown = set(report_points(epochs))
    epoch_losses, test_losses = [], []
    start = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(y_train))
        batch_losses = []
        for first in range(0, len(order), batch_size):
            batch = order[first : first + batch_size]
            logits, caches = logits_of(params, x_train[batch])
            loss, dlogits = nn.softmax_cross_entropy(logits, y_train[batch])
            backward(dlogits, caches, grads)
            opt.step(grads)
            batch_losses.append(loss)
        epoch_losses.append(float(np.mean(batch_losses)))
        test_loss, test_accuracy = evaluate(params, x_test, y_test)
        test_losses.append(test_loss)
        if epoch in shown:
            table.row(epoch + 1, epoch_losses[-1], test_loss, test_accuracy)
    seconds = time.perf_counter() - start
    _, train_accuracy = evaluate(params, x_train, y_train)
    out(
        f"accuracy: train {train_accuracy:.2%}, test {test_accuracy:.2%} (chance 10%) "
        f"after {opt.step_count} Adam steps"
    )
    return ExampleResult(
        title=TITLE,
        xlabel="epoch",
        ylabel="cross-entropy",
        curves=[
            ("training (epoch mean)", np.arange(1, epochs + 1), np.array(epoch_losses)),
            ("test", np.arange(1, epochs + 1), np.array(test_losses)),
        ],
        seconds=seconds,
        summary=f"test accuracy {test_accuracy:.2%} (train {train_accuracy:.2%})",
        metrics={"train_accuracy": train_accuracy, "test_accuracy": test_accuracy, "test_loss": test_loss},
    )
