"""numadam: the Adam family of optimizers, fused, for NumPy, CuPy, torch and Dask arrays."""

import time as _time

#: When this process began importing numadam (``time.time_ns()``), before any of its modules: a
#: source file changed after it may not be the code this process runs, so the kernels' disk cache
#: keys nothing shared on it (:func:`numadam.targets.fingerprint.source_digest`).
_import_started_ns = _time.time_ns()

from . import registry as _registry
from . import schedules
from .adapters.group import Group
from .adapters.rows import Rows
from .clipping import clip_by_global_norm, clip_by_norm, clip_by_value
from .registry import *  # noqa: F403  (every algorithm's classes and functional step, and families())
from .plotting import plot_convergence
from .solver.batch import minimize_batch
from .solver.minimize import adam_minimizer, minimize
from .state_files import load_state, save_state
from .core.version import package_version as _package_version

#: The installed numadam's version (pyproject.toml's), ``"unknown"`` for a source tree not installed.
__version__ = _package_version()



def __getattr__(name):
    """``numadam.jit``, imported on first use (its compiled steps are not needed to import numadam)."""
    if name == "jit":
        import importlib

        return importlib.import_module(f"{__name__}.jit")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_registry.__all__ + [
    "Group", "adam_minimizer", "clip_by_global_norm", "clip_by_norm", "clip_by_value", "load_state", "minimize",
    "minimize_batch", "plot_convergence", "Rows", "save_state", "schedules",
])
