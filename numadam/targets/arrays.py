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


#: The fixes of a :class:`ListedPlan` whose listings each take their row of the values: none but
#: the last, which no listing reaches.
NO_FIXES = np.array([[np.iinfo(np.int64).max], [0], [0]], np.int64)


class ListedPlan:
    """A plan over the rows ``index`` of one parameter that a ``Rows`` gradient lists (values row
    ``j`` at ``grad_address + j * grad_stride``), kept as the segment rows of one row
    (``template``: a :class:`~numadam.engine.operands.RowTemplate`'s, with each operand's
    first-axis ``strides`` in bytes, and ``reach``, the bytes from each operand's row's first
    element to its end, which the kernel asks the cache for ahead) and the index, not as a table:
    the CPU's listed kernel lays out each row's segments as it updates it
    (:func:`~numadam.targets.cpu.kernels.update_listed_parallel`). A table of every row would be
    written, then read again: 23 int64s for a row of 16 float32s of Adam, three times the row's own
    bytes, which cost a minibatch's step more than its update. ``make_rows(plan)`` makes that table
    (its ``OFFSET`` numbered) for a caller that asks for :attr:`rows`: a step whose policy makes a
    pre-pass over the gradients (clipping by the global norm, skipping non-finite ones).
    :class:`Plan`'s other fields are here too.

    ``fixes`` (int64, 3 rows) names the listings that do not take their row of the values, in
    ascending order (``fixes[0]``), each with the address of the values it takes instead
    (``fixes[1]``; 0: none, the listing is skipped), and how many listings before it are skipped
    (``fixes[2]``); its last column (:data:`NO_FIXES`'s only one) no listing reaches, and holds
    how many are skipped in all. A row listed more than once takes the sums of its values at its
    first listing and skips the others (:func:`~numadam.adapters.listing.listed_once`), so the
    listings updated are each row once, in the order of their first listing, numbered in the
    sequence without the skipped ones."""

    __slots__ = ("template", "strides", "reach", "index", "grad_address", "grad_stride", "fixes", "grad",
                 "row_length", "n_elements", "n_chunks", "chunk_size", "_make_rows", "_rows")

    def __init__(self, template, strides, reach, index, grad_address, grad_stride, grad, chunk_size, make_rows,
                 fixes=NO_FIXES):
        self.template, self.strides, self.reach, self.grad = template, strides, reach, grad
        self.row_length, self.chunk_size = int(template[:, LENGTH].sum()), chunk_size
        self._make_rows = make_rows
        self.move(index, grad_address, grad_stride, fixes)

    @property
    def rows(self):
        """The segment table of every listed row (made at the first call)."""
        if self._rows is None:
            self._rows = self._make_rows(self)
        return self._rows

    def move(self, index, grad_address, grad_stride, fixes=NO_FIXES):
        """This plan over other rows (``index``, as many or not) and other values: its launches,
        which read these at each call, then update those."""
        self.index, self.grad_address, self.grad_stride, self.fixes = index, grad_address, grad_stride, fixes
        skipped = 0 if fixes is NO_FIXES else int(fixes[2, -1])  # (the common case without indexing NumPy)
        self.n_elements = (len(index) - skipped) * self.row_length
        self.n_chunks, self._rows = -(-self.n_elements // self.chunk_size), None

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
