"""Processes: after the parent ran the parallel kernel, forked and spawned children step too.

Each case runs a script in a fresh interpreter, so that numadam (not this test
process) picks Numba's threading layer. The parent steps a 2**20-element array
(the parallel kernel) and a 1024-row matrix with Adafactor (its factors' pass on
every core), then a child steps the optimizers it inherited (the same gradient
array again, then new ones) and a new one; the parent takes the same steps and
the results must be equal, bit for bit. A child that dies (GNU OpenMP terminates forked children that run a
parallel region) breaks the pool and fails the case; timeouts bound every wait.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from numadam.targets.cpu.backend import CpuBackend

pytestmark = [pytest.mark.skipif(sys.platform != "linux", reason="fork, and GNU OpenMP's trouble with it, are Linux's"),
              pytest.mark.subprocess]


SIZE = 1 << 20
assert SIZE >= CpuBackend.serial_below  # the parallel kernel runs

SCRIPT = textwrap.dedent("""
    import concurrent.futures
    import json
    import multiprocessing
    import sys

    import numba
    import numpy as np

    import numadam

    SIZE = int(sys.argv[2])
    rng = np.random.default_rng(0)
    GRADS = [rng.standard_normal(SIZE).astype(np.float32) for _ in range(3)]
    START = rng.standard_normal(SIZE).astype(np.float32)
    w = START.copy()
    inherited = numadam.Adam(w, lr=1e-2)
    MATRIX = START.reshape(1024, -1)  # Adafactor's factors' pass runs on every core from 2**16 elements
    factored = MATRIX.copy()
    inherited_factored = numadam.Adafactor(factored, lr=1e-2)


    def continue_inherited():
        inherited.step(GRADS[0])  # its very gradient again: the parent's plan and launch
        for grad in GRADS[1:]:  # new arrays: the parent's plan moved onto them
            inherited.step(grad)
        return numba.threading_layer(), w


    def continue_inherited_factored():
        for grad in GRADS[1:]:
            inherited_factored.step(grad.reshape(MATRIX.shape))
        return numba.threading_layer(), factored


    def new_optimizer():
        v = START.copy()
        optimizer = numadam.Adam(v, lr=1e-2, amsgrad=True)
        for grad in GRADS:
            optimizer.step(grad)
        return numba.threading_layer(), v


    if __name__ == "__main__":
        inherited.step(GRADS[0])  # the parent runs the parallel kernel first
        inherited_factored.step(GRADS[0].reshape(MATRIX.shape))
        start_method = sys.argv[1]
        # A spawned child starts from scratch: it inherits no optimizer.
        works = ([continue_inherited, continue_inherited_factored, new_optimizer] if start_method == "fork"
                 else [new_optimizer])
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(start_method)) as pool:
            from_child = [pool.submit(work).result(timeout=240) for work in works]
        in_parent = [work()[1] for work in works]
        print(json.dumps({
            "config": numba.config.THREADING_LAYER,
            "layers": [numba.threading_layer()] + [layer for layer, _ in from_child],
            "equal": [bool(np.array_equal(result, expected)) for (_, result), expected in zip(from_child, in_parent)],
        }))
""")


def run_script(tmp_path, start_method, prelude="", env=None):
    """Run SCRIPT (after ``prelude``) with children started by ``start_method``; what it reports.

    ``config``: ``numba.config.THREADING_LAYER`` at the end; ``layers``: the
    threading layer of the parent, then of the child for each work; ``equal``:
    whether each child's result equals the parent's.
    """
    script = tmp_path / "steps_in_a_child.py"
    script.write_text(prelude + SCRIPT)
    environment = {name: value for name, value in os.environ.items() if name != "NUMBA_THREADING_LAYER"}
    result = subprocess.run([sys.executable, str(script), start_method, str(SIZE)], capture_output=True, text=True,
                            timeout=300, env={**environment, **(env or {})})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_child_steps_inherited_and_new_optimizers_after_the_parent_ran_the_parallel_kernel(tmp_path, start_method):
    """Under GNU OpenMP (Linux's layer unless tbb is installed) a forked child runs numadam's kernels
    serially (numadam.targets.cpu.threads): without that, OpenMP would terminate it and break the pool."""
    works = 3 if start_method == "fork" else 1
    report = run_script(tmp_path, start_method, env={"NUMBA_THREADING_LAYER": "omp"})
    assert report["layers"][0] == "omp" and report["equal"] == [True] * works


def test_the_fork_guard_marks_only_children_of_an_openmp_parent(tmp_path):
    code = textwrap.dedent("""
        import os, sys
        import numpy as np
        import numadam
        from numadam.targets.cpu import threads as _threading

        def child_allows():
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(write, b"1" if _threading.parallel_allowed() else b"0")
                os._exit(0)
            os.waitpid(pid, 0)
            return os.read(read, 1) == b"1"

        numadam.Adam(np.zeros(8, np.float32)).step(np.ones(8, np.float32))  # serial: no threads yet
        before = child_allows()
        numadam.Adam(np.zeros(1 << 17, np.float32)).step(np.ones(1 << 17, np.float32))  # OpenMP threads
        print(before, child_allows(), _threading.parallel_allowed())
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NUMBA_THREADING_LAYER": "omp"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "True"]


@pytest.mark.parametrize("how", ["environment", "numba.config"])
def test_a_threading_layer_chosen_by_the_user_is_kept(tmp_path, how):
    """workqueue: fork-safe, so the children still step; numadam does not replace a layer chosen by the user."""
    if how == "environment":
        report = run_script(tmp_path, "fork", env={"NUMBA_THREADING_LAYER": "workqueue"})
    else:
        report = run_script(tmp_path, "fork", prelude="import numba\nnumba.config.THREADING_LAYER = 'workqueue'\n")
    assert report == {"config": "workqueue", "layers": ["workqueue"] * 4, "equal": [True] * 3}


def test_a_threading_layer_already_running_is_kept(tmp_path):
    """Another library's parallel kernel ran first (under workqueue, by its choice): numadam changes nothing,
    not even ``numba.config``, which would then misreport the layer in use."""
    prelude = textwrap.dedent("""
        import numba
        import numpy as np

        numba.config.THREADING_LAYER = "workqueue"


        @numba.njit(parallel=True)
        def other_library(a):
            for i in numba.prange(a.size):
                a[i] += 1.0


        other_library(np.zeros(10))
        numba.config.THREADING_LAYER = "default"
    """)
    assert run_script(tmp_path, "fork", prelude=prelude) == {"config": "default", "layers": ["workqueue"] * 4,
                                                             "equal": [True] * 3}
