"""Dask arrays as numadam holds them: chunks kept together in tuples, new chunks for each task.

Dask arrays are immutable, so a step cannot update them in place: each task
reads its chunks and returns new ones (:func:`new_chunk` gives the empty
arrays a kernel writes out of place, from recycled memory,
:mod:`numadam.adapters.chunk_pool`). Dask has no multi-output blockwise, so
an optimizer keeps each parameter's chunk and its state's together, as one
persisted Dask array of tuples (:func:`held_array`); a step is then one task
per chunk, and parameters and state are views of the tuples (:func:`view`).

Nothing here imports Dask before a Dask array shows up.
"""

import contextlib
import os
import sys

import numpy as np

from . import chunk_pool


def is_dask_array(value):
    """Whether ``value`` is a ``dask.array.Array`` (decided by its type, without importing Dask)."""
    kind = type(value)
    return kind.__name__ == "Array" and kind.__module__.startswith("dask.array")


def dask_array_module():
    import dask.array

    return dask.array


def together(*chunks):
    """One chunk of an optimizer's holdings: its parameter's chunk and its state's, in one tuple."""
    return chunks


def item(held, index):
    """Item ``index`` of a chunk of the holdings (a Python function: Dask inspects a builtin's
    signature slowly)."""
    return held[index]


def held_array(function, arrays, token):
    """The Dask array of tuples made by ``function`` over ``arrays`` chunk by chunk (one task per chunk)."""
    da = dask_array_module()
    return da.map_blocks(function, *arrays, dtype=object, meta=np.empty((0,) * arrays[0].ndim, object), token=token)


def held_array_with_pieces(function, arrays, pieces, token):
    """:func:`held_array` whose tasks also take a piece of each of ``pieces`` (see
    :func:`map_chunks_with_pieces`)."""
    return map_chunks_with_pieces(function, arrays, pieces, token, np.empty((0,) * arrays[0].ndim, object))


def map_chunks_with_pieces(function, arrays, pieces, token, meta):
    """The Dask array of ``function`` over ``arrays`` (chunked alike) chunk by chunk, like ``meta``
    (an empty chunk), each task also taking a piece of each of ``pieces``: 1-D Dask arrays with one
    chunk per chunk of ``arrays``, in the C order of their chunk grid. Chunk ``(i, j, ...)``'s task
    calls ``function(its chunks of arrays, its pieces)``."""
    from dask.array import Array
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    first = arrays[0]
    for piece in pieces:
        if piece.ndim != 1 or len(piece.chunks[0]) != first.npartitions:
            raise ValueError(f"each piece array must have one chunk per chunk ({first.npartitions}); got chunks "
                             f"{piece.chunks}")
    name = f"{token}-{tokenize(function, *arrays, *pieces)}"
    layer = {(name, *index): (function, *((array.name, *index) for array in arrays),
                              *((piece.name, j) for piece in pieces))
             for j, index in enumerate(np.ndindex(*first.numblocks))}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[*arrays, *pieces])
    return Array(graph, name, chunks=first.chunks, dtype=meta.dtype, meta=meta)


def pieces_of(held, function, counts, meta):
    """The 1-D Dask array of ``function(chunk)`` for each chunk of ``held`` in the C order of its
    chunk grid, ``counts[j]`` elements from the ``j``-th, like ``meta`` (an empty 1-D chunk)."""
    from dask.array import Array
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    name = f"numadam-pieces-{tokenize(held, function, tuple(counts))}"
    layer = {(name, j): (function, (held.name, *index)) for j, index in enumerate(np.ndindex(*held.numblocks))}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[held])
    return Array(graph, name, chunks=(tuple(int(count) for count in counts),), dtype=meta.dtype, meta=meta)


def chunk_order(array):
    """The location of each chunk of ``array`` in the C order of its chunk grid: an int64 array of
    shape ``(chunks, ndim, 2)``, each chunk's ``(start, stop)`` along each axis."""
    edges = [np.cumsum((0,) + tuple(sizes)) for sizes in array.chunks]
    return np.array([[(edges[axis][i], edges[axis][i + 1]) for axis, i in enumerate(index)]
                     for index in np.ndindex(*array.numblocks)], np.int64).reshape(-1, array.ndim, 2)


