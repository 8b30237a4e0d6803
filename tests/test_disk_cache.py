"""numadam's disk cache of compiled functions (:mod:`numadam.targets.disk_cache`), in one process:
a file is loaded only for its own key and signature, a disk that cannot be written leaves the code
in memory, and every cached function of numadam goes through it. (Processes racing on one cache:
``test_cache_races.py``.)"""

import ast
import errno
import importlib.util
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from numba import types
from numba.core import config

from numadam.targets import disk_cache
from numadam.cli import compiled_functions

ROOT = Path(__file__).resolve().parent.parent

MODULE = '''
from numadam.targets.disk_cache import cached_njit


@cached_njit()
def doubled(x):
    return x + x
'''


@pytest.fixture
def doubled(tmp_path, monkeypatch):
    """A fresh cached function in a module file of its own, its cache in ``tmp_path / "cache"``."""
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / f"cached_module_{os.getpid()}_{len(list(tmp_path.iterdir()))}.py"
    path.write_text(MODULE)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.doubled


def _files(function):
    return [path for path in function._cache.files() if ".tmp" not in path.name]


def test_a_call_saves_one_file_per_signature_named_by_its_key(doubled):
    assert isinstance(doubled._cache, disk_cache.KeyedFunctionCache)
    doubled(np.ones(3, np.float32))
    doubled(np.ones(3, np.float64))
    files = _files(doubled)
    assert len(files) == 2
    assert all(re.fullmatch(r"cached_module_\w+\.doubled-\d+\.py\d+\.[0-9a-f]{24}\.nbc", path.name) for path in files)


def _key_and_payload(function, argument_types):
    cache = function._cache
    key = cache._index_key(argument_types, function.targetctx.codegen())
    with open(cache._path(key), "rb") as file:
        header = pickle.load(file)
        payload = pickle.load(file)
    return key, header, payload


def test_a_file_holding_another_signature_s_code_under_this_key_is_a_miss(doubled):
    """The key a file holds, and then the compiled result's own signature, are checked before use:
    float32 code under the float64 key (its header rewritten to say float64) is never loaded."""
    single, double = (types.float32[::1],), (types.float64[::1],)
    doubled(np.ones(3, np.float32))
    cache = doubled._cache
    single_key, header, payload = _key_and_payload(doubled, single)
    assert cache.load_overload(single, doubled.targetctx).signature.args == single
    double_key = cache._index_key(double, doubled.targetctx.codegen())
    with open(cache._path(double_key), "wb") as file:
        file.write(pickle.dumps(cache._header(double_key)) + pickle.dumps(payload))
    assert cache.load_overload(double, doubled.targetctx) is None
    with open(cache._path(double_key), "wb") as file:  # the right code under a header of another key
        file.write(pickle.dumps(header) + pickle.dumps(payload))
    assert cache.load_overload(double, doubled.targetctx) is None
    x = np.arange(3.0)
    np.testing.assert_array_equal(doubled(x), 2 * x)  # compiled, and its file replaced
    key, header, _ = _key_and_payload(doubled, double)
    assert header == cache._header(double_key) and cache.load_overload(double, doubled.targetctx) is not None


def test_a_full_disk_leaves_the_code_in_memory_and_no_file(doubled, monkeypatch):
    real_replace = os.replace

    def full(source, destination):
        if str(destination).endswith(".nbc"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", full)
    x = np.arange(4.0)
    np.testing.assert_array_equal(doubled(x), 2 * x)
    assert doubled.stats.cache_misses[(types.float64[::1],)] == 1
    folder = Path(doubled._cache.cache_path)
    assert not folder.exists() or not list(folder.iterdir())  # no file, and no partial one left behind


def test_a_folder_that_cannot_be_written_leaves_the_code_in_memory(doubled, monkeypatch):
    def refused():
        raise PermissionError(errno.EACCES, "read-only file system")

    monkeypatch.setattr(doubled._cache.locator, "ensure_cache_path", refused)
    x = np.arange(4.0)
    np.testing.assert_array_equal(doubled(x), 2 * x)
    assert _files(doubled) == []


def test_a_function_numba_finds_no_cache_folder_for_compiles_in_memory():
    namespace = {}
    exec(compile(MODULE, "<no file>", "exec"), namespace)  # noqa: S102 (a function without a source file)
    doubled = namespace["doubled"]
    np.testing.assert_array_equal(doubled(np.arange(3)), [0, 2, 4])
    assert doubled._cache.cache_path is None and doubled._cache.files() == []
    assert sum(doubled.stats.cache_misses.values()) == 1


def test_making_a_cached_function_looks_for_no_folder(tmp_path, monkeypatch):
    """Numba's search for a cache folder writes a file in each folder it tries: it waits for the
    first compile, so that making numadam's functions (``import numadam``) touches no disk."""
    from numba.core import caching

    searched = []
    monkeypatch.setattr(caching.CacheImpl, "__init__",
                        lambda self, py_func: searched.append(py_func) or pytest.fail("searched at decoration"))
    namespace = {}
    exec(compile(MODULE, str(tmp_path / "never_written.py"), "exec"), namespace)  # noqa: S102
    assert searched == [] and isinstance(namespace["doubled"]._cache, disk_cache.KeyedFunctionCache)


def test_files_lists_this_function_s_files_of_any_version_and_no_other_s(doubled):
    doubled(np.ones(2))
    folder = Path(doubled._cache.cache_path)
    prefix = doubled._cache.file_prefix
    older = [folder / f"{prefix}7.py311.nbi", folder / f"{prefix}7.py311.1.nbc"]  # Numba's own format, another line
    other = [folder / f"{prefix[:-1]}_twice-12.py311.nbi", folder / "cached_module.other-3.py311.nbi"]
    for path in older + other:
        path.write_bytes(b"")
    listed = doubled._cache.files()
    assert set(older) <= set(listed) and not set(other) & set(listed)
    doubled._cache.flush()
    assert doubled._cache.files() == [] and all(path.exists() for path in other)


def test_every_function_numadam_caches_goes_through_the_keyed_cache():
    """No ``cache=True`` in numadam's sources (Numba's own cache), and every ``cached_njit`` function
    of the package (found by :func:`numadam.cli.compiled_functions`) has the keyed cache."""
    offenders = [f"{path.relative_to(ROOT)}:{function.name}" for path in (ROOT / "numadam").rglob("*.py")
                 for function in ast.walk(ast.parse(path.read_text())) if isinstance(function, ast.FunctionDef)
                 for decorator in function.decorator_list if isinstance(decorator, ast.Call)
                 for keyword in decorator.keywords
                 if keyword.arg == "cache" and getattr(keyword.value, "value", False) is True]
    assert offenders == []
    functions = compiled_functions()
    names = {f"{function.py_func.__module__}.{function.__name__}" for function in functions}
    assert {"numadam.targets.cpu.kernels.update_serial", "numadam.targets.cpu.kernels.update_parallel",
            "numadam.targets.cpu.factored_step.factored_step_serial", "numadam.targets.layout._offsets",
            "numadam.solver.rules.largest_magnitude", "numadam.adapters.rows._scan",
            "numadam.adapters.rows._listed_table"} <= names
    assert all(isinstance(function._cache, disk_cache.KeyedFunctionCache) for function in functions
               if (function.py_func.__module__ or "").startswith("numadam."))
