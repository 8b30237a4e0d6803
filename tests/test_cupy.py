"""CuPy arrays on a real GPU: the same API as NumPy, state on the device, one launch per step.

Every test here is marked ``gpu``: skipped where CuPy finds no CUDA device
(CuPy imports without a GPU and fails only at the first array), failed instead
under ``NUMADAM_REQUIRE_GPU=1`` (see conftest.py). The kernel itself is also
tested without a GPU, under the simulator (tests/simulator) and as PTX
(test_kernels_compile.py); its launch and the table's upload in
test_cuda_launch.py and test_cuda_staging.py.
"""

import contextlib
import warnings

import numpy as np
import pytest

import numadam
from arrays import DTYPES, OPTIONS, random_array
from reference import adam_exact

try:
    import cupy
except ImportError:  # the gpu marker skips (or fails) every test before it uses cupy
    cupy = None

pytestmark = pytest.mark.gpu

HYPER = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}


def ulp_close(actual, expected, ulps=4):
    """Equal within a few units in the last place: NVVM may fuse a multiply and an add (FMA)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    real = np.finfo(expected.real.dtype)
    scale = np.maximum(np.abs(expected), real.tiny)
    np.testing.assert_allclose(actual, expected, rtol=ulps * real.eps, atol=ulps * real.eps * float(scale.max()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_functional_step_matches_the_cpu(dtype, option):
    rng = np.random.default_rng(0)
    options = OPTIONS[option]
    amsgrad = options.get("amsgrad", False)
    host = [random_array(rng, (1000, 37), dtype), random_array(rng, (1000, 37), dtype),
            random_array(rng, (1000, 37), dtype, 0.1), random_array(rng, (1000, 37), dtype, 0.01, positive=True)]
    host.append(np.asarray(host[3] * 2, dtype) if amsgrad else None)
    device = [None if a is None else cupy.asarray(a) for a in host]
    numadam.adam_step(*device[:4], step=3, max_exp_avg_sq=device[4], **HYPER, **options)
    expected = adam_exact(*host, step=3, **HYPER, **options)
    for actual, wanted in zip([device[0], device[2], device[3], device[4]], expected):
        if wanted is not None:
            ulp_close(cupy.asnumpy(actual), wanted)


@pytest.mark.parametrize("dtype", DTYPES)
def test_objects_match_the_numpy_objects(dtype):
    rng = np.random.default_rng(1)
    host = {"w": random_array(rng, (64, 33), dtype), "b": [random_array(rng, (33,), dtype)],
            "s": np.asfortranarray(random_array(rng, (7, 5), dtype))[::2]}
    device = {"w": cupy.asarray(host["w"]), "b": [cupy.asarray(host["b"][0])], "s": cupy.asarray(host["s"])}
    cpu = numadam.Adam(host, lr=1e-2, amsgrad=True, weight_decay=0.01)
    gpu = numadam.Adam(device, lr=1e-2, amsgrad=True, weight_decay=0.01)
    for _ in range(5):
        grads = {"w": random_array(rng, (64, 33), dtype), "b": [random_array(rng, (33,), dtype)],
                 "s": random_array(rng, host["s"].shape, dtype)}
        cpu.step(grads)
        gpu.step({"w": cupy.asarray(grads["w"]), "b": [cupy.asarray(grads["b"][0])], "s": cupy.asarray(grads["s"])})
    ulp_close(cupy.asnumpy(device["w"]), host["w"], ulps=64)
    state = gpu.state_dict()
    assert isinstance(state["exp_avg"]["w"], cupy.ndarray)


def test_state_dict_round_trips_between_numpy_and_cupy(tmp_path):
    rng = np.random.default_rng(2)
    host = [random_array(rng, (100,), np.float32)]
    device = [cupy.asarray(host[0])]
    gpu = numadam.Adam(device, lr=1e-2, amsgrad=True)
    gpu.step([cupy.asarray(random_array(rng, (100,), np.float32))])
    cpu = numadam.Adam(host, lr=0.5)
    cpu.load_state_dict(gpu.state_dict())
    np.testing.assert_array_equal(cpu.state_dict()["exp_avg"][0], cupy.asnumpy(gpu.state_dict()["exp_avg"][0]))
    back = numadam.Adam([cupy.asarray(host[0])])
    back.load_state_dict(cpu.state_dict())
    np.testing.assert_array_equal(cupy.asnumpy(back.state_dict()["max_exp_avg_sq"][0]),
                                  cpu.state_dict()["max_exp_avg_sq"][0])
    gpu.save(tmp_path / "gpu.npz")
    back.load(tmp_path / "gpu.npz")
    assert back.step_count == 1


def test_kernel_runs_on_cupys_current_stream():
    """Work queued on a non-default stream before the step is seen by the step."""
    n = 1 << 22
    param = cupy.zeros(n, cupy.float32)
    grad = cupy.zeros(n, cupy.float32)
    opt = numadam.Adam([param], lr=0.1)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        for _ in range(20):
            grad += 1.0  # long-ish queue of work on `stream`
        opt.step([grad])
        result = param.copy()
    stream.synchronize()
    assert float(result.max()) == pytest.approx(-0.1, rel=1e-6)


def test_one_kernel_launch_per_step_for_many_arrays(monkeypatch):
    from numadam.targets.cuda import kernels as cuda_kernels

    launches = []
    original = cuda_kernels.launch
    monkeypatch.setattr(cuda_kernels, "launch", lambda *a, **k: (launches.append(a), original(*a, **k)))
    params = [cupy.zeros(1000, cupy.float32) for _ in range(1000)]
    grads = [cupy.ones(1000, cupy.float32) for _ in range(1000)]
    opt = numadam.Adam(params, lr=0.1)
    opt.step(grads)
    assert len(launches) == 1
    assert float(cupy.stack(params).max()) == pytest.approx(-0.1, rel=1e-6)


def test_steps_never_make_the_host_wait():
    """Fresh gradient arrays every step (a new segment table each time): the table copies
    are queued from page-locked memory and the ring never has to wait for the GPU.

    (cupyx.allow_synchronize is a no-op in current CuPy, so the ring counts its own waits.)
    """
    from numadam.targets import dispatch

    params = [cupy.zeros(1000, cupy.float32) for _ in range(10)]
    opt = numadam.Adam(params, lr=0.1)
    opt.step([cupy.ones(1000, cupy.float32) for _ in range(10)])
    cupy.cuda.get_current_stream().synchronize()
    staging = dispatch._backend("cuda")._staging
    waits = staging.waits
    for _ in range(20):
        opt.step([cupy.ones(1000, cupy.float32) for _ in range(10)])
        numadam.adam_step(params[0], cupy.ones(1000, cupy.float32), cupy.zeros(1000, cupy.float32),
                          cupy.zeros(1000, cupy.float32), step=1, lr=0.0, betas=(0.9, 0.999), eps=1e-8)
    assert staging.waits == waits
    assert float(cupy.stack(params).max()) < -1.9


def test_a_step_on_another_stream_copies_the_table_to_that_stream():
    """The segment table is read only on the stream that copied it (CuPy's pool reuses memory per stream)."""
    rng = np.random.default_rng(4)
    host = [random_array(rng, (300,), np.float32), random_array(rng, (7, 11), np.float32)]
    device = [cupy.asarray(a) for a in host]
    grads_host = [random_array(rng, a.shape, np.float32) for a in host]
    grads = [cupy.asarray(g) for g in grads_host]
    cpu, gpu = numadam.Adam(host, lr=1e-2), numadam.Adam(device, lr=1e-2)
    gpu.step(grads)
    (group,) = gpu._engine.buckets
    first_stream = group._plan.device_table.stream
    side = cupy.cuda.Stream(non_blocking=True)
    cupy.cuda.get_current_stream().synchronize()  # a non-blocking stream does not wait for the first step
    with side:
        gpu.step(grads)  # the same gradient arrays: the cached plan, on another stream
        assert group._plan.device_table.stream.ptr == side.ptr != first_stream.ptr
    side.synchronize()
    gpu.step(grads)
    cpu.step(grads_host)
    cpu.step(grads_host)
    cpu.step(grads_host)
    for actual, expected in zip(device, host):
        ulp_close(cupy.asnumpy(actual), expected, ulps=64)


def test_a_one_block_step_prints_no_occupancy_warning():
    """numba-cuda warns about grids under 128 blocks when a launch is configured; a 1e3 step needs one."""
    from numadam.targets.cuda import kernels as cuda_kernels

    param, grad = cupy.zeros(1000, cupy.float32), cupy.ones(1000, cupy.float32)
    opt = numadam.Adam(param, lr=0.1, amsgrad=True, weight_decay=0.5)
    cuda_kernels.configured_kernel.cache_clear()  # so that this step configures its launch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt.step(grad)
    assert not [w for w in caught if "Grid size" in str(w.message)], [str(w.message) for w in caught]
    assert float(param.max()) == pytest.approx(-0.1, rel=1e-6)


LAUNCHER_CASES = {
    "adafactor": lambda params: numadam.Adafactor(params, lr=0.02, weight_decay=0.1),
    "lamb": lambda params: numadam.LAMB(params, lr=0.01, weight_decay=0.1),
    "adam skip and clip": lambda params: numadam.Adam(params, lr=0.01, nonfinite="skip", clip_global_norm=1.0),
}


def stepped_through(launcher_choice, make, dtype, monkeypatch):
    """Parameters and state after four steps of ``make``'s optimizer on ``dtype`` matrices (one of
    them column-major, one a batch) and a vector, with the helper kernels launched by CuPy
    (``"cupy"``) or all by numba-cuda (``"numba"``); and the number of numba-cuda launches."""
    from numadam.targets.cuda import launcher

    numba_launches = []
    original = launcher.quiet_grid
    with monkeypatch.context() as patch:
        patch.setattr(launcher, "quiet_grid", lambda *a: numba_launches.append(a) or original(*a))
        if launcher_choice == "numba":
            patch.setattr(launcher, "arguments_key", lambda *_: None)
        rng = np.random.default_rng(7)
        shapes = [(300, 40), (40, 300), (3, 20, 30), (50,)]
        params = [cupy.asarray(rng.standard_normal(shape).astype(dtype)) for shape in shapes]
        params[1] = cupy.asfortranarray(params[1])
        optimizer = make(params)
        for step in range(4):
            optimizer.step([cupy.asarray(rng.standard_normal(shape).astype(dtype)) for shape in shapes])
        state = optimizer.state_dict()
    return [cupy.asnumpy(p) for p in params], state, len(numba_launches)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda dtype: np.dtype(dtype).name)
