"""What the compilers make of the kernels: dtype kept, loops vectorized, CUDA code valid.

These read generated code rather than time it: a float32 kernel must contain no
float64 arithmetic (a promoted literal halves its speed), the CPU loop must be
vectorized, and the CUDA kernel must compile to PTX for Hopper with IEEE square
root and division (NVVM needs no GPU for that).
"""

import re

import numba
import numpy as np
import pytest

from numadam._kernels import cpu

SIGNATURE_ARGS = {
    np.float32: numba.types.UniTuple(numba.types.float32, 10),
    np.float64: numba.types.UniTuple(numba.types.float64, 10),
}


def cpu_signature(dtype):
    return (numba.types.int64[::1], numba.types.int64, numba.types.int64, numba.from_dtype(np.dtype(dtype))[::1])


VARIANTS = [(amsgrad, l2_decay) for amsgrad in (False, True) for l2_decay in (False, True)]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"amsgrad={v[0]},l2={v[1]}")
@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_cpu_float32_kernel_is_vectorized_and_stays_in_float32(kind, variant):
    kernel = getattr(cpu.adam_kernels(*variant), kind)
    kernel.compile(cpu_signature(np.float32))
    assembly = kernel.inspect_asm(cpu_signature(np.float32))
    assert re.search(r"\bv?sqrtps\b", assembly), "the contiguous loop is not vectorized"
    assert re.search(r"\bv?divps\b", assembly)
    assert not re.search(r"\bv?(sqrt|div|mul|add)(sd|pd)\b", assembly), "float32 arithmetic promoted to float64"
    assert not re.search(r"\bv?cvtss2sd\b", assembly)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"amsgrad={v[0]},l2={v[1]}")
def test_cpu_float64_kernel_is_vectorized(variant):
    kernel = cpu.adam_kernels(*variant).serial
    kernel.compile(cpu_signature(np.float64))
    assembly = kernel.inspect_asm(cpu_signature(np.float64))
    assert re.search(r"\bv?sqrtpd\b", assembly)


def compile_cuda(dtype, amsgrad, l2_decay):
    from numba import cuda

    from numadam._kernels import cuda as cuda_kernels

    if cuda_kernels.SIMULATED:
        pytest.fail("the simulator is on in the main test process")
    signature = (numba.types.int64, numba.types.int64, numba.types.int64, numba.types.int64,
                 SIGNATURE_ARGS[dtype])
    ptx, _ = cuda.compile_ptx(cuda_kernels.adam_kernel(amsgrad, l2_decay).py_func, signature, cc=(9, 0))
    return ptx


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"amsgrad={v[0]},l2={v[1]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_kernel_compiles_to_ptx_for_hopper(dtype, variant):
    ptx = compile_cuda(dtype, *variant)
    width = 32 if dtype == np.float32 else 64
    assert ".target sm_90" in ptx
    assert f"sqrt.rn.f{width}" in ptx, "square root must be IEEE round-to-nearest"
    assert f"div.rn.f{width}" in ptx, "division must be IEEE round-to-nearest"
    assert re.search(rf"ld\.global(\.\w+)*\.f{width}", ptx), "element loads should be global-memory loads"
    if dtype == np.float32:
        assert not re.search(r"\b(add|sub|mul|div|sqrt|fma)(\.\w+)*\.f64\b", ptx), "float32 kernel uses float64"
