"""Numba's threading layer: TBB where it loads, so that forked children can run the parallel kernel.

Numba picks its threading layer once per process, when the first parallel
kernel runs. Where TBB does not load, Linux gets GNU OpenMP, which terminates a
forked child that runs a parallel kernel after its parent did ("fork() called
from a process already using GNU OpenMP"): a ``multiprocessing`` pool started
with ``fork`` (the default on Linux before Python 3.14) would die at its first
large step. TBB is safe across ``fork`` and across threads. The ``workqueue``
layer is fork-safe but aborts the process when two threads run parallel
kernels at once, so it is never chosen here.

The ``tbb`` wheel that pip installs puts ``libtbb.so.12`` in ``<prefix>/lib``,
where Numba does not look from a virtual environment; loading it by its path
first lets Numba find it by name.

A choice made elsewhere is kept: if ``NUMBA_THREADING_LAYER`` or
``NUMBA_THREADING_LAYER_PRIORITY`` is set (in the environment or
``.numba_config.yaml``), if code set ``numba.config.THREADING_LAYER`` or
``THREADING_LAYER_PRIORITY`` before numadam's first step, or if another
library's parallel kernel already started Numba's threads, nothing changes.
The layer in use (``numba.threading_layer()``) is then that one: with ``omp``
on Linux, a forked child that takes a step large enough for the parallel
kernel (65,536 elements or more) after its parent did is terminated; with
``workqueue``, optimizers stepped on several threads at once abort the process. Where TBB does not load (no wheel
for the platform, or one older than Numba accepts), Numba's own default stays.
"""

import ctypes
import importlib.metadata
import os
import sys

import numba

_LIBTBB = "libtbb.so.12"
#: ``numba.config``'s ``THREADING_LAYER`` and ``THREADING_LAYER_PRIORITY`` when no one set them.
_NUMBA_DEFAULT_CHOICE = ("default", ["tbb", "omp", "workqueue"])
#: ``TBB_runtime_interface_version()`` of TBB 2021.6, the oldest that Numba's TBB layer accepts.
_OLDEST_TBB_INTERFACE = 12060


def choose_threading_layer():
    """Make Numba's parallel kernels run on TBB, unless the layer was chosen elsewhere or TBB does not load."""
    if sys.platform == "linux" and _choice_is_open() and _tbb_loads():
        numba.config.THREADING_LAYER = "tbb"


def _choice_is_open():
    """Whether no one chose the threading layer and Numba has not started its threads."""
    if any(name in os.environ for name in ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY")):
        return False
    if (numba.config.THREADING_LAYER, numba.config.THREADING_LAYER_PRIORITY) != _NUMBA_DEFAULT_CHOICE:
        return False
    try:
        numba.threading_layer()
    except ValueError:  # "Threading layer is not initialized."
        return True
    return False


def _tbb_loads():
    """Whether Numba's TBB layer loads: a recent enough ``libtbb.so.12`` and Numba's ``tbbpool`` linked to it."""
    try:
        wheel_library = _installed_file("tbb", _LIBTBB)
        if wheel_library is not None:
            ctypes.CDLL(wheel_library)
        version = ctypes.CDLL(_LIBTBB).TBB_runtime_interface_version()
        from numba.np.ufunc import tbbpool  # noqa: F401
    except (OSError, AttributeError, ImportError):
        return False
    return version >= _OLDEST_TBB_INTERFACE


def _installed_file(distribution, name):
    """The path of the file called ``name`` that the installed ``distribution`` holds, or ``None``."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    return next((str(file.locate()) for file in files if file.name == name), None)