@pytest.mark.parametrize("case", sorted(LAUNCHER_CASES))
def test_cupy_launches_the_helper_kernels_with_numba_cudas_bits(monkeypatch, case, dtype):
    """The factors' pass, the norms pass, the norms' values and the step's control kernels are
    launched by CuPy (no numba-cuda launch at all) and give the bits numba-cuda's launches give."""
    params, state, numba_launches = stepped_through("cupy", LAUNCHER_CASES[case], dtype, monkeypatch)
    expected_params, expected_state, expected_launches = stepped_through("numba", LAUNCHER_CASES[case], dtype,
                                                                         monkeypatch)
    assert numba_launches == 0 and expected_launches > 0
    for actual, expected in zip(params, expected_params, strict=True):
        np.testing.assert_array_equal(actual, expected)
    assert sorted(state) == sorted(expected_state)
    for actual, expected in zip(host_leaves(state), host_leaves(expected_state), strict=True):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("case", ["adafactor", "lamb"])
def test_the_helper_kernels_run_on_cupys_current_stream(case):
    """Work queued on a non-blocking stream before a step of Adafactor or LAMB (whose factors' pass,
    norms pass and values kernel CuPy launches, with scratch taken uninitialized) is seen by the
    step, and the step's results are those of the same step on the default stream."""
    rng = np.random.default_rng(3)
    start = rng.standard_normal((600, 500)).astype(np.float32)
    results = []
    for on_stream in (False, True):
        param = cupy.asarray(start)
        grad = cupy.zeros((600, 500), cupy.float32)
        optimizer = LAUNCHER_CASES[case]([param])
        with cupy.cuda.Stream(non_blocking=True) if on_stream else contextlib.nullcontext():
            for _ in range(20):
                grad += 0.05  # a queue of work on the stream, which the step must follow
            optimizer.step([grad])
            results.append(cupy.asnumpy(param))  # copied on the current stream, after its work
    np.testing.assert_array_equal(results[1], results[0])
    assert not np.array_equal(results[0], start)


