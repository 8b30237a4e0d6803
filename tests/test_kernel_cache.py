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


def run(code, cache, *args, env=None):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT), **(env or {})}
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


SOLVE = textwrap.dedent("""
    import sys
    import numpy as np
    import numadam
    sys.path.insert(0, "tests")
    from cache_race_objective import bowl

    assert numadam.minimize(bowl, np.zeros(3), jac=True, maxiter=5, compiled=True).compiled
""")


def test_numadam_cache_reports_and_clears_every_cache_numadam_writes(tmp_path):
    """The kernels, the other compiled functions (the layout's, here) and the compiled solves."""
    cache = tmp_path / "numba"
    env = {"NUMADAM_CACHE_DIR": str(tmp_path / "numadam")}
    run(SCRIPT, cache, env=env)
    run(SOLVE, cache, env=env)
    report = run(None, cache, "-m", "numadam", "cache", env=env).splitlines()
    functions, solves = report
    assert functions.startswith("compiled functions: ") and not functions.startswith("compiled functions: 0 ")
    assert str(cache) in functions
    assert solves.startswith("compiled solves: ") and str(tmp_path / "numadam" / "solves") in solves
    assert not solves.startswith("compiled solves: 0 ")
    written = sorted(path for path in tmp_path.rglob("*") if path.is_file())
    assert any("layout." in path.name for path in written) and any("update_serial" in path.name for path in written)
    cleared = run(None, cache, "-m", "numadam", "cache", "--clear", env=env)
    assert f"deleted {len(written)} files" in cleared
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]
    assert run(None, cache, "-m", "numadam", "cache", env=env).splitlines() == [
        "compiled functions: 0 files, 0.0 MiB, in no folder yet", "compiled solves: 0 files, 0.0 MiB, in no folder yet"]


def test_a_cache_file_that_another_version_wrote_is_a_miss_then_replaced(tmp_path):
    """A file at a key's name whose contents no longer unpickle (another numadam's classes), or hold
    another key, compiles anew and is replaced, instead of failing every step."""
    from cache_races import PolicyOfAnotherVersion

    run(SCRIPT, tmp_path)
    files = sorted(tmp_path.rglob("kernels.update_serial-*.nbc"))
    assert len(files) == 2
    import pickle

    files[0].write_bytes(pickle.dumps(("another numba", "another stamp", PolicyOfAnotherVersion())))
    files[1].write_bytes(pickle.dumps(("another numba", "another stamp", "another key")))
    recovered = json.loads(run(SCRIPT, tmp_path).splitlines()[-1])
    assert recovered == {"correct": [True, True], "hits": 0, "misses": 2}
    warm = json.loads(run(SCRIPT, tmp_path).splitlines()[-1])
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


def package_copy(tmp_path):
    """Copy the package into ``tmp_path``; return ``run_script(code)``, which runs ``code`` in a new
    process importing that copy (its kernel cache in ``tmp_path / "cache"``) and returns the JSON
    of its last line."""
    shutil.copytree(ROOT / "numadam", tmp_path / "numadam", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}

    def run_script(code):
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout.splitlines()[-1])

    return run_script


def test_editing_a_helper_the_rule_inlines_compiles_anew_in_a_new_process(tmp_path):
    """``core/element_math.py`` holds ``sign``, which Lion's rule inlines: a copy of the package whose
    ``sign`` returns twice the sign must not load the kernel compiled before the edit."""
    run_script = package_copy(tmp_path)
    assert run_script(LION_STEP) == {"p": pytest.approx(0.9), "misses": 1}
    assert run_script(LION_STEP) == {"p": pytest.approx(0.9), "misses": 0}  # loaded, not compiled
    helpers = tmp_path / "numadam" / "core" / "element_math.py"
    source = helpers.read_text()
    assert source.count("        return one\n") == 1
    helpers.write_text(source.replace("        return one\n", "        return one + one\n"))
    assert run_script(LION_STEP) == {"p": pytest.approx(0.8), "misses": 1}


PEAK = textwrap.dedent("""
    import json
    import numpy as np
    from numadam.solver import rules
    peak = rules.largest_magnitude(np.array([-3.0, 2.0]))
    print(json.dumps({"peak": peak, "misses": sum(rules.largest_magnitude.stats.cache_misses.values())}))
""")


def test_editing_a_helper_of_a_cached_function_without_a_spec_compiles_it_anew(tmp_path):
    """``solver/rules.py: largest_magnitude`` takes no kernel spec and inlines ``peak_magnitude`` from
    ``core/magnitudes.py``. Numba's own key (its bytecode, its file's stamp) does not see that file:
    a copy of the package whose ``peak_magnitude`` doubles the peak must not load the old code."""
    run_script = package_copy(tmp_path)
    assert run_script(PEAK) == {"peak": 3.0, "misses": 1}
    assert run_script(PEAK) == {"peak": 3.0, "misses": 0}  # loaded, not compiled
    helpers = tmp_path / "numadam" / "core" / "magnitudes.py"
    source = helpers.read_text()
    assert source.count("    return peak_of_bits(top)\n") == 1
    helpers.write_text(source.replace("    return peak_of_bits(top)\n", "    return 2 * peak_of_bits(top)\n"))
    assert run_script(PEAK) == {"peak": 6.0, "misses": 1}


