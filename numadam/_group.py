"""The parameters of one real dtype, updated together in one kernel pass.

A :class:`DtypeGroup` owns the optimizer state of its parameters in one flat
buffer per state kind (``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``), and the
segment table that visits every parameter, its gradient and its state. Each
parameter's state is laid out densely in the parameter's own memory order, so a
C- or Fortran-ordered parameter and its state form a single segment.

The table is rebuilt only when the gradient arrays change: passing the same
gradient arrays every step (filled in place) reuses it as it is.
"""

import math
import operator

import numpy as np

from . import _validate
from ._dispatch import backend_for
from ._kernels.segments import ADDRESS, GRAD
from ._layout import coalesce, iteration_order, real_dtype, real_layout, segment_rows

STATE_KINDS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def dense_strides(shape, strides, itemsize):
    """Contiguous strides for ``shape`` that keep the memory order of ``strides``."""
    dense = [0] * len(shape)
    step = itemsize
    for axis in reversed(iteration_order(shape, strides)):
        dense[axis] = step
        step *= max(shape[axis], 1)
    return tuple(dense)


class DtypeGroup:
    """Parameters sharing a real dtype, their state, and the table that updates them."""

    def __init__(self, backend, indices, params, infos, paths, amsgrad):
        self.backend = backend
        self.indices = indices
        self.params = params
        self.infos = infos
        self.paths = paths
        self.amsgrad = amsgrad
        self.real_dtype = real_dtype(infos[0].dtype)
        self._itemsize = self.real_dtype.itemsize
        self._real_sizes = [math.prod(real_layout(i.shape, i.strides, i.dtype)[0]) for i in infos]
        self._offsets = np.concatenate(([0], np.cumsum(self._real_sizes))).astype(np.int64)
        total = int(self._offsets[-1])
        kinds = STATE_KINDS if amsgrad else STATE_KINDS[:2]
        self.buffers = {kind: backend.zeros(total, self.real_dtype) for kind in kinds}
        self.state = {kind: [self._state_view(buffer, k) for k in range(len(params))]
                      for kind, buffer in self.buffers.items()}
        self._param_rows = [self._rows(k, self.infos[k].strides, 0) for k in range(len(params))]
        self._fast_rows = np.concatenate(self._param_rows)
        self._fast_leaf = np.repeat(np.arange(len(params)), [len(r) for r in self._param_rows])
        bounds = [_validate.memory_bounds(info) for info in infos]
        self._param_low = np.array([low - i.address for (low, _), i in zip(bounds, infos)], np.int64)
        self._param_high = np.array([high - i.address for (_, high), i in zip(bounds, infos)], np.int64)
        #: What a gradient looks like when it has its parameter's type and layout.
        self._expected = [(type(param), info.dtype, info.shape, info.strides) for param, info in zip(params, infos)]
        self._bound_grads = None
        self._plan = None

    def _state_view(self, buffer, k):
        info = self.infos[k]
        strides = dense_strides(info.shape, info.strides, info.dtype.itemsize)
        offset = int(self._offsets[k]) * self._itemsize
        return self.backend.view(buffer, offset, info.shape, strides, info.dtype)

    def _state_address(self, kind, k):
        buffer = self.buffers.get(kind)
        if buffer is None:
            return 0
        return self.backend.address(buffer) + int(self._offsets[k]) * self._itemsize

    def _rows(self, k, grad_strides, grad_address):
        """Segment rows of parameter ``k`` with a gradient of the given layout."""
        info = self.infos[k]
        state_strides = dense_strides(info.shape, info.strides, info.dtype.itemsize)
        shape, param_strides = real_layout(info.shape, info.strides, info.dtype)
        grad_real = real_layout(info.shape, grad_strides, info.dtype)[1]
        state_real = real_layout(info.shape, state_strides, info.dtype)[1]
        addresses = [info.address, grad_address] + [self._state_address(kind, k) for kind in STATE_KINDS]
        strides = [param_strides, grad_real, state_real, state_real,
                   state_real if self.amsgrad else None]
        return segment_rows(shape, addresses, strides, self._itemsize)

    def written_arrays(self):
        """Every array this group writes: the parameters and the state buffers."""
        return list(self.params) + list(self.buffers.values())

    def bind(self, grads, written):
        """Check this group's gradients and return the plan that applies them.

        ``written`` is the optimizer's :class:`WrittenMemory`: no gradient may
        reach into a parameter or a state buffer.
        """
        if self._bound_grads is not None and all(map(operator.is_, grads, self._bound_grads)):
            return self._plan
        addresses = np.empty(len(grads), np.int64)
        odd_layouts = {}
        address_of = self.backend.address
        for k, (grad, (kind, dtype, shape, strides)) in enumerate(zip(grads, self._expected)):
            if type(grad) is kind and grad.dtype is dtype and grad.shape == shape and grad.strides == strides:
                addresses[k] = address_of(grad)
            else:
                addresses[k], odd_layouts[k] = self._checked_grad(k, grad)
        misaligned = np.flatnonzero(addresses % self._itemsize)
        if len(misaligned):
            k = int(misaligned[0])
            _validate.check_layout(self.backend.describe(grads[k]), self._grad_path(k), writable=False)
        odd_layouts = {k: info for k, info in odd_layouts.items() if info is not None}
        self._check_grads_disjoint(grads, addresses, odd_layouts, written)
        if odd_layouts:
            rows = np.concatenate([
                self._rows(k, odd_layouts[k].strides, odd_layouts[k].address) if k in odd_layouts
                else _with_grad_address(self._param_rows[k], addresses[k])
                for k in range(len(grads))
            ])
        else:
            rows = self._fast_rows.copy()
            rows[:, ADDRESS + GRAD] += addresses[self._fast_leaf]
        plan = self.backend.plan(coalesce(rows, self._itemsize))
        self._bound_grads, self._plan = list(grads), plan
        return plan

    def _checked_grad(self, k, grad):
        """Every check of gradient ``k``; ``(address, info)``, info ``None`` for the parameter's layout."""
        info = self.infos[k]
        backend_for([self.params[k], grad], [self.paths[k], self._grad_path(k)])
        grad_info = self.backend.describe(grad)
        _validate.check_matches(grad_info, self._grad_path(k), info, "its parameter")
        _validate.check_layout(grad_info, self._grad_path(k), writable=False)
        same_layout = grad_info.strides == info.strides
        return grad_info.address, (None if same_layout else grad_info)

    def _grad_path(self, k):
        return "grads" + self.paths[k][len("params"):]

    def _check_grads_disjoint(self, grads, addresses, odd_layouts, written):
        low = addresses + self._param_low
        high = addresses + self._param_high
        for k, grad_info in odd_layouts.items():
            low[k], high[k] = _validate.memory_bounds(grad_info)
        for k in written.overlapping(grads, low, high):
            raise ValueError(
                f"{self._grad_path(k)} shares memory with a parameter or the optimizer state; "
                "gradients must be separate arrays"
            )

    def assign_state(self, kind, k, source):
        """Overwrite the ``kind`` state of parameter ``k`` with ``source``."""
        self.backend.assign(self.state[kind][k], source)