def host_leaves(tree):
    """The leaves of a tree of dicts and lists, in order, CuPy arrays copied to the host."""
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in host_leaves(tree[key])]
    if isinstance(tree, list):
        return [leaf for item in tree for leaf in host_leaves(item)]
    return [cupy.asnumpy(tree) if isinstance(tree, cupy.ndarray) else np.asarray(tree)]


@pytest.mark.parametrize("settings", [{"VECTOR_LOADS": False},
                                      {"VECTOR_LOADS": False, "ELEMENTS_PER_THREAD": 4}],
                         ids=["one-at-a-time", "four-loads-first"])
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "one-element-in"])
def test_other_thread_layouts_step_as_the_default_kernel(monkeypatch, settings, offset):
    """The default kernel (four neighbours a thread as vector accesses) steps as one element a
    thread does, and as four elements a thread with their loads first: on whole arrays, and on
    arrays all one element in (vector accesses then start at the fourth element, the first three
    one at a time)."""
    from numadam.targets import body
    from numadam.targets.cuda import kernels as cuda_kernels

    made = (body.piece_runner, cuda_kernels.kernel_for, cuda_kernels.configured_kernel,
            cuda_kernels.cupy_loaded)
    rng = np.random.default_rng(3)
    start = rng.standard_normal(1_000_003).astype(np.float32)
    grads = [rng.standard_normal(start.size).astype(np.float32) for _ in range(3)]

    def placed(host):
        whole = cupy.empty(host.size + offset, host.dtype)
        whole[offset:] = cupy.asarray(host)
        return whole[offset:]

    def stepped():
        for cache in made:
            cache.cache_clear()
        param, *state = (placed(array) for array in (start, np.zeros_like(start), np.zeros_like(start),
                                                     np.zeros_like(start)))
        for step, grad in enumerate(grads, start=1):
            numadam.adam_step(param, placed(grad), state[0], state[1], step=step, max_exp_avg_sq=state[2],
                              amsgrad=True, **HYPER)
        return [cupy.asnumpy(array) for array in (param, *state)]

    default = stepped()
    for name, value in settings.items():
        monkeypatch.setattr(body, name, value)
    changed = stepped()
    for cache in made:
        cache.cache_clear()
    for ours, theirs in zip(changed, default):
        ulp_close(ours, theirs)
