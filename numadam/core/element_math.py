r"""Element arithmetic that the families' rules and the targets' kernels both compile in.

Each function is one element's operation, written once, that Numba inlines
into every loop that calls it: torch's ``lerp``, a sign, a squared magnitude,
a step's power of a decay rate, and a quotient by a step's constant. They live
in ``core`` so that the rules (``numadam/families``) and the kernels
(``numadam/targets``) import them from below, neither from the other.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload


@njit(inline="always")
def torch_lerp(start, end, weight, one_minus_weight):
    r"""``torch.lerp(start, end, weight)`` as torch evaluates it.

    :math:`s + w(e - s)` for :math:`w < 1/2`, else :math:`e - (e - s)(1 - w)`.
    """
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * one_minus_weight


@njit(inline="always")
def sign(value, one):
    """-1, 0 or 1 as ``numpy.sign`` (NaN stays NaN); ``one`` is 1 in ``value``'s dtype
    (a literal would promote float32 arithmetic to float64)."""
    if value > 0:
        return one
    if value < 0:
        return -one
    return value - value


@njit(inline="always")
def square(x):
    """:math:`|x|^2`: ``x * x`` for a real number (the same bits), :math:`(\\operatorname{Re} x)^2 +
    (\\operatorname{Im} x)^2` for a complex one (``complex_mode="magnitude"``)."""
    return (x * x.conjugate()).real


#: Past ``step * (1 - beta) > ZERO_POWER_BEYOND``, :func:`power_of_step` raises a zero base instead.
ZERO_POWER_BEYOND = 800.0


def power_of_step(beta, step):
    r""":math:`\beta^t`, the bits of ``beta**step``, without libm's path for results that underflow.

    Bias corrections take :math:`1 - \beta^t` at every step. Once :math:`\beta^t` falls
    below the smallest subnormal number, libm's ``pow`` returns +0 through its error path
    (it sets ``errno``), which costs three times a plain power: 32 ns against 10 on a
    Zen 4, from Adam's step 7500 on with :math:`\beta_1 = 0.9` (in numadam.jit's step
    of ten parameters, half its time). Here the base is 0 where +0 is certain, a fast
    case of ``pow``: for :math:`0 \le \beta < 1`, :math:`\ln \beta \le \beta - 1`, so

    .. math::

        \beta^t \le e^{-t (1 - \beta)} < e^{-800} < 2^{-1154}
        \quad\text{when } t (1 - \beta) > 800,

    a 2^80th of the smallest subnormal :math:`2^{-1074}`: ``pow`` rounds it to +0.
    Every other case (a negative ``beta`` too) is ``beta**step`` itself, with the step as a
    float, as Python raises a float to an integer power (Numba would multiply instead).
    """
    wide = float(step)
    # +0 as a zero base's power, a fast case of pow, rather than a branch around pow: compiled
    # (numadam.jit, the compiled solve), LLVM may compute the call ahead of such a branch anyway.
    base = 0.0 if beta >= 0.0 and wide * (1.0 - beta) > ZERO_POWER_BEYOND else beta
    return base**wide


@overload(power_of_step)
def _power_of_step_compiled(beta, step):
    return power_of_step  # the same code, callable from njit (numadam.jit compiles it anyway)


def as_float32(x):
    """``x`` rounded to the nearest float32, as a Python float: a hyperparameter that a library
    keeps as a C ``float`` (DeepSpeed's betas), from which it derives its other scalars."""
    return float(np.float32(x))


@overload(as_float32)
def _as_float32_compiled(x):
    return lambda x: float(np.float32(x))


def scalar_fields(cls, values):
    """The named tuple ``cls`` (a family's scalars) of the tuple ``values``, its fields in order,
    made as a tuple is: every family's ``scalars`` returns this. It runs every step, and takes
    0.13 us less than the named tuple's own constructor, a Python function, on a Zen 4, where
    Adam's whole step at 1e3 float32 takes 3.5 us. ``len(values)`` is not checked here: the
    kernels' launches check each row's length, and a test checks every family's."""
    return _tuple_new(cls, values)


_tuple_new = tuple.__new__


@overload(scalar_fields)
def _scalar_fields_compiled(cls, values):
    return lambda cls, values: cls(*values)  # numadam.jit compiles the families' scalars


def divided(x, c):
    r"""``x / c`` for a constant ``c`` of the step (a bias correction, its root), the same bits.

    Python and the GPU divide. Numba's CPU target computes a float32 quotient as

    .. math::

        \operatorname{fl}_{32}\bigl(x \cdot \operatorname{fl}_{64}(1/c)\bigr),

    the product in float64, where the loop around the rule computes
    :math:`\operatorname{fl}_{64}(1/c)` once: eight vector operations per 16
    elements instead of a division. That pays where the divider bounds a
    rule: LAMB divides by two constants in each of its two passes (its step in
    the caches took 5-6% less on a Zen 4). Where the vector operations bound
    the loop instead (8-bit state: Adam's int8 step took 11% more) or the
    memory does (Adam's float32 step), it does not, so only LAMB uses it.

    It is the correctly rounded quotient for every float32 ``x`` (zeros,
    subnormals, infinities and NaN included) and every ``0 < |c| <= 1``: the
    float64 product is within a relative :math:`2^{-51.4}` of :math:`x/c`,
    while :math:`x/c` is never a float32 rounding boundary (a midpoint of two
    float32 numbers has a 25-bit significand, and neither it nor a subnormal
    midpoint times such a ``c`` is a float32 number) and lies at least a
    relative :math:`2^{-48}` from one; so both round the same way. The tests
    compare every one of the :math:`2^{32}` float32 ``x`` for several ``c``.
    """
    return x / c


@overload(divided, jit_options={"error_model": "numpy"})
def _divided_on_the_cpu(x, c):
    if x == types.float32 and c == types.float32:
        def in_float64(x, c):
            wide = np.float64(c)
            # The reciprocal behind a select that keeps a NaN c: under reassociation (the
            # reductions' kernels) LLVM would turn x * (1 / c) back into a division.
            return np.float32(np.float64(x) * (1.0 / wide if wide == wide else wide))
        return in_float64
    return lambda x, c: x / c
