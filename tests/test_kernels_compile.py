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

import numadam
from numadam._kernels import cpu
from numadam._pass import kernel_spec

FAMILY = numadam.Adam.family
VARIANTS = [(amsgrad, weight_decay) for amsgrad in (False, True) for weight_decay in (0.0, 0.1)]


def adam_spec(dtype, amsgrad, weight_decay):
    h = FAMILY.Hyper(**{**numadam.Adam._class_defaults, "amsgrad": amsgrad, "weight_decay": weight_decay})
    kinds = {kind.name for kind in FAMILY.state_kinds(h)}
    return kernel_spec(FAMILY, FAMILY.flags(h), np.dtype(dtype), kinds)


def assembly(kind, spec):
    """The machine code of a fresh compilation (Numba cannot inspect code it loaded from its cache)."""
    cached = cpu.update_parallel if kind == "parallel" else cpu.update_serial
    kernel = numba.njit(parallel=kind == "parallel", error_model="numpy")(cached.py_func)
    kernel.compile(cpu.signature(spec))
    return kernel.inspect_asm(cpu.signature(spec))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"amsgrad={v[0]},wd={v[1]}")
@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_cpu_float32_kernel_is_vectorized_and_stays_in_float32(kind, variant):
    code = assembly(kind, adam_spec(np.float32, *variant))
    assert re.search(r"\bv?sqrtps\b", code), "the contiguous loop is not vectorized"
    assert re.search(r"\bv?divps\b", code)
    assert not re.search(r"\bv?(sqrt|div|mul|add)(sd|pd)\b", code), "float32 arithmetic promoted to float64"
    assert not re.search(r"\bv?cvtss2sd\b", code)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"amsgrad={v[0]},wd={v[1]}")
def test_cpu_float64_kernel_is_vectorized(variant):
    assert re.search(r"\bv?sqrtpd\b", assembly("serial", adam_spec(np.float64, *variant)))


def compile_cuda(spec):
    from numba import cuda

    from numadam._kernels import cuda as cuda_kernels

    if cuda_kernels.SIMULATED:
        pytest.fail("the simulator is on in the main test process")
    real = numba.types.float32 if spec.real == "float32" else numba.types.float64
    signature = (numba.types.int64,) * 6 + (real,)
    ptx, _ = cuda.compile_ptx(cuda_kernels.kernel_for(spec).py_func, signature, cc=(9, 0))
    return ptx


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"amsgrad={v[0]},wd={v[1]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_kernel_compiles_to_ptx_for_hopper(dtype, variant):
    ptx = compile_cuda(adam_spec(dtype, *variant))
    width = 32 if dtype == np.float32 else 64
    assert ".target sm_90" in ptx
    assert f"sqrt.rn.f{width}" in ptx, "square root must be IEEE round-to-nearest"
    assert f"div.rn.f{width}" in ptx, "division must be IEEE round-to-nearest"
    assert re.search(rf"ld\.global(\.\w+)*\.f{width}", ptx), "element loads should be global-memory loads"
    if dtype == np.float32:
        assert not re.search(r"\b(add|sub|mul|div|sqrt|fma)(\.\w+)*\.f64\b", ptx), "float32 kernel uses float64"
