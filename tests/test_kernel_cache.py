"""Compiled kernels persist on disk: a new process loads them, correctly, instead of compiling.

Each test runs fresh Python processes with ``NUMBA_CACHE_DIR`` set to a temporary
folder, so the first one compiles and the next ones must load.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess


ROOT = Path(__file__).resolve().parent.parent

# Two specs in one process (Adam, then AMSGrad), each checked against the reference: code loaded from the cache must link every spec to its own body.
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import numadam
    from numadam.targets.cpu import kernels as cpu
    sys.path.insert(0, "tests")
    from reference import adam_exact

    results = []
    for dtype, amsgrad in ((np.float32, False), (np.float32, True)):
        rng = np.random.default_rng(0)
        p = rng.standard_normal(300).astype(dtype)
        g = rng.standard_normal(300).astype(dtype)
        expected = adam_exact(p, g, np.zeros_like(p), np.zeros_like(p), np.zeros_like(p) if amsgrad else None,
                              step=1, lr=0.1, betas=(0.9, 0.999), eps=1e-8, amsgrad=amsgrad)[0]
        numadam.Adam(p, lr=0.1, amsgrad=amsgrad).step(g)
        results.append(bool(np.array_equal(p, expected)))
    stats = cpu.update_serial.stats
    print(json.dumps({"correct": results, "hits": sum(stats.cache_hits.values()),
                      "misses": sum(stats.cache_misses.values())}))
""")


def run(code, cache, *args):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, *args, *([] if code is None else ["-c", code])], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_second_process_loads_every_kernel_from_the_cache_and_links_each_to_its_own_rule(tmp_path):
    cold = json.loads(run(SCRIPT, tmp_path).splitlines()[-1])
    warm = json.loads(run(SCRIPT, tmp_path).splitlines()[-1])
    assert cold["correct"] == warm["correct"] == [True, True]
    assert cold["misses"] == 2
    assert warm == {"correct": [True, True], "hits": 2, "misses": 0}


def test_numadam_cache_reports_and_clears_the_cached_kernels(tmp_path):
    run(SCRIPT, tmp_path)
    report = run(None, tmp_path, "-m", "numadam", "cache")
    assert "cached kernel files" in report and str(tmp_path) in report
    assert not report.startswith("0 ")
    cleared = run(None, tmp_path, "-m", "numadam", "cache", "--clear")
    assert "deleted" in cleared
    assert run(None, tmp_path, "-m", "numadam", "cache").startswith("0 cached kernel files")


class _PolicyOfAnotherVersion:
    """Pickles as numadam's Policy with one field more than it has: what an index written by a
    numadam whose policy had another switch holds for this one."""

    def __reduce__(self):
        from numadam.core.pipeline import Policy

        return Policy, tuple(range(len(Policy._fields) + 1))


def test_an_index_that_another_version_wrote_is_emptied_and_the_kernel_compiled(tmp_path):
    """Numba unpickles a kernel's whole index before it checks that the index is its own: keys
    that another numadam pickled must not fail every step of this one."""
    import pickle

    run(SCRIPT, tmp_path)
    indexes = sorted(tmp_path.rglob("kernels.update_serial-*.nbi"))
    assert indexes
    for index in indexes:
        with open(index, "rb") as file:
            version = pickle.load(file)
        with open(index, "wb") as file:
            pickle.dump(version, file, protocol=-1)
            file.write(pickle.dumps(("another stamp", {"key": _PolicyOfAnotherVersion()}), protocol=-1))
    with pytest.raises(TypeError):  # what Numba's own loading meets
        with open(indexes[0], "rb") as file:
            pickle.load(file)
            pickle.loads(file.read())
    recovered = json.loads(run(SCRIPT, tmp_path).splitlines()[-1])
    assert recovered == {"correct": [True, True], "hits": 0, "misses": 2}
    warm = json.loads(run(SCRIPT, tmp_path).splitlines()[-1])  # the emptied index now holds both again
    assert warm == {"correct": [True, True], "hits": 2, "misses": 0}


LION_STEP = textwrap.dedent("""
    import json
    import numpy as np
    import numadam
    from numadam.targets.cpu import kernels as cpu

    p = np.ones(4, np.float32)
    numadam.Lion(p, lr=0.1, weight_decay=0.0).step(np.ones(4, np.float32))
    print(json.dumps({"p": float(p[0]), "misses": sum(cpu.update_serial.stats.cache_misses.values())}))
""")


def test_editing_a_helper_the_rule_inlines_compiles_anew_in_a_new_process(tmp_path):
    """``families/_common.py`` holds ``sign``, which Lion's rule inlines: a copy of the package whose
    ``sign`` returns twice the sign must not load the kernel compiled before the edit."""
    shutil.copytree(ROOT / "numadam", tmp_path / "numadam", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}

    def step():
        result = subprocess.run([sys.executable, "-c", LION_STEP], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout.splitlines()[-1])

    assert step() == {"p": pytest.approx(0.9), "misses": 1}
    assert step() == {"p": pytest.approx(0.9), "misses": 0}  # loaded, not compiled
    helpers = tmp_path / "numadam" / "families" / "_common.py"
    source = helpers.read_text()
    assert source.count("        return one\n") == 1
    helpers.write_text(source.replace("        return one\n", "        return one + one\n"))
    assert step() == {"p": pytest.approx(0.8), "misses": 1}


def test_the_fingerprint_covers_the_helpers_a_rule_calls_and_the_package_version(monkeypatch):
    from numadam.targets import fingerprint, spec

    roots = (spec.rule("lion").function, None)
    modules = fingerprint.inlined_modules([spec.rule("lion").function], {"numadam"})
    assert {"numadam.families.lion", "numadam.families._common"} <= modules
    before = fingerprint.fingerprint(roots)
    monkeypatch.setattr(fingerprint, "_package_version", lambda: "0.0.0-another")
    assert fingerprint.fingerprint(roots) != before


class _UnreadableIndex:
    """A kernel whose index fails to unpickle (as Numba's ``_load_index`` does) until its cache is
    replaced, and whose cache cannot be written (``flush`` fails)."""

    class _ReadOnlyCache:
        def flush(self):
            raise PermissionError("a read-only folder")

    def __init__(self):
        self._cache = self._ReadOnlyCache()

    def compile(self, types_):
        def _load_index():
            raise TypeError("_KernelSwitches.__new__() takes from 1 to 9 positional arguments but 10 were given")

        if isinstance(self._cache, self._ReadOnlyCache):
            _load_index()
        return ("compiled", types_)


def test_an_unreadable_index_in_a_folder_that_cannot_be_written_compiles_in_memory():
    from numba.core.caching import NullCache
    from numadam.targets.cpu.kernels import compiled_despite_the_index

    kernel = _UnreadableIndex()
    assert compiled_despite_the_index(kernel, ("types",)) == ("compiled", ("types",))
    assert isinstance(kernel._cache, NullCache)


def test_errors_that_are_not_the_index_s_are_raised():
    from numadam.targets.cpu.kernels import compiled_despite_the_index

    class Failing:
        def compile(self, types_):
            raise TypeError("a typing error of the kernel itself")

    with pytest.raises(TypeError, match="the kernel itself"):
        compiled_despite_the_index(Failing(), ())
