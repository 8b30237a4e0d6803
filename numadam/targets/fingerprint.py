"""What a kernel's machine code is made of: the key that keeps Numba's disk cache honest.

Numba's ``cache=True`` keys machine code on the file of the cached function
and on its argument types, nothing else. A numadam kernel compiles much more
into itself: the generated body, the family's rule, every helper the rule
calls (``core/element_math.py``), the storage conversions, the codecs and the
primitives. :func:`fingerprint` finds those modules by walking the code: from
the functions a kernel is compiled from, through every global name their code
uses (a function, a Numba dispatcher or intrinsic, a module's attribute), into
the modules of numadam and of the rule that it reaches. It hashes their
sources and the package's version; the spec's Numba type carries the hash
(:class:`~numadam.targets.spec.KernelSpecType`), so an edit anywhere in that
closure, or an upgrade, compiles anew instead of loading stale code. A source
changed after this process imported numadam is not hashed: this process may run
the code from before the change (see :func:`source_digest`).
"""

import hashlib
import os
import pathlib
import sys
import types
import uuid

from ..core.version import package_version as _package_version

#: The modules whose every function a kernel may be compiled from (see :func:`compiled_from_module`).
_KERNEL_MODULES = []
_SOURCE_DIGESTS = {}


def compiled_from_module(module_name):
    """Declare the module ``module_name`` a place kernels are compiled from: every function in it
    is a root of every kernel's :func:`fingerprint` (the loops, the code generator, the overloads
    that reach a generated body by a route no global name shows)."""
    if module_name not in _KERNEL_MODULES:
        _KERNEL_MODULES.append(module_name)


def kernel_modules():
    """The modules declared by :func:`compiled_from_module` so far, in order."""
    return tuple(_KERNEL_MODULES)


def python_function(value):
    """The Python function behind a function, a Numba dispatcher (``py_func``), an intrinsic
    (``_defn``), a ``functools.partial`` or a ``functools.cache``; ``None`` for anything else."""
    for attribute in ("py_func", "_defn", "func", "__wrapped__"):
        inner = getattr(value, attribute, None)
        if isinstance(inner, types.FunctionType):
            return inner
    return value if isinstance(value, types.FunctionType) else None


def code_names(code):
    """Every global or attribute name used by ``code`` and the code nested in it (lambdas, inner functions)."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= code_names(constant)
    return names


def inlined_modules(roots, owners):
    """The names of the modules whose code may be compiled into a kernel built from ``roots``.

    A module counts when its top-level package is one of ``owners``; the walk
    follows global names, closures and the attributes named of a module, so
    ``element_math.sign(...)`` reaches ``element_math``; a class reached (a named tuple
    whose fields the generated code reads) counts its module.
    """
    found, seen, pending = set(), set(), list(roots)
    while pending:
        value = pending.pop()
        if isinstance(value, (tuple, list)):
            pending.extend(value)
            continue
        if isinstance(value, type):  # a named tuple of scalars or flags: its fields shape the code
            if value.__module__.partition(".")[0] in owners:
                found.add(value.__module__)
            continue
        function = python_function(value)
        if function is None or id(function) in seen:
            continue
        seen.add(id(function))
        if (function.__module__ or "").partition(".")[0] not in owners:
            continue
        found.add(function.__module__)
        names = code_names(function.__code__)
        scope = function.__globals__
        for name in names:
            target = scope.get(name)
            if isinstance(target, types.ModuleType):
                if target.__name__.partition(".")[0] in owners:
                    found.add(target.__name__)
                    pending.extend(getattr(target, attribute) for attribute in names if hasattr(target, attribute))
            elif target is not None:
                pending.append(target)
        for cell in function.__closure__ or ():
            try:
                pending.append(cell.cell_contents)
            except ValueError:  # a cell not yet filled
                pass
    return found


#: How long before numadam's import a file's time may say it changed when it changed after: Linux
#: stamps files from a clock that lags the one ``time.time_ns`` reads by up to a tick (1-10 ms).
CLOCK_TICKS_NS = 50_000_000

#: How a digest (and a fingerprint that hashes one) known to this process alone begins.
UNSHARED = "unshared:"


def source_digest(module_name):
    """The hash of module ``module_name``'s source, read once in this process.

    A file changed after this process began importing numadam (its modification
    or status-change time at most :data:`CLOCK_TICKS_NS` before that; the status
    time also catches a copy that keeps the old modification time, ``cp -p``,
    ``rsync -a``), or gone, may hold other code than the module this process
    imported and compiles: an edit or a ``git checkout`` while a session runs.
    Its hash would key the old code under the new source, and a later process
    would load it. Such a module gets a digest of this process alone, starting
    with :data:`UNSHARED`: the kernels that compile it in are neither saved nor
    loaded (:func:`fingerprint`). A clock that runs ahead of the files' (a
    file from the future) only costs that sharing; one that runs more than
    :data:`CLOCK_TICKS_NS` behind them would hide an edit.
    """
    digest = _SOURCE_DIGESTS.get(module_name)
    if digest is None:
        path = getattr(sys.modules[module_name], "__file__", None)
        try:
            if path is None:
                digest = hashlib.sha256(b"").hexdigest()
            else:
                text = pathlib.Path(path).read_bytes()
                if changed_since_import(pathlib.Path(path).stat()):  # (read first: an edit between is caught)
                    raise OSError("changed after numadam's import")
                digest = hashlib.sha256(text).hexdigest()
        except OSError:
            digest = f"{UNSHARED}{os.getpid()}:{uuid.uuid4().hex}"
        digest = _SOURCE_DIGESTS.setdefault(module_name, digest)  # (another thread's, if it was first)
    return digest


def changed_since_import(status):
    """Whether a file of ``os.stat`` result ``status`` was modified, or its status changed, after this
    process began importing numadam (less :data:`CLOCK_TICKS_NS`, the file clock's coarseness)."""
    return max(status.st_mtime_ns, status.st_ctime_ns) >= _import_started_ns() - CLOCK_TICKS_NS


def _import_started_ns():
    return sys.modules[__name__.partition(".")[0]]._import_started_ns  # (numadam/__init__.py's, first of all)


def fingerprint(rule_functions):
    """A hash of the sources of every module a kernel applying ``rule_functions`` compiles in,
    and of numadam's version (see the module docstring); it begins with :data:`UNSHARED` where
    one of those sources is this process's alone (:func:`source_digest`)."""
    owners = {"numadam"} | {function.__module__.partition(".")[0] for function in rule_functions
                            if function is not None}
    roots = list(rule_functions)
    for name in _KERNEL_MODULES:
        roots += [value for value in vars(sys.modules[name]).values() if python_function(value) is not None]
    return _sources_fingerprint(inlined_modules(roots, owners))


def function_fingerprint(function):
    """:func:`fingerprint` of a cached function of numadam that takes no kernel spec (a scan, a
    merge, a solve's rule): the sources of its module and of every numadam module its code
    reaches, so an edit of a helper it calls in another module compiles it anew, where Numba's own
    key (its bytecode and its file's stamp) would load the old code. A function outside numadam
    has Numba's key alone (its fingerprint is the version's)."""
    return _sources_fingerprint(inlined_modules([function], {"numadam"}))


def _sources_fingerprint(module_names):
    digest = hashlib.sha256(_package_version().encode())
    unshared = False
    for module_name in sorted(module_names):
        source = source_digest(module_name)
        unshared = unshared or source.startswith(UNSHARED)
        digest.update(f"{module_name}:{source}".encode())
    return (UNSHARED if unshared else "") + digest.hexdigest()[:16]
