"""Compiled kernels persist on disk: a new process loads them, correctly, instead of compiling.

Each test runs fresh Python processes with ``NUMBA_CACHE_DIR`` set to a temporary
folder, so the first one compiles and the next ones must load.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Two specs in one process (Adam, then AMSGrad), each checked against the reference: code loaded from the cache must link every spec to its own body.
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import numadam
    from numadam._kernels import cpu
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
