"""Recycled memory for the new chunks of a Dask step, in each worker process.

A step over Dask arrays writes every parameter and state chunk anew (Dask
arrays are immutable), and the chunks of the step before are released soon
after. Left to the allocator, each new chunk is fresh memory from the
operating system, page-faulted in as it is first written; Dask's workers
return freed memory to the system eagerly (``MALLOC_TRIM_THRESHOLD_``), so this
happens every step and costs as much as the update itself. Here a new chunk
is a view of a buffer that a released chunk of the same size gave back: when
the view is garbage collected, its buffer returns to the pool. Nothing that
can still be reached is ever reused.

The pool keeps at most :data:`LIMIT_BYTES` of idle buffers per process;
:func:`clear` empties it.
"""

import threading
import weakref

import numpy as np

#: Idle bytes a process keeps for later chunks (beyond it, released buffers are freed).
LIMIT_BYTES = 1 << 32

_lock = threading.Lock()
_idle = {}  # nbytes -> buffers (1-D uint8 arrays) of that size
_idle_bytes = [0]


def empty_like(array):
    """An uninitialized NumPy array shaped like ``array`` (C order), in recycled memory when some is idle."""
    nbytes = array.size * array.dtype.itemsize
    with _lock:
        buffers = _idle.get(nbytes)
        buffer = buffers.pop() if buffers else None
        if buffer is not None:
            _idle_bytes[0] -= nbytes
    if buffer is None:
        buffer = np.empty(nbytes, np.uint8)
    chunk = buffer.view(array.dtype).reshape(array.shape)
    weakref.finalize(chunk, _give_back, buffer)
    return chunk


def copy_of(array):
    """A copy of the NumPy array ``array`` in recycled memory (see :func:`empty_like`)."""
    chunk = empty_like(array)
    chunk[...] = array
    return chunk


def _give_back(buffer):
    with _lock:
        if _idle_bytes[0] + buffer.nbytes <= LIMIT_BYTES:
            _idle.setdefault(buffer.nbytes, []).append(buffer)
            _idle_bytes[0] += buffer.nbytes


def idle_bytes():
    """The bytes the pool holds for later chunks."""
    return _idle_bytes[0]


def clear():
    """Free every idle buffer."""
    with _lock:
        _idle.clear()
        _idle_bytes[0] = 0
