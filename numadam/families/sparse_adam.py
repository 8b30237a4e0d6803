r"""SparseAdam: Adam for row-sparse gradients, in ``torch.optim.SparseAdam``'s arithmetic.

For the rows a :class:`numadam.Rows` gradient lists (every row, for a dense
gradient), with :math:`t` the optimizer's step count:

.. math::

    m &\leftarrow m + (1-\beta_1)(g - m), \qquad v \leftarrow v + (1-\beta_2)(g^2 - v) \\
    p &\leftarrow p - \eta \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,\frac{m}{\sqrt{v} + \epsilon}

The rows a gradient does not list keep their parameters and moments as they
were (the *lazy* update of torch's SparseAdam and TF's LazyAdam), while the
bias corrections use the global step count. Unlike Adam, ``eps`` is added to
:math:`\sqrt{v}` before the bias correction of the step size, as torch's
SparseAdam does.
"""

import math
from collections import namedtuple

from numba import njit

from ..core import element_math
from ..core.algorithm import Algorithm, StateKind
from . import _common


SparseAdamScalars = namedtuple("SparseAdamScalars", "grad_sign one_minus_beta1 one_minus_beta2 step_size eps")


SparseAdamFlags = namedtuple("SparseAdamFlags", "")


def sparse_adam_scalars(step, h, carry) -> SparseAdamScalars:
    beta1, beta2 = h.betas
    step_size = h.lr * math.sqrt(1.0 - element_math.power_of_step(beta2, step)) / (1.0 - element_math.power_of_step(beta1, step))
    return element_math.scalar_fields(SparseAdamScalars, (
        _common.grad_sign(h), 1.0 - beta1, 1.0 - beta2, step_size, h.eps,
    ))


def sparse_adam_flags(h) -> SparseAdamFlags:
    return SparseAdamFlags()


@njit(inline="always")
def sparse_adam_rule(param, grad, state, s, flags):
    """SparseAdam for one real element of a listed row; ``state`` is ``(exp_avg, exp_avg_sq)``."""
    exp_avg, exp_avg_sq = state
    grad = s.grad_sign * grad
    exp_avg = exp_avg + (grad - exp_avg) * s.one_minus_beta1
    exp_avg_sq = exp_avg_sq + (grad * grad - exp_avg_sq) * s.one_minus_beta2
    param = param - s.step_size * (exp_avg / (math.sqrt(exp_avg_sq) + s.eps))
    return param, (exp_avg, exp_avg_sq)


SPARSE_ADAM = Algorithm(
    name="sparse_adam", title="SparseAdam",
    hyperparameters=(_common.lr(1e-3), _common.betas((0.9, 0.999)), _common.eps(1e-8), _common.maximize()),
    state=(StateKind("exp_avg", "the first moment m"),
           StateKind("exp_avg_sq", "the second moment v", nonnegative=True)),
    scalars=sparse_adam_scalars, flags=sparse_adam_flags, rule=sparse_adam_rule,
    doc=r"""SparseAdam over a tree of arrays, updated in place: Adam's moments and step on the
rows a :class:`numadam.Rows` gradient lists, and nothing else.

.. math::

    m \leftarrow m + (1-\beta_1)(g - m), \quad v \leftarrow v + (1-\beta_2)(g^2 - v), \quad
    p \leftarrow p - \eta \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,\frac{m}{\sqrt{v} + \epsilon}

on the listed rows, with :math:`t` the optimizer's step count:
``torch.optim.SparseAdam``'s update. Gradients may be :class:`numadam.Rows`
(torch parameters: sparse COO ``.grad``, as ``nn.Embedding(sparse=True)``
gives) or dense arrays (every row listed). See :doc:`/families/sparse_adam`.""",
    example=r""">>> import numpy as np, numadam
>>> table = np.ones((1000, 4), np.float32)       # an embedding table
>>> opt = numadam.SparseAdam(table, lr=0.1)
>>> opt.step(numadam.Rows(np.array([3, 7]), np.ones((2, 4), np.float32)))
>>> np.flatnonzero((table != 1).any(axis=1))      # only rows 3 and 7 moved, each by about lr
array([3, 7])
>>> bool(np.allclose(table[[3, 7]], 0.9))
True""",
    references=(
        'Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.',
    ),
    step_doc=r"""``grad`` may be a :class:`numadam.Rows`: only its rows of ``param`` and of the state
change.""",
    step_example=r""">>> import numpy as np, numadam
>>> p = np.zeros((3, 2))
>>> m, v = np.zeros((3, 2)), np.zeros((3, 2))
>>> numadam.sparse_adam_step(p, numadam.Rows(np.array([1]), np.array([[1.0, -1.0]])), m, v, step=1, lr=0.1)
>>> np.round(p, 6)        # the first step moves each listed element by lr against its gradient's sign
array([[ 0. ,  0. ],
       [-0.1,  0.1],
       [ 0. ,  0. ]])""",
)
