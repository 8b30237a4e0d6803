r"""Adafactor (Shazeer & Stern 2018): a second moment kept as row and column factors, in
``torch.optim.Adafactor``'s arithmetic.

For each parameter array of shape :math:`(\dots, R, C)`, at step :math:`t`, with
:math:`\hat\beta_t = t^{c}` (``beta2_decay`` :math:`c \le 0`):

.. math::

    r &\leftarrow \operatorname{lerp}\big(r, \tfrac{1}{C}\textstyle\sum_c g_{rc}^2, \hat\beta_t\big), \qquad
    k \leftarrow \operatorname{lerp}\big(k, \tfrac{1}{R}\textstyle\sum_r g_{rc}^2, \hat\beta_t\big) \\
    \hat v_{rc} &= \frac{r_r\, k_c}{\max(\bar r, \epsilon_1)}, \qquad
    u = \frac{g}{\sqrt{\max(\hat v, \epsilon_1^2)}} \\
    \rho_t &= \min(\eta, 1/\sqrt t), \qquad
    \alpha_t = \rho_t \max\big(\epsilon_2, \operatorname{RMS}(p)\big) \\
    p &\leftarrow p\,(1 - \eta\lambda) - \frac{\alpha_t}{\max(1, \operatorname{RMS}(u)/d)}\, u

where :math:`\bar r` is the mean of :math:`r` over the rows and the RMS are over
the whole array. A parameter of fewer than two dimensions keeps its full
second moment :math:`v \leftarrow \operatorname{lerp}(v, g^2, \hat\beta_t)` and
uses :math:`\hat v = v`.

A matrix's direction is computed as

.. math::

    u_{rc} = \min\Big(a_r\, b_c,\ \frac{1}{\sqrt{\epsilon_1^2}}\Big)\, g_{rc}, \qquad
    a_r = \sqrt{\max(\bar r, \epsilon_1) / r_r}, \quad b_c = \frac{1}{\sqrt{k_c}},

the same numbers as :math:`1/\sqrt{\max(\hat v, \epsilon_1^2)}` up to a few
roundings (torch rounds the estimate, then its root: it agrees to a few units
in the last place), with the :math:`R + C` roots and divisions taken once per
step by the factors' pass (``row_scale`` and ``col_scale``, derived state)
instead of two divisions and a root per element, which bound the norms pass
and the update by the divider rather than by memory (docs/performance.md).
A vector's direction is :math:`g / \sqrt{\max(v, \epsilon_1^2)}` per element,
as torch's. Which of the two a parameter takes is its scalar ``factored``.

:math:`\epsilon_1` is ``None`` by default: the machine
epsilon of the dtype the step computes in (float32 for float16 and bfloat16
parameters, whose torch counterpart takes their own).

A step is three passes over memory: the factors' pass (each row's and each
column's sum of squares, :mod:`numadam.core.factors`, then the factors, the
row mean and the scales), the norms pass (:math:`\|p\|^2` and
:math:`\|u\|^2`), and the update; on the CPU two, where the factors' pass
sums the norms as well (:mod:`numadam.core.factors`, "The norms from the
factors' pass").
"""

import math
from collections import namedtuple

import numpy as np
from numba import njit
from numba.extending import overload

from ..core import element_math, validate
from ..core.algorithm import Algorithm, Hyperparameter, Norms, StateKind
from . import _common


#: ``step_scale``: per parameter, from the norms pass: :math:`-\alpha_t / \max(1, \operatorname{RMS}(u)/d)`.
#: ``factored``: per parameter, 1 where it keeps row and column factors (its direction from the
#: factors' scales), 0 where it keeps a full second moment.
AdafactorScalars = namedtuple("AdafactorScalars", "one grad_sign decay eps1_squared machine_eps1 eps2 rho d "
                                                  "weight eps1 factored step_scale")


AdafactorFlags = namedtuple("AdafactorFlags", "decays")


def adafactor_scalars(step, h, carry) -> AdafactorScalars:
    eps1_squared, machine_eps1, eps1 = _eps1_terms(h.eps[0])
    return element_math.scalar_fields(AdafactorScalars, (
        1.0, _common.grad_sign(h), 1.0 - h.lr * h.weight_decay, eps1_squared, machine_eps1, float(h.eps[1]),
        min(h.lr, 1.0 / step**0.5), h.d, float(step) ** h.beta2_decay, eps1, 0.0, 0.0,
    ))


