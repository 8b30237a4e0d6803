"""The backends: what one kind of array needs for an update.

A backend describes arrays (:class:`ArrayInfo`), turns segment rows into a
:class:`Plan` its kernel can launch, runs it, and makes the optimizer's state
arrays. :mod:`numadam.targets.dispatch` picks one by array type; ``cpu`` and ``cuda``
hold the two.
"""

from typing import NamedTuple

import numpy as np

from .segments import table_width


class ArrayInfo(NamedTuple):
    """What an update needs to know about one array."""

    address: int
    shape: tuple
    strides: tuple
    dtype: np.dtype
    readonly: bool


class Plan(NamedTuple):
    """A segment table ready to launch: host rows, chunk count, and the backend's copy."""

    rows: np.ndarray
    n_chunks: int
    n_elements: int
    device_table: object

    @property
    def width(self):
        """Columns of the table (see :mod:`numadam.targets.segments`)."""
        return self.rows.shape[1]

    def check_fits(self, spec):
        """The table must have one address and one stride column per operand of ``spec``: a kernel
        reading a narrower table would read other rows' addresses as its own."""
        if self.rows.shape[1] != table_width(spec.n_operands, len(spec.sources), spec.positions):
            raise AssertionError(f"a table of {self.rows.shape[1]} columns for {spec.n_operands} operands "
                                 f"({len(spec.sources)} out of place)")


def checked_rows(scalars, real, n_scalars):
    """The rows of ``scalars`` (tuples of floats, or a float64 array of rows) one after the other,
    rounded once to ``real``; each row must hold ``n_scalars`` values: a kernel reading shorter
    rows would read other rows' values as its own."""
    if type(scalars) is list and len(scalars) == 1:  # one row, the common case, kept short
        if len(scalars[0]) != n_scalars:
            raise AssertionError(f"scalar rows of {len(scalars[0])} values for {n_scalars}")
        return np.fromiter(scalars[0], real, n_scalars)
    rows = scalars if isinstance(scalars, np.ndarray) else np.array(scalars, np.float64)
    if rows.ndim != 2 or rows.shape[1] != n_scalars:
        raise AssertionError(f"scalar rows of shape {rows.shape} for {n_scalars} values each")
    return rows.astype(real).reshape(-1)