EDIT_THEN_STEP = textwrap.dedent("""
    import json, pathlib
    import numpy as np
    import numadam
    from numadam.targets.cpu import kernels as cpu

    helpers = pathlib.Path(numadam.__file__).parent / "core" / "element_math.py"
    helpers.write_text(helpers.read_text().replace("        return one\\n", "        return one + one\\n"))
    p = np.ones(4, np.float32)  # this process runs the sign it imported, from before the edit
    numadam.Lion(p, lr=0.1, weight_decay=0.0).step(np.ones(4, np.float32))
    print(json.dumps({"p": float(p[0]), "misses": sum(cpu.update_serial.stats.cache_misses.values())}))
""")


def test_a_source_edited_while_a_process_runs_keys_none_of_its_kernels_for_later_processes(tmp_path):
    """A process that imported numadam, then saw ``sign``'s file change (an edit, a ``git checkout``)
    before its first Lion step, compiles the ``sign`` it imported. Keyed on the file as it now is,
    that kernel would be loaded by the next process, whose ``sign`` is the new one: that process
    must compile its own."""
    run_script = package_copy(tmp_path)

    def kernel_files():
        return list((tmp_path / "cache").rglob("kernels.update_serial-*.nbc"))

    assert run_script(EDIT_THEN_STEP) == {"p": pytest.approx(0.9), "misses": 1}  # the old sign, compiled
    assert kernel_files() == []  # and not saved: no other process could ever load it
    assert run_script(LION_STEP) == {"p": pytest.approx(0.8), "misses": 1}  # the new sign, compiled anew
    assert len(kernel_files()) == 1
    assert run_script(LION_STEP) == {"p": pytest.approx(0.8), "misses": 0}  # and from then on loaded


def test_a_module_changed_after_numadam_s_import_gets_a_digest_of_this_process_alone(tmp_path):
    """:func:`~numadam.targets.fingerprint.source_digest`: the hash of a file older than this
    process's import of numadam; for one changed after it (even with its modification time set
    back, as ``cp -p`` does), or gone, a digest no other module or process has, marked unshared,
    and so is a fingerprint that hashes it."""
    import hashlib
    import importlib.util

    import numadam
    from numadam.targets import fingerprint

    def imported(name, mtime_ns):
        path = tmp_path / f"{name}.py"
        path.write_text(f"VALUE = {name!r}\n")
        os.utime(path, ns=(mtime_ns, mtime_ns))
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        sys.modules[name] = module
        return path

    started = numadam._import_started_ns
    names = [f"numadam_digest_case_{k}_{os.getpid()}" for k in range(4)]
    try:
        lion = sys.modules["numadam.families.lion"]  # a file from before the import (its status time too)
        assert fingerprint.source_digest(lion.__name__) == hashlib.sha256(Path(lion.__file__).read_bytes()).hexdigest()
        imported(names[0], started - 10**10)  # changed now, dated before: its status time tells
        assert fingerprint.source_digest(names[0]).startswith(fingerprint.UNSHARED)
        changed = [imported(name, started + 10**6) for name in names[1:]]
        digests = [fingerprint.source_digest(name) for name in names[1:]]
        assert digests[0] != digests[1]
        assert all(d != hashlib.sha256(path.read_bytes()).hexdigest() for d, path in zip(digests, changed))
        assert [fingerprint.source_digest(name) for name in names[1:]] == digests  # read once
        assert all(d.startswith(fingerprint.UNSHARED) for d in digests)
        gone = imported(names[3], started - 10**10)
        gone.unlink()
        assert fingerprint.source_digest(names[3]).startswith(fingerprint.UNSHARED)
        own = sys.modules[names[1]]
        own.rule = lambda x: x  # a rule of that module: the kernels' fingerprint is unshared too
        own.rule.__module__ = names[1]
        assert fingerprint.fingerprint((own.rule,)).startswith(fingerprint.UNSHARED)
        assert not fingerprint.fingerprint((sys.modules["numadam.families.lion"].lion_rule,)).startswith(
            fingerprint.UNSHARED)
    finally:
        for name in names:
            sys.modules.pop(name, None)
            fingerprint._SOURCE_DIGESTS.pop(name, None)


def test_the_fingerprint_covers_the_helpers_a_rule_calls_and_the_package_version(monkeypatch):
    from numadam.targets import fingerprint, spec

    roots = (spec.algorithm("lion").rule, None)
    modules = fingerprint.inlined_modules([spec.algorithm("lion").rule], {"numadam"})
    assert {"numadam.families.lion", "numadam.core.element_math"} <= modules
    before = fingerprint.fingerprint(roots)
    monkeypatch.setattr(fingerprint, "_package_version", lambda: "0.0.0-another")
    assert fingerprint.fingerprint(roots) != before
