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

    def check_fits(self, spec, scalars):
        """The table must have one address and one stride column per operand of ``spec``, and each
        scalar row the spec's count: a kernel reading a narrower table or shorter rows would read
        other rows' addresses or values as its own."""
        if self.rows.shape[1] != table_width(spec.n_operands, len(spec.sources)):
            raise AssertionError(f"a table of {self.rows.shape[1]} columns for {spec.n_operands} operands "
                                 f"({len(spec.sources)} out of place)")
        expected = spec.n_scalars
        if isinstance(scalars, np.ndarray):
            if scalars.ndim != 2 or scalars.shape[1] != expected:
                raise AssertionError(f"scalar rows of shape {scalars.shape} for {expected} values each")
        elif any(len(row) != expected for row in scalars):
            raise AssertionError(f"scalar rows of {[len(row) for row in scalars]} values for {expected}")
