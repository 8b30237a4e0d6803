"""The CUDA kernel under NUMBA_ENABLE_CUDASIM=1, against the same NumPy reference as the CPU.

The simulator runs the kernel as Python with the same compiled update rule, so
its results must equal the reference bit for bit, like the CPU kernel's.
"""

import numpy as np
import pytest
from numba import cuda

import numadam
from arrays import DTYPES, OPTIONS, random_array
from numadam.targets import dispatch
from numadam.targets.cuda import kernels as cuda_kernels
from numadam.core.pipeline import POLICY_OPERANDS
from numadam.engine.operands import kernel_spec, operand_rows
from numadam.registry import functional_step
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
    backend = dispatch.backend_for([cuda.to_device(np.zeros(1))], ["x"])
    launches = []
    original = cuda_kernels.launch
    monkeypatch.setattr(cuda_kernels, "launch", lambda *a, **k: (launches.append(a), original(*a, **k)))
    rows, hosts, devices = [], [], []
    for shape, layout in zip(shapes, layouts):
        host, device = device_operands(rng, shape, np.float64, [layout, "C", "C", "C", "C"], False)
        rows.append(operand_rows([backend.describe(array) for array in device[:4]] + [None] * (1 + len(POLICY_OPERANDS))))
        hosts.append(host)
        devices.append(device)
    family = numadam.Adam.algorithm
    h = family.Hyper(**{**numadam.Adam._class_defaults, "lr": 1e-2})
    scalars, _ = family.step_scalars(1, h, ())
    spec = kernel_spec(family, family.flags(h), np.dtype(np.float64), {"exp_avg", "exp_avg_sq"})
    backend.launcher(backend.plan(np.concatenate(rows)), spec)([scalars])
    assert len(launches) == 1
    for host, device in zip(hosts, devices):
        expected = adam_exact(*host[:4], step=1, **HYPER)
        np.testing.assert_array_equal(device[0].copy_to_host(), expected[0], strict=True)
        np.testing.assert_array_equal(device[3].copy_to_host(), expected[2], strict=True)


def test_device_arrays_dispatch_to_cuda_and_refuse_numpy_partners():
    device = cuda.to_device(np.zeros(3, np.float32))
    assert dispatch.backend_for([device], ["p"]).name == "cuda"
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
    always = [kind.name for kind in cls.algorithm.state if kind.present is None and not kind.derived]
    keywords = {**hyperparameters(method, options), **{n: a for n, a in state.items() if n not in always}}
    if cls.algorithm.factored:  # its functional step makes CuPy arrays; its objects run here (the objects' cases)
        with pytest.raises(TypeError, match="adafactor_step takes CuPy arrays on CUDA"):
            functional_step(method)(param, cuda.to_device(host), *[state[n] for n in always], step=1, **keywords)
        np.testing.assert_array_equal(param.copy_to_host(), host)
        return
    _steps_match_the_reference(rng, method, reference, param, state, always, keywords, 3)


def _steps_match_the_reference(rng, method, reference, param, state, always, keywords, steps,
                               placed=cuda.to_device):
    """``steps`` functional steps of ``method`` on the device arrays (``param``, ``state``) with
    random gradients equal ``reference``'s (copied to the device by ``placed``), bit for bit."""
    family = numadam.families()[method].algorithm
    carry = None
    for t in range(1, steps + 1):
        grad = random_array(rng, reference.params[0].shape, np.float32)
        if family.carry is not None:
            keywords["carry"] = carry
        carry = functional_step(method)(param, placed(grad), *[state[n] for n in always], step=t, **keywords)
        reference.step([grad])
    np.testing.assert_array_equal(param.copy_to_host(), reference.params[0], strict=True)
    for name, array in state.items():
        np.testing.assert_array_equal(array.copy_to_host(), reference.state[0][name], strict=True)


# -- the policies and the pre-pass, kernel by kernel ------------------------------------------------

