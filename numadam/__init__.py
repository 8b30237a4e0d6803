"""numadam: fused Adam and AdamW for NumPy and CuPy arrays."""

from . import schedules
from ._state import load_state, save_state
from .clipping import clip_by_global_norm, clip_by_norm, clip_by_value
from .functional import adam_step
from .optimizers import Adam, AdamW
from .plotting import plot_convergence
from .solve import adam_minimizer, minimize

__all__ = [
    "Adam",
    "AdamW",
    "adam_minimizer",
    "adam_step",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "load_state",
    "minimize",
    "plot_convergence",
    "save_state",
    "schedules",
]
