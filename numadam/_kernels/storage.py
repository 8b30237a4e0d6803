"""How an operand's elements are stored, and how the rule reads and writes them.

Every storage code names the element a kernel's pointer points at and two
inlined functions: ``widen`` turns a stored element into the real number the
rule computes with, ``narrow`` turns the rule's result back into a stored
element. Arithmetic never runs in the storage format.
"""

from typing import NamedTuple

import numpy as np
from numba import njit


@njit(inline="always")
def _same(value):
    return value


class Storage(NamedTuple):
    """One way of storing an operand's elements."""

    element: np.dtype
    widen: object
    narrow: object


STORAGES = {
    "f4": Storage(np.dtype(np.float32), _same, _same),
    "f8": Storage(np.dtype(np.float64), _same, _same),
}


def storage_code(dtype):
    """The storage code of arrays of the real ``dtype``."""
    return {np.dtype(np.float32): "f4", np.dtype(np.float64): "f8"}[np.dtype(dtype)]
