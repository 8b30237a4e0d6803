"""The public API of numadam for type checkers and IDEs: written by tools/make_stub.py, not by hand."""

from typing import Any

from .optimizers import Optimizer as Optimizer
from . import schedules as schedules
from .adapters.group import Group as Group
from .adapters.rows import Rows as Rows
from .clipping import clip_by_global_norm as clip_by_global_norm
from .clipping import clip_by_norm as clip_by_norm
from .clipping import clip_by_value as clip_by_value
from .muon.optimizer import Muon as Muon
from .plotting import plot_convergence as plot_convergence
from .registry import families as families
from .solver.batch import minimize_batch as minimize_batch
from .solver.minimize import adam_minimizer as adam_minimizer
from .solver.minimize import minimize as minimize
from .state_files import load_state as load_state
from .state_files import save_state as save_state
from . import jit as jit

__version__: str
__all__ = ['ADOPT', 'ASGD', 'AdEMAMix', 'AdaBelief', 'Adadelta', 'Adafactor', 'Adagrad', 'Adam', 'AdamW', 'Adamax', 'Group', 'LAMB', 'Lion', 'Muon', 'NAdam', 'Prodigy', 'RAdam', 'RMSprop', 'Rows', 'Rprop', 'SGD', 'ScheduleFreeAdamW', 'SparseAdam', 'Yogi', 'adabelief_step', 'adadelta_step', 'adafactor_step', 'adagrad_step', 'adam_minimizer', 'adam_step', 'adamax_step', 'ademamix_step', 'adopt_step', 'asgd_step', 'clip_by_global_norm', 'clip_by_norm', 'clip_by_value', 'families', 'lamb_step', 'lion_step', 'load_state', 'minimize', 'minimize_batch', 'nadam_step', 'plot_convergence', 'prodigy_step', 'radam_step', 'rmsprop_step', 'rprop_step', 'save_state', 'schedule_free_adamw_step', 'schedules', 'sgd_step', 'sparse_adam_step', 'yogi_step']


