"""Which arrays may share memory: the one algorithm every check uses.

An array's elements lie in the byte range ``[low, high)`` of
:func:`memory_bounds`. :class:`MemoryRanges` sorts ranges by their start and
keeps the running furthest end (``reach``), so the ranges that can meet a query
range are found by a binary search and a short walk back; ranges nest or
interleave freely (views into one buffer). Where two ranges meet and both
arrays are NumPy arrays, ``numpy.shares_memory`` gives the exact answer (two
interleaved views of one buffer do not share elements); otherwise meeting
ranges count as shared.
"""

import bisect
import itertools

import numpy as np


def memory_bounds(info):
    """``[low, high)``: the bytes the elements of an array (an ``ArrayInfo``) can touch."""
    if any(extent == 0 for extent in info.shape):
        return info.address, info.address
    low = high = info.address
    for stride, extent in zip(info.strides, info.shape):
        reach = stride * (extent - 1)
        if reach < 0:
            low += reach
        else:
            high += reach
    return low, high + info.dtype.itemsize


def may_overlap_itself(info):
    """Whether two elements of one array may share memory (sufficient: sorted strides must nest)."""
    if any(extent == 0 for extent in info.shape):
        return False
    span = info.dtype.itemsize
    for stride, extent in sorted((abs(s), n) for s, n in zip(info.strides, info.shape) if n > 1):
        if stride < span:
            return True
        span += stride * (extent - 1)
    return False


def _share(first, second):
    if isinstance(first, np.ndarray) and isinstance(second, np.ndarray):
        return np.shares_memory(first, second)
    return True


class MemoryRanges:
    """The byte ranges of ``arrays`` (``bounds[k] = (low, high)``), sorted, to test others against."""

    def __init__(self, bounds, arrays):
        self.order = sorted(range(len(arrays)), key=lambda k: bounds[k][0])
        self._arrays = [arrays[k] for k in self.order]
        self._starts = [bounds[k][0] for k in self.order]
        self._ends = [bounds[k][1] for k in self.order]
        self._reach = list(itertools.accumulate(self._ends, max))
        self._vectors = None

    def _first_met(self, position, low, high, array):
        """The sorted position of the first range at or before ``position`` that meets ``array``, or -1."""
        while position >= 0 and self._reach[position] > low:
            if self._ends[position] > low and high > low and _share(array, self._arrays[position]):
                return position
            position -= 1
        return -1

    def may_meet(self, low, high):
        """Whether the byte range ``[low, high)`` may meet one of these ranges: ``False`` only where it
        certainly meets none (one binary search; :meth:`overlapping` gives the exact answer)."""
        position = bisect.bisect_left(self._starts, high) - 1
        return high > low and position >= 0 and self._reach[position] > low

    def overlapping(self, arrays, lows, highs):
        """Indices k of ``arrays`` (bytes ``[lows[k], highs[k])``, NumPy vectors) that meet one of
        these ranges: a vectorized search for the candidates, then the walk back for each."""
        if self._vectors is None:
            self._vectors = np.array(self._starts, np.int64), np.array(self._reach, np.int64)
        starts, reach = self._vectors
        last = np.searchsorted(starts, highs, side="left") - 1
        suspects = np.flatnonzero((last >= 0) & (highs > lows) & (reach[np.maximum(last, 0)] > lows))
        return [int(k) for k in suspects if self._first_met(int(last[k]), lows[k], highs[k], arrays[k]) >= 0]

    def first_shared_pair(self, written):
        """The first pair ``(a, b)`` (``a < b``) of these arrays that share memory where
        at least one of them is ``written``; ``None`` if there is none."""
        for position in range(1, len(self.order)):
            k = self.order[position]
            low, high = self._starts[position], self._ends[position]
            earlier = position - 1
            while True:
                earlier = self._first_met(earlier, low, high, self._arrays[position])
                if earlier < 0:
                    break
                other = self.order[earlier]
                if written[k] or written[other]:
                    return tuple(sorted((k, other)))
                earlier -= 1
        return None