def policy_launch(policy, host, extra=None, step=1):
    """Run Adam with ``policy`` on device copies of ``host`` (param, grad, exp_avg, exp_avg_sq) and the
    policy operands ``extra`` (name -> host array or number); return the device arrays by name."""
    from numadam.core.pipeline import PolicyScalars

    family = numadam.Adam.algorithm
    h = family.Hyper(**{**numadam.Adam._class_defaults, "lr": 1e-2})
    scalars, _ = family.step_scalars(step, h, ())
    device = {name: cuda.to_device(array) for name, array in zip(("param", "grad", "exp_avg", "exp_avg_sq"), host)}
    for name, value in (extra or {}).items():
        device[name] = cuda.to_device(np.atleast_1d(value))
    backend = dispatch.backend_for([device["param"]], ["param"])
    infos = {name: backend.describe(array) for name, array in device.items()}
    for name in ("low", "high"):
        if name in infos and infos[name].shape != infos["param"].shape:  # a number: stride 0
            infos[name] = infos[name]._replace(shape=infos["param"].shape, strides=(0,) * host[0].ndim)
    names = ["param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", *POLICY_OPERANDS]
    rows = operand_rows([infos.get(name) for name in names])
    spec = kernel_spec(family, family.flags(h), np.dtype(host[0].dtype), {"exp_avg", "exp_avg_sq"}, policy)
    values = tuple(scalars) + (tuple(PolicyScalars(3.0, 0.5, 0.2, 0.75, 0.25, 0.0)) if policy.active else ())
    plan = backend.plan(rows)
    return device, backend, plan, spec, [values]


def adam_host(rng, shape=(70,), dtype=np.float32):
    return [random_array(rng, shape, dtype), random_array(rng, shape, dtype),
            random_array(rng, shape, dtype, 0.1), random_array(rng, shape, dtype, 0.01, positive=True)]


def test_scaling_clipping_bounds_and_the_moving_average_in_one_kernel():
    """grad * 0.5, clipped to 0.2; then bounds (an array and a number) and the average (0.75, 0.25)."""
    from numadam.core.pipeline import Policy

    rng = np.random.default_rng(21)
    host = adam_host(rng)
    low = np.linspace(-1.0, 0.0, 70).astype(np.float32)
    ema = random_array(rng, (70,), np.float32)
    policy = Policy(grad_scale=True, clip_value=True, bounds=True, ema=True)
    device, backend, plan, spec, scalars = policy_launch(policy, host, {"low": low, "high": np.float32(0.3),
                                                                       "ema": ema})
    backend.launcher(plan, spec)(scalars)
    grad = np.clip(host[1] * np.float32(0.5), -np.float32(0.2), np.float32(0.2))
    expected = adam_exact(host[0], grad, host[2], host[3], step=1, **HYPER)
    param = np.clip(expected[0], low, np.float32(0.3))
    np.testing.assert_array_equal(device["param"].copy_to_host(), param, strict=True)
    np.testing.assert_array_equal(device["ema"].copy_to_host(), np.float32(0.75) * ema + np.float32(0.25) * param,
                                  strict=True)


def test_accumulation_adds_then_applies_the_mean():
    from numadam.core.pipeline import Policy

    rng = np.random.default_rng(22)
    host = adam_host(rng)
    buffer = random_array(rng, (70,), np.float64)
    device, backend, plan, spec, scalars = policy_launch(Policy(accumulate="add"), host, {"accumulator": buffer})
    backend.launcher(plan, spec)(scalars)
    np.testing.assert_array_equal(device["accumulator"].copy_to_host(), buffer + host[1])
    np.testing.assert_array_equal(device["param"].copy_to_host(), host[0])  # no update
    device, backend, plan, spec, scalars = policy_launch(Policy(accumulate="apply"), host, {"accumulator": buffer})
    backend.launcher(plan, spec)(scalars)
    mean = ((buffer + host[1]) / 3.0).astype(np.float32)
    expected = adam_exact(host[0], mean, host[2], host[3], step=1, **HYPER)
    np.testing.assert_array_equal(device["param"].copy_to_host(), expected[0], strict=True)
    np.testing.assert_array_equal(device["accumulator"].copy_to_host(), np.zeros(70))


@pytest.mark.parametrize("shape", [(70,), (0,), (1000,)], ids=str)
def test_the_prepass_sums_squares_and_counts_nonfinite_per_piece(shape):
    from numadam.core.pipeline import Policy

    rng = np.random.default_rng(23)
    host = adam_host(rng, shape)
    if shape[0]:
        host[1][3] = np.inf
        host[1][-1] = np.nan
    device, backend, plan, spec, scalars = policy_launch(Policy(), host)
    starts = np.arange(0, plan.n_elements, 64, dtype=np.int64)
    stops = np.append(starts[1:], plan.n_elements).astype(np.int64)
    sums = backend.reduce(plan, spec, scalars, starts, stops)
    for piece, (start, stop) in enumerate(zip(starts, stops)):
        part = host[1][start:stop].astype(np.float64)
        bad = np.count_nonzero(~np.isfinite(part))
        assert sums[piece, 1] == bad
        if bad:
            assert not np.isfinite(sums[piece, 0])
        else:
            np.testing.assert_allclose(sums[piece, 0], np.sum(part**2), rtol=1e-12)


