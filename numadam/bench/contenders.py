"""The implementations ``numadam bench`` races, behind one small interface.

Each contender owns copies of the case's initial parameters and its own
optimizer state, and reads the shared gradient arrays:

- ``step()`` takes one optimizer step (synchronously);
- ``parameters()`` returns the current parameters as NumPy arrays (copied
  from the GPU for CuPy contenders);
- ``reload_grads()`` picks up new values written into the gradient arrays
  (a no-op for contenders that read them in place);
- ``checked`` says whether the result is an Adam step to compare with numadam's
  (the same-traffic kernels do other arithmetic on purpose).

Optional frameworks (torch, optax) live in :mod:`numadam.bench.frameworks`,
the GPU's other contenders in :mod:`numadam.bench.cuda_contenders`. numadam's
own contenders work on either: they put their arrays where ``problem.xp``
(NumPy or CuPy) puts them.

Examples
--------
>>> import numpy as np
>>> from numadam.bench.cases import VARIANTS
>>> problem = Problem([np.ones(3, np.float32)], [np.ones(3, np.float32)], single=True)
>>> contender = NumadamObject(problem, VARIANTS[0])
>>> contender.step()
>>> contender.parameters()[0]
array([0.999, 0.999, 0.999], dtype=float32)
"""

from typing import NamedTuple

import numpy as np

import numadam

from .cases import BETAS, EPS, LR
from .numpy_adam import InPlaceAdam, NaiveAdam
from .roofline import kernel_for, same_traffic_kernel


class Problem(NamedTuple):
    """Initial parameters (NumPy, never written) and the gradient arrays every contender reads.

    ``xp`` is the array module of the gradients, NumPy or CuPy: contenders
    make their own arrays with it.
    """

    params: list
    grads: list
    single: bool
    xp: object = np


def to_host(array):
    """``array`` as a NumPy array (copied from the GPU if it is a CuPy array)."""
    return array if isinstance(array, np.ndarray) else array.get()


class Contender:
    """The defaults: an Adam step to check, reading the gradient arrays in place."""

    checked = True
    #: Steps taken by one call of ``step`` (the timings are per step).
    steps_per_call = 1

    def reload_grads(self):
        pass

    def check_step(self):
        """One step, finished: the step whose result is compared with numadam's."""
        self.step()


def _options(variant):
    return dict(lr=LR, betas=BETAS, eps=EPS, weight_decay=variant.weight_decay, amsgrad=variant.amsgrad)


class NumadamObject(Contender):
    """``numadam.Adam`` / ``AdamW`` over the case's arrays (a bare array when there is one), in
    torch's arithmetic or another ``convention``."""

    def __init__(self, problem, variant, convention="torch"):
        self._params = [problem.xp.array(p, copy=True) for p in problem.params]
        self._grads = problem.grads[0] if problem.single else problem.grads
        optimizer = numadam.AdamW if variant.decoupled else numadam.Adam
        self._optimizer = optimizer(self._params[0] if problem.single else self._params, **_options(variant),
                                    convention=convention)

    def step(self):
        self._optimizer.step(self._grads)

    def parameters(self):
        return [to_host(p) for p in self._params]


class NumadamAlgorithm(Contender):
    """Another algorithm's object step over the case's arrays (its defaults, Adam's ``lr``): what its
    call costs beside Adam's. Not compared with Adam: it is another update."""

    checked = False

    def __init__(self, problem, variant, method):
        self._params = [problem.xp.array(p, copy=True) for p in problem.params]
        self._grads = problem.grads[0] if problem.single else problem.grads
        cls = numadam.families()[method]
        self._optimizer = cls(self._params[0] if problem.single else self._params, lr=LR)

    def step(self):
        self._optimizer.step(self._grads)

    def parameters(self):
        return [to_host(p) for p in self._params]


