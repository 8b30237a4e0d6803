r"""ASGD, averaged stochastic gradient descent (Polyak & Juditsky 1992), in ``torch.optim.ASGD``'s arithmetic.

.. math::

    g &\leftarrow g + \lambda p, \qquad p \leftarrow (1 - \lambda_\eta \eta_t)\, p - \eta_t g, \\
    \bar p &\leftarrow \bar p + \mu_t (p - \bar p) \ (\mu_t \ne 1), \qquad \bar p \leftarrow p \ (\mu_t = 1)

with L2 decay :math:`\lambda`, the decay term :math:`\lambda_\eta` (``lambd``)
and the average :math:`\bar p` of the iterates (``ax``). The rate and the
averaging weight follow the step count, as torch computes them at the end of
each step for the next:

.. math::

    \eta_1 = \eta, \quad \eta_{t} = \frac{\eta}{(1 + \lambda_\eta \eta (t - 1))^{\alpha}}, \qquad
    \mu_1 = 1, \quad \mu_t = \frac{1}{\max(1, t - 1 - t_0)},

each from the learning rate of the step before, in float64 (torch keeps them in
tensors of its default dtype: float32 unless ``torch.set_default_dtype``
changed it, so that torch's float32 default agrees to about 1e-8 relative). The parameters are
the plain SGD iterates; ``ax`` holds their average, which averages from step
:math:`t_0 + 2` on.
"""

from collections import namedtuple

from numba import njit

from ..core import element_math, validate
from ..core.algorithm import Algorithm, Carry, Example, Hyperparameter, StateKind
from . import _common


#: ``eta``: the rate :math:`\eta_t`; ``decay``: :math:`1 - \lambda_\eta \eta_t`; ``mu``: the averaging weight.
ASGDScalars = namedtuple("ASGDScalars", "grad_sign weight_decay eta decay mu")


def _advance(step, h, carry):
    r"""``(eta, mu, lr)`` of step ``step``: :math:`\eta_t` and :math:`\mu_t` from the learning rate
    of the step before (``carry[2]``), as torch's ASGD computes them at the end of that step, and
    this step's learning rate for the next. Without a step before in ``carry`` (its learning rate
    negative: the initial carry, a functional step called at a later step without one), the
    learning rate is taken to have been this step's."""
    if step == 1:
        return h.lr, 1.0, h.lr
    lr, done = (carry[2] if carry[2] >= 0.0 else h.lr), float(step - 1)
    return lr / ((1.0 + h.lambd * lr * done) ** h.alpha), 1.0 / max(1.0, done - h.t0), h.lr


def asgd_scalars(step, h, carry) -> ASGDScalars:
    eta, mu = carry[0], carry[1]
    return element_math.scalar_fields(ASGDScalars, (
        -1.0 if h.maximize else 1.0, h.weight_decay, eta, 1.0 - h.lambd * eta, mu,
    ))


@njit(inline="always")
def asgd_rule(param, grad, state, s, flags):
    """ASGD for one real element; ``state`` is ``(ax,)``, the average of the iterates."""
    (ax,) = state
    grad = _common.decayed_gradient(param, grad, s, flags)
    param = param * s.decay
    param = param - s.eta * grad
    if s.mu != 1:
        ax = ax + (param - ax) * s.mu
    else:
        ax = param
    return param, (ax,)


AVERAGED_SGD = Algorithm(
    name="asgd", title="ASGD",
    hyperparameters=(
        _common.lr(1e-2),
        Hyperparameter("lambd", 1e-4, validate.check_nonnegative,
                       r"Decay term :math:`\lambda_\eta` (>= 0) of the parameters and of the rate."),
        Hyperparameter("alpha", 0.75, validate.check_nonnegative,
                       r"Power :math:`\alpha` (>= 0) of the rate's decay."),
        Hyperparameter("t0", 1e6, validate.check_nonnegative,
                       r"The step :math:`t_0` (>= 0) after which the iterates are averaged."),
        _common.l2_weight_decay(),
        _common.maximize(),
    ),
    state=(StateKind("ax", r"the average of the iterates \bar p"),),
    scalars=asgd_scalars, flags=_common.l2_flags, rule=asgd_rule,
    carry=Carry(("eta", "mu", "lr"), (0.0, 1.0, -1.0), _advance),
    doc=r"""ASGD, averaged stochastic gradient descent (Polyak & Juditsky 1992), over a tree of arrays,
updated in place.

.. math::

    p \leftarrow (1 - \lambda_\eta \eta_t)\, p - \eta_t g, \qquad
    \bar p \leftarrow \bar p + \mu_t (p - \bar p)

with :math:`g` the gradient plus :math:`\lambda p`, :math:`\eta_t =
\eta / (1 + \lambda_\eta \eta (t-1))^\alpha` and :math:`\mu_t = 1/\max(1, t - 1
- t_0)`: ``torch.optim.ASGD``'s update. The average is the state ``ax``. See
:doc:`/families/asgd`.""",
    example=Example("lr=0.05", 300, 0.05),
    references=(
        'Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM Journal on '
        'Control and Optimization 30(4), 1992.',
    ),
    step_doc=r"""The rate and the averaging weight of each step come from the step before's learning rate:
pass the returned ``carry`` back at the next step (see :mod:`numadam.families.asgd`).""",
    step_example=r""">>> import numpy as np, numadam
>>> p, g, ax = np.array([1.0, -2.0]), np.array([0.5, -0.5]), np.zeros(2)
>>> carry = numadam.asgd_step(p, g, ax, step=1, lr=0.1)
>>> np.round(p, 6)            # the first step is SGD's, with the parameters decayed by lambd lr
array([ 0.94999, -1.94998])
>>> carry = numadam.asgd_step(p, g, ax, step=2, lr=0.1, carry=carry)
>>> bool(np.all(ax == p))     # mu is 1 until step t0 + 2: the average is the last iterate
True""",
)
