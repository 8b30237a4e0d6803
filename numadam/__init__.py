"""numadam: the Adam family of optimizers, fused, for NumPy and CuPy arrays."""

from . import schedules
from ._group import Group
from ._state import load_state, save_state
from .clipping import clip_by_global_norm, clip_by_norm, clip_by_value
from .families import Adam, AdamW, adam_step, families
from .plotting import plot_convergence
from .solve import adam_minimizer, minimize

__all__ = [
    "Adam",
    "AdamW",
    "Group",
    "adam_minimizer",
    "adam_step",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "families",
    "load_state",
    "minimize",
    "plot_convergence",
    "save_state",
    "schedules",
]