class NumadamWithReduction(NumadamObject):
    """``numadam.Adam`` with ``clip_global_norm`` and ``nonfinite="skip"``: the cost of the reduction
    pre-pass and its decision. The limit is never reached here, so the update is Adam's, checked."""

    def __init__(self, problem, variant):
        self._params = [problem.xp.array(p, copy=True) for p in problem.params]
        self._grads = problem.grads[0] if problem.single else problem.grads
        optimizer = numadam.AdamW if variant.decoupled else numadam.Adam
        self._optimizer = optimizer(self._params[0] if problem.single else self._params, clip_global_norm=1e30,
                                    nonfinite="skip", **_options(variant))


class NumadamFunctional(Contender):
    """``numadam.adam_step`` called once per array, state kept by the caller."""

    def __init__(self, problem, variant):
        xp = problem.xp
        self._params = [xp.array(p, copy=True) for p in problem.params]
        self._grads = problem.grads
        self._state = [(xp.zeros_like(p), xp.zeros_like(p), xp.zeros_like(p) if variant.amsgrad else None)
                       for p in self._params]
        self._options = dict(_options(variant), decoupled_weight_decay=variant.decoupled)
        self._step = 0

    def step(self):
        self._step += 1
        for param, grad, (exp_avg, exp_avg_sq, max_exp_avg_sq) in zip(self._params, self._grads, self._state):
            numadam.adam_step(param, grad, exp_avg, exp_avg_sq, step=self._step,
                              max_exp_avg_sq=max_exp_avg_sq, **self._options)

    def parameters(self):
        return [to_host(p) for p in self._params]


def _traffic_arrays(param, grad, amsgrad):
    """``(param, exp_avg, exp_avg_sq[, max_exp_avg_sq], grad)`` as fresh 1-D arrays (the written
    ones first, as :func:`~numadam.bench.roofline.traffic_kernel` takes them)."""
    state = 3 if amsgrad else 2
    return ((param.ravel().copy(),) + tuple(np.zeros(param.size, param.dtype) for _ in range(state))
            + (grad.ravel().copy(),))


class SameTrafficFlat(Contender):
    """The roofline: one same-traffic kernel call over one flat buffer of all elements."""

    checked = False

    def __init__(self, problem, variant, parallel):
        flat_param = np.concatenate([p.ravel() for p in problem.params])
        flat_grad = np.concatenate([g.ravel() for g in problem.grads])
        self._arrays = _traffic_arrays(flat_param, flat_grad, variant.amsgrad)
        self._kernel = same_traffic_kernel(variant.amsgrad, parallel, flat_param.dtype)

    def step(self):
        self._kernel(*self._arrays)

    def parameters(self):
        return [self._arrays[0]]


class SameTrafficPerArray(Contender):
    """One same-traffic kernel call per array: what a Python loop over the arrays costs."""

    checked = False

    def __init__(self, problem, variant):
        self._arrays = [_traffic_arrays(p, g, variant.amsgrad) for p, g in zip(problem.params, problem.grads)]
        self._kernels = [kernel_for(p.size, variant.amsgrad, p.dtype) for p in problem.params]

    def step(self):
        for kernel, arrays in zip(self._kernels, self._arrays):
            kernel(*arrays)

    def parameters(self):
        return [arrays[0] for arrays in self._arrays]


class _NumpyContender(Contender):
    def __init__(self, problem, variant):
        self._optimizer = self.optimizer_type([p.copy() for p in problem.params], **_options(variant))
        self._grads = problem.grads

    def step(self):
        self._optimizer.step(self._grads)

    def parameters(self):
        return self._optimizer.params


class NumpyInPlace(_NumpyContender):
    """:class:`~numadam.bench.numpy_adam.InPlaceAdam`: ufuncs with ``out=``, no allocation per step."""

    optimizer_type = InPlaceAdam


class NumpyNaive(_NumpyContender):
    """:class:`~numadam.bench.numpy_adam.NaiveAdam`: expressions with temporaries."""

    optimizer_type = NaiveAdam
