"""The CUDA kernel under NUMBA_ENABLE_CUDASIM=1, against the same NumPy reference as the CPU.

The simulator runs the kernel as Python with the same compiled update rule, so
its results must equal the reference bit for bit, like the CPU kernel's.
"""

import numpy as np
import pytest
from numba import cuda

import numadam
from arrays import DTYPES, OPTIONS, random_array
from numadam import _dispatch
from numadam._kernels import cuda as cuda_kernels
from numadam._kernels.policy import POLICY_OPERANDS
from numadam._pass import kernel_spec, operand_rows
from numadam.families import functional_step
from reference import adam_exact
from test_families import CASES, Reference, case_id, hyperparameters

assert cuda_kernels.SIMULATED, "run these tests with NUMBA_ENABLE_CUDASIM=1"

HYPER = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}


def on_device(array, layout):
    """A device copy of ``array`` whose device memory is laid out as ``layout`` says."""
    if layout == "C" or array.ndim == 0:
        return cuda.to_device(np.ascontiguousarray(array) if array.ndim else array.copy())
    if layout == "F":
        return cuda.to_device(np.asfortranarray(array))
    if layout == "strided":
        big = np.zeros(tuple(2 * n + 1 for n in array.shape), array.dtype)
        every_other = tuple(slice(1, None, 2) for _ in array.shape)
        big[every_other] = array
        return cuda.to_device(big)[every_other]
    if layout == "reversed":
        backwards = tuple(slice(None, None, -1) for _ in array.shape)
        return cuda.to_device(np.ascontiguousarray(array[backwards]))[backwards]
    raise ValueError(layout)


def device_operands(rng, shape, dtype, layouts, amsgrad):
    host = [random_array(rng, shape, dtype), random_array(rng, shape, dtype),
            random_array(rng, shape, dtype, 0.1), random_array(rng, shape, dtype, 0.01, positive=True)]
    host.append(np.asarray(host[3] * 2, dtype) if amsgrad else None)
    device = [None if array is None else on_device(array, layout) for array, layout in zip(host, layouts)]
    return host, device


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("option", ["adam", "l2", "adamw", "amsgrad", "everything"])
@pytest.mark.parametrize("layout", ["C", "F", "strided", "reversed"])
def test_kernel_matches_the_reference_bitwise(dtype, option, layout):
    rng = np.random.default_rng(7)
    options = OPTIONS[option]
    amsgrad = options.get("amsgrad", False)
    host, device = device_operands(rng, (3, 5), dtype, [layout, "C", layout, "C", layout], amsgrad)
    expected = adam_exact(*host, step=2, **HYPER, **options)
    numadam.adam_step(*device[:4], step=2, max_exp_avg_sq=device[4], **HYPER, **options)
    results = [device[0], device[2], device[3], device[4]]
    for actual, wanted in zip(results, expected):
        if wanted is None:
            continue
        np.testing.assert_array_equal(actual.copy_to_host(), wanted, strict=True)


@pytest.mark.parametrize("shape", [(), (0,), (1,), (300,)], ids=str)
def test_zero_d_empty_and_multi_chunk_arrays(shape):
    """300 elements are 5 chunks of 64 on 2 blocks: the grid-stride loop goes round."""
    rng = np.random.default_rng(1)
    host, device = device_operands(rng, shape, np.float32, ["C"] * 5, True)
    expected = adam_exact(*host, step=1, amsgrad=True, **HYPER)
    numadam.adam_step(*device[:4], step=1, max_exp_avg_sq=device[4], amsgrad=True, **HYPER)
    np.testing.assert_array_equal(device[0].copy_to_host(), expected[0], strict=True)
    np.testing.assert_array_equal(device[4].copy_to_host(), expected[3], strict=True)