def test_lamb_on_the_simulator_matches_its_reference():
    """LAMB's two kernels (the norms pre-pass, then the update) through its functional step."""
    from reference import REFERENCES

    rng = np.random.default_rng(24)
    host = random_array(rng, (150,), np.float32)
    grad = random_array(rng, (150,), np.float32)
    state = {"exp_avg": np.zeros(150, np.float32), "exp_avg_sq": np.zeros(150, np.float32)}
    h = hyperparameters("lamb", {"weight_decay": 0.1})
    expected, expected_state, _ = REFERENCES["lamb"].step(host, grad, state, 1, (), h)
    param = cuda.to_device(host)
    device_state = {name: cuda.to_device(value) for name, value in state.items()}
    numadam.lamb_step(param, cuda.to_device(grad), device_state["exp_avg"], device_state["exp_avg_sq"], step=1,
                      lr=h["lr"], weight_decay=0.1)
    np.testing.assert_allclose(param.copy_to_host(), expected, rtol=4e-7)
    np.testing.assert_array_equal(device_state["exp_avg"].copy_to_host(), expected_state["exp_avg"])


@pytest.mark.parametrize("method", ["adam", "adamax", "ademamix"])
def test_an_out_of_place_step_on_the_simulator_matches_its_reference(method):
    """The kernel reads the old values from the source columns and leaves the sources as they were."""
    from numadam.functional import run_step

    cls = numadam.families()[method]
    rng = np.random.default_rng(12)
    host = random_array(rng, (3, 5), np.float32)
    reference = Reference(method, {}, [host])
    values = hyperparameters(method, {})
    hyper = {h.name: h.check(h.name, values[h.name]) for h in cls.algorithm.hyperparameters}
    old = {"param": on_device(host, "F"), **{n: on_device(v, "F") for n, v in reference.state[0].items()}}
    new = {name: on_device(np.full(host.shape, np.nan, np.float32), "F") for name in old}
    grad = random_array(rng, host.shape, np.float32)
    run_step(cls, {**new, "grad": on_device(grad, "F")}, 1, hyper, cls.algorithm.initial_carry(), sources=old)
    reference.step([grad])
    np.testing.assert_array_equal(new["param"].copy_to_host(), reference.params[0], strict=True)
    np.testing.assert_array_equal(old["param"].copy_to_host(), host, strict=True)
    for name, array in reference.state[0].items():
        np.testing.assert_array_equal(new[name].copy_to_host(), array, strict=True)


class _Slotted:
    """A CUDA array object that takes no weak reference (``__slots__``, no ``__weakref__``): the
    simulator's device array it wraps, described by its host memory's interface."""

    __slots__ = ("device",)
    __cuda_ndarray__ = True

    def __init__(self, device):
        self.device = device

    @property
    def __array_interface__(self):
        return self.device._ary.__array_interface__

    @property
    def dtype(self):
        return self.device.dtype

    @property
    def shape(self):
        return self.device.shape


def test_arrays_that_take_no_weak_reference_step_checked_at_every_call(monkeypatch):
    """The functional step keeps its plan by weak references to the arrays; an array object that
    takes none is checked (and planned) at every call instead, with the same results."""
    import numadam.functional as functional

    checked = []  # the calls that went through every check (run_step), not a kept plan
    original = functional.run_step
    monkeypatch.setattr(functional, "run_step", lambda *a, **k: checked.append(1) or original(*a, **k))
    rng = np.random.default_rng(41)
    host = [random_array(rng, (30,), np.float32), np.zeros(30, np.float32), np.zeros(30, np.float32)]
    wrapped = [_Slotted(cuda.to_device(array.copy())) for array in host]
    grad = random_array(rng, (30,), np.float32)
    device_grad = _Slotted(cuda.to_device(grad))
    expected = list(host)
    for step in (1, 2, 3):
        numadam.adam_step(wrapped[0], device_grad, wrapped[1], wrapped[2], step=step, **HYPER)
        expected = list(adam_exact(expected[0], grad, expected[1], expected[2], step=step, **HYPER)[:3])
    assert len(checked) == 3
    for actual, wanted in zip(wrapped, expected):
        np.testing.assert_array_equal(actual.device.copy_to_host(), wanted, strict=True)


