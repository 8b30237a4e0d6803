r"""Row-sparse gradients: :class:`Rows`, a gradient that lists the rows it touches.

An embedding table, or an inverse problem whose step touches a few patches,
has a gradient that is zero outside a few rows of its parameter. ``Rows(index,
values)`` stands for that gradient: row ``index[j]`` of the parameter (its
first axis) has gradient ``values[j]``, and every other row has none. A row
listed more than once has the sum of its values (in the order given), as
torch coalesces a sparse gradient.

A step with a :class:`Rows` gradient is *lazy*: only the listed rows of the
parameter and of its state change. A dense step with zeros in the other rows
would differ: it would decay their moments, move their parameters by the
momentum they still carry, and apply weight decay to them. The step count is
the optimizer's, shared by every parameter, and the bias corrections use it.

This module checks a :class:`Rows` against its parameter and sums repeated
rows (:func:`coalesced`); the engines lay the listed rows out as segments of
their kernels' tables, so the same kernels update them.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ..core import validate
from ..targets.cpu.threads import parallel_allowed
from ..targets.disk_cache import cached_njit
from ..targets.arrays import NO_FIXES
from ..targets.segments import ADDRESS, first_fix, listed_address, listed_values


class Rows:
    """A row-sparse gradient: ``values[j]`` is the gradient of row ``index[j]`` of its parameter.

    Parameters
    ----------
    index : array of integers, shape (k,)
        Rows of the parameter (its first axis), each in ``[0, n)`` for a
        parameter of shape ``(n, ...)``; for a 1-D parameter, its elements.
        A row may repeat: its values are then summed.
    values : array, shape (k,) + parameter.shape[1:]
        The rows' gradients, in the parameter's dtype and on its device.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> table = np.zeros((5, 2))
    >>> opt = numadam.Adam(table, lr=0.1)
    >>> opt.step(numadam.Rows(np.array([1, 3, 1]), np.ones((3, 2))))   # row 1 twice: gradient 2
    >>> np.flatnonzero(table.any(axis=1))                              # only rows 1 and 3 moved
    array([1, 3])
    """

    __slots__ = ("index", "values")

    def __init__(self, index, values):
        self.index = index
        self.values = values

    def __repr__(self):
        return f"Rows(index of shape {np.shape(self.index)}, values of shape {np.shape(self.values)})"


def is_rows(value):
    return type(value) is Rows


class Coalesced(NamedTuple):
    """A checked :class:`Rows`: each listed row once (``index``, int64 on the host), its gradient
    ``values[j]`` (the given array when no row repeats, else a new one of the sums), and whether
    the rows ascend."""

    index: np.ndarray
    values: object
    ascending: bool


def _host(array):
    """``array`` as a NumPy array (CuPy and numba-cuda arrays copied to the host)."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "get"):
        return array.get()
    if hasattr(array, "copy_to_host"):
        return array.copy_to_host()
    return np.asarray(array)


def checked_index(rows, n_rows, path):
    """The index of ``rows``, the gradient of a parameter with ``n_rows`` rows named ``path``, as
    int64 on the host; every rule checked."""
    index = _host(rows.index)
    if index.size == 0 and index.dtype.kind == "f" and not isinstance(rows.index, np.ndarray):
        index = index.astype(np.int64)  # an empty list
    if index.dtype.kind not in "iu" or index.dtype == np.bool_:
        raise TypeError(f"{path}.index must hold integers (the rows of its parameter); got dtype {index.dtype}")
    if index.ndim != 1:
        raise ValueError(f"{path}.index must be 1-D (one row number per row of values); got shape {index.shape}")
    if index.dtype.kind == "u" and index.size and int(index.max()) >= n_rows:  # before int64 could wrap it
        raise ValueError(f"{path}.index must lie in [0, {n_rows}) (the rows of its parameter); "
                         f"got {int(index.max())}")
    index = np.ascontiguousarray(index, np.int64)
    outside, bad, repeated, ascending = _scan(index, n_rows)
    if outside:
        raise ValueError(f"{path}.index must lie in [0, {n_rows}) (the rows of its parameter); got {bad}")
    return Checked(index, repeated, ascending)


