"""The demo's NumPy backward passes against central finite differences."""

import numpy as np
import pytest

from numadam.demo import nn


def numerical_gradient(loss, array, step=1e-6):
    """Central differences of the scalar ``loss()`` with respect to every entry of ``array``."""
    gradient = np.empty_like(array)
    flat = array.reshape(-1)
    for k in range(flat.size):
        saved = flat[k]
        flat[k] = saved + step
        up = loss()
        flat[k] = saved - step
        down = loss()
        flat[k] = saved
        gradient.reshape(-1)[k] = (up - down) / (2 * step)
    return gradient


def assert_gradients_match(analytic, loss, arrays):
    for name, array in arrays.items():
        numeric = numerical_gradient(loss, array)
        scale = max(np.abs(numeric).max(), 1e-3)
        assert np.abs(analytic[name] - numeric).max() < 1e-6 * scale, name


def test_dense_relu_softmax_cross_entropy_gradients(rng):
    x = rng.standard_normal((5, 4))
    W1, b1 = rng.standard_normal((4, 6)), rng.standard_normal(6)
    W2, b2 = rng.standard_normal((6, 3)), rng.standard_normal(3)
    labels = np.array([0, 2, 1, 2, 0])

    def forward():
        z1, dense1 = nn.dense_forward(x, W1, b1)
        a1, relu = nn.relu_forward(z1)
        logits, dense2 = nn.dense_forward(a1, W2, b2)
        loss, dlogits = nn.softmax_cross_entropy(logits, labels)
        return loss, dlogits, dense1, relu, dense2

    loss, dlogits, dense1, relu, dense2 = forward()
    da1, dW2, db2 = nn.dense_backward(dlogits, dense2)
    dx, dW1, db1 = nn.dense_backward(nn.relu_backward(da1, relu), dense1)
    assert np.all(relu != 0), "a pre-activation sits on the ReLU kink; pick another seed"
    assert_gradients_match(
        {"x": dx, "W1": dW1, "b1": db1, "W2": dW2, "b2": db2},
        lambda: forward()[0],
        {"x": x, "W1": W1, "b1": b1, "W2": W2, "b2": b2},
    )


def test_softmax_cross_entropy_value_and_stability():
    logits = np.array([[1000.0, 0.0], [0.0, 0.0]])
    loss, dlogits = nn.softmax_cross_entropy(logits, np.array([0, 1]))
    assert loss == pytest.approx(np.log(2) / 2)
    np.testing.assert_allclose(dlogits, [[0.0, 0.0], [0.25, -0.25]], atol=1e-12)


def test_lstm_with_dense_readout_gradients(rng):
    steps, batch, inputs, hidden = 4, 3, 2, 5
    arrays = {
        "xs": rng.standard_normal((steps, batch, inputs)),
        "h0": rng.standard_normal((batch, hidden)),
        "c0": rng.standard_normal((batch, hidden)),
        "Wx": 0.5 * rng.standard_normal((inputs, 4 * hidden)),
        "Wh": 0.5 * rng.standard_normal((hidden, 4 * hidden)),
        "b": 0.5 * rng.standard_normal(4 * hidden),
        "Wy": rng.standard_normal((hidden, 1)),
        "by": rng.standard_normal(1),
    }
    target = rng.standard_normal((steps, batch, 1))
    a = arrays

    def forward():
        hs, lstm = nn.lstm_forward(a["xs"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"])
        prediction, readout = nn.dense_forward(hs, a["Wy"], a["by"])
        loss, dprediction = nn.mean_squared_error(prediction, target)
        return loss, dprediction, lstm, readout

    loss, dprediction, lstm, readout = forward()
    dhs, dWy, dby = nn.dense_backward(dprediction, readout)
    dxs, dh0, dc0, dWx, dWh, db = nn.lstm_backward(dhs, lstm)
    assert_gradients_match(
        {"xs": dxs, "h0": dh0, "c0": dc0, "Wx": dWx, "Wh": dWh, "b": db, "Wy": dWy, "by": dby},
        lambda: forward()[0],
        arrays,
    )


def test_lstm_forward_matches_the_cell_equations_for_one_step(rng):
    x = rng.standard_normal((1, 2, 3))
    h0, c0 = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    Wx, Wh, b = rng.standard_normal((3, 16)), rng.standard_normal((4, 16)), rng.standard_normal(16)
    a = x[0] @ Wx + h0 @ Wh + b
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    i, f, g, o = sigmoid(a[:, :4]), sigmoid(a[:, 4:8]), np.tanh(a[:, 8:12]), sigmoid(a[:, 12:])
    hs, _ = nn.lstm_forward(x, h0, c0, Wx, Wh, b)
    np.testing.assert_allclose(hs[0], o * np.tanh(f * c0 + i * g), rtol=1e-12)
