"""Recycled chunk memory for Dask steps: a released chunk's buffer is reused, a live one never."""

import gc

import numpy as np

from numadam.adapters import chunk_pool


def test_a_released_chunks_memory_is_reused_and_a_live_ones_never():
    chunk_pool.clear()
    first = chunk_pool.copy_of(np.arange(1000, dtype=np.float32))
    address = first.__array_interface__["data"][0]
    live = chunk_pool.empty_like(first)  # first is still alive: fresh memory
    assert live.__array_interface__["data"][0] != address
    np.testing.assert_array_equal(first, np.arange(1000, dtype=np.float32))
    del first
    gc.collect()
    assert chunk_pool.idle_bytes() == 4000
    again = chunk_pool.copy_of(np.ones((10, 100), np.float32))  # same size, other shape
    assert again.__array_interface__["data"][0] == address and again.shape == (10, 100)
    np.testing.assert_array_equal(again, 1.0)
    assert chunk_pool.idle_bytes() == 0


def test_the_pool_keeps_at_most_its_limit(monkeypatch):
    chunk_pool.clear()
    monkeypatch.setattr(chunk_pool, "LIMIT_BYTES", 6000)
    chunks = [chunk_pool.empty_like(np.empty(1000, np.float32)) for _ in range(3)]
    del chunks
    gc.collect()
    assert chunk_pool.idle_bytes() == 4000  # one 4000-byte buffer kept, the others freed
    chunk_pool.clear()
    assert chunk_pool.idle_bytes() == 0