class Checked(NamedTuple):
    """A checked index (int64, C-contiguous), whether a row repeats in it, and whether its rows
    ascend (then neighbouring rows may make one segment)."""

    index: np.ndarray
    repeated: bool
    ascending: bool


@cached_njit()
def _scan(index, n_rows):
    """``(outside, bad, repeated, ascending)`` of ``index`` (see :func:`_scanned`)."""
    return _scanned(index, n_rows)


@njit(inline="always")
def sorts_rows(count, n_rows):
    """Whether repeats among ``count`` listed rows of a parameter of ``n_rows`` rows are looked for
    by sorting the listings rather than with a bit per row: a few rows of a large parameter, where
    the sort costs less than the bits (64 rows of 2**28: 2 microseconds against 13.8 ms)."""
    return n_rows // 8 > 16 * count


@njit(inline="always")
def _scanned(index, n_rows):
    """``(outside, bad, repeated, ascending)``: whether an index lies outside ``[0, n_rows)``, the
    first that does, whether a row repeats (looked for only when none is outside: one bit per
    row), and whether the rows strictly ascend (then none repeats)."""
    ascending = True
    for j in range(len(index)):
        row = index[j]
        if row < 0 or row >= n_rows:
            return True, row, False, False
        if j and row <= index[j - 1]:
            ascending = False
    if ascending:
        return False, 0, False, True
    if sorts_rows(len(index), n_rows):
        ordered = np.sort(index)
        for j in range(1, len(ordered)):
            if ordered[j] == ordered[j - 1]:
                return False, 0, True, False
        return False, 0, False, False
    seen = np.zeros((n_rows + 7) // 8, np.uint8)
    for row in index:
        byte, bit = row >> 3, np.uint8(1 << (row & 7))
        if seen[byte] & bit:
            return False, 0, True, False
        seen[byte] |= bit
    return False, 0, False, False


def merges(index):
    """Whether at least an eighth of the rows of ``index`` (ascending) follow their predecessor:
    then merging neighbours into one segment (:func:`~numadam.targets.layout.coalesce`) saves more
    than its pass over the rows costs; a minibatch's rows of a large table seldom touch."""
    return len(index) > 1 and 8 * _following(index) >= len(index)


@cached_njit()
def _following(index):
    """How many rows of ``index`` are their predecessor's next row."""
    count = 0
    for j in range(1, len(index)):
        count += index[j] == index[j - 1] + 1
    return count


def check_values(values_info, param_info, n_listed, path):
    """The values of a :class:`Rows` (``values_info``, an ``ArrayInfo``) have the parameter's dtype
    and shape ``(n_listed,) + shape[1:]``."""
    expected = (n_listed,) + tuple(param_info.shape[1:])
    if values_info.dtype != param_info.dtype:
        raise TypeError(f"{path}.values must have its parameter's dtype {param_info.dtype}; "
                        f"got {values_info.dtype}")
    if tuple(values_info.shape) != expected:
        raise ValueError(f"{path}.values must have shape {expected} (one row per index, each shaped like a row "
                         f"of its parameter {tuple(param_info.shape)}); got {tuple(values_info.shape)}")


def check_parameter(param_info, path):
    if len(param_info.shape) == 0:
        raise ValueError(f"{path} is a Rows gradient of a 0-d parameter; Rows lists the rows of a parameter "
                         "of 1 or more dimensions")


def checked(rows, param_info, values_info, path, backend, spare=None):
    """Every check of ``rows``, the :class:`Rows` gradient named ``path`` of a parameter
    (``param_info``, an ``ArrayInfo``; ``values_info``, its values'), then its :func:`coalesced`
    rows (into ``spare``, if given)."""
    check_parameter(param_info, path)
    index = checked_index(rows, param_info.shape[0], path)
    check_values(values_info, param_info, len(index.index), path)
    validate.check_layout(values_info, f"{path}.values", writable=False)
    return coalesced(index, rows.values, backend, spare)


class Spare:
    """Memory that :func:`coalesced` and :func:`~numadam.adapters.listing.listed_once` write sums
    and positions into, kept from call to call by its owner (a step's are read by that step
    alone): memory written before, which a new array of the sums (a megabyte for 1e4 rows of 16
    float32) is not, and whose first touch costs more than the adding."""

    __slots__ = ("sums", "rows", "positions")

    def __init__(self):
        self.sums = self.rows = self.positions = None

    def later(self, count):
        """Room for the positions of ``count`` listings (:func:`~numadam.adapters.listing.listed_once`)."""
        if self.positions is None or len(self.positions) < count:
            self.positions = np.empty(count, np.int64)
        return self.positions

    def get(self, count, width, dtype):
        """Room for ``count`` rows of ``width`` values of ``dtype``, and as many row numbers."""
        sums = self.sums
        if sums is None or len(sums) < count or sums.shape[1] != width or sums.dtype != dtype:
            self.sums, self.rows = np.empty((max(count, 1), width), dtype), np.empty(max(count, 1), np.int64)
        return self.sums, self.rows


def coalesced(checked, values, backend, spare=None):
    """``Coalesced(index, values)`` of a :class:`Checked` index and its values: each row once.

    Rows listed once keep the given array (no copy). Repeated rows are summed
    in the order given, on the host (so every backend gets the same bits), into
    a new array of ``backend``'s, or for NumPy values, into ``spare`` (a :class:`Spare`) if given.
    """
    index = checked.index
    if not checked.repeated:
        return Coalesced(index, values, checked.ascending)
    numpy_values = isinstance(values, np.ndarray)
    summed, rows = _summed_in_order(index, _host(values), spare if numpy_values else None)
    if numpy_values:
        return Coalesced(rows, summed, True)
    own = backend.zeros(summed.size, summed.dtype).reshape(summed.shape)
    backend.assign(own, summed)
    return Coalesced(rows, own, True)


#: The values' dtypes summed by compiled code (Numba has no 16-bit float arithmetic on the CPU).
_COMPILED_SUMS = frozenset(np.dtype(name) for name in ("float32", "float64", "complex64", "complex128"))


def _summed_in_order(index, values, spare=None):
    """``(sums, rows)``: each listed row once (ascending) and the sum of its values in the order
    given, ``((v_1 + v_2) + v_3) + ...``, in their own dtype.

    For the dtypes of :data:`_COMPILED_SUMS`, compiled: the positions ordered by row, ties in the
    order given (:func:`_stable_row_order`), then each row's values added in that order
    (:func:`_summed_by_row`), into ``spare`` (a :class:`Spare`) where given; else one vectorized
    NumPy add per repeat, the same sums."""
    if values.dtype in _COMPILED_SUMS and values.ndim >= 1:
        order = _stable_row_order(index, int(index.max()) + 1)
        flat = values.reshape(len(index), -1)
        if spare is None:
            sums, rows = np.empty(flat.shape, flat.dtype), np.empty(len(index), np.int64)
        else:
            sums, rows = spare.get(len(index), flat.shape[1], flat.dtype)
        unique = _summed_by_row(index, flat, order, sums, rows)
        return sums[:unique].reshape((unique,) + values.shape[1:]), rows[:unique]
    order = np.argsort(index, kind="stable")
    ordered = index[order]
    firsts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(np.append(firsts, len(index)))
    rank = np.arange(len(index)) - np.repeat(firsts, counts)  # each value's place among its row's
    row_of = np.repeat(np.arange(len(firsts)), counts)
    summed = values[order[firsts]]
    for repeat in range(1, int(counts.max())):
        picked = np.flatnonzero(rank == repeat)
        summed[row_of[picked]] += values[order[picked]]
    return summed, ordered[firsts]


#: The bits of a row number sorted in one pass of :func:`_stable_row_order`.
_DIGIT_BITS = 11


@cached_njit()
def _stable_row_order(index, bound):
    """The positions of ``index`` (rows in ``[0, bound)``) ordered by row, positions of one row in
    the order given: a least-significant-digit radix sort, :data:`_DIGIT_BITS` bits a pass (a
    pass per 11 bits of ``bound - 1``; two for a table of four million rows)."""
    n = len(index)
    order = np.arange(n)
    spare = np.empty(n, np.int64)
    digits = 1 << _DIGIT_BITS
    shift = 0
    while (bound - 1) >> shift > 0:
        starts = np.zeros(digits + 1, np.int64)
        for j in range(n):
            starts[((index[order[j]] >> shift) & (digits - 1)) + 1] += 1
        for digit in range(digits):
            starts[digit + 1] += starts[digit]
        for j in range(n):
            digit = (index[order[j]] >> shift) & (digits - 1)
            spare[starts[digit]] = order[j]
            starts[digit] += 1
        order, spare = spare, order
        shift += _DIGIT_BITS
    return order


@cached_njit()
def _summed_by_row(index, values, order, sums, rows):
    """The sums of :func:`_summed_in_order` over ``values`` (one row of values per index, as a
    2-D array), written into the first rows of ``sums`` and ``rows``; returns their number.

    ``order`` (the positions by row, ties in the order given) numbers the distinct rows and
    finds each row's first position; then one pass over ``values`` in the order given copies
    each row's first value and adds each later one to its row's sum: the same sums as taking
    the values in ``order``, with the values read in turn rather than hopping between rows."""
    n, width = values.shape
    slot = np.empty(n, np.int64)
    first = np.empty(n, np.bool_)
    row = -1
    for j in range(n):
        position = order[j]
        starts = j == 0 or index[position] != index[order[j - 1]]
        if starts:
            row += 1
            rows[row] = index[position]
        slot[position] = row
        first[position] = starts
    for position in range(n):
        target = slot[position]
        if first[position]:
            for column in range(width):
                sums[target, column] = values[position, column]
        else:
            for column in range(width):
                sums[target, column] += values[position, column]
    return row + 1


# -- the segment rows of the listed rows ---------------------------------------------------------


def listed_rows(template, index, grad_address, grad_stride, grad, scratch=None, fixes=NO_FIXES):
    """The segment rows over rows ``index`` of every operand of ``template`` (a
    :class:`~numadam.engine.operands.RowTemplate`) but the gradient (operand ``grad``), whose
    j-th row (at ``grad_address + j * grad_stride``) goes with row ``index[j]`` of the others: the
    rows of a :class:`Rows` gradient's update; with ``fixes``, those of the listings it does not
    skip, each with the values it names (see :class:`~numadam.targets.arrays.ListedPlan`). They
    are written into ``scratch`` (rows of the template's width) where it is large enough: memory
    used before, which a new array of that size (megabytes for 1e4 rows) is not, and the first
    touch of it costs more than the writing. Returns ``(rows, scratch)``: the rows, and the memory
    that holds them."""
    needed = (len(index) - int(fixes[2, -1])) * len(template.rows)
    if scratch is None or len(scratch) < needed or scratch.shape[1] != template.rows.shape[1]:
        scratch = np.empty((needed, template.rows.shape[1]), np.int64)
    rows = scratch[:needed]
    fill = (_listed_table_parallel if len(index) >= _PARALLEL_ROWS and parallel_allowed() and fixes.shape[1] == 1
            else _listed_table)
    fill(template.rows, template.strides, index, grad_address, grad_stride, fixes, ADDRESS, grad, rows)
    return rows, scratch


#: From this many listed rows on, their table is written on every core (where no listing is fixed).
_PARALLEL_ROWS = 4096


@cached_njit()
def _listed_table(template, strides, index, grad_address, grad_stride, fixes, address, grad, rows):
    """:func:`listed_rows` in one pass over the listed rows (the column numbers passed in: a
    cached kernel keeps no module's globals)."""
    cursor, skipped = first_fix(fixes, 0)
    for j in range(len(index)):
        values, cursor = listed_values(grad_address, grad_stride, fixes, cursor, j)
        if values == 0:
            skipped += 1
        else:
            _listed_row(template, strides, index[j], values, address, grad, rows, j - skipped)


@cached_njit(parallel=True)
def _listed_table_parallel(template, strides, index, grad_address, grad_stride, fixes, address, grad, rows):
    """:func:`_listed_table` on every core, where no listing is fixed."""
    for j in prange(len(index)):
        _listed_row(template, strides, index[j], grad_address + j * grad_stride, address, grad, rows, j)


@njit(inline="always")
def _listed_row(template, strides, row, values, address, grad, rows, out):
    """The template's rows moved to row ``row`` of the parameter and to its values at ``values``,
    written as the ``out``-th listed row's."""
    per_row, width = template.shape
    for t in range(per_row):
        at = out * per_row + t
        for column in range(width):
            rows[at, column] = template[t, column]
        for k in range(len(strides)):
            rows[at, address + k] = listed_address(rows[at, address + k], k, grad, values, row, strides[k])
