r"""Adam written with NumPy: in place with ``out=``, and naive with temporaries.

Both take the step of :func:`numadam.adam_step` for the variants the benchmark
runs (Adam, AdamW with decoupled decay, AMSGrad), with
:math:`\alpha_t = \eta/(1-\beta_1^t)` and :math:`\sqrt{1-\beta_2^t}` derived in
float64 and rounded once to the arrays' dtype:

.. math::

    p \leftarrow (1-\eta\lambda)\,p, \quad
    m \leftarrow \beta_1 m + (1-\beta_1) g, \quad
    v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
    p \leftarrow p - \alpha_t\, m \Big/ \Bigl(\frac{\sqrt{\hat v}}{\sqrt{1-\beta_2^t}} + \epsilon\Bigr)

with :math:`\hat v = \max(\hat v, v)` for AMSGrad, else :math:`v`. They are the
baselines a NumPy user would write: :class:`InPlaceAdam` allocates nothing per
step but passes over memory a dozen times; :class:`NaiveAdam` also allocates a
temporary array per operation.

Examples
--------
>>> import numpy as np
>>> p = np.array([1.0, -2.0])
>>> opt = InPlaceAdam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
>>> opt.step([np.array([0.5, 0.5])])
>>> p
array([ 0.9, -2.1])
"""

import math

import numpy as np


def step_scalars(dtype, step, lr, betas, eps, weight_decay):
    """``(decay, beta1, 1-beta1, beta2, 1-beta2, sqrt(1-beta2^t), eps, lr/(1-beta1^t))`` in ``dtype``."""
    beta1, beta2 = betas
    values = (
        1.0 - lr * weight_decay,
        beta1,
        1.0 - beta1,
        beta2,
        1.0 - beta2,
        math.sqrt(1.0 - beta2**step),
        eps,
        lr / (1.0 - beta1**step),
    )
    return tuple(np.dtype(dtype).type(value) for value in values)


class _NumpyAdam:
    def __init__(self, params, lr, betas, eps, weight_decay=0.0, amsgrad=False):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.weight_decay = weight_decay
        self.amsgrad = amsgrad
        self.exp_avg = [np.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [np.zeros_like(p) for p in self.params]
        self.max_exp_avg_sq = [np.zeros_like(p) for p in self.params] if amsgrad else [None] * len(self.params)
        self.step_count = 0

    def step(self, grads):
        """One step for every parameter, with decoupled weight decay when it is nonzero."""
        self.step_count += 1
        scalars_by_dtype = {}
        for k, (param, grad) in enumerate(zip(self.params, grads)):
            scalars = scalars_by_dtype.get(param.dtype)
            if scalars is None:
                scalars = step_scalars(param.dtype, self.step_count, self.lr, self.betas, self.eps,
                                       self.weight_decay)
                scalars_by_dtype[param.dtype] = scalars
            self._update(k, param, grad, *scalars)


class InPlaceAdam(_NumpyAdam):
    """Adam with every ufunc writing into the state or one preallocated scratch array."""

    def __init__(self, params, lr, betas, eps, weight_decay=0.0, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
        self._scratch = [np.empty_like(p) for p in self.params]

    def _update(self, k, param, grad, decay, beta1, one_minus_beta1, beta2, one_minus_beta2,
                bias_correction2_sqrt, eps, step_size):
        exp_avg, exp_avg_sq, scratch = self.exp_avg[k], self.exp_avg_sq[k], self._scratch[k]
        if self.weight_decay:
            np.multiply(param, decay, out=param)
        np.multiply(exp_avg, beta1, out=exp_avg)
        np.multiply(grad, one_minus_beta1, out=scratch)
        np.add(exp_avg, scratch, out=exp_avg)
        np.multiply(exp_avg_sq, beta2, out=exp_avg_sq)
        np.multiply(grad, grad, out=scratch)
        np.multiply(scratch, one_minus_beta2, out=scratch)
        np.add(exp_avg_sq, scratch, out=exp_avg_sq)
        second_moment = exp_avg_sq
        if self.amsgrad:
            second_moment = np.maximum(self.max_exp_avg_sq[k], exp_avg_sq, out=self.max_exp_avg_sq[k])
        np.sqrt(second_moment, out=scratch)
        np.divide(scratch, bias_correction2_sqrt, out=scratch)
        np.add(scratch, eps, out=scratch)
        np.divide(exp_avg, scratch, out=scratch)
        np.multiply(scratch, step_size, out=scratch)
        np.subtract(param, scratch, out=param)


class NaiveAdam(_NumpyAdam):
    """Adam as written from the paper: each expression allocates its temporaries."""

    def _update(self, k, param, grad, decay, beta1, one_minus_beta1, beta2, one_minus_beta2,
                bias_correction2_sqrt, eps, step_size):
        if self.weight_decay:
            param[...] = decay * param
        self.exp_avg[k][...] = beta1 * self.exp_avg[k] + one_minus_beta1 * grad
        self.exp_avg_sq[k][...] = beta2 * self.exp_avg_sq[k] + one_minus_beta2 * (grad * grad)
        second_moment = self.exp_avg_sq[k]
        if self.amsgrad:
            self.max_exp_avg_sq[k][...] = np.maximum(self.max_exp_avg_sq[k], second_moment)
            second_moment = self.max_exp_avg_sq[k]
        param[...] = param - step_size * self.exp_avg[k] / (np.sqrt(second_moment) / bias_correction2_sqrt + eps)
