"""Per-step scalars of the update, derived once on the host.

Bias corrections, step size and decay factor are computed in float64 (Python
floats), exactly as ``torch.optim.Adam`` computes them, then rounded once to
the parameters' real dtype by the backend. The kernels only multiply, add, divide and take
square roots with these values.
"""

import math


def adam_scalars(step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize):
    r"""The scalars of :func:`numadam._kernels.rules.adam_update` for step ``step``, as floats.

    Each backend rounds them once to the parameters' real dtype.

    .. math::

        \alpha_t = \frac{\eta}{1-\beta_1^t}, \qquad
        \sqrt{1-\beta_2^t}, \qquad
        \delta = 1 - \eta\lambda \text{ (decoupled) or } 1
    """
    bias_correction1 = 1.0 - beta1**step
    bias_correction2 = 1.0 - beta2**step
    decoupling = decoupled and weight_decay != 0.0
    return (
        -1.0 if maximize else 1.0,
        0.0 if decoupled else weight_decay,
        1.0 - lr * weight_decay if decoupling else 1.0,
        beta1,
        1.0 - beta1,
        beta2,
        1.0 - beta2,
        math.sqrt(bias_correction2),
        eps,
        lr / bias_correction1,
    )


def uses_l2_decay(weight_decay, decoupled):
    """Whether the gradient gets the L2 term ``weight_decay * param``."""
    return weight_decay != 0.0 and not decoupled
