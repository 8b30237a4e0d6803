"""The factors' pass on CUDA (:mod:`numadam.core.factors`), on any CUDA array (CuPy, numba-cuda, torch).

Per matrix of a parameter (its last two dimensions; a batch of them one after
the other): one thread per row sums that row's squares of the effective
gradient and one thread per column that column's (in float64, in order: the
sums are the same on any GPU), each stored as a mean in the state's dtype;
one thread per factor element then moves it by torch's lerp; one thread takes
the row mean; one thread per row and per column its scale. A parameter of fewer than two dimensions moves its full second
moment toward the squares, one thread per element. The element arithmetic is
the CPU pass's (:mod:`numadam.targets.factor_elements`) and the rules'
(:func:`numadam.families._common.torch_lerp`).
"""

import itertools

import numpy as np
from numba import cuda, float64

from ...core import factors
from ...families._common import torch_lerp
from ..factor_elements import column_scale, effective, row_scale

THREADS = 128


@cuda.jit
def _row_means(grad, grad_scale, clip, means):
    """``means[r, 0]``: the mean of row r's squares (``means`` shaped like the row factor). Over the
    transposes of the gradient and of the column factor, the columns' means."""
    r = cuda.grid(1)
    if r < grad.shape[0]:
        total = float64(0.0)
        for c in range(grad.shape[1]):
            wide = float64(effective(grad[r, c], grad_scale, clip))
            total += wide * wide
        means[r, 0] = total / grad.shape[1]


@cuda.jit
def _squares(grad, grad_scale, clip, out):
    """``out[i]``: the square of element i of a flat gradient, in the state's dtype."""
    i = cuda.grid(1)
    if i < grad.shape[0]:
        value = effective(grad[i], grad_scale, clip)
        out[i] = value * value


@cuda.jit
def _lerp(state, ends, weight, one_minus_weight):
    """``state`` moved toward ``ends`` (both 2-D, one shape) by torch's lerp, one thread per element."""
    i = cuda.grid(1)
    if i < state.size:
        row, column = i // state.shape[1], i % state.shape[1]
        state[row, column] = torch_lerp(state[row, column], ends[row, column], weight, one_minus_weight)


@cuda.jit
def _floored_mean(row_var, floor, mean):
    """``mean[0, 0]``: the mean of the row factor over the rows, at least ``floor`` (NaN stays NaN)."""
    if cuda.grid(1) == 0:
        total = float64(0.0)
        for r in range(row_var.shape[0]):
            total += float64(row_var[r, 0])
        mean[0, 0] = total / row_var.shape[0]
        if mean[0, 0] < floor:
            mean[0, 0] = floor


@cuda.jit
def _row_scales(row_var, mean, scales):
    """``scales[r, 0]``: row r's scale (:func:`~numadam.targets.factor_elements.row_scale`)."""
    r = cuda.grid(1)
    if r < row_var.shape[0]:
        scales[r, 0] = row_scale(mean[0, 0], row_var[r, 0])


@cuda.jit
def _column_scales(col_var, one, scales):
    """``scales[0, c]``: column c's scale (:func:`~numadam.targets.factor_elements.column_scale`;
    ``one``: 1 in the factors' dtype)."""
    c = cuda.grid(1)
    if c < col_var.shape[1]:
        scales[0, c] = column_scale(one, col_var[0, c])


def _grid(kernel, threads):
    return kernel[max(1, -(-threads // THREADS)), THREADS]


def update_factors(backend, grad, row_var, col_var, row_mean, row_scales, col_scales, weight, floor, grad_scale,
                   clip_value):
    """One parameter's factors moved toward its gradient (see :func:`numadam.core.factors.update_factors`),
    in place, by kernels on the current stream. ``weight`` and ``floor`` are of the state's dtype."""
    real = np.dtype(row_var.dtype).type
    scale, clip = real(grad_scale), real(np.inf if clip_value is None else clip_value)
    one_minus = real(1) - weight
    if not factors.factored(grad.shape):
        flat_grad, flat_var = grad.reshape(-1), row_var.reshape(-1)
        squares = backend.zeros(max(1, flat_var.size), row_var.dtype)
        _grid(_squares, flat_grad.size)(flat_grad, scale, clip, squares)
        _grid(_lerp, flat_var.size)(flat_var.reshape(1, -1), squares.reshape(1, -1), weight, one_minus)
        return
    rows, columns = grad.shape[-2:]
    row_ends = backend.zeros(rows, row_var.dtype).reshape(rows, 1)
    column_ends = backend.zeros(columns, col_var.dtype).reshape(1, columns)
    for batch in itertools.product(*map(range, grad.shape[:-2])):
        matrix, r, c, m = grad[batch], row_var[batch], col_var[batch], row_mean[batch]
        a, b = row_scales[batch], col_scales[batch]
        _grid(_row_means, rows)(matrix, scale, clip, row_ends)
        _grid(_row_means, columns)(matrix.T, scale, clip, column_ends.T)
        _grid(_lerp, rows)(r, row_ends, weight, one_minus)
        _grid(_lerp, columns)(c, column_ends, weight, one_minus)
        _grid(_floored_mean, 1)(r, floor, m)
        _grid(_row_scales, rows)(r, m, a)
        _grid(_column_scales, columns)(c, real(1), b)
