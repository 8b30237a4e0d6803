r"""What ``numadam bench`` runs on, and how many elements take a roofline past its caches.

A result means little without its machine: the tables' headers name the CPU
model, its cores, its cache sizes as the OS reports them, the CPU LLVM compiles
for, and Numba's threading layer (:func:`describe`).

A roofline measures memory only when the arrays a step touches do not fit in
the last-level cache. A cache with an adaptive replacement policy can keep up
to its own size of arrays swept over and over, however large they are, so a
step of :math:`N` elements touching :math:`b` bytes of arrays per element may
read a share of up to :math:`C / (N b)` of them from a cache of :math:`C`
bytes. :func:`roofline_size` picks the smallest round :math:`N` with

.. math::

    N b \ge k\,C, \qquad k = 8 \ (\text{PAST\_CACHE}),

so at most an eighth comes from the cache, never below :data:`LEAST_SIZE`
(the size the bench always used) and, where the OS tells how much memory is
available, no more than a run can hold. :func:`size_warning` says when a
size is short of that.

Examples
--------
>>> round_up(9_600_000), round_up(120_000_001), round_down(61_000_000), count_text(60_000_000)
(10000000, 200000000, 60000000, '6e7')
>>> roofline_size(16, 100, last_level=32 * 2**20, memory=None)   # a float32 Adam step, a 32 MiB L3
20000000
>>> parse_size("32768K"), parse_size("1M"), parse_size("48 KB")
(33554432, 1048576, 49152)
"""

import json
import math
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from .cases import count_text

#: The caches of the first CPU as Linux lists them: ``index*/{level,type,size}``.
SYSFS_CACHES = Path("/sys/devices/system/cpu/cpu0/cache")
#: Linux's description of its CPUs (the model name) and of its memory (``MemAvailable``).
CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")

#: A roofline's arrays span at least this many last-level caches.
PAST_CACHE = 8
#: The least number of elements a roofline study takes by default (and its default where the OS
#: reports no cache).
LEAST_SIZE = 10**7
#: The share of the available memory a run's arrays may take.
MEMORY_SHARE = 0.75
#: The bytes per element of the arrays a float32 Adam step touches: parameter, gradient and the two
#: moments, 4 bytes each. The cases and suites are sized on it.
ADAM_FOOTPRINT = 16


class Cache(NamedTuple):
    """One cache of the first CPU: its level, ``"Data"`` or ``"Unified"``, and its size in bytes."""

    level: int
    kind: str
    size: int

    @property
    def name(self):
        return f"L{self.level}{'d' if self.kind == 'Data' else ''}"


def parse_size(text):
    """Bytes from a size as the OS writes it: ``"48K"``, ``"1M"``, ``"2048 KB"``, ``"33554432"``."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B").strip()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text.rstrip("KMG").strip()) * scale


def _sysfs_caches(root):
    found = []
    for index in sorted(Path(root).glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
            found.append(Cache(int(level), kind, parse_size(size)))
        except (OSError, ValueError):
            continue
    return found


def parse_lscpu(text):
    """The caches in the JSON of ``lscpu --caches --json --bytes``."""
    return [Cache(int(row["level"]), row["type"], parse_size(str(row["one-size"])))
            for row in json.loads(text).get("caches", [])]


def _lscpu_caches():
    if shutil.which("lscpu") is None:
        return []
    try:
        done = subprocess.run(["lscpu", "--caches=NAME,ONE-SIZE,TYPE,LEVEL", "--json", "--bytes"],
                              capture_output=True, text=True, timeout=10, check=True)
        return parse_lscpu(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return []


def caches():
    """The data and unified caches of the first CPU, by level (instruction caches left out), from
    Linux's sysfs (:data:`SYSFS_CACHES`), else from ``lscpu``; empty when neither reports them."""
    found = _sysfs_caches(SYSFS_CACHES) or _lscpu_caches()
    return sorted({cache for cache in found if cache.kind != "Instruction"})


