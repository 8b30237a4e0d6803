"""8-bit state whose blocks follow a parameter's chunks: their layout, its checks, and decoding.

A Dask optimizer with ``state_dtype="int8"`` quantizes each chunk's state on
its own: the blocks of :data:`~numadam.targets.quantization.BLOCK` elements
run over the chunk's own C order, each chunk with its own block scales. Its
state dict says so with :data:`LAYOUT_KEY`: for each parameter, the chunks'
*locations*, an int64 array of shape ``(chunks, ndim, 2)`` holding each
chunk's ``(start, stop)`` along each axis, chunks in the C order of the chunk
grid; its ``<kind>_scales`` hold the blocks' scales chunk after chunk in that
order, ``ceil(chunk's elements / BLOCK)`` of them per chunk. A state without
that entry (a NumPy optimizer's) blocks each parameter's whole C order: the
locations of one chunk, the parameter (:func:`whole`).

Two layouts hold the same blocks where they are equal, or where each is the
whole parameter's blocks in pieces (:func:`blocks_whole`): every chunk a run
of the parameter's C order that starts at a multiple of ``BLOCK``. Codes and
scales then move between them as they are; otherwise they are decoded and
quantized again over the new blocks.
"""

from typing import NamedTuple

import numpy as np

from ..targets import quantization
from ..targets.quantization import BLOCK

#: The state dict's entry of the chunks that 8-bit blocks follow (see the module docstring).
LAYOUT_KEY = "int8_chunks"


class Blocks(NamedTuple):
    """How one leaf of saved 8-bit codes is blocked: its ``scales``, the ``locations`` of the chunks
    its blocks follow (``None``: the whole parameter's), and the paths that name them in errors."""

    scales: object
    locations: object
    scales_path: str
    locations_path: str


def whole(shape):
    """The locations of the one chunk that is the whole parameter of ``shape``."""
    return np.array([[(0, extent) for extent in shape]], np.int64).reshape(1, len(shape), 2)


def none_blocked(ndim):
    """The locations of a parameter whose state is not 8-bit: no chunk."""
    return np.zeros((0, ndim, 2), np.int64)


def chunk_sizes(locations):
    """The elements of each chunk."""
    return np.prod(locations[:, :, 1] - locations[:, :, 0], axis=1, dtype=np.int64)


def block_counts(locations):
    """The blocks (and scales) of each chunk."""
    return -(-chunk_sizes(locations) // BLOCK)


def grid_chunks(locations):
    """The chunks of each axis (as Dask writes ``chunks``) of checked ``locations``."""
    ndim = locations.shape[1]
    return tuple(tuple(int(stop - start) for start, stop in np.unique(locations[:, axis], axis=0))
                 for axis in range(ndim))


def checked_locations(locations, shape, path):
    """``locations`` (see the module docstring) as int64, checked to tile a parameter of ``shape``
    as a grid of chunks listed in the grid's C order; a ``ValueError`` naming ``path`` otherwise."""
    ndim = len(shape)
    found = np.asarray(locations)
    if found.dtype.kind not in "iu" or found.ndim != 3 or found.shape[1:] != (ndim, 2) or not len(found):
        raise ValueError(f"{path} must be an integer array of shape (chunks, {ndim}, 2): each chunk's (start, stop) "
                         f"along each axis of its parameter of shape {tuple(shape)}; got {found.dtype} of shape "
                         f"{found.shape}")
    found = found.astype(np.int64)
    edges = [np.unique(found[:, axis], axis=0) for axis in range(ndim)]
    if not (all(_tiles(axis_edges, extent) for axis_edges, extent in zip(edges, shape))
            and np.array_equal(found, _grid(edges))):
        raise ValueError(f"{path} must list the chunks of a grid over a parameter of shape {tuple(shape)}, in the C "
                         "order of the grid (each chunk's (start, stop) along each axis)")
    return found


def _tiles(edges, extent):
    """Whether the ``(start, stop)`` pairs ``edges`` (sorted) cut ``0:extent`` into consecutive runs."""
    return (edges[0, 0] == 0 and edges[-1, 1] == extent and np.array_equal(edges[1:, 0], edges[:-1, 1])
            and bool((edges[:, 1] >= edges[:, 0]).all()))


def _grid(edges):
    """The locations of the grid whose chunks along each axis are ``edges[axis]``, in C order."""
    return np.array([[edges[axis][i] for axis, i in enumerate(index)]
                     for index in np.ndindex(*(len(e) for e in edges))], np.int64).reshape(-1, len(edges), 2)


def blocks_whole(locations, shape):
    """Whether the chunks at ``locations`` hold the whole parameter's blocks: each chunk a run of
    the parameter's C order, one after the other, each starting at a multiple of ``BLOCK``."""
    steps = np.array([int(np.prod(shape[axis + 1:], dtype=np.int64)) for axis in range(len(shape))], np.int64)
    position = 0
    for chunk in locations:
        extents = chunk[:, 1] - chunk[:, 0]
        size = int(np.prod(extents, dtype=np.int64))
        if size == 0:
            continue
        cut = np.flatnonzero(extents != np.asarray(shape))  # the axes it does not span
        if len(cut) and (np.any(extents[:cut[-1]] != 1)):
            return False  # not one run: it spans a part of an axis with more than one index before it
        if int(chunk[:, 0] @ steps) != position or position % BLOCK:
            return False
        position += size
    return True


def same_blocks(saved, target, shape):
    """Whether codes blocked over the chunks at ``saved`` are blocked over those at ``target`` too."""
    if saved.shape == target.shape and np.array_equal(saved, target):
        return True
    return blocks_whole(saved, shape) and blocks_whole(target, shape)


def decoded(codes, scales, locations, signed):
    """The float32 numbers of NumPy ``codes`` blocked over the chunks at ``locations`` with their
    ``scales`` (chunk after chunk)."""
    values = np.empty(codes.shape, np.float32)
    first = 0
    for chunk, count in zip(locations, block_counts(locations)):
        where = tuple(slice(start, stop) for start, stop in chunk)
        values[where] = quantization.dequantize(codes[where], scales[first:first + count], signed)
        first += count
    return values
