r"""Gradient clipping's arithmetic, each formula written once.

Three formulas clip a gradient :math:`g` with a limit :math:`c \ge 0`:

* the clamp of one value, :math:`\min(\max(g_i, -c), c)` (:func:`clamped`; over
  a whole array, :func:`clamp_in_place`);
* the scale of a norm, :math:`\min(1, c/N)` with :math:`N = a\sqrt{s}` in
  float64 (:func:`norm_and_scale`), for one array's norm or the global norm
  of many;
* whether a float64 sum of squares is already the norm's :math:`s` (with
  :math:`a = 1`), or must be summed again after dividing by the largest
  magnitude (:func:`sum_is_final`).

Who calls them:

* :mod:`numadam.clipping` (``clip_by_value``, ``clip_by_norm``,
  ``clip_by_global_norm``), on NumPy and CuPy arrays;
* the optimizers' ``clip_global_norm``: :func:`numadam.core.pipeline.skip_or_scale`
  on the host, and the same decision taken on the device by the CPU kernel
  ``reduce_then_update_serial`` (:mod:`numadam.targets.cpu.kernels`) and the
  CUDA kernel ``finalize`` (:mod:`numadam.targets.cuda.kernels`);
* the optimizers' ``clip_value``: the kernels' generated body
  (:mod:`numadam.targets.body`), the factored families' passes
  (:func:`numadam.targets.factor_elements.effective`) and their reference
  over arrays (:func:`numadam.core.factors.effective_gradient`);
* :func:`numadam.minimize`'s ``clip`` (:mod:`numadam.solver.rules`), in the
  Python loop and in the compiled solve alike.

Each scalar function is ``@njit(inline="always")``: Numba code (the CPU and
CUDA kernels, the compiled solve) inlines it, and Python code calls its
``py_func``, the same source run by the interpreter (nothing to compile, no
dispatch). Python's floats and Numba's float64 are IEEE double precision, and
square root and division are correctly rounded in both, so the same
operations in the same order give the same bits on every path.
"""

import math

from numba import njit

#: A float64 sum of squares at least this large lost nothing to underflow that matters.
SAFE_SUM_OF_SQUARES = 1e-200


@njit(inline="always")
def clamped(value, limit):
    r""":math:`\min(\max(g, -c), c)` of one value :math:`g` (``value``) and :math:`c \ge 0` (``limit``,
    in ``value``'s type), as two compares and no arithmetic: NaN stays NaN, :math:`\pm\infty` becomes
    :math:`\pm c`, and nothing is rounded. Branches a loop vectorizes as selects."""
    if value > limit:
        return limit
    if value < -limit:
        return -limit
    return value


def clamp_in_place(values, limit):
    r""":func:`clamped` applied to every element of a real NumPy or CuPy array, in place; returns
    ``values``.

    The array library's own ``clip`` does it (one vectorized pass, on the array's device): it is
    the same clamp, NaN kept and infinities to :math:`\pm c`, and a clamp rounds nothing, so it
    gives the scalar function's numbers (``tests/test_clipping.py`` compares them). ``limit`` is
    rounded to the array's dtype, as the kernels round theirs.
    """
    return values.clip(-limit, limit, out=values)


@njit(inline="always")
def norm_and_scale(limit, largest, scaled_sum):
    r"""``(N, scale)``: the L2 norm :math:`N = a\sqrt{s}` and the factor :math:`\min(1, c/N)` that
    brings it down to :math:`c`, in float64.

    ``limit`` is :math:`c \ge 0`; the norm is given as ``largest`` :math:`a` (the largest
    magnitude, by which the squares were divided) and ``scaled_sum`` :math:`s` (the sum of
    :math:`(g_i/a)^2`), or as :math:`a = 1` and :math:`s` the plain sum of squares. In this
    order, every operation rounded once:

    .. math::

        r = \sqrt{s}, \qquad N = a \cdot r, \qquad
        \text{scale} = \begin{cases} (c / a) / r & \text{if } N > c \\ 1 & \text{otherwise.} \end{cases}

    With :math:`a = 1` that is :math:`N = \sqrt{s}` and :math:`c/\sqrt{s}` bit for bit (a product
    or quotient by 1 is exact). No epsilon is added to :math:`N`; a NaN norm scales by 1 (the
    caller decides what a non-finite gradient does), an infinite one by 0; :math:`N \le c`
    divides nothing, so :math:`a = 0` (a zero gradient) is safe.
    """
    root = math.sqrt(scaled_sum)
    norm = largest * root
    if norm > limit:
        return norm, (limit / largest) / root
    return norm, 1.0


@njit(inline="always")
def sum_is_final(total, narrow):
    r"""Whether ``total``, the float64 sum of an array's squares, is the norm's :math:`s` with
    :math:`a = 1` (see :func:`norm_and_scale`): it is finite, and either the array's dtype is
    ``narrow`` (float16 or float32, whose squares can neither overflow nor underflow in float64)
    or it is at least :data:`SAFE_SUM_OF_SQUARES`. Otherwise the squares are summed again after
    dividing by the largest magnitude."""
    return math.isfinite(total) and (narrow or total >= SAFE_SUM_OF_SQUARES)
