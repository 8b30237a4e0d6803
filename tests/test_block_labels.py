"""Numba's block-label counter restarts before each compile numadam asks for
(numadam/targets/block_labels.py): a long-lived process that compiled many kernels went on
compiling. Before, the counter gained about four decimal digits a kernel, and past 1,024
characters LLVM refused the block names ("name is too long")."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import numpy as np
from numba.core import ir_utils
import numadam

ir_utils._the_max_label._value = 10 ** 1100  # as after some hundreds of kernels compiled in this process
optimizer = numadam.Lion(np.ones(7, np.float32), lr=0.1)
optimizer.step(np.ones(7, np.float32))
print("digits", len(str(ir_utils._the_max_label._value)))
"""


@pytest.mark.subprocess
def test_a_process_whose_label_counter_grew_past_llvm_s_name_limit_still_compiles_kernels(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "NUMADAM_CACHE_DIR": str(tmp_path / "numadam")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split("digits")[1]) < 100


def test_the_counter_is_left_alone_inside_a_compile():
    from numba.core import compiler_lock, ir_utils

    from numadam.targets.block_labels import fresh_block_labels

    ir_utils._the_max_label.update(12345)
    with compiler_lock.global_compiler_lock:  # as a compile that calls it would hold it
        fresh_block_labels()
        assert ir_utils._the_max_label._value >= 12345
    fresh_block_labels()
    assert ir_utils._the_max_label._value == 0
