"""The engines behind the optimizer objects: the local engine (NumPy, CuPy, torch, DLPack) and the Dask engine.

An engine is chosen once, when an optimizer is made, by the kind of its parameters
(:func:`engine_for`); it owns the state arrays and the counts, and takes every step.
"""

from ..adapters.dask import is_dask_array
from .local import LocalEngine


def engine_for(leaves):
    """The engine class for parameters ``leaves``: Dask's if any is a Dask array, else the local one
    (the Dask engine's module is imported only then)."""
    if any(map(is_dask_array, leaves)):
        from .dask import DaskEngine

        return DaskEngine
    return LocalEngine
