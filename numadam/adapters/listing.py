r"""A minibatch's rows on one array: which listings a step updates, and where their values lie.

A training loop gives each step a new :class:`~numadam.adapters.rows.Rows`:
its index in random order, a few rows listed more than once. The one-array
path (:meth:`numadam.engine.bucket.Bucket.listed_plan`) keeps that index as
given and updates each listing in turn (the CPU's listed kernel), so only the
listings of repeated rows need anything more: :func:`listed_once` finds them
and writes the *fixes* of a :class:`~numadam.targets.arrays.ListedPlan`. The
first listing of a repeated row $r$, listed at positions $j_1 < j_2 < \dots$,
takes the sum of its values

.. math::

    g_r = ((v_{j_1} + v_{j_2}) + v_{j_3}) + \dots

(added in the order given, as :func:`~numadam.adapters.rows.coalesced` adds
them), and its later listings are skipped. The rows are then updated in the
order of their first listing, each once.
"""

import numpy as np
from numba import njit

from .rows import sorts_rows
from ..targets.arrays import NO_FIXES
from ..targets.cpu.kernels import LINE, prefetch_line
from ..targets.disk_cache import cached_njit


def listed_once(index, n_rows, values, spare):
    """The fixes (:class:`~numadam.targets.arrays.ListedPlan`) of a minibatch's ``index`` (int64,
    C-contiguous, not yet checked against ``n_rows``) and its NumPy ``values`` (one row of values
    per listing), or ``None`` where the step needs
    :func:`~numadam.adapters.rows.checked`'s path: a row outside ``[0, n_rows)`` (which that path
    names in its error), or rows in ascending order (that path merges neighbouring rows into one
    segment; a single row is taken here), or rows listed more than once where ``spare`` is ``None``
    (values whose rows are not C-contiguous, as the sums' are).

    An index that lists each row once needs none. In one that repeats rows, the first listing of a
    repeated row takes the sum of its values, added in the order given into ``spare`` (a
    :class:`~numadam.adapters.rows.Spare`): the sums of :func:`~numadam.adapters.rows.coalesced`,
    bit for bit; its later listings are skipped, and the other rows' values stay where they are.
    Sorting every row (:func:`~numadam.adapters.rows.coalesced`) cost a minibatch of 21875 rows of a
    2.2e6 x 16 table 0.14 ms on a Zen 5, as much as a third of its update, and writing each row's
    listing out again 0.07; the rows that repeat in a minibatch are a few, and the fixes name only
    them."""
    later = spare.later(len(index)) if spare is not None else np.empty(len(index), np.int64)
    outside, ascending, n_later = _repeats(index, n_rows, later)
    if outside or (ascending and len(index) > 1):
        return None
    if not n_later:
        return NO_FIXES
    if spare is None:
        return None
    flat = values.reshape(len(values), -1)  # (a view: each row is C-contiguous)
    sums, _ = spare.get(n_later, flat.shape[1], flat.dtype)  # (at most as many rows repeat)
    return _fixed_listings(index, later[:n_later], flat, sums, sums.__array_interface__["data"][0])


