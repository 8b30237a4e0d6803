r"""Factored state: a second moment kept as the row and column means of the last two dimensions.

A parameter of shape :math:`(\dots, R, C)` keeps (Shazeer & Stern 2018)

- ``row_var`` of shape :math:`(\dots, R, 1)`: moving averages of each row's mean of :math:`g^2`;
- ``col_var`` of shape :math:`(\dots, 1, C)`: the same of each column's;
- ``row_mean`` of shape :math:`(\dots, 1, 1)` (derived, not saved): the mean of ``row_var``
  over the rows, at least :math:`\epsilon_1`,

so that :math:`\hat v_{rc} = r_r\, c_c / \bar r` stands for the full second moment
with :math:`R + C` numbers instead of :math:`R C`. A parameter of fewer than two
dimensions keeps its full second moment in ``row_var`` (its own shape), and
``col_var`` and ``row_mean`` hold one 1 each, so that the same
:math:`r\,c/\bar r` is the second moment itself, exactly.

Two more derived factors hold what the rule multiplies a matrix's gradient by,
so that it takes no division or root per element (:mod:`numadam.families.adafactor`):

- ``row_scale`` of the row factor's shape: :math:`a_r = \sqrt{\bar r / r_r}`;
- ``col_scale`` of the column factor's shape: :math:`b_c = 1/\sqrt{c_c}`;

a parameter of fewer than two dimensions holds one 0 in each (it does not read them).

The rule reads each factor as if it had the parameter's shape: its values
repeated, with stride 0, along the dimensions it does not keep
(:func:`broadcast_strides`). The factors' pass (:func:`update_factors`) runs
before the rule, per parameter: one pass over the gradient that sums the
squares of each row and each column (in float64; :func:`sums_of_squares`),
then the moving averages, the row means and the scales, on arrays of
:math:`R + C` numbers.

The norms from the factors' pass
--------------------------------
Adafactor's step size needs :math:`\|p\|^2` and :math:`\|u\|^2` of each
parameter, with the direction :math:`u_{rc} = \min(a_r b_c, \kappa)\, g_{rc}`
(:math:`\kappa = 1/\sqrt{\epsilon_1^2}`, the cap). Where no product of scales
reaches the cap, :math:`a_r^2 b_c^2 = \bar r / (r_r c_c)` and

.. math::

    \|u\|^2 = \bar r \sum_c \frac{1}{c_c} \sum_r \frac{g_{rc}^2}{r_r},

whose inner sums need only the row factor :math:`r_r`, known as soon as its
row's squares are summed. So the CPU's factors' pass
(:func:`numadam.targets.cpu.factor_sums.move_factors`) reads the parameter
with the gradient (each block of rows' parameter, then its gradient) and sums,
in the same pass, :math:`\|p\|^2` and each
column's :math:`W_c = \sum_r g_{rc}^2 / r_r` (for a matrix it walks
transposed, each row's over the column factors: the identity is symmetric);
a vector's :math:`\|u\|^2` is summed element by element as the rule forms
:math:`u`. The step then needs no norms pass: two passes over memory instead
of three. The formula is exact in real numbers; in floating point it differs
from the sum of the rounded :math:`u_{rc}^2` by a few units in the last place
of :math:`u`'s dtype, relative (:math:`a_r` and :math:`b_c` are rounded, the
formula's quotients are not). Where some :math:`a_r b_c` exceeds the cap (a
row or a column of zeros, gradients near :math:`\epsilon_1`), the sum is not
finite, the rows are wider than the pass keeps in its cache, or the
parameter is stored in another dtype than its factors (16-bit parameters
without a float32 master copy),
the norms pass sums :math:`u` as the rule forms it, as before.
"""

import math

import numpy as np

from .clip_math import clamp_in_place

#: What each factored state kind keeps of the last two dimensions.
FACTORS = ("rows", "columns", "means", "row_scales", "column_scales")


def check_real_parameter(title, dtype, path):
    """Refuse a complex parameter of a family with factored state (torch's Adafactor refuses them too)."""
    if dtype.kind == "c":
        raise TypeError(f"{title} takes real parameters: its factors are means of squares over rows and "
                        f"columns; {path} is {dtype} (step its real and imaginary parts as two real arrays)")


def factored(shape):
    """Whether a parameter of ``shape`` keeps row and column factors (two or more dimensions)."""
    return len(shape) >= 2


def factor_shape(factor, shape):
    """The shape of a parameter's ``factor`` state (see the module docstring)."""
    shape = tuple(shape)
    if not factored(shape):
        return tuple(shape) if factor == "rows" else ()
    if factor in ("rows", "row_scales"):
        return tuple(shape[:-1]) + (1,)
    if factor in ("columns", "column_scales"):
        return tuple(shape[:-2]) + (1, shape[-1])
    return tuple(shape[:-2]) + (1, 1)


def with_factored(algorithm, row, keeps_factors):
    """A parameter's scalar ``row`` (floats) with its field ``factored``: 1 where it keeps row and
    column factors (``keeps_factors``, :func:`factored` of its shape), so that the rule takes its
    direction from their scales (one value for the whole parameter: the kernels' loops are compiled
    for each side)."""
    field = algorithm.Scalars._fields.index("factored")
    row = tuple(row)
    return row[:field] + (1.0 if keeps_factors else 0.0,) + row[field + 1:]


def initial_value(factor, shape):
    """A factor's value before the first step: 0, but 1 for the columns and the row mean of a
    parameter of fewer than two dimensions (its full second moment is ``row_var``)."""
    if factor in ("row_scales", "column_scales"):
        return 0.0
    return 0.0 if factor == "rows" or (factor == "columns" and factored(shape)) else 1.0