@pytest.mark.parametrize("method", ["lamb", "adafactor"])
def test_the_norms_values_kernel_adds_many_pieces_per_parameter(method):
    """The kernel that writes each parameter's norms value into the update's rows, alone: three
    parameters of 1, 70 (more than a block's threads) and 0 pieces, the second's norms not
    applying in one case. Each written value is the family's value of the parameter's sums (within
    float64's last places: the block adds its threads' sums in a tree), rounded once to the row's
    dtype; the other values stay."""
    family = numadam.families()[method].algorithm
    n_fields = len(family.Scalars._fields)
    field = family.Scalars._fields.index(family.norms.field)
    rng = np.random.default_rng(43)
    sums = rng.uniform(0.1, 2.0, (71, 2))
    family_rows = rng.uniform(1e-4, 1e-3, (3, n_fields))  # small eps2 and d: both sums matter to a step size
    counts = np.array([5, 9000, 0])
    for applies in ([1, 1, 1], [1, 0, 1]):
        layout = np.concatenate([[0, 1, 71, 71], applies, counts]).astype(np.int64)
        rows = np.full((3, n_fields), 7.0, np.float32)
        cuda_kernels.launch_norms_values(family.norms.value, family.Scalars if family.norms.per_parameter else None,
                                         sums.ctypes.data, layout.ctypes.data, 3, family_rows.ctypes.data, n_fields,
                                         rows.ctypes.data, n_fields, field, np.float32(0))
        for leaf, (first, last) in enumerate([(0, 1), (1, 71), (71, 71)]):
            squares = sums[first:last].sum(axis=0)
            arguments = (*squares, int(counts[leaf]), family.Scalars(*family_rows[leaf])) \
                if family.norms.per_parameter else tuple(squares)
            wanted = np.float32(family.norms.value(*arguments)) if applies[leaf] else np.float32(7.0)
            np.testing.assert_allclose(rows[leaf, field], wanted, rtol=2 ** -23)
            np.testing.assert_array_equal(np.delete(rows[leaf], field), np.full(n_fields - 1, 7.0, np.float32))


# -- several elements a thread, their loads first (body.ELEMENTS_PER_THREAD) ------------------------

@pytest.fixture
def elements_per_thread(request, monkeypatch):
    """The kernels made anew with ``request.param`` elements a thread, in chunks of 256 (8 a
    thread of the simulator's 32: the unrolled loop goes round twice or more, with a remainder)."""
    from numadam.targets import body

    made = (body.piece_runner, cuda_kernels.kernel_for, cuda_kernels.configured_kernel)
    monkeypatch.setattr(body, "ELEMENTS_PER_THREAD", request.param)
    for cache in made:
        cache.cache_clear()
    backend = dispatch.backend_for([cuda.to_device(np.zeros(1))], ["x"])
    monkeypatch.setattr(backend, "chunk_size", 256)  # (the plans' chunks and the launches' alike)
    monkeypatch.setattr(cuda_kernels, "CHUNK_SIZE", 256)
    yield request.param
    for cache in made:
        cache.cache_clear()


@pytest.mark.parametrize("elements_per_thread", [1, 2, 4], indirect=True)
@pytest.mark.parametrize("case", [case for case in CASES if not numadam.families()[case[0]].algorithm.factored
                                  and case[0] in ("adam", "lion", "sgd", "radam", "schedule_free_adamw")],
                         ids=case_id)
def test_several_elements_a_thread_are_the_reference_bit_for_bit(elements_per_thread, case):
    """The unrolled loop (every element's loads first) gives the reference's bits, over pieces that
    leave remainders of every size."""
    from numadam.targets import body

    method, options = case
    cls = numadam.families()[method]
    family = cls.algorithm
    h = family.Hyper(**{**cls._class_defaults, **hyperparameters(method, options)})
    spec = kernel_spec(family, family.flags(h), np.dtype(np.float32), {k.name for k in family.state_kinds(h)})
    assert (f"while start + {elements_per_thread - 1} * step < stop:" in body.piece_source(spec, True)) == (elements_per_thread > 1)
    rng = np.random.default_rng(12)
    host = random_array(rng, (701,), np.float32)
    reference = Reference(method, options, [host])
    param = cuda.to_device(host)
    state = {name: cuda.to_device(value) for name, value in reference.state[0].items()}
    always = [kind.name for kind in family.state if kind.present is None and not kind.derived]
    keywords = {**hyperparameters(method, options), **{n: a for n, a in state.items() if n not in always}}
    _steps_match_the_reference(rng, method, reference, param, state, always, keywords, 2)


