"""A new process with a warm cache: ``import numadam``, and the import with the first Adam step, each
beside its floor (``numadam bench --startup`` times the same four in one interleaved run).

asv runs each ``timeraw_`` benchmark's code in a new Python process and times
it there (the setup code, which does not import numpy or numba, untimed).
:func:`setup_cache` warms the caches first, once: the kernels and the floor's
function on disk, and the bytecode of numadam and of the floor's module (it
runs without ``PYTHONDONTWRITEBYTECODE``, as a plain Python does).
"""

import os
import subprocess
import sys
import tempfile

#: Where the floor's module lives: a file, so that Numba caches its function on disk.
FLOOR_FOLDER = os.path.join(tempfile.gettempdir(), "numadam-asv-startup-floor")

_FLOOR_MODULE = "from numba import njit\n\n\n@njit(cache=True)\ndef add_one(x):\n    x += 1.0\n"
_FLOOR_SETUP = f"import sys\nsys.path.insert(0, {FLOOR_FOLDER!r})"
_FLOOR = "import numpy as np\nfrom numadam_startup_floor import add_one\nadd_one(np.ones(1000, np.float32))"
_FIRST_STEP = ("import numpy as np\nimport numadam\np = np.ones(1000, np.float32)\n"
               "numadam.Adam(p, lr=1e-3).step(np.ones(1000, np.float32))")


def setup_cache():
    os.makedirs(FLOOR_FOLDER, exist_ok=True)
    path = os.path.join(FLOOR_FOLDER, "numadam_startup_floor.py")
    with open(f"{path}.{os.getpid()}.tmp", "w") as file:
        file.write(_FLOOR_MODULE)
    os.replace(f"{path}.{os.getpid()}.tmp", path)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    for code in (_FLOOR_SETUP + "\n" + _FLOOR, _FIRST_STEP):
        subprocess.run([sys.executable, "-c", code], check=True, env=env)


def timeraw_import_numpy_numba(*_):
    return "import numpy, numba"


def timeraw_import_numadam(*_):
    return "import numadam"


def timeraw_floor_cached_njit_first_call(*_):
    return _FLOOR, _FLOOR_SETUP


def timeraw_first_adam_step(*_):
    return _FIRST_STEP


for _benchmark in (timeraw_import_numpy_numba, timeraw_import_numadam, timeraw_floor_cached_njit_first_call,
                   timeraw_first_adam_step):
    _benchmark.number = 1  # a first call happens once a process
    _benchmark.repeat = (5, 15, 120.0)
