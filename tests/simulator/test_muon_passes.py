"""Muon's two elementwise passes (numadam/muon/elementwise.py) as CUDA kernels under the simulator:
the same compiled rules as on the CPU, so the same bits as the CPU kernels."""

import numpy as np
import pytest
from numba import cuda

from numadam.muon.elementwise import apply_step, momentum_step
from numadam.targets.cuda import kernels as cuda_kernels

assert cuda_kernels.SIMULATED, "run these tests with NUMBA_ENABLE_CUDASIM=1"


def _on_device(array, layout):
    return cuda.to_device(np.asfortranarray(array) if layout == "F" else np.ascontiguousarray(array))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{"momentum": 0.95, "nesterov": True}, {"momentum": 0.95, "nesterov": False},
                                     {"momentum": 0.3, "nesterov": True}], ids=["nesterov", "plain", "small"])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_the_momentum_pass_on_the_device_equals_the_cpu_bitwise(dtype, options, layout):
    rng = np.random.default_rng(0)
    grad, buffer = (rng.standard_normal((6, 5)).astype(dtype) for _ in range(2))
    update = np.zeros_like(grad)
    device = [_on_device(a, layout) for a in (update, grad, buffer)]
    momentum_step(*device, step=3, **options)
    momentum_step(update, grad, buffer, step=3, **options)
    np.testing.assert_array_equal(device[0].copy_to_host(), update)
    np.testing.assert_array_equal(device[2].copy_to_host(), buffer)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_the_decay_and_update_pass_on_the_device_equals_the_cpu_bitwise(dtype, weight_decay):
    rng = np.random.default_rng(1)
    param, orthogonal = (rng.standard_normal((4, 7)).astype(dtype) for _ in range(2))
    device = [cuda.to_device(param), cuda.to_device(orthogonal)]
    options = dict(step=1, lr=0.02, weight_decay=weight_decay, ratio=1.5)
    apply_step(*device, **options)
    apply_step(param, orthogonal, **options)
    np.testing.assert_array_equal(device[0].copy_to_host(), param)
