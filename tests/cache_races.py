"""Processes that share one disk cache, with the order of the cache's file operations forced.

Numba's disk cache, and numadam's, touch two kinds of files: they *read*
(open a file of the cache to read it) and they *write* (move a finished file
into place with ``os.replace``). A test names an order of such operations
across processes (a :class:`Schedule`), then runs each process as ``python
cache_races.py FOLDER ACTOR TASK``: every read and write of a watched file
(a Numba cache file, ``*.nb*``, whose name holds one of the test's markers)
waits for its turn. Nothing here waits on time: a process waits until the
order reaches its operation, or until that operation can no longer come in
order.

An operation is labelled ``ACTOR:KIND:N``, the N-th read or write of watched
files by that process (``ACTOR:start:1`` is the task's start, for tasks that
wait for it). A label the order does not name runs at once. An entry of the
order is skipped when it cannot come: its process has finished, or it waits
on a later entry of its own, so that an order written for one cache's
operations runs to its end with another cache's (this is what lets one test
fail on a cache that numbers its files and pass on one that does not).

Each task steps an optimizer, or runs a compiled ``minimize``, and compares
the result with the slow reference (:mod:`reference`), writing what it found
to ``FOLDER/ACTOR.json``.
"""

import builtins
import contextlib
import fcntl
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: How long a process may wait for its turn before the test fails (a hang, not a timing assumption).
PATIENCE = 600.0


