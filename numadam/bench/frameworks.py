"""torch, DeepSpeed and optax contenders, imported only when the benchmark builds them.

None of these frameworks is a dependency of numadam: when one is missing, building
its contender raises :class:`Unavailable` and the table says so.

- ``torch.optim.Adam`` / ``AdamW`` on CPU tensors that share memory with NumPy
  arrays, with ``fused=True`` or ``foreach=True``, on as many threads as Numba;
  and ``numadam.Adam`` over the same kind of tensors, reading ``p.grad``, as a
  torch user would call it (:class:`NumadamOnTensors`).
- DeepSpeed's ``DeepSpeedCPUAdam`` in Adam and AdamW mode (:class:`DeepSpeedAdam`);
- ``optax.adam`` / ``optax.adamw`` under ``jax.jit``, parameters and optimizer
  state donated so XLA may update them in place, each step waited for with
  ``jax.block_until_ready``. ``optax.amsgrad`` keeps the maximum of the
  bias-corrected second moment, a different update from torch's and numadam's
  (maximum of the raw one), so it is left out rather than compared.
"""

import importlib

import numba
import numpy as np

import numadam

from .cases import BETAS, EPS, LR
from .contenders import Contender


class Unavailable(Exception):
    """This contender cannot run here; the message says why."""


def _require(module_name):
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise Unavailable(f"{module_name} is not installed") from error


class TorchAdam(Contender):
    """``torch.optim.Adam``/``AdamW`` with ``fused=True`` (``mode="fused"``) or ``foreach=True``."""

    def __init__(self, problem, variant, mode):
        torch = _require("torch")
        torch.set_num_threads(numba.get_num_threads())
        self._params = [p.copy() for p in problem.params]
        tensors = _tensor_parameters(torch, self._params, problem.grads)
        optimizer = torch.optim.AdamW if variant.decoupled else torch.optim.Adam
        self._optimizer = optimizer(tensors, lr=LR, betas=BETAS, eps=EPS, weight_decay=variant.weight_decay,
                                    amsgrad=variant.amsgrad, **{mode: True})

    def step(self):
        self._optimizer.step()

    def parameters(self):
        return self._params


def _tensor_parameters(torch, params, grads):
    """``torch.nn.Parameter`` s over ``params`` (sharing their memory), their ``grad`` over ``grads``."""
    tensors = []
    for param, grad in zip(params, grads):
        tensor = torch.nn.Parameter(torch.from_numpy(param))
        tensor.grad = torch.from_numpy(grad)
        tensors.append(tensor)
    return tensors


class DeepSpeedAdam(Contender):
    """DeepSpeed's ``DeepSpeedCPUAdam`` (the AVX C++ step behind ZeRO-Offload), Adam or AdamW mode,
    float32 state, over CPU tensors sharing memory with NumPy arrays, reading ``p.grad``.

    Its first use builds its C++ op with ninja and the host's compiler (``-march=native``; about
    100 s, kept in torch's extension cache, which belongs to one CPU model). It keeps no AMSGrad
    and steps float32 (and 16-bit) parameters only: other cases say so instead of timing it."""

    def __init__(self, problem, variant):
        if variant.amsgrad:
            raise Unavailable("DeepSpeedCPUAdam has no AMSGrad")
        if any(np.asarray(p).dtype != np.float32 for p in problem.params):
            raise Unavailable("DeepSpeedCPUAdam steps float32 parameters here (and 16-bit ones), not "
                              f"{np.asarray(problem.params[0]).dtype}")
        torch = _require("torch")
        adam = _require("deepspeed.ops.adam")
        torch.set_num_threads(numba.get_num_threads())
        self._params = [p.copy() for p in problem.params]
        self._optimizer = adam.DeepSpeedCPUAdam(_tensor_parameters(torch, self._params, problem.grads), lr=LR,
                                                betas=BETAS, eps=EPS, weight_decay=variant.weight_decay,
                                                adamw_mode=variant.decoupled, fp32_optimizer_states=True)

    def step(self):
        self._optimizer.step()

    def parameters(self):
        return self._params


class NumadamOnTensors(Contender):
    """``numadam.Adam``/``AdamW`` over torch parameters, ``step()`` reading their ``.grad``."""

    def __init__(self, problem, variant):
        torch = _require("torch")
        self._params = [p.copy() for p in problem.params]
        optimizer = numadam.AdamW if variant.decoupled else numadam.Adam
        self._optimizer = optimizer(_tensor_parameters(torch, self._params, problem.grads), lr=LR, betas=BETAS,
                                    eps=EPS, weight_decay=variant.weight_decay, amsgrad=variant.amsgrad)

    def step(self):
        self._optimizer.step()

    def parameters(self):
        return self._params


class OptaxAdam(Contender):
    """``optax.adam``/``adamw`` jitted with donated parameters and state."""

    def __init__(self, problem, variant):
        if variant.amsgrad:
            raise Unavailable("optax.amsgrad takes the maximum of the bias-corrected v, a different update")
        jax = _require("jax")
        optax = _require("optax")
        jax.config.update("jax_enable_x64", True)
        beta1, beta2 = BETAS
        if variant.decoupled:
            transform = optax.adamw(LR, b1=beta1, b2=beta2, eps=EPS, weight_decay=variant.weight_decay)
        else:
            transform = optax.adam(LR, b1=beta1, b2=beta2, eps=EPS)

        def update(params, state, grads):
            updates, state = transform.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        self._jax = jax
        self._numpy_grads = problem.grads
        self._params = [jax.numpy.array(p, copy=True) for p in problem.params]
        self._state = transform.init(self._params)
        self._update = jax.jit(update, donate_argnums=(0, 1))
        self.reload_grads()

    def reload_grads(self):
        self._grads = [self._jax.numpy.array(g, copy=True) for g in self._numpy_grads]

    def step(self):
        self._params, self._state = self._update(self._params, self._state, self._grads)
        self._jax.block_until_ready(self._params)

    def parameters(self):
        return [np.array(p) for p in self._params]