def last_level_cache(found):
    """The largest cache of the highest level in ``found``, or ``None``."""
    return max(found, key=lambda cache: (cache.level, cache.size), default=None)


def memory_available():
    """Bytes of memory available to new allocations (Linux's ``MemAvailable``), or ``None``."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return parse_size(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``), else what Python's ``platform`` knows."""
    try:
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model Name", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "an unknown CPU"


def threading_layer():
    """Numba's threading layer (``omp``, ``tbb`` or ``workqueue``): Numba picks it when a parallel
    kernel first runs, so one runs here if none has yet."""
    import numba
    import numpy as np

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process
        from .roofline import traffic_kernel

        traffic_kernel(("float32",), ("float32",), True)(np.ones(2, np.float32), np.ones(2, np.float32))
        return numba.threading_layer()


def size_text(size):
    """Bytes in KiB, MiB or GiB, three significant digits at most."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def describe(threads=None):
    """The header line naming the machine: CPU model, the CPU LLVM compiles for, cores, caches, and
    Numba's threading layer and threads."""
    import numba
    from llvmlite import binding

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    found = caches()
    cache_text = ", ".join(f"{cache.name} {size_text(cache.size)}" for cache in found) or "not reported by the OS"
    threads = numba.get_num_threads() if threads is None else threads
    return (f"Machine: {cpu_model()} ({platform.machine()}; LLVM compiles for "
            f"{numba.config.CPU_NAME or binding.get_host_cpu_name()}), {cores} CPU(s)"
            f"{'' if usable == cores else f', {usable} usable'}; caches of one CPU: {cache_text}; "
            f"Numba threading layer {threading_layer()}, {threads} thread(s).")


def round_up(n):
    """``n`` rounded up to one significant digit: 9.6e6 -> 1e7, 1.2e8 -> 2e8."""
    scale = 10 ** math.floor(math.log10(n))
    return math.ceil(n / scale) * scale


def round_down(n):
    """``n`` rounded down to one significant digit: 6.1e7 -> 6e7."""
    scale = 10 ** math.floor(math.log10(n))
    return math.floor(n / scale) * scale


_OS = object()


def roofline_size(footprint, held, last_level=_OS, memory=_OS):
    """Elements for a roofline study whose step touches ``footprint`` bytes of arrays per element,
    in a run holding ``held`` bytes of arrays per element.

    The smallest one-digit number of elements whose arrays span :data:`PAST_CACHE` times the
    last-level cache of ``last_level`` bytes (read from the OS unless given; ``None``: unknown),
    at least :data:`LEAST_SIZE`, and at most what :data:`MEMORY_SHARE` of ``memory`` bytes
    (available memory, read from the OS unless given; ``None``: no limit) holds, though never
    below :data:`LEAST_SIZE`.
    """
    if last_level is _OS:
        cache = last_level_cache(caches())
        last_level = cache and cache.size
    if memory is _OS:
        memory = memory_available()
    size = LEAST_SIZE if not last_level else max(LEAST_SIZE, round_up(PAST_CACHE * last_level / footprint))
    if memory and size * held > MEMORY_SHARE * memory:
        size = max(LEAST_SIZE, round_down(MEMORY_SHARE * memory / held))
    return size


def size_warning(size, footprint, last_level=_OS):
    """Why ``size`` elements of ``footprint`` bytes are not past the last-level cache (read from the
    OS unless given, as bytes), or ``None`` when they are or no cache is known."""
    if last_level is _OS:
        cache = last_level_cache(caches())
        last_level = cache and cache.size
    if not last_level or size * footprint >= PAST_CACHE * last_level:
        return None
    return (f"at {count_text(size)} elements the arrays of a step ({size_text(size * footprint)}) are "
            f"{size * footprint / last_level:.2g}x the last-level cache ({size_text(last_level)}), which keeps "
            f"part of them: a roofline measures memory from {PAST_CACHE}x, --size "
            f"{count_text(round_up(PAST_CACHE * last_level / footprint))} or more")