@cached_njit()
def _repeats(index, n_rows, later):
    """``(outside, ascending, n_later)`` of ``index``: whether a row lies outside ``[0, n_rows)``
    (then nothing else is looked at), whether its rows never descend, and how many listings
    list a row listed before; their positions, in order, are written into ``later``, which
    has room for every listing. (Scalars only: an array returned costs the call a NumPy array,
    a tenth of a 64-row minibatch's step.)

    A bit per row of the parameter, or where :func:`~numadam.adapters.rows.sorts_rows`, the
    listings sorted (stably: each row's first listing first).

    The range and the order are taken first, as the least and greatest row and a count of descents,
    in a loop without a branch, which vectorizes: one that returned at the first row outside and
    ended the order at the first descent took 13.6 against 2.3 microseconds for 21875 rows (Zen 5)."""
    if not len(index):
        return False, True, 0
    low = high = index[0]
    descents = 0
    for j in range(1, len(index)):
        row = index[j]
        low, high = min(low, row), max(high, row)
        descents += row < index[j - 1]
    if low < 0 or high >= n_rows:
        return True, False, 0
    ascending = descents == 0
    if sorts_rows(len(index), n_rows):
        return False, ascending, _sorted_repeats(index, later)
    seen = np.zeros((n_rows + 7) // 8, np.uint8)  # (a bit per row)
    n_later = 0
    for j in range(len(index)):
        row = index[j]
        byte, bit = row >> 3, np.uint8(1 << (row & 7))
        if seen[byte] & bit:
            later[n_later] = j
            n_later += 1
        seen[byte] |= bit
    return False, ascending, n_later


@njit(inline="always")
def _sorted_repeats(index, later):
    """:func:`_repeats`'s later listings found by sorting the listings (stably) by row."""
    order = np.argsort(index, kind="mergesort")
    repeat = np.zeros(len(index), np.bool_)
    for k in range(1, len(order)):
        repeat[order[k]] = index[order[k]] == index[order[k - 1]]
    n_later = 0
    for j in range(len(index)):
        if repeat[j]:
            later[n_later] = j
            n_later += 1
    return n_later


@njit(inline="always")
def _hashed(row, bits):
    """A slot of ``bits`` bits for ``row``: the high bits of its product with 2**64 over the golden
    ratio (Fibonacci hashing), which spreads rows that differ in their high bits only."""
    return np.int64((np.uint64(row) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits))


@njit(inline="always")
def _slot_of(keys, row, bits):
    """The slot of ``row`` in the open-addressing table ``keys`` (``-1``: free) of ``2**bits``
    slots: where it is, or the free slot where it would go."""
    slot = _hashed(row, bits)
    while keys[slot] != -1 and keys[slot] != row:
        slot = (slot + 1) & (len(keys) - 1)
    return slot


@cached_njit()
def _fixed_listings(index, later, values, sums, sums_address):
    """:func:`listed_once`'s fixes of an index whose positions ``later`` list a row listed before.
    Each repeated row's values (``values[j]``: one row of values per index, as a 2-D array) are
    added, in the order given, into the next free row of ``sums`` (at ``sums_address``), which its
    first listing takes.

    Only listings up to the last of ``later`` are looked at. The repeated rows go into an
    open-addressing table, and a bit per slot of a filter 64 times larger (a few kilobytes, which
    stay in the cache) tells at once most of the rows listed once from them. A bit per row of the
    parameter, which the update had pushed out of the cache, cost three times as much; the table
    alone, whose search ends after one or two slots at random, more still (its branch
    mispredicted). The listings found are fixed first, their values asked of the memory as they
    are found, and summed after: summed as found, each row of values out of the cache cost the
    whole wait for memory (70 against 25 microseconds for 21875 rows with 109 repeats, Zen 5)."""
    bits = 1
    while (1 << bits) < 2 * len(later):
        bits += 1
    keys, slots = np.full(1 << bits, -1, np.int64), np.full(1 << bits, -1, np.int64)
    hits = np.zeros(1 << (bits + 3), np.uint8)  # (the filter: 2**(bits + 6) bits)
    for j in later:
        row = index[j]
        keys[_slot_of(keys, row, bits)] = row
        hashed = _hashed(row, bits + 6)
        hits[hashed >> 3] |= np.uint8(1 << (hashed & 7))
    n_fixes = 2 * len(later) + 1  # (at most a first listing for each later one, and the last)
    fixes, targets = np.empty((3, n_fixes), np.int64), np.empty(n_fixes, np.int64)
    values_address, values_stride, row_bytes = values.ctypes.data, values.strides[0], values.shape[1] * values.itemsize
    count = used = skipped = 0
    for j in range(later[-1] + 1):
        row = index[j]
        hashed = _hashed(row, bits + 6)
        if not hits[hashed >> 3] & np.uint8(1 << (hashed & 7)):
            continue
        slot = _slot_of(keys, row, bits)
        if keys[slot] == -1:  # (listed once: a false alarm of the filter)
            continue
        for byte in range(0, row_bytes + LINE - 1, LINE):  # (every line of the row; none of an empty one)
            prefetch_line(values_address + j * values_stride + min(byte, row_bytes - 1))
        fixes[0, count], fixes[2, count] = j, skipped
        if slots[slot] == -1:  # (the first of its listings)
            slots[slot] = used
            fixes[1, count] = sums_address + used * sums.strides[0]
            used += 1
        else:
            fixes[1, count] = 0
            skipped += 1
        targets[count] = slots[slot]
        count += 1
    for fix in range(count):
        j, target = fixes[0, fix], targets[fix]
        if fixes[1, fix]:  # (the first listing of its row: it takes the sums, the later ones are skipped)
            for column in range(values.shape[1]):
                sums[target, column] = values[j, column]
        else:
            for column in range(values.shape[1]):
                sums[target, column] += values[j, column]
    fixes[0, count], fixes[1, count], fixes[2, count] = np.iinfo(np.int64).max, 0, skipped
    return np.ascontiguousarray(fixes[:, :count + 1])