def factor_size(factor, shape):
    return math.prod(factor_shape(factor, shape))


def broadcast_strides(factor, shape, itemsize):
    """The strides (bytes) that read a C-ordered ``factor`` state as if it had the parameter's
    ``shape``: 0 along each dimension it keeps only once."""
    own = factor_shape(factor, shape)
    padded = (1,) * (len(shape) - len(own)) + tuple(own)
    strides, step = [], itemsize
    for length in reversed(padded):
        strides.append(step)
        step *= length
    strides.reverse()
    return tuple(0 if kept == 1 and full != 1 else stride for kept, full, stride in zip(padded, shape, strides))


def weights(algorithm, row, real):
    """``(weight, floor)`` of :attr:`~numadam.core.algorithm.Algorithm.factors` from a parameter's
    scalar row ``row`` (floats), rounded to ``real`` as the kernels round them."""
    return pass_constants(algorithm, row, real)[:2]


def pass_constants(algorithm, row, real):
    """``(weight, floor, estimate_floor)``: :func:`weights`, and the floor of the direction's estimate
    (:attr:`~numadam.core.algorithm.Algorithm.direction_floor`; ``None`` where the family has none)
    with which the factors' pass sums the norms (see the module docstring)."""
    narrowed = algorithm.Scalars(*np.array(row[:len(algorithm.Scalars._fields)], real))  # each rounded once
    weight, floor = algorithm.factors(narrowed)
    estimate = None if algorithm.direction_floor is None else real.type(algorithm.direction_floor(narrowed))
    return real.type(weight), real.type(floor), estimate


def effective_gradient(xp, grad, real, grad_scale, clip_value):
    """The gradient the rule steps with (scaled by ``grad_scale``, clipped to ``clip_value`` where
    it is not None: :func:`~numadam.core.clip_math.clamp_in_place`), in dtype ``real``, a new array."""
    g = grad.astype(real)  # a copy, which the clamp may write
    if grad_scale != 1.0:
        g = g * real.type(grad_scale)
    if clip_value is not None:
        clamp_in_place(g, real.type(clip_value))
    return g


def sums_of_squares(xp, grad, real, grad_scale, clip_value):
    """``(row_sums, column_sums)`` of the squares of the effective gradient over the last and the
    next-to-last dimension, in float64, with any array module ``xp`` (the reference pass)."""
    g = effective_gradient(xp, grad, real, grad_scale, clip_value).astype(np.float64)
    squares = g * g
    return squares.sum(axis=-1), squares.sum(axis=-2)


def lerp(xp, start, end, weight, one_minus_weight):
    """``torch.lerp(start, end, weight)`` as torch evaluates it, elementwise (see
    :func:`numadam.core.element_math.torch_lerp`)."""
    return xp.where(weight < 0.5, start + weight * (end - start), end - (end - start) * one_minus_weight)


def at_least(xp, values, floor):
    """``values`` clamped below at ``floor`` (NaN stays NaN), as ``torch.clamp_min``."""
    return xp.where(values < floor, floor, values)


def update_factors(xp, shape, row_var, col_var, row_mean, row_scale, col_scale, weight, eps1, sums):
    r"""Move the factors of one parameter of ``shape`` toward its gradient's squares, in place.

    ``row_var``, ``col_var``, ``row_mean``, ``row_scale``, ``col_scale`` are its
    factor states (their own shapes); ``weight`` is :math:`\beta_2`'s complement :math:`t^{c}` (``beta2_decay``
    :math:`c`) of this step, in the state's dtype; ``eps1`` the floor of the row mean. ``sums`` is
    ``(row_sums, column_sums)`` of the effective gradient's squares (float64),
    or, for a parameter of fewer than two dimensions, the squares themselves
    in the state's dtype.
    """
    real = row_var.dtype.type
    one_minus = real(1) - weight
    if not factored(shape):
        row_var[...] = lerp(xp, row_var, sums, weight, one_minus)
        return
    row_sums, column_sums = sums
    rows, columns = shape[-2], shape[-1]
    row_var[...] = lerp(xp, row_var, (row_sums / columns).astype(real)[..., None], weight, one_minus)
    col_var[...] = lerp(xp, col_var, (column_sums / rows).astype(real)[..., None, :], weight, one_minus)
    means = (row_var.astype(np.float64).sum(axis=-2, keepdims=True) / rows).astype(real)
    row_mean[...] = at_least(xp, means, eps1)
    scales(xp, row_var, col_var, row_mean, row_scale, col_scale)


def scales(xp, row_var, col_var, row_mean, row_scale, col_scale):
    """The scales of a matrix's factors (see the module docstring), in their dtype, in place:
    :func:`numadam.targets.factor_elements.row_scale` and ``column_scale`` over arrays (each a
    correctly rounded division and root, so the same numbers as the compiled ones)."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a row or column of zeros: an infinite scale
        row_scale[...] = xp.sqrt(row_mean / row_var)
        col_scale[...] = row_var.dtype.type(1) / xp.sqrt(col_var)


def squares(xp, grad, real, grad_scale, clip_value, row_and_column_squares=None):
    """What :func:`update_factors` takes of a gradient: its row and column sums of squares (by
    ``row_and_column_squares(grad, grad_scale, clip_value)`` where given and the gradient holds
    ``real`` numbers, else :func:`sums_of_squares`), or for fewer than two dimensions its squares."""
    if not factored(grad.shape):
        g = effective_gradient(xp, grad, real, grad_scale, clip_value)
        return g * g
    if row_and_column_squares is not None and grad.dtype == real:
        return row_and_column_squares(grad, grad_scale, clip_value)
    return sums_of_squares(xp, grad, real, grad_scale, clip_value)