def _eps1_terms(eps1):
    """``(eps1**2, 1 if eps1 is None else 0, eps1 or 0)``: None stands for the machine epsilon of the
    dtype the step computes in, which the rule takes itself (:func:`machine_epsilon`)."""
    if eps1 is None:
        return 0.0, 1.0, 0.0
    return float(eps1) * float(eps1), 0.0, float(eps1)


def adafactor_flags(h) -> AdafactorFlags:
    return AdafactorFlags(h.weight_decay != 0.0)


def factor_weights(s):
    """The weight of this step's squares in the factors' moving averages and the floor of the row
    mean (:math:`\\epsilon_1`, or the machine epsilon), from the parameter's scalars ``s`` rounded to
    the dtype the step computes in."""
    if s.machine_eps1 != 0:
        return s.weight, machine_epsilon(s.one)
    return s.weight, s.eps1





def estimate_floor(s, epsilon):
    r"""The floor :math:`\epsilon_1^2` of the second moment's estimate, from the parameter's scalars
    ``s`` and the machine epsilon ``epsilon`` of their dtype (which stands for :math:`\epsilon_1`
    where it is None): in ``s``'s dtype, on the host (NumPy scalars) as in the rule."""
    return s.eps1_squared + s.machine_eps1 * (epsilon * epsilon)


_estimate_floor = njit(inline="always")(estimate_floor)


def direction_floor(s):
    """:func:`estimate_floor` on the host, from scalars ``s`` narrowed to NumPy scalars of the dtype
    the step computes in: what the factors' pass takes to sum the direction's squares itself
    (:mod:`numadam.core.factors`). In compiled code, the rule's own expression (the same number:
    :func:`machine_epsilon` is the dtype's epsilon exactly)."""
    real = type(s.one)
    return estimate_floor(s, real(np.finfo(real).eps))


@overload(direction_floor)
def _compiled_direction_floor(s):
    return lambda s: _estimate_floor(s, machine_epsilon(s.one))


def step_scale(param_squares, direction_squares, count, s):
    r""":math:`-\alpha_t / \max(1, \operatorname{RMS}(u)/d)` of a parameter of ``count`` real numbers
    from its sums of squares :math:`\|p\|^2` (before the decay) and :math:`\|u\|^2`."""
    if count == 0:  # nothing to step
        return 0.0
    root = math.sqrt(count)
    alpha = max(s.eps2, math.sqrt(param_squares) / root) * s.rho
    return -alpha / max(1.0, math.sqrt(direction_squares) / (root * s.d))


@njit(inline="always")
def machine_epsilon(one):
    """The machine epsilon of ``one``'s dtype, from ``one`` (1 in it): :math:`|3(4/3 - 1) - 1|`
    (Moler's formula, exact in binary floating point), so the rule needs no table of dtypes."""
    three = one + one + one
    return abs(((three + one) / three - one) * three - one)


@njit(inline="always")
def _direction(grad, state, s):
    """The update direction of one element: :math:`\\min(a_r b_c, 1/\\sqrt{\\epsilon_1^2})\\, g` in
    a matrix, :math:`g / \\sqrt{\\max(v, \\epsilon_1^2)}` in a vector (see the module docstring).
    ``s.factored`` is the same for a whole parameter: the loops are compiled once for each side."""
    row, column, mean, row_factor_scale, column_factor_scale = state
    floor = _estimate_floor(s, machine_epsilon(s.one))
    if s.factored != 0:
        scale = row_factor_scale * column_factor_scale
        cap = s.one / math.sqrt(floor)
        if scale > cap:  # NaN stays NaN
            scale = cap
        return scale * (s.grad_sign * grad)
    variance = row * column / mean
    if variance < floor:  # NaN stays NaN, as torch's clamp_min
        variance = floor
    return (s.one / math.sqrt(variance)) * (s.grad_sign * grad)


@njit(inline="always")
def adafactor_direction(param, grad, state, s, flags):
    """Adafactor's norms pass for one element: the factors as they are, and the direction u."""
    return state, _direction(grad, state, s)


@njit(inline="always")
def adafactor_rule(param, grad, state, s, flags):
    """Adafactor's update of one element: the decay, then the step along u with the parameter's scale."""
    if flags.decays:
        param = param * s.decay
    return param + s.step_scale * _direction(grad, state, s), state


def _check_eps(name, value):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (eps1, eps2): eps1 None or a number >= 0, eps2 a number >= 0; "
                        f"got {value!r}")
    eps1 = None if value[0] is None else validate.check_nonnegative(f"{name}[0]", value[0])
    return eps1, validate.check_nonnegative(f"{name}[1]", value[1])


