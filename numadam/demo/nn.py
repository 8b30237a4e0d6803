r"""Forward and backward passes, in NumPy, for the demo's networks.

Each layer is a pair of functions: ``*_forward`` returns the output and a cache of
what the backward pass needs; ``*_backward`` takes the gradient of a scalar loss
with respect to that output and returns the gradients with respect to the inputs
and parameters. Shapes follow the row convention: a batch of ``N`` samples is an
``(N, features)`` array and a dense layer computes :math:`y = x W + b`.

The LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000)
runs over a ``(T, N, D)`` sequence and is differentiated by backpropagation through
time (Werbos 1990).

Examples
--------
>>> import numpy as np
>>> x = np.array([[1.0, -2.0]]); W = np.array([[1.0], [1.0]]); b = np.array([0.5])
>>> y, cache = dense_forward(x, W, b)
>>> y
array([[-0.5]])
>>> dx, dW, db = dense_backward(np.ones_like(y), cache)
>>> dW.ravel().tolist(), db.tolist()
([1.0, -2.0], [1.0])
"""

import numpy as np


def dense_forward(x, W, b):
    """:math:`y = x W + b` for ``x`` of shape ``(..., D)``, ``W`` of shape ``(D, H)``."""
    return x @ W + b, (x, W)


def dense_backward(dy, cache):
    r"""Return ``(dx, dW, db)``: :math:`dx = dy\, W^T`, :math:`dW = x^T dy`, :math:`db = \sum dy`.

    Leading dimensions of ``x`` (batch, time) are summed over for ``dW`` and ``db``.
    """
    x, W = cache
    features = x.shape[-1]
    dW = x.reshape(-1, features).T @ dy.reshape(-1, dy.shape[-1])
    return dy @ W.T, dW, dy.reshape(-1, dy.shape[-1]).sum(axis=0)


def relu_forward(x):
    r""":math:`\max(x, 0)`."""
    return np.maximum(x, 0), x


def relu_backward(dy, cache):
    """Pass ``dy`` where the input was positive, zero elsewhere."""
    return dy * (cache > 0)


def softmax_cross_entropy(logits, labels):
    r"""Mean cross-entropy of integer ``labels`` under softmax ``logits``; return ``(loss, dlogits)``.

    .. math::

        L = -\frac{1}{N} \sum_n \log \operatorname{softmax}(z_n)_{y_n}, \qquad
        \frac{\partial L}{\partial z_n} = \frac{\operatorname{softmax}(z_n) - e_{y_n}}{N}

    The maximum logit is subtracted first, so large logits do not overflow.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    loss = -log_probs[rows, labels].mean()
    dlogits = np.exp(log_probs)
    dlogits[rows, labels] -= 1
    dlogits /= len(labels)
    return float(loss), dlogits


def mean_squared_error(prediction, target):
    r""":math:`L = \operatorname{mean}((p - t)^2)`; return ``(loss, dprediction)``."""
    residual = prediction - target
    return float(np.mean(residual**2)), (2 / residual.size) * residual


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def lstm_forward(xs, h0, c0, Wx, Wh, b):
    r"""Run an LSTM over ``xs`` of shape ``(T, N, D)``; return ``(hs, cache)`` with ``hs`` ``(T, N, H)``.

    The four gates are stacked in the columns of ``Wx`` ``(D, 4H)``, ``Wh`` ``(H, 4H)``
    and ``b`` ``(4H,)`` in the order input, forget, candidate, output:

    .. math::

        [a_i, a_f, a_g, a_o] &= x_t W_x + h_{t-1} W_h + b \\
        i = \sigma(a_i),\ f &= \sigma(a_f),\ g = \tanh(a_g),\ o = \sigma(a_o) \\
        c_t = f \odot c_{t-1} + i \odot g, &\qquad h_t = o \odot \tanh(c_t)
    """
    steps, batch, _ = xs.shape
    hidden = h0.shape[1]
    hs = np.empty((steps, batch, hidden), dtype=np.result_type(xs, Wx))
    cs = np.empty_like(hs)
    gates = np.empty((steps, batch, 4 * hidden), dtype=hs.dtype)
    input_part = xs @ Wx + b
    h, c = h0, c0
    for t in range(steps):
        a = input_part[t] + h @ Wh
        gates[t, :, : 2 * hidden] = _sigmoid(a[:, : 2 * hidden])
        gates[t, :, 2 * hidden : 3 * hidden] = np.tanh(a[:, 2 * hidden : 3 * hidden])
        gates[t, :, 3 * hidden :] = _sigmoid(a[:, 3 * hidden :])
        i, f, g, o = np.split(gates[t], 4, axis=1)
        c = f * c + i * g
        h = o * np.tanh(c)
        cs[t] = c
        hs[t] = h
    return hs, (xs, h0, c0, Wx, Wh, gates, cs, hs)


def lstm_backward(dhs, cache):
    r"""Backpropagation through time; return ``(dxs, dh0, dc0, dWx, dWh, db)``.

    ``dhs`` ``(T, N, H)`` is the gradient of the loss with respect to every hidden
    state :math:`h_t`. Going back from :math:`t = T`, the gradients reaching
    :math:`h_{t-1}` and :math:`c_{t-1}` through the recurrence are added to the
    direct ones:

    .. math::

        \delta c_t &\mathrel{+}= \delta h_t \odot o \odot (1 - \tanh^2 c_t), \qquad
        \delta c_{t-1} = \delta c_t \odot f \\
        \delta a &= [\delta c_t g\, i(1-i),\ \delta c_t c_{t-1} f(1-f),\
                    \delta c_t i (1-g^2),\ \delta h_t \tanh(c_t)\, o(1-o)] \\
        \delta h_{t-1} &\mathrel{+}= \delta a\, W_h^T
    """
    xs, h0, c0, Wx, Wh, gates, cs, hs = cache
    steps = xs.shape[0]
    dxs = np.empty_like(xs)
    dWx = np.zeros_like(Wx)
    dWh = np.zeros_like(Wh)
    db = np.zeros(Wx.shape[1], dtype=Wx.dtype)
    dh_next = np.zeros_like(h0)
    dc_next = np.zeros_like(c0)
    for t in reversed(range(steps)):
        i, f, g, o = np.split(gates[t], 4, axis=1)
        c_prev = cs[t - 1] if t > 0 else c0
        h_prev = hs[t - 1] if t > 0 else h0
        tanh_c = np.tanh(cs[t])
        dh = dhs[t] + dh_next
        dc = dc_next + dh * o * (1 - tanh_c**2)
        da = np.concatenate(
            [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2), dh * tanh_c * o * (1 - o)],
            axis=1,
        )
        dxs[t] = da @ Wx.T
        dWx += xs[t].T @ da
        dWh += h_prev.T @ da
        db += da.sum(axis=0)
        dh_next = da @ Wh.T
        dc_next = dc * f
    return dxs, dh_next, dc_next, dWx, dWh, db