def view(held, index, meta):
    """The Dask array of item ``index`` of each tuple of ``held``, whose chunks are like ``meta``."""
    return held.map_blocks(item, index, dtype=meta.dtype, meta=meta)


def meta_of(array, dtype):
    """An empty array of ``array``'s chunk type (NumPy or CuPy) and ``dtype``."""
    return empty_like(array._meta, dtype)


def empty_like(meta, dtype):
    """``meta`` (an empty chunk) in ``dtype``: made anew, not cast (a complex meta has nothing to discard)."""
    return np.empty_like(meta, dtype=dtype)


def new_chunk(chunk):
    """``(new, source)``: where a task writes ``chunk``'s new values and where the kernel reads its old
    ones: an empty array laid out as ``chunk`` and ``chunk`` itself, or (for a layout that recycled
    memory does not reproduce, an unaligned buffer) a copy updated in place and ``None``."""
    if chunk.flags.c_contiguous and getattr(chunk.flags, "aligned", True):  # CuPy's memory is aligned
        new = chunk_pool.empty_like(chunk) if isinstance(chunk, np.ndarray) else type(chunk)(chunk.shape, chunk.dtype)
        if new.strides == chunk.strides:
            return new, chunk
    return fresh(chunk), None


def fresh(chunk):
    """A copy of ``chunk`` for a task to write: in recycled memory for NumPy, from CuPy's own pool for CuPy."""
    return chunk_pool.copy_of(chunk) if isinstance(chunk, np.ndarray) else chunk.copy()


def on_host(array):
    """``array`` as a NumPy array: a CuPy array copied to the host, a Dask array computed."""
    if is_dask_array(array):
        array = array.compute()
    return array.get() if not isinstance(array, np.ndarray) and hasattr(array, "get") else np.asarray(array)


def like_chunk(array, chunk):
    """The NumPy ``array`` as an array of ``chunk``'s kind (copied to the GPU for a CuPy chunk)."""
    if isinstance(chunk, np.ndarray):
        return array
    return sys.modules[type(chunk).__module__.split(".")[0]].asarray(array)


def readable(chunk):
    """``chunk``, or an aligned copy of a buffer straight off the network (which may be unaligned)."""
    if isinstance(chunk, np.ndarray) and not chunk.flags.aligned:
        return chunk.copy()
    return chunk


def filled_like(block, value, dtype):
    """A new chunk shaped like ``block`` (NumPy or CuPy), every real number ``value`` (a complex
    element is a pair of them, as the kernels see it: Yogi's initial 1e-6 is 1e-6 + 1e-6j)."""
    return np.full_like(block, complex(value, value) if np.dtype(dtype).kind == "c" else value, dtype=dtype)


def broadcast_number(value, like):
    """``value`` in ``like``'s dtype, repeated to its shape with stride 0 (NumPy or CuPy, as ``like``)."""
    cupy = sys.modules.get("cupy")
    xp = cupy if cupy is not None and isinstance(like, cupy.ndarray) else np
    return xp.broadcast_to(xp.asarray(value, dtype=like.dtype), like.shape)


@contextlib.contextmanager
def task_threads():
    """Numba's threads for a kernel in a Dask task: ``OMP_NUM_THREADS`` of the worker when it is
    set (Dask's nannies set 1, one core per worker thread), all of them otherwise."""
    import numba

    wanted = os.environ.get("OMP_NUM_THREADS", "")
    if not wanted.isdigit() or int(wanted) < 1:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(min(int(wanted), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def check_alive(holdings):
    """Raise if the cluster lost what an optimizer holds (a restarted client, a worker gone with
    data it could not recompute): the step would fail later, less clearly."""
    futures_of = getattr(sys.modules.get("distributed"), "futures_of", None)
    if futures_of is None:
        return
    for held in holdings:
        for future in futures_of(held):
            if future.status in ("cancelled", "lost", "error"):
                raise RuntimeError(
                    f"the optimizer's parameters or state on the Dask cluster are {future.status} (a worker "
                    "died or the client restarted); nothing was stepped. Resume from a saved state: "
                    "make a new optimizer over the parameters and load_state_dict(saved)")
