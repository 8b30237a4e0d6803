"""Forked children and Numba's threading layer: a child forked from an OpenMP parent steps serially.

Numba picks its threading layer once per process, when the first parallel
kernel runs; on Linux that is GNU OpenMP, the fastest here. GNU OpenMP
terminates a forked child that runs a parallel region after its parent did
("fork() called from a process already using GNU OpenMP"): a ``multiprocessing``
pool started with ``fork`` (the default on Linux before Python 3.14) would die
at its first large step. So numadam registers an ``os.register_at_fork``
handler: in a child forked after the parent ran OpenMP threads, every numadam
kernel runs serially, on the calling thread. The child's results are the same,
bit for bit (the kernels' work is cut the same way whatever the threads); it
uses one core, which is what pool workers should use anyway. Children started
with ``spawn`` or ``forkserver`` start fresh and use every core.

The other layers are left alone: TBB (``NUMBA_THREADING_LAYER=tbb`` with the
``tbb`` package installed) is fork-safe, so its children keep their threads,
and ``workqueue`` is fork-safe but aborts the process when two threads launch
parallel kernels at once, so numadam does not choose it. OpenMP and TBB are
both safe for optimizers stepped on several threads at once.
"""

import os

_forked_from_openmp = False


def parallel_allowed():
    """Whether numadam may run its parallel kernels in this process."""
    return not _forked_from_openmp


def _after_fork_in_child():
    global _forked_from_openmp
    if _forked_from_openmp or _parent_ran_openmp():
        _forked_from_openmp = True


def _parent_ran_openmp():
    import numba

    try:
        return numba.threading_layer() == "omp"
    except ValueError:  # "Threading layer is not initialized": no parallel kernel ran before the fork
        return False


os.register_at_fork(after_in_child=_after_fork_in_child)
