"""Machine code cached on disk that no process can ever load under another signature.

Every Numba function numadam caches is made by :func:`cached_njit`, whose cache
keeps **one file per key**: the key is Numba's own (the argument types, the
CPU's name and features, the hashes of the function's bytecode and closure)
with the sources of the numadam modules the function reaches
(:func:`~numadam.targets.fingerprint.function_fingerprint`: Numba's key misses
an edited helper in another module), the file's name is a hash of it, and the
file holds the key itself beside the machine code. Loading reads that one file and uses its code only when the key
written in it is the key asked for and the compiled result's own signature is
the signature asked for; anything else (no file, another key, another Numba,
another source stamp, a file that no longer unpickles) is a miss: the function
compiles, and its file is replaced whole.

Why this is correct with any number of processes at once, with no lock and no
timing assumption:

- A file is only ever written whole: to a name of its own, then moved over the
  final name (``os.replace``, atomic on one filesystem). A reader opens either
  the old file or the new one, never a mix.
- Every version of the file at a name holds a key, and a reader checks it: two
  keys whose names collide (a hash collision, or two Numba types printed the
  same) replace each other's file and miss, but never load each other's code.
- There is no index to read, change and write back, so there is nothing that
  two writers can both change from the same reading (Numba's own cache numbers
  its data files from such an index: two processes saving two signatures at
  once both took file 1, and the index could name the other signature's code),
  and nothing to empty where it cannot be read (Numba empties an index of
  another source stamp, numadam emptied one of another version's keys, and
  numbering restarted over files that other processes' indexes still named).
- A failed write (a read-only folder, a full disk) leaves the compiled code in
  the process's memory, and a folder where no cache can be made at all gives a
  function compiled in every process (Numba's ``NullCache``).

What it does not cover: two machines of different CPUs sharing one cache folder
(a network filesystem) keep apart because the key holds the CPU's name and
features, as Numba's does; a filesystem whose ``rename`` is not atomic (some
network filesystems under failure) could still show a reader a partial file,
which fails to unpickle and is a miss.
"""

import hashlib
import os
import pickle
import threading
import uuid
from pathlib import Path

import numba
from numba import njit
from numba.core import serialize, sigutils
from numba.core.caching import CompileResultCacheImpl, FunctionCache, InTreeCacheLocator

from . import fingerprint

class CachedFunctions:
    """Every function made by :func:`cached_njit` in this process, in order (in a class, not a
    module's list: the kernels' fingerprint walks the names their code reaches, and takes a
    class as its module's source alone, so what this process happens to have made never
    changes a kernel's key)."""

    made = []