class ADOPT(Optimizer):
    r"""ADOPT (Taniguchi et al. 2024) over a tree of arrays, updated in place."""
    lr: Any; betas: Any; eps: Any; clip_lambda: Any; weight_decay: Any; decoupled_weight_decay: Any; maximize: Any; convention: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.9999), eps=1e-06, clip_lambda=0.25, weight_decay=0.0, decoupled_weight_decay=False, maximize=False, convention='official', *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class ASGD(Optimizer):
    r"""ASGD, averaged stochastic gradient descent (Polyak & Juditsky 1992), over a tree of arrays,"""
    lr: Any; lambd: Any; alpha: Any; t0: Any; weight_decay: Any; maximize: Any
    def __init__(self, params, lr=0.01, lambd=0.0001, alpha=0.75, t0=1000000.0, weight_decay=0.0, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class AdEMAMix(Optimizer):
    r"""AdEMAMix (Pagliardini et al. 2024) over a tree of arrays, updated in place."""
    lr: Any; betas: Any; alpha: Any; beta3_warmup: Any; alpha_warmup: Any; eps: Any; weight_decay: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999, 0.9999), alpha=2.0, beta3_warmup=None, alpha_warmup=None, eps=1e-08, weight_decay=0.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class AdaBelief(Optimizer):
    r"""AdaBelief (Zhuang et al. 2020) over a tree of arrays, updated in place."""
    lr: Any; betas: Any; eps: Any; eps_root: Any; weight_decay: Any; decoupled_weight_decay: Any; maximize: Any; convention: Any; rectify: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-16, eps_root=1e-16, weight_decay=0.0, decoupled_weight_decay=True, maximize=False, convention='optax', rectify=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class Adadelta(Optimizer):
    r"""Adadelta (Zeiler 2012) over a tree of arrays, updated in place."""
    lr: Any; rho: Any; eps: Any; weight_decay: Any; maximize: Any
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-06, weight_decay=0.0, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class Adafactor(Optimizer):
    r"""Adafactor (Shazeer & Stern 2018) over a tree of arrays, updated in place: ``torch.optim.Adafactor``."""
    lr: Any; beta2_decay: Any; eps: Any; d: Any; weight_decay: Any; maximize: Any
    def __init__(self, params, lr=0.01, beta2_decay=-0.8, eps=(None, 0.001), d=1.0, weight_decay=0.0, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class Adagrad(Optimizer):
    r"""Adagrad (Duchi, Hazan & Singer 2011) over a tree of arrays, updated in place."""
    lr: Any; lr_decay: Any; weight_decay: Any; initial_accumulator_value: Any; eps: Any; maximize: Any
    def __init__(self, params, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015) over a tree of NumPy or CuPy arrays, updated in place."""
    lr: Any; betas: Any; eps: Any; weight_decay: Any; amsgrad: Any; maximize: Any; decoupled_weight_decay: Any; convention: Any; eps_root: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False, maximize=False, decoupled_weight_decay=False, convention='torch', eps_root=0.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class AdamW(Optimizer):
    r"""AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay."""
    lr: Any; betas: Any; eps: Any; weight_decay: Any; amsgrad: Any; maximize: Any; decoupled_weight_decay: Any; convention: Any; eps_root: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, amsgrad=False, maximize=False, convention='torch', eps_root=0.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class Adamax(Optimizer):
    r"""Adamax (Kingma & Ba 2015) over a tree of arrays, updated in place."""
    lr: Any; betas: Any; eps: Any; weight_decay: Any; maximize: Any; convention: Any
    def __init__(self, params, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, maximize=False, convention='torch', *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class LAMB(Optimizer):
    r"""LAMB (You et al. 2020) over a tree of arrays, updated in place."""
    lr: Any; betas: Any; eps: Any; eps_root: Any; weight_decay: Any; convention: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-06, eps_root=0.0, weight_decay=0.0, convention='optax', *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class Lion(Optimizer):
    r"""Lion (Chen et al. 2023) over a tree of arrays, updated in place."""
    lr: Any; betas: Any; weight_decay: Any; maximize: Any
    def __init__(self, params, lr=0.0001, betas=(0.9, 0.99), weight_decay=0.001, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class NAdam(Optimizer):
    r"""NAdam (Dozat 2016): Adam with Nesterov momentum, over a tree of arrays, in place."""
    lr: Any; betas: Any; eps: Any; weight_decay: Any; momentum_decay: Any; decoupled_weight_decay: Any; maximize: Any; convention: Any; eps_root: Any
    def __init__(self, params, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, momentum_decay=0.004, decoupled_weight_decay=False, maximize=False, convention='torch', eps_root=0.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class Prodigy(Optimizer):
    r"""Prodigy (Mishchenko & Defazio 2023) over a tree of arrays, updated in place: Adam whose step"""
    lr: Any; betas: Any; beta3: Any; eps: Any; weight_decay: Any; decouple: Any; use_bias_correction: Any; safeguard_warmup: Any; d0: Any; d_coef: Any; growth_rate: Any; slice_p: Any
    def __init__(self, params, lr=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-08, weight_decay=0.0, decouple=True, use_bias_correction=False, safeguard_warmup=False, d0=1e-06, d_coef=1.0, growth_rate=..., slice_p=1, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class RAdam(Optimizer):
    r"""RAdam (Liu et al. 2020) over a tree of arrays, updated in place."""
    lr: Any; betas: Any; eps: Any; weight_decay: Any; decoupled_weight_decay: Any; maximize: Any; convention: Any; threshold: Any; eps_root: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, decoupled_weight_decay=False, maximize=False, convention='torch', threshold=5.0, eps_root=0.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class RMSprop(Optimizer):
    r"""RMSprop (Tieleman & Hinton 2012) over a tree of arrays, updated in place."""
    lr: Any; alpha: Any; eps: Any; weight_decay: Any; momentum: Any; centered: Any; maximize: Any
    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-08, weight_decay=0.0, momentum=0.0, centered=False, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class Rprop(Optimizer):
    r"""Rprop (Riedmiller & Braun 1993) over a tree of arrays, updated in place."""
    lr: Any; etas: Any; step_sizes: Any; maximize: Any
    def __init__(self, params, lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-06, 50.0), maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class SGD(Optimizer):
    r"""Stochastic gradient descent, with momentum, over a tree of arrays, updated in place."""
    lr: Any; momentum: Any; dampening: Any; weight_decay: Any; nesterov: Any; maximize: Any
    def __init__(self, params, lr=0.001, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class ScheduleFreeAdamW(Optimizer):
    r"""Schedule-free AdamW (Defazio et al. 2024) over a tree of arrays, updated in place."""
    lr: Any; betas: Any; eps: Any; weight_decay: Any; warmup_steps: Any; r: Any; weight_lr_power: Any
    def eval_params(self): ...
    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class SparseAdam(Optimizer):
    r"""SparseAdam over a tree of arrays, updated in place: Adam's moments and step on the"""
    lr: Any; betas: Any; eps: Any; maximize: Any
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

class Yogi(Optimizer):
    r"""Yogi (Zaheer et al. 2018) over a tree of arrays, updated in place."""
    lr: Any; betas: Any; eps: Any; eps_root: Any; initial_accumulator_value: Any; weight_decay: Any; maximize: Any
    def __init__(self, params, lr=0.01, betas=(0.9, 0.999), eps=0.001, eps_root=0.0, initial_accumulator_value=1e-06, weight_decay=0.0, maximize=False, *, schedule=None, clip_global_norm=None, clip_value=None, nonfinite='propagate', bounds=None, nonneg=False, ema=None, ema_bias_correction=False, accumulate=1, state_dtype=None, master_weights=False, stochastic_rounding=False, compensation=None, seed=0, complex_mode='pairs') -> None: ...

def adabelief_step(param, grad, exp_avg, exp_avg_var, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-16, eps_root=1e-16, weight_decay=0.0, decoupled_weight_decay=True, maximize=False, convention='optax', rectify=False) -> Any:
    r"""Take AdaBelief step ``step`` on ``param`` and its state, in place."""

def adadelta_step(param, grad, square_avg, acc_delta, *, step, lr=1.0, rho=0.9, eps=1e-06, weight_decay=0.0, maximize=False) -> Any:
    r"""Take Adadelta step ``step`` on ``param`` and its state, in place."""

def adafactor_step(param, grad, row_var, col_var, *, step, lr=0.01, beta2_decay=-0.8, eps=(None, 0.001), d=1.0, weight_decay=0.0, maximize=False) -> Any:
    r"""Take Adafactor step ``step`` on ``param`` and its state, in place."""

def adagrad_step(param, grad, sum, *, step, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False) -> Any:
    r"""Take Adagrad step ``step`` on ``param`` and its state, in place."""

def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False, maximize=False, decoupled_weight_decay=False, convention='torch', eps_root=0.0, max_exp_avg_sq=None) -> Any:
    r"""Take Adam step ``step`` on ``param`` and its state, in place."""

