"""Processes sharing one disk cache never run each other's machine code.

Each test forces one order of the cache's reads and writes across processes
(:mod:`cache_races`), then checks the results against the reference, in those
processes and in a fresh one. The orders are the ones that broke Numba's own
cache, which numbers its data files from an index it reads, changes and writes
back without a lock:

- two processes that save different signatures of one kernel at once both take
  data file 1; when one's index and the other's data land last, the index names
  the other signature's code (float32 code under a float64 key: a ``TypeError``
  at every later step; Adam's L2 decay under AdamW's key: wrong numbers, no error);
- a process that empties an index it cannot read (one that another numadam wrote)
  numbers its files from 1 again, over the file a reader of the old index is
  about to open.

Each failed on numadam 803bea4 (Numba's cache, and its emptying of an index it
could not read) and passes on :mod:`numadam.targets.disk_cache`. Each test also
checks that the order was forced (the watched files were written at their
turns), so that a renamed file cannot turn it into a free run that passes.
"""

import pytest

from cache_races import STRESS_TASKS, run_fresh, run_in_order, start, results, Schedule

pytestmark = pytest.mark.subprocess

#: Both processes read the index before either writes; the victim ``B`` writes its index, then its
#: data; the attacker ``A``'s index write comes first and its data write last.
BOTH_SAVE_AT_ONCE = ["A:read:2", "B:read:2", "A:write:1", "B:write:1", "B:write:2", "A:write:2"]

KERNEL = ("kernels.update_serial-",)
SOLVE = ("numadam_solve_",)


def _assert_correct(found):
    for actor, result in found.items():
        assert result.get("error") is None and result["equal"], f"{actor}: {result}"


def _assert_forced(found, performed, writers):
    """The order was forced, not a free run: each of ``writers`` saved to a watched file at its turn
    (so the markers still name the files the cache writes), the turns in the order's sequence."""
    for actor in writers:
        assert found[actor]["watched"].get("write", 0) >= 1, (actor, found[actor])
        assert f"{actor}:write:1" in performed, (actor, performed)


@pytest.mark.parametrize("attacker, victim", [
    pytest.param("adamw_float32", "adamw_float64", id="another-dtype-raises"),
    pytest.param("adam_l2_float64", "adamw_float64", id="another-decay-silently-wrong"),
    pytest.param("solve_float32", "solve_float64", id="compiled-solve"),
    pytest.param("adamw_float64", "adamw_float64", id="the-same-spec"),
])
def test_two_processes_saving_one_function_at_once_never_swap_their_code(tmp_path, attacker, victim):
    markers = SOLVE if attacker.startswith("solve") else KERNEL
    cache = tmp_path / "cache"
    found, performed = run_in_order(tmp_path / "race", cache, BOTH_SAVE_AT_ONCE, {"A": attacker, "B": victim},
                                     markers)
    _assert_forced(found, performed, "AB")
    assert performed.index("A:write:1") < performed.index("B:write:1")
    _assert_correct(found)
    for task in (victim, attacker):  # what every later process loads
        _assert_correct({task: run_fresh(tmp_path / f"fresh-{task}", cache, task)})


def test_a_reader_never_opens_code_that_a_process_emptying_the_index_wrote_meanwhile(tmp_path):
    """The victim ``V`` reads the index (which names its code), then another process ``X`` finds an
    index it cannot read (another numadam's), empties it and saves its own code; then ``V`` opens
    the file its index named."""
    cache = tmp_path / "cache"
    _assert_correct({"before": run_fresh(tmp_path / "before", cache, "adamw_float64")})
    order = ["V:read:1", "X:start:1", "X:write:1", "X:write:2", "X:write:3", "V:read:2"]
    found, performed = run_in_order(tmp_path / "race", cache, order,
                                    {"V": "adamw_float64", "X": "another_version_then_adamw_float32"}, KERNEL,
                                    waits_to_start=("X",))
    _assert_forced(found, performed, "X")
    assert performed[:3] == ["V:read:1", "X:start:1", "X:write:1"]  # V opened its file before X wrote
    _assert_correct(found)
    for task in ("adamw_float64", "adamw_float32"):
        _assert_correct({task: run_fresh(tmp_path / f"fresh-{task}", cache, task)})


@pytest.mark.slow
def test_processes_started_together_on_a_cold_cache_each_load_their_own_code(tmp_path):
    """Six processes, two per task, compile overlapping and different specs of one kernel at once
    (nothing forced); then a fresh process checks every spec against the reference."""
    cache = tmp_path / "cache"
    for round_ in range(2):
        folder = tmp_path / f"round-{round_}"
        Schedule.create(folder, [])
        processes = {f"{task}-{copy}": start(folder, cache, f"{task}-{copy}", task)
                     for copy in range(2) for task in STRESS_TASKS}
        _assert_correct(results(folder, processes))
        for task in STRESS_TASKS:
            _assert_correct({task: run_fresh(tmp_path / f"fresh-{round_}-{task}", cache, task)})
        cache = tmp_path / "cache-again"
