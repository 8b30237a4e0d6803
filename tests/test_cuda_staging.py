"""The segment table's trip to the GPU: stream affinity and the pinned ring, without a GPU.

CuPy's memory pool reuses a freed block for later allocations on the stream
that allocated it, so a table must be read only by kernels on that stream, and
a page-locked buffer must not be refilled before the copy out of it has run.
These rules live in plain Python (numadam.targets.cuda.backend.StagedTable and
PinnedStaging); a recording stand-in for the few CuPy calls they make checks
them here. On hardware, test_cupy.py runs the same code against CuPy.
"""

import numpy as np

from concurrency import run_together
from numadam.targets.cuda.backend import PinnedStaging, StagedTable


class Recorder:
    """A stand-in for the CuPy calls of PinnedStaging, logging them in order."""

    def __init__(self):
        self.log = []
        self.events = 0
        self.current = Stream(self, 0)
        self.cuda = self  # cupy.cuda.get_current_stream, Event, alloc_pinned_memory
        self._next_address = 4096

    def get_current_stream(self):
        return self.current

    def Event(self, disable_timing):  # noqa: N802 (CuPy's name)
        assert disable_timing
        return Event(self)

    def alloc_pinned_memory(self, n_bytes):
        self.log.append(("pin", n_bytes))
        return bytearray(n_bytes)

    def empty(self, size, dtype):
        self._next_address += 8 * size
        return DeviceArray(self, size, self._next_address, self.current)


class Stream:
    def __init__(self, recorder, ptr):
        self.recorder = recorder
        self.ptr = ptr


class Event:
    done = False  # this stand-in's GPU never gets ahead of the host

    def __init__(self, recorder):
        recorder.events += 1
        self.name = f"event{recorder.events}"
        self.recorder = recorder

    def record(self, stream):
        self.recorder.log.append(("record", self.name, stream.ptr))

    def synchronize(self):
        self.recorder.log.append(("wait", self.name))


class DeviceArray:
    def __init__(self, recorder, size, address, allocated_on):
        self.recorder = recorder
        self.values = np.zeros(size, np.int64)
        self.data = type("MemoryPointer", (), {"ptr": address})()
        self.allocated_on = allocated_on

    def set(self, host, stream):
        self.values[...] = host
        self.source = host
        self.recorder.log.append(("copy", stream.ptr, self.allocated_on.ptr))


def test_a_table_is_read_only_on_the_stream_that_allocated_and_filled_it():
    cupy = Recorder()
    staging = PinnedStaging(cupy, slots=2)
    rows = np.arange(12, dtype=np.int64)
    table = StagedTable(staging, rows)
    first = table.address_on_current_stream()
    assert table.address_on_current_stream() == first  # same stream: no new copy
    assert [entry[0] for entry in cupy.log].count("copy") == 1

    cupy.current = Stream(cupy, 7)
    moved = table.address_on_current_stream()
    assert moved != first
    assert table.stream is cupy.current and table.array.allocated_on is cupy.current
    np.testing.assert_array_equal(table.array.values, rows)
    assert cupy.log[-2:] == [("copy", 7, 7), ("record", "event2", 7)]  # the second slot


def test_a_pinned_buffer_is_refilled_only_after_its_previous_copy_ran():
    cupy = Recorder()
    staging = PinnedStaging(cupy, slots=2)
    tables = [staging.upload(np.full(3, k, np.int64))[0] for k in range(3)]
    copies_from = [table.source for table in tables]
    assert np.shares_memory(copies_from[0], copies_from[2])  # slot 0 came round again
    assert not np.shares_memory(copies_from[0], copies_from[1])
    copies = [k for k, entry in enumerate(cupy.log) if entry[0] == "copy"]
    first_event = cupy.log[copies[0] + 1][1]
    assert ("wait", first_event) in cupy.log[copies[1]:copies[2]]
    assert staging.waits == 1
    for k, table in enumerate(tables):
        np.testing.assert_array_equal(table.values, [k, k, k])


def test_a_slot_grows_for_a_larger_table():
    cupy = Recorder()
    staging = PinnedStaging(cupy, slots=1)
    staging.upload(np.ones(4, np.int64))
    table, _ = staging.upload(np.arange(10, dtype=np.int64))
    np.testing.assert_array_equal(table.values, np.arange(10))
    assert [entry for entry in cupy.log if entry[0] == "pin"] == [("pin", 32), ("pin", 80)]


def test_threads_uploading_at_once_never_share_a_buffer():
    """Each thread's table must hold its own rows, however the threads interleave."""
    cupy = Recorder()
    staging = PinnedStaging(cupy, slots=3)
    wrong = []

    def upload_many(value):
        rows = np.full(64, value, np.int64)
        for _ in range(2000):
            table, _ = staging.upload(rows)
            if not np.array_equal(table.values, rows):
                wrong.append(value)

    assert run_together([lambda value=value: upload_many(value) for value in range(8)]) == []
    assert not wrong