class KeyedFunctionCache(FunctionCache):
    """Numba's cache of one function's compiled results, one file per key (see the module docstring).

    Its folder is found at the function's first compile, not when the function is
    made (Numba's search writes a file to test each folder: about 0.7 ms a function,
    paid by every ``import numadam`` otherwise). Where no folder can be made, the
    cache is off: the function compiles in memory in every process.
    """

    def __init__(self, py_func):  # (Numba's Cache.__init__ runs in _found, at first use)
        self._py_func, self._name, self._enabled, self._ready = py_func, repr(py_func), True, False
        self._has_folder = self._shareable = False
        self._finding = threading.Lock()

    def _found(self):
        """Whether this cache has a folder (found now, at its first use, by one thread: another one
        waits for it, and sees every attribute set, since ``_ready`` is set last)."""
        if not self._ready:
            with self._finding:
                if not self._ready:
                    self._find()
        return self._has_folder

    def _find(self):
        enabled = self._enabled
        try:
            super().__init__(self._py_func)  # (which enables the cache: keep what was asked before)
        except (RuntimeError, OSError):  # Numba found no folder it can write: nothing is cached
            self._enabled, self._ready = enabled, True
            return
        self._enabled, self._source_stamp = enabled, self._cache_file._source_stamp
        self._sources = self._sources_fingerprint()
        self._shareable = not self._sources.startswith(fingerprint.UNSHARED)  # (not: a source changed since the import)
        self._has_folder = True
        self._ready = True

    def _sources_fingerprint(self):
        """The sources this function's machine code is made of (see the module docstring)."""
        return fingerprint.function_fingerprint(self._py_func)

    @property
    def cache_path(self):
        return self._cache_path if self._found() else None

    @property
    def locator(self):
        """Numba's locator of this cache's folder (``None`` where there is none)."""
        return self._impl.locator if self._found() else None

    @property
    def file_prefix(self):
        """The start of the name of every file this function's cache writes, in any version
        (``module.qualname-``, the line number after it)."""
        return self._impl.filename_base.rsplit("-", 1)[0] + "-"

    def _path(self, key):
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
        return os.path.join(self._cache_path, f"{self._impl.filename_base}.{digest}.nbc")

    def _header(self, key):
        return numba.__version__, self._source_stamp, self._sources, key

    def load_overload(self, sig, target_context):
        """The compiled result cached for ``sig``, or ``None``: never one compiled for anything else."""
        if not (self._enabled and _shared(sig) and self._found() and self._shareable):
            return None
        target_context.refresh()
        key = self._index_key(sig, target_context.codegen())
        try:
            with open(self._path(key), "rb") as file:
                if pickle.load(file) != self._header(key):
                    return None
                payload = pickle.load(file)
            result = self._impl.rebuild(target_context, payload)
        except Exception:  # noqa: BLE001 (no file, or one no longer readable here: a miss, never a wrong load)
            return None
        args, return_type = sigutils.normalize_signature(sig)
        if tuple(result.signature.args) != tuple(args) or (
                return_type is not None and result.signature.return_type != return_type):
            return None
        return result

    def save_overload(self, sig, data):
        """Write ``data``, compiled for ``sig``, to its key's file, whole or not at all."""
        if not (self._enabled and _shared(sig) and self._found() and self._shareable) or \
                not self._impl.check_cachable(data):
            return
        key = self._index_key(sig, data.codegen)
        contents = serialize.dumps(self._header(key)) + serialize.dumps(self._impl.reduce(data))
        path = self._path(key)
        partial = f"{path}.tmp.{os.getpid()}.{uuid.uuid4().hex[:12]}"
        try:
            self._impl.locator.ensure_cache_path()
            with open(partial, "wb") as file:
                file.write(contents)
            os.replace(partial, path)
        except OSError:  # a read-only folder or a full disk: the code stays in this process's memory
            try:
                os.unlink(partial)
            except OSError:
                pass

    def flush(self):
        """Delete this function's files (a reader of one meets a miss, never another key's code)."""
        for path in self.files():
            path.unlink(missing_ok=True)

    def files(self):
        """Every file of this function in its cache folder: this numadam's and any other version's."""
        if not self._found():
            return []
        folder = Path(self._cache_path)
        return sorted(folder.glob(f"{self.file_prefix}*")) if folder.is_dir() else []


def _shared(sig):
    """Whether code compiled for ``sig`` may be shared through the disk: not where an argument's
    type says its key is this process's alone (a kernel spec's fingerprint over a source changed
    after the import: :attr:`~numadam.targets.spec.KernelSpecType.unshared`). Saving it would
    leave a file nothing ever loads, one more per process."""
    args, _ = sigutils.normalize_signature(sig)
    return not any(getattr(arg, "unshared", False) for arg in args)


class _BesideTheSource(CompileResultCacheImpl):
    """Numba's compiled results, kept in ``__pycache__`` beside the function's file whatever
    ``NUMBA_CACHE_DIR`` says."""

    _locator_classes = [InTreeCacheLocator]


class KeyedCacheBesideTheSource(KeyedFunctionCache):
    """A :class:`KeyedFunctionCache` in ``__pycache__`` beside the function's file: a generated
    file whose name holds the hash of everything it is made of (a compiled solve's)."""

    _impl_class = _BesideTheSource

    def _sources_fingerprint(self):
        return ""  # (numadam/solver/compiled.py names the file by a hash of all it is made of, and
        #          keeps a solve off the disk where a numadam source changed after the import)


def cached_njit(beside_the_source=False, **options):
    """``numba.njit(**options)``, its machine code cached on disk by :class:`KeyedFunctionCache`
    (``cache=True`` with a cache that can never load the wrong code): in the folder Numba picks
    (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the source if it can be written, else the
    user's cache folder), or always beside the source (a folder numadam owns, such as the
    compiled solves'), found at its first compile. Where no cache folder can be made, the
    function compiles in memory in every process."""

    def decorate(function):
        dispatcher = njit(**options)(function)
        dispatcher._cache = (KeyedCacheBesideTheSource if beside_the_source else KeyedFunctionCache)(
            dispatcher.py_func)
        CachedFunctions.made.append(dispatcher)
        return dispatcher

    return decorate