def adamax_step(param, grad, exp_avg, exp_inf, *, step, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, maximize=False, convention='torch') -> Any:
    r"""Take Adamax step ``step`` on ``param`` and its state, in place."""

def ademamix_step(param, grad, exp_avg_fast, exp_avg_slow, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999, 0.9999), alpha=2.0, beta3_warmup=None, alpha_warmup=None, eps=1e-08, weight_decay=0.0) -> Any:
    r"""Take AdEMAMix step ``step`` on ``param`` and its state, in place."""

def adopt_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.9999), eps=1e-06, clip_lambda=0.25, weight_decay=0.0, decoupled_weight_decay=False, maximize=False, convention='official') -> Any:
    r"""Take ADOPT step ``step`` on ``param`` and its state, in place."""

def asgd_step(param, grad, ax, *, step, lr=0.01, lambd=0.0001, alpha=0.75, t0=1000000.0, weight_decay=0.0, maximize=False, carry=None) -> Any:
    r"""Take ASGD step ``step`` on ``param`` and its state, in place."""

def lamb_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-06, eps_root=0.0, weight_decay=0.0, convention='optax') -> Any:
    r"""Take LAMB step ``step`` on ``param`` and its state, in place."""

def lion_step(param, grad, exp_avg, *, step, lr=0.0001, betas=(0.9, 0.99), weight_decay=0.001, maximize=False) -> Any:
    r"""Take Lion step ``step`` on ``param`` and its state, in place."""

def nadam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, momentum_decay=0.004, decoupled_weight_decay=False, maximize=False, convention='torch', eps_root=0.0, carry=None) -> Any:
    r"""Take NAdam step ``step`` on ``param`` and its state, in place."""

def prodigy_step(param, grad, exp_avg_sq, s, p0, *, step, lr=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-08, weight_decay=0.0, decouple=True, use_bias_correction=False, safeguard_warmup=False, d0=1e-06, d_coef=1.0, growth_rate=..., slice_p=1, exp_avg=None, carry=None) -> Any:
    r"""Take Prodigy step ``step`` on ``param`` and its state, in place."""

def radam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, decoupled_weight_decay=False, maximize=False, convention='torch', threshold=5.0, eps_root=0.0) -> Any:
    r"""Take RAdam step ``step`` on ``param`` and its state, in place."""

def rmsprop_step(param, grad, square_avg, *, step, lr=0.01, alpha=0.99, eps=1e-08, weight_decay=0.0, momentum=0.0, centered=False, maximize=False, grad_avg=None, momentum_buffer=None) -> Any:
    r"""Take RMSprop step ``step`` on ``param`` and its state, in place."""

def rprop_step(param, grad, prev, step_size, *, step, lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-06, 50.0), maximize=False) -> Any:
    r"""Take Rprop step ``step`` on ``param`` and its state, in place."""

def schedule_free_adamw_step(param, grad, z, exp_avg_sq, *, step, lr=0.0025, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0, carry=None) -> Any:
    r"""Take ScheduleFreeAdamW step ``step`` on ``param`` and its state, in place."""

def sgd_step(param, grad, *, step, lr=0.001, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False, momentum_buffer=None) -> Any:
    r"""Take SGD step ``step`` on ``param`` and its state, in place."""

def sparse_adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-08, maximize=False) -> Any:
    r"""Take SparseAdam step ``step`` on ``param`` and its state, in place."""

def yogi_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=0.01, betas=(0.9, 0.999), eps=0.001, eps_root=0.0, initial_accumulator_value=1e-06, weight_decay=0.0, maximize=False) -> Any:
    r"""Take Yogi step ``step`` on ``param`` and its state, in place."""
