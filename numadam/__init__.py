"""numadam: the Adam family of optimizers, fused, for NumPy and CuPy arrays."""

from . import schedules
from .adapters.group import Group
from .state_files import load_state, save_state
from .clipping import clip_by_global_norm, clip_by_norm, clip_by_value
from .families import (ADOPT, LAMB, AdaBelief, Adam, Adamax, AdamW, AdEMAMix, Lion, NAdam, RAdam, ScheduleFreeAdamW, Yogi, adabelief_step, adam_step, adamax_step, ademamix_step, adopt_step, families, lamb_step, lion_step, nadam_step, radam_step, schedule_free_adamw_step, yogi_step)
from .plotting import plot_convergence
from .solve import adam_minimizer, minimize

__all__ = [
    "ADOPT",
    "AdaBelief",
    "AdEMAMix",
    "Adam",
    "AdamW",
    "Adamax",
    "Group",
    "LAMB",
    "Lion",
    "NAdam",
    "RAdam",
    "ScheduleFreeAdamW",
    "Yogi",
    "adabelief_step",
    "adam_minimizer",
    "adam_step",
    "adamax_step",
    "ademamix_step",
    "adopt_step",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "families",
    "lamb_step",
    "lion_step",
    "load_state",
    "minimize",
    "nadam_step",
    "plot_convergence",
    "radam_step",
    "save_state",
    "schedule_free_adamw_step",
    "schedules",
    "yogi_step",
]