def _with_grad_address(rows, address):
    rows = rows.copy()
    rows[:, ADDRESS + GRAD] += address
    return rows


def group_by_dtype(backend, leaves, infos, paths, amsgrad):
    """One :class:`DtypeGroup` per real dtype, in order of first appearance."""
    by_dtype = {}
    for k, info in enumerate(infos):
        by_dtype.setdefault(real_dtype(info.dtype), []).append(k)
    return [
        DtypeGroup(backend, indices, [leaves[k] for k in indices], [infos[k] for k in indices],
                   [paths[k] for k in indices], amsgrad)
        for indices in by_dtype.values()
    ]


class WrittenMemory:
    """The byte ranges an optimizer writes, sorted by start, to test gradients against.

    The ranges may nest or interleave (views that interleave in one buffer), so
    ``_reach[j]``, the furthest end among the first ``j + 1`` ranges, bounds the
    search: no range before ``j`` reaches past ``_reach[j]``.
    """

    def __init__(self, backend, arrays):
        infos = [backend.describe(array) for array in arrays]
        bounds = [_validate.memory_bounds(info) for info in infos]
        order = sorted(range(len(arrays)), key=lambda k: bounds[k][0])
        self._arrays = [arrays[k] for k in order]
        self._starts = np.array([bounds[k][0] for k in order], np.int64)
        self._ends = np.array([bounds[k][1] for k in order], np.int64)
        self._reach = np.maximum.accumulate(self._ends) if len(order) else self._ends

    def overlapping(self, grads, low, high):
        """Indices k of gradients whose bytes ``[low[k], high[k])`` meet a written array.

        Ranges decide; where both arrays are NumPy arrays, ``numpy.shares_memory``
        gives the exact answer for ranges that interleave.
        """
        last = np.searchsorted(self._starts, high, side="left") - 1
        suspects = np.flatnonzero((last >= 0) & (high > low) & (self._reach[np.maximum(last, 0)] > low))
        found = []
        for k in suspects:
            j = int(last[k])
            while j >= 0 and self._reach[j] > low[k]:
                if self._ends[j] > low[k] and self._meets(grads[k], self._arrays[j]):
                    found.append(int(k))
                    break
                j -= 1
        return found

    @staticmethod
    def _meets(grad, written):
        if isinstance(written, np.ndarray) and isinstance(grad, np.ndarray):
            return np.shares_memory(grad, written)
        return True
