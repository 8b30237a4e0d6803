"""Numba's block labels, restarted before each compile numadam asks for.

Numba numbers the blocks of every function it compiles from one counter per
process (``numba.core.ir_utils._the_max_label``). Inlining a callee moves its
blocks past the counter and the counter past them, and the callees' own
blocks were numbered the same way when they were made, so the counter
roughly doubles with every chain of ``inline="always"`` functions compiled:
numadam's kernels inline the rule, the policy stages and the element
arithmetic, so the numbers gained about four decimal digits a kernel
(measured: 110 digits after the 84 kernels of every family in two dtypes
with two policies). Labels become LLVM block names, and past 1,024 characters
LLVM refuses the module ("name is too long"): a long-lived process (a test
worker, a service) that compiled some hundreds of kernels could no longer
compile. The counter only keeps labels apart within the function being
compiled (each inline also takes the caller's largest label, and Numba's
passes that number new blocks raise the counter to the function's labels
first), so between compiles it can start again from zero, as in a new
process.
"""

from numba.core import compiler_lock, ir_utils


def fresh_block_labels():
    """Restart the counter, unless this thread is inside a compile (there it must keep growing).
    Another thread's compile is waited for (Numba's compiler lock)."""
    lock = compiler_lock.global_compiler_lock
    if lock.is_locked():  # (held by this thread: a compile calls us)
        return
    with lock:
        ir_utils._the_max_label._value = 0
