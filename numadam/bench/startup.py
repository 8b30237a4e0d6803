r"""``numadam bench --startup``: what a new process pays before its first step, with a warm cache.

Every Dask worker, pool process and script starts by importing numadam and
loading its kernels from the disk cache. Each contender is a new Python
process, timed by the wall clock from its start to its exit, in interleaved
rounds (each round runs every contender once, in a fresh random order), and
the medians are over the rounds:

- ``import numpy, numba``: what any Numba code pays to start;
- ``import numadam``;
- the floor of a first step: ``import numpy, numba`` and the first call of a
  trivial ``@njit(cache=True)`` function loaded from Numba's disk cache (a
  first load sets up Numba's compiler context, whatever the function);
- ``import numadam`` and a first ``numadam.Adam`` step on 1e3 float32 elements.

Before the rounds every contender runs once, so that the caches are warm: the
kernels on disk, and Python's bytecode of numadam and of the floor's module
(the contenders run without ``PYTHONDONTWRITEBYTECODE``, as a plain Python
does). The targets (issue 53): ``import numadam`` at most 0.05 s more than
``import numpy, numba``, and the first step at most 1.15 times its floor.
"""

import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from .timing import interleaved_rounds

#: The targets: ``import numadam`` over ``import numpy, numba`` (seconds, at most), and the first
#: step over its floor (at most).
IMPORT_TARGET_SECONDS = 0.05
FIRST_STEP_TARGET = 1.15

_FLOOR_MODULE = '''
from numba import njit


@njit(cache=True)
def add_one(x):
    x += 1.0
'''


class Contender(NamedTuple):
    name: str
    code: str


CONTENDERS = (
    Contender("import numpy, numba", "import numpy, numba"),
    Contender("import numadam", "import numadam"),
    Contender("floor: import numpy, numba; a cached @njit function's first call",
              "import numpy as np\nfrom numadam_startup_floor import add_one\nadd_one(np.ones(1000, np.float32))"),
    Contender("import numadam; the first Adam step (1e3 float32)",
              "import numpy as np\nimport numadam\np = np.ones(1000, np.float32)\n"
              "numadam.Adam(p, lr=1e-3).step(np.ones(1000, np.float32))"),
)


def _environment(folder):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(folder)] + [part for part in [env.get("PYTHONPATH")] if part])
    return env


def _seconds(code, env, folder):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=folder, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run(rounds, progress=None, seed=0):
    """The median seconds of each of :data:`CONTENDERS`, in their order, over ``rounds`` interleaved rounds."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "numadam_startup_floor.py").write_text(_FLOOR_MODULE)
        env = _environment(folder)
        samplers = [functools.partial(_seconds, contender.code, env, folder) for contender in CONTENDERS]
        for sampler in samplers:  # warm: the kernels and the floor's function cached, bytecode written
            sampler()
        return interleaved_rounds(samplers, rounds, seed, progress)


def markdown(medians):
    """The table of :func:`run`'s medians, with the two targets' measures."""
    numpy_numba, numadam, floor, first = medians
    lines = ["| new process | median seconds |", "|---|---|"]
    lines += [f"| {contender.name} | {seconds:.3f} |" for contender, seconds in zip(CONTENDERS, medians)]
    extra, ratio = numadam - numpy_numba, first / floor
    lines += ["",
              f"import numadam over import numpy, numba: {extra:+.3f} s (target at most +{IMPORT_TARGET_SECONDS} s: "
              f"{'met' if extra <= IMPORT_TARGET_SECONDS else 'not met'})",
              f"the first step over its floor: {ratio:.2f}x (target at most {FIRST_STEP_TARGET}x: "
              f"{'met' if ratio <= FIRST_STEP_TARGET else 'not met'})"]
    return "\n".join(lines) + "\n"