def test_many_arrays_in_one_launch(monkeypatch):
    """A table over arrays of several shapes and layouts updates them all in one launch.

    Chunks of 64 elements hold several small arrays and cut across the larger ones.
    """
    rng = np.random.default_rng(3)
    shapes = [(5,), (2, 3), (), (7,), (4, 4), (70,), (9, 11)]
    layouts = ["C", "F", "C", "reversed", "strided", "C", "F"]
    backend = _dispatch.backend_for([cuda.to_device(np.zeros(1))], ["x"])
    launches = []
    original = cuda_kernels.launch
    monkeypatch.setattr(cuda_kernels, "launch", lambda *a, **k: (launches.append(a), original(*a, **k)))
    rows, hosts, devices = [], [], []
    for shape, layout in zip(shapes, layouts):
        host, device = device_operands(rng, shape, np.float64, [layout, "C", "C", "C", "C"], False)
        rows.append(operand_rows([backend.describe(array) for array in device[:4]] + [None] * (1 + len(POLICY_OPERANDS))))
        hosts.append(host)
        devices.append(device)
    family = numadam.Adam.family
    h = family.Hyper(**{**numadam.Adam._class_defaults, "lr": 1e-2})
    scalars, _ = family.step_scalars(1, h, ())
    spec = kernel_spec(family, family.flags(h), np.dtype(np.float64), {"exp_avg", "exp_avg_sq"})
    backend.run(backend.plan(np.concatenate(rows)), spec, [scalars])
    assert len(launches) == 1
    for host, device in zip(hosts, devices):
        expected = adam_exact(*host[:4], step=1, **HYPER)
        np.testing.assert_array_equal(device[0].copy_to_host(), expected[0], strict=True)
        np.testing.assert_array_equal(device[3].copy_to_host(), expected[2], strict=True)


def test_device_arrays_dispatch_to_cuda_and_refuse_numpy_partners():
    device = cuda.to_device(np.zeros(3, np.float32))
    assert _dispatch.backend_for([device], ["p"]).name == "cuda"
    with pytest.raises(TypeError, match="grad is a numpy.ndarray but param is a"):
        numadam.adam_step(device, np.zeros(3, np.float32), cuda.to_device(np.zeros(3, np.float32)),
                          cuda.to_device(np.zeros(3, np.float32)), step=1, **HYPER)
    np.testing.assert_array_equal(device.copy_to_host(), np.zeros(3, np.float32))


def test_bad_device_arrays_are_refused_before_launch():
    param = cuda.to_device(np.ones(4, np.float32))
    state = [cuda.to_device(np.zeros(4, np.float32)) for _ in range(2)]
    with pytest.raises(TypeError, match="grad has dtype float64 but param has dtype float32"):
        numadam.adam_step(param, cuda.to_device(np.ones(4)), *state, step=1, **HYPER)
    with pytest.raises(ValueError, match="param and exp_avg share memory"):
        numadam.adam_step(param, cuda.to_device(np.ones(4, np.float32)), param, state[1], step=1, **HYPER)
    np.testing.assert_array_equal(param.copy_to_host(), np.ones(4, np.float32))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_family_matches_its_reference_on_the_simulator(case):
    """Each family's kernel (its rule in the CUDA grid-stride loop) against tests/reference.py, bit for bit."""
    method, options = case
    cls = numadam.families()[method]
    rng = np.random.default_rng(11)
    host = random_array(rng, (3, 5), np.float32)
    reference = Reference(method, options, [host])
    param = cuda.to_device(host)
    state = {name: cuda.to_device(value) for name, value in reference.state[0].items()}
    always = [kind.name for kind in cls.family.state if kind.present is None]
    keywords = {**hyperparameters(method, options), **{n: a for n, a in state.items() if n not in always}}
    carry = None
    for t in range(1, 4):
        grad = random_array(rng, host.shape, np.float32)
        if cls.family.carry is not None:
            keywords["carry"] = carry
        carry = functional_step(method)(param, cuda.to_device(grad), *[state[n] for n in always], step=t, **keywords)
        reference.step([grad])
    np.testing.assert_array_equal(param.copy_to_host(), reference.params[0], strict=True)
    for name, array in state.items():
        np.testing.assert_array_equal(array.copy_to_host(), reference.state[0][name], strict=True)