def _check_beta2_decay(name, value):
    value = validate.check_real(name, value)
    if not value <= 0.0:
        raise ValueError(f"{name} must be <= 0 (beta2 of step t is 1 - t**{name}); got {value!r}")
    return value


def _check_d(name, value):
    value = validate.check_real(name, value)
    if not value >= 1.0:
        raise ValueError(f"{name} (the update's RMS clipping threshold) must be >= 1; got {value!r}")
    return value


ADAFACTOR = Algorithm(
    name="adafactor", title="Adafactor",
    hyperparameters=(
        _common.lr(1e-2),
        Hyperparameter("beta2_decay", -0.8, _check_beta2_decay,
                       r"Decay :math:`c \le 0` of :math:`\hat\beta_t = t^{c}`, the weight of step t's squares."),
        Hyperparameter("eps", (None, 1e-3), _check_eps,
                       r":math:`(\epsilon_1, \epsilon_2)`: the floor of the second moment's estimate (``None``: "
                       r"the machine epsilon of the compute dtype) and of the parameter's RMS in the step size."),
        Hyperparameter("d", 1.0, _check_d, r"The clipping threshold :math:`d \ge 1` of the update's RMS."),
        _common.weight_decay(0.0, r"Decoupled weight decay :math:`\lambda` (>= 0): :math:`p (1 - \eta\lambda)`."),
        _common.maximize(),
    ),
    state=(StateKind("row_var", "the row factor of the second moment (the full second moment of a parameter "
                                "of fewer than two dimensions)", nonnegative=True, factor="rows"),
           StateKind("col_var", "the column factor of the second moment", nonnegative=True, factor="columns"),
           StateKind("row_mean", "the mean of the row factor over the rows", nonnegative=True, factor="means",
                     derived=True),
           StateKind("row_scale", "each row's scale of the direction, from the factors", nonnegative=True,
                     factor="row_scales", derived=True),
           StateKind("col_scale", "each column's scale of the direction, from the factors", nonnegative=True,
                     factor="column_scales", derived=True)),
    scalars=adafactor_scalars, flags=adafactor_flags, rule=adafactor_rule,
    norms=Norms(adafactor_direction, "step_scale", lambda h: True, step_scale, per_parameter=True,
                tiled_matrices=False),
    factors=factor_weights,
    direction_floor=direction_floor,
    doc=r"""Adafactor (Shazeer & Stern 2018) over a tree of arrays, updated in place: ``torch.optim.Adafactor``.

.. math::

    \hat v_{rc} = \frac{r_r k_c}{\max(\bar r, \epsilon_1)}, \qquad
    u = \frac{g}{\sqrt{\max(\hat v, \epsilon_1^2)}}, \qquad
    p \leftarrow p(1 - \eta\lambda) - \frac{\min(\eta, t^{-1/2}) \max(\epsilon_2, \operatorname{RMS}(p))}
    {\max(1, \operatorname{RMS}(u)/d)}\, u

per parameter array, with row and column factors :math:`r, k` of the last two
dimensions, moving averages of the mean squares with weight :math:`t^{c}`
(``beta2_decay`` :math:`c`). A 1000 x 2000 matrix keeps 3000 numbers of state.
Arrays of fewer than two dimensions keep a full second moment. See
:doc:`/families/adafactor`.""",
    example=r""">>> import numpy as np, numadam
>>> w = np.array([[1.0, -1.0], [0.5, 2.0]])
>>> opt = numadam.Adafactor(w, lr=0.05)
>>> for _ in range(300):
...     opt.step(2 * w)
>>> bool(np.all(np.abs(w) < 0.05))
True""",
    references=(
        'Shazeer and Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", ICML 2018.',
    ),
    step_doc=r"""Take Adafactor step ``step`` on ``param`` and its factors, in place.

The update of :class:`numadam.Adafactor` on one array: ``row_var`` and ``col_var``
have the shapes of ``numadam.Adafactor(param).state_dict()``'s (for an array of
two or more dimensions, its last two reduced to 1 in turn; otherwise ``row_var``
has the array's shape and ``col_var`` is one 1).""",
    step_example=r""">>> import numpy as np, numadam
>>> p = np.array([[3.0, 4.0], [1.0, 2.0]]); g = np.array([[1.0, -1.0], [0.5, 0.5]])
>>> row_var, col_var = np.zeros((2, 1)), np.zeros((1, 2))
>>> numadam.adafactor_step(p, g, row_var, col_var, step=1, lr=0.1)
>>> row_var.ravel()     # each row's mean square
array([1.  , 0.25])""",
)