# -- four elements a thread as one vector access (body.VECTOR_LOADS) ---------------------------------

@pytest.fixture(params=[True, False], ids=["vector", "one-at-a-time"])
def vector_loads(monkeypatch, request):
    """The kernels made anew with vector accesses (the default) or without (one element a thread
    at a time), in chunks of 256: ``(the vector loads counted, whether they were on)``."""
    from numadam.targets import body

    made = (body.piece_runner, cuda_kernels.kernel_for, cuda_kernels.configured_kernel)
    loads = []

    def counted_load_four(pointer, index):
        loads.append(index)
        return cuda_kernels.INTERPRETED.load_four(pointer, index)

    monkeypatch.setattr(body, "VECTOR_LOADS", request.param)
    monkeypatch.setattr(cuda_kernels, "PRIMITIVES", cuda_kernels.INTERPRETED._replace(load_four=counted_load_four))
    for cache in made:
        cache.cache_clear()
    backend = dispatch.backend_for([cuda.to_device(np.zeros(1))], ["x"])
    monkeypatch.setattr(backend, "chunk_size", 256)
    monkeypatch.setattr(cuda_kernels, "CHUNK_SIZE", 256)
    yield loads, request.param
    for cache in made:
        cache.cache_clear()


def _offset_by(elements):
    """A copy to the device that starts ``elements`` in from an allocation's start."""
    def placed(host):
        whole = cuda.device_array(host.size + elements, host.dtype)
        view = whole[elements:]
        view.copy_to_device(host)
        return view
    return placed


#: ``(offset of the parameter, of every other array)``: all aligned; all one element in (the
#: first three elements one at a time); the parameter alone one in (no vector access at all).
VECTOR_LAYOUTS = {"aligned": (0, 0), "all-one-in": (1, 1), "param-one-in": (1, 0)}


@pytest.mark.parametrize("layout", VECTOR_LAYOUTS)
@pytest.mark.parametrize("case", [case for case in CASES if not numadam.families()[case[0]].algorithm.factored
                                  and case[0] in ("adam", "lion", "sgd", "radam", "schedule_free_adamw")],
                         ids=case_id)
def test_vector_accesses_are_the_reference_bit_for_bit(vector_loads, case, layout):
    """Four neighbours a thread, read and written as one vector access each, give the reference's bits
    over pieces that leave remainders of every size; where the operands do not reach their alignment
    at the same element, no vector access is made (a misaligned one raises in the simulator). Without
    them, the same bits one element at a time."""
    loads, enabled = vector_loads
    method, options = case
    cls = numadam.families()[method]
    family = cls.algorithm
    param_offset, other_offset = VECTOR_LAYOUTS[layout]
    rng = np.random.default_rng(13)
    host = random_array(rng, (701,), np.float32)
    reference = Reference(method, options, [host])
    param = _offset_by(param_offset)(host)
    state = {name: _offset_by(other_offset)(value) for name, value in reference.state[0].items()}
    always = [kind.name for kind in family.state if kind.present is None and not kind.derived]
    keywords = {**hyperparameters(method, options), **{n: a for n, a in state.items() if n not in always}}
    _steps_match_the_reference(rng, method, reference, param, state, always, keywords, 2, _offset_by(other_offset))
    assert (len(loads) > 0) == (enabled and param_offset == other_offset)


def test_the_simulators_backend_keeps_the_backend_protocol():
    """The CUDA backend the simulator runs is a :class:`~numadam.targets.backend.Backend`, and says
    the device counts its steps."""
    from numadam.targets.backend import Backend
    from test_backend_protocol import contract_breaches

    backend = dispatch.backend_for([cuda.to_device(np.zeros(1))], ["x"])
    assert isinstance(backend, Backend) and backend.device_steps and backend.reducing_launcher is None
    assert contract_breaches(type(backend)) == []
