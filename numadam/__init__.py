"""numadam: the Adam family of optimizers, fused, for NumPy, CuPy, torch and Dask arrays."""

from . import families as _families
from . import schedules
from .adapters.group import Group
from .adapters.rows import Rows
from .clipping import clip_by_global_norm, clip_by_norm, clip_by_value
from .families import *  # noqa: F403  (every algorithm's classes and functional step, and families())
from .plotting import plot_convergence
from .solve import adam_minimizer, minimize
from .state_files import load_state, save_state



def __getattr__(name):
    """``numadam.jit``, imported on first use (its compiled steps are not needed to import numadam)."""
    if name == "jit":
        import importlib

        return importlib.import_module(f"{__name__}.jit")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_families.__all__ + [
    "Group", "adam_minimizer", "clip_by_global_norm", "clip_by_norm", "clip_by_value", "load_state", "minimize",
    "plot_convergence", "Rows", "save_state", "schedules",
])