class Schedule:
    """An order of labelled cache operations across processes, kept in ``folder`` (see the module docstring)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self._state = self.folder / "schedule.json"
        self._lock = self.folder / "schedule.lock"

    @classmethod
    def create(cls, folder, order):
        schedule = cls(folder)
        schedule.folder.mkdir(parents=True, exist_ok=True)
        assert len(set(order)) == len(order), order
        schedule._state.write_text(json.dumps({"order": list(order), "turn": 0, "pending": {}, "done": [],
                                                "performed": []}))
        schedule._lock.touch()
        return schedule

    @contextlib.contextmanager
    def _locked(self):
        with open(self._lock, "r+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = json.loads(self._state.read_text())
            yield state
            self._state.write_text(json.dumps(state))
            fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _cannot_come(label, state):
        actor = label.partition(":")[0]
        waiting = state["pending"].get(actor)
        return actor in state["done"] or (waiting is not None and waiting != label)

    def wait(self, actor, label):
        """Wait until ``label`` is the order's next entry; ``False`` at once where the order does not
        name it (or has passed it). After a ``True``, the caller runs the operation, then :meth:`advance`."""
        deadline = time.monotonic() + PATIENCE
        while True:
            with self._locked() as state:
                order = state["order"]
                if label not in order[state["turn"]:]:  # runs at once, and so is never waited on
                    state["pending"].pop(actor, None)
                    return False
                state["pending"][actor] = label
                turn = state["turn"]
                while order[turn] != label and self._cannot_come(order[turn], state):
                    turn += 1
                state["turn"] = turn
                if order[turn] == label:
                    state["pending"].pop(actor, None)
                    state["performed"].append(label)
                    return True
            if time.monotonic() > deadline:
                raise TimeoutError(f"{label} waited {PATIENCE} s for its turn: {state}")
            time.sleep(0.002)

    def performed(self):
        """The labels that ran at their turn, in the order they ran."""
        with self._locked() as state:
            return list(state["performed"])

    def advance(self):
        with self._locked() as state:
            state["turn"] += 1

    def finish(self, actor):
        with self._locked() as state:
            state["pending"].pop(actor, None)
            state["done"].append(actor)

    def turn(self, actor, label):
        """A context in which the operation ``label`` runs at its turn."""
        return _Turn(self, actor, label)


class _Turn:
    def __init__(self, schedule, actor, label):
        self.schedule, self.actor, self.label = schedule, actor, label

    def __enter__(self):
        self.scheduled = self.schedule.wait(self.actor, self.label)

    def __exit__(self, *exc):
        if self.scheduled:
            self.schedule.advance()


def _watch(schedule, actor, markers):
    """Make every read and every ``os.replace`` of a watched cache file wait for its turn."""
    counts = {"read": 0, "write": 0}
    real_open, real_replace = builtins.open, os.replace

    def watched(path):
        name = os.path.basename(os.fsdecode(path))
        return ".nb" in name and ".tmp" not in name and any(marker in name for marker in markers)

    def turn(kind):
        counts[kind] += 1
        return schedule.turn(actor, f"{actor}:{kind}:{counts[kind]}")

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and "r" in mode and "+" not in mode and watched(file):
            with turn("read"):
                return real_open(file, mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    def replace(source, destination, *args, **kwargs):
        if watched(destination):
            with turn("write"):
                return real_replace(source, destination, *args, **kwargs)
        return real_replace(source, destination, *args, **kwargs)

    builtins.open, os.replace = open_, replace
    return counts


# -- the tasks ----------------------------------------------------------------------------------------


def _adam_task(dtype, weight_decay, decoupled):
    """Three steps of Adam (L2 decay) or AdamW (decoupled decay) on 1000 elements, against the reference."""

    def task():
        import numadam
        from reference import adam_exact

        rng = np.random.default_rng(7)
        param = rng.standard_normal(1000).astype(dtype)
        expected = param.copy()
        exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)
        make = numadam.AdamW if decoupled else numadam.Adam
        optimizer = make(param, lr=0.05, weight_decay=weight_decay)
        for step in range(1, 4):
            grad = rng.standard_normal(1000).astype(dtype)
            expected, exp_avg, exp_avg_sq, _ = adam_exact(
                expected, grad, exp_avg, exp_avg_sq, step=step, lr=0.05, betas=(0.9, 0.999), eps=1e-8,
                weight_decay=weight_decay, decoupled_weight_decay=decoupled)
            optimizer.step(grad)
        return {"equal": bool(np.array_equal(param, expected)),
                "largest_difference": float(np.max(np.abs(param.astype(np.float64) - expected)))}

    return task


def _solve_task(dtype):
    """A compiled ``minimize`` from an ``x0`` of ``dtype``, against the same solve in Python (bit for bit)."""

    def task():
        import numadam
        from cache_race_objective import bowl

        x0 = np.linspace(-1.0, 1.0, 6).astype(dtype)
        compiled = numadam.minimize(bowl, x0, jac=True, method="adam", lr=0.1, maxiter=40, gtol=0.0, compiled=True)
        python = numadam.minimize(bowl, x0, jac=True, method="adam", lr=0.1, maxiter=40, gtol=0.0, compiled=False)
        return {"equal": bool(np.array_equal(compiled.x, python.x) and compiled.x.dtype == python.x.dtype),
                "largest_difference": float(np.max(np.abs(compiled.x.astype(np.float64) - python.x)))}

    return task


class PolicyOfAnotherVersion:
    """Pickles as numadam's Policy with one field more than it has: what a cache file written by a
    numadam whose policy had another switch holds for this one (unpickling it fails)."""

    def __reduce__(self):
        from numadam.core.pipeline import Policy

        return Policy, tuple(range(len(Policy._fields) + 1))


def index_of_another_version(kernel):
    """Write, where Numba keeps the index of ``kernel``'s cache, an index that no numadam of today can
    read (its key unpickles to an error), as a numadam of another version sharing the folder would."""
    import numba

    path = Path(kernel.stats.cache_path) / f"{kernel._cache._impl.filename_base}.nbi"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        pickle.dump(numba.__version__, file, protocol=-1)
        file.write(pickle.dumps(("another stamp", {"key": PolicyOfAnotherVersion()}), protocol=-1))
    return path


def _after_another_version_wrote_its_index(task):
    def spoiled():
        from numadam.targets.cpu.kernels import update_serial

        index_of_another_version(update_serial)
        return task()

    return spoiled


TASKS = {
    "adamw_float32": _adam_task(np.float32, 0.1, True),
    "adamw_float64": _adam_task(np.float64, 0.1, True),
    "adam_l2_float64": _adam_task(np.float64, 0.1, False),
    "solve_float32": _solve_task(np.float32),
    "solve_float64": _solve_task(np.float64),
    "another_version_then_adamw_float32": _after_another_version_wrote_its_index(_adam_task(np.float32, 0.1, True)),
}

#: The tasks the stress test runs at once: specs of one kernel in two dtypes and two decays.
STRESS_TASKS = ("adamw_float32", "adamw_float64", "adam_l2_float64")


def _run_child(folder, actor, task_name, markers, waits_to_start):
    schedule = Schedule(folder)
    result, watched = {}, {}
    try:
        watched = _watch(schedule, actor, markers)
        if waits_to_start:
            with schedule.turn(actor, f"{actor}:start:1"):
                pass
        result = TASKS[task_name]()
    except Exception as error:  # noqa: BLE001 (reported to the test, which fails on it)
        result = {"equal": False, "error": f"{type(error).__name__}: {error}"}
    finally:
        schedule.finish(actor)
        (Path(folder) / f"{actor}.json").write_text(json.dumps({**result, "watched": dict(watched)}))


# -- what a test calls --------------------------------------------------------------------------------


def environment(cache):
    """The environment of a process whose Numba and numadam caches are under ``cache``."""
    return {**os.environ, "NUMBA_CACHE_DIR": str(cache / "numba"), "NUMADAM_CACHE_DIR": str(cache / "numadam"),
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}


def start(folder, cache, actor, task, markers=(), waits_to_start=False):
    """Start process ``actor`` running ``task`` with its cache under ``cache``."""
    command = [sys.executable, str(Path(__file__)), str(folder), actor, task, ",".join(markers),
               "1" if waits_to_start else "0"]
    return subprocess.Popen(command, cwd=ROOT, env=environment(cache), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def results(folder, processes):
    """Wait for ``processes`` (by actor) and return what each found."""
    found = {}
    for actor, process in processes.items():
        output, _ = process.communicate(timeout=PATIENCE + 60)
        assert process.returncode == 0, output
        found[actor] = json.loads((Path(folder) / f"{actor}.json").read_text())
    return found


def run_in_order(folder, cache, order, tasks, markers, waits_to_start=()):
    """Run ``tasks`` (actor: task) together, the watched cache operations in ``order``; return what
    each found (with ``watched``: how many watched files it read and wrote) and the labels that ran
    at their turn, in order."""
    schedule = Schedule.create(folder, order)
    processes = {actor: start(folder, cache, actor, task, markers, actor in waits_to_start)
                 for actor, task in tasks.items()}
    return results(folder, processes), schedule.performed()


def run_fresh(folder, cache, task):
    """Run ``task`` alone in a new process (nothing waits) and return what it found."""
    Schedule.create(folder, [])
    return results(folder, {"fresh": start(folder, cache, "fresh", task)})["fresh"]


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    folder_, actor_, task_, markers_, waits_ = sys.argv[1:6]
    _run_child(folder_, actor_, task_, [m for m in markers_.split(",") if m], waits_ == "1")
