"""How an example stores its parameters and Adam's state: the knob of the precision study.

A :class:`Storage` names a parameter dtype (``None``: the example's own float32)
and the optimizer's precision options (``state_dtype``, ``master_weights``,
``stochastic_rounding``, ``compensation``). With 16-bit parameters the optimizer updates 16-bit
copies, and the example computes its forward and backward passes in float32
from the rounded numbers: what a network stored in bfloat16 sees.
"""

from typing import NamedTuple

import numpy as np

import numadam


class Storage(NamedTuple):
    label: str
    param_dtype: object = None
    options: dict = {}

    @classmethod
    def of(cls, storage):
        """``storage``, or float32 parameters and state when it is ``None``."""
        return storage if storage is not None else FLOAT32

    def optimizer(self, params, lr):
        """An Adam over the example's float32 ``params`` (a dict), stored as this says."""
        if self.param_dtype is None:
            return numadam.Adam(params, lr=lr, **self.options)
        return SixteenBitAdam(params, lr, np.dtype(self.param_dtype), self.options)


class SixteenBitAdam:
    """Adam over 16-bit copies of ``params``; after each step ``params`` hold the rounded numbers."""

    def __init__(self, params, lr, dtype, options):
        self.params, self.dtype = params, dtype
        self.stored = {name: value.astype(dtype) for name, value in params.items()}
        self.opt = numadam.Adam(self.stored, lr=lr, **options)
        self._widen()

    def _widen(self):
        for name, value in self.stored.items():
            self.params[name][...] = value

    def step(self, grads):
        self.opt.step({name: grad.astype(self.dtype) for name, grad in grads.items()})
        self._widen()

    @property
    def step_count(self):
        return self.opt.step_count


FLOAT32 = Storage("float32 parameters and state")
