"""The backends: what one kind of array needs for an update.

A backend describes arrays (:class:`ArrayInfo`), turns segment rows into a
:class:`Plan` its kernel can launch, runs it, and makes the optimizer's state
arrays. :mod:`numadam.targets.dispatch` picks one by array type; ``cpu`` and ``cuda``
hold the two.
"""

from typing import NamedTuple

import numpy as np

from .segments import LENGTH, table_width


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


class ListedPlan:
    """A plan over the rows ``index`` of one parameter that a ``Rows`` gradient lists (each once,
    values row ``j`` at ``grad_address + j * grad_stride``), kept as the segment rows of one row
    (``template``: a :class:`~numadam.engine.operands.RowTemplate`'s, with each operand's
    first-axis ``strides`` in bytes, and ``reach``, the bytes from each operand's row's first
    element to its end, which the kernel asks the cache for ahead) and the index, not as a table:
    the CPU's listed kernel lays out each row's segments as it updates it
    (:func:`~numadam.targets.cpu.kernels.update_listed_parallel`). A table of every row would be
    written, then read again: 23 int64s for a row of 16 float32s of Adam, three times the row's own
    bytes, which cost a minibatch's step more than its update. ``make_rows(plan)`` makes that table
    (its ``OFFSET`` numbered) for a caller that asks for :attr:`rows`: a step whose policy makes a
    pre-pass over the gradients (clipping by the global norm, skipping non-finite ones).
    :class:`Plan`'s other fields are here too."""

    __slots__ = ("template", "strides", "reach", "index", "grad_address", "grad_stride", "grad", "n_elements",
                 "n_chunks", "_make_rows", "_rows")

    def __init__(self, template, strides, reach, index, grad_address, grad_stride, grad, chunk_size, make_rows):
        self.template, self.strides, self.reach, self.index, self.grad = template, strides, reach, index, grad
        self.grad_address, self.grad_stride = grad_address, grad_stride
        self.n_elements = len(index) * int(template[:, LENGTH].sum())
        self.n_chunks = -(-self.n_elements // chunk_size)
        self._make_rows, self._rows = make_rows, None

    @property
    def rows(self):
        """The segment table of every listed row (made at the first call)."""
        if self._rows is None:
            self._rows = self._make_rows(self)
        return self._rows

    def move(self, index, grad_address, grad_stride):
        """This plan over other rows, as many (``index``), and other values: its launches, which
        read these at each call, then update those."""
        if len(index) != len(self.index):
            raise AssertionError(f"a plan of {len(self.index)} listed rows moved onto {len(index)}")
        self.index, self.grad_address, self.grad_stride, self._rows = index, grad_address, grad_stride, None

    @property
    def device_table(self):
        return self.rows.reshape(-1)

    @property
    def width(self):
        return self.template.shape[1]

    def check_fits(self, spec):
        """:meth:`Plan.check_fits`, of the template's columns."""
        if self.width != table_width(spec.n_operands, len(spec.sources), spec.positions):
            raise AssertionError(f"a template of {self.width} columns for {spec.n_operands} operands "
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
