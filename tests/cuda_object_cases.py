"""The optimizer objects on CUDA arrays against the same objects on NumPy arrays (the CPU kernels).

Written once, run twice, each time by a module that defines the ``device``
fixture (a :class:`Device`) and imports these tests:

- ``tests/simulator/test_objects_on_the_simulator.py``: the simulator's device
  arrays, with CudaBackend's state stored in them; bit for bit with the CPU.
- ``tests/test_cuda_objects.py`` (marked ``gpu``): CuPy arrays on a real GPU,
  where NVVM fuses multiplies and adds (FMA), so within a few ulps.

Covered: every family, the policies (skip, clipping, bounds, EMA,
accumulation) with device-counted skips, LAMB with groups, 16-bit parameters
and state, 8-bit blockwise state, the complex magnitude mode, the scalars
of a step passed as kernel arguments (nothing copied to the GPU per step),
and the functional step of the same arrays keeping its plan (nothing copied
after its first call).
"""

import inspect

import numpy as np
import pytest
from numba import cuda  # a global, which the simulator replaces in the kernel below

import numadam
from arrays import random_array
from numadam import jit
from numadam.registry import functional_step
from numadam.targets.cuda.backend import ARGUMENT_ROWS, CudaBackend


class Device:
    """How one kind of CUDA array is made, read back and compared with the CPU's result.

    ``ulps`` is how far a value may lie from the CPU's in units in the last place
    of its storage dtype (0: bit for bit); ``code_steps`` how far an 8-bit code may
    lie from the CPU's (a last-place difference before quantization may move a
    value across a code boundary).
    """

    def __init__(self, to_device, to_host, ulps=0, code_steps=0):
        self.to_device, self.to_host = to_device, to_host
        self.ulps, self.code_steps = ulps, code_steps

    def assert_matches(self, actual, expected, ulps=None):
        actual, expected = self.to_host(actual), np.asarray(expected)
        ulps = self.ulps if ulps is None else ulps
        if ulps == 0:
            np.testing.assert_array_equal(actual.reshape(-1).view(np.uint8), expected.reshape(-1).view(np.uint8))
        elif expected.dtype.kind in "iu":
            assert np.abs(actual.astype(np.int64) - expected.astype(np.int64)).max(initial=0) <= self.code_steps
        else:
            eps = float(finfo(expected.dtype).eps)
            wide = np.complex128 if expected.dtype.kind == "c" else np.float64
            actual, expected = actual.astype(wide), expected.astype(wide)
            finite = np.abs(expected[np.isfinite(expected)])  # NaN where a poisoned step left it, on both
            scale = max(float(finite.max(initial=0)), 1e-30)
            np.testing.assert_allclose(actual, expected, rtol=ulps * eps, atol=ulps * eps * scale)

    def assert_trees_match(self, actual, expected, ulps=None):
        """Two state dicts: arrays as :meth:`assert_matches`, the host's scalars (step, carry...) equal."""
        for name, tree in expected.items():
            if name == "carry":
                self.assert_carry_matches(actual[name], tree)
            elif isinstance(tree, list):
                for a, e in zip(actual[name], tree):
                    self.assert_matches(a, e, ulps)
            else:
                assert actual[name] == tree, name

    def assert_carry_matches(self, actual, expected):
        """Scalars a family carries from step to step, kept in float64 (on the device too, where it
        counts steps). Bit for bit on the simulator; on hardware to ``ulps`` float32 ulps relative:
        Prodigy's carry holds float64 sums over elements that themselves match to that many ulps
        (on an H200, its ‖s‖₁ differed by 5e-9 relative after 14 steps)."""
        actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
        if self.ulps == 0:
            np.testing.assert_array_equal(actual, expected)
        else:
            np.testing.assert_allclose(actual, expected, rtol=self.ulps * float(np.finfo(np.float32).eps))


def finfo(dtype):
    ml_dtypes = pytest.importorskip("ml_dtypes") if dtype.kind == "V" or dtype.name == "bfloat16" else None
    return ml_dtypes.finfo(dtype) if ml_dtypes else np.finfo(dtype)


def twins(device, seed, shapes, dtype=np.float32):
    rng = np.random.default_rng(seed)
    host = [random_array(rng, shape, dtype) for shape in shapes]
    return host, [device.to_device(array.copy()) for array in host]


def gradient_sequence(seed, shapes, steps, poisoned=(), dtype=np.float32):
    rng = np.random.default_rng(seed)
    sequence = []
    for step in range(steps):
        grads = [random_array(rng, shape, dtype) for shape in shapes]
        if step in poisoned:
            grads[0].flat[1] = np.nan
        sequence.append(grads)
    return sequence


SHAPES = [(40,), (3, 9), (70,)]


@pytest.mark.parametrize("method", list(numadam.families()))
def test_every_family_on_cuda_kernels_matches_the_cpu(device, method):
    """Bit for bit, but Adafactor to a few ulps: the CPU's factors' pass sums its norms in its own
    order and form (numadam.core.factors), CUDA's norms pass as the rule forms u."""
    cls = numadam.families()[method]
    host, on_device = twins(device, 13, SHAPES)
    cpu, gpu = cls(host, lr=0.01), cls(on_device, lr=0.01)
    ulps = 4 if method == "adafactor" else None
    for grads in gradient_sequence(14, SHAPES, 4):
        cpu.step(grads)
        gpu.step([device.to_device(g) for g in grads])
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected, ulps)
    device.assert_trees_match(gpu.state_dict(), cpu.state_dict(), ulps)


def assert_adafactor_matches_the_cpu(device, seed, shapes, steps, options=(), column_major=()):
    """Adafactor on the device against the CPU over ``steps`` random gradients of ``shapes`` (those
    at the places ``column_major`` given in Fortran order), to 4 ulps: the CPU's factors' pass and
    CUDA's add their float64 sums in different orders, which may round apart."""
    options = dict(options)
    host, on_device = twins(device, seed, shapes)
    cpu, gpu = numadam.Adafactor(host, lr=0.05, **options), numadam.Adafactor(on_device, lr=0.05, **options)
    for grads in gradient_sequence(seed + 1, shapes, steps):
        for k in column_major:
            grads[k] = np.asfortranarray(grads[k])
        cpu.step(grads)
        gpu.step([device.to_device(g) for g in grads])
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected, ulps=4)
    device.assert_trees_match(gpu.state_dict(), cpu.state_dict(), ulps=4)


@pytest.mark.parametrize("options", [{}, {"clip_value": 0.3, "weight_decay": 0.1}])
def test_adafactor_factors_on_cuda_kernels_match_the_cpu(device, options):
    """A batch of matrices, a tall and a wide one: the CUDA factors' pass (tiles of 256 columns by
    256 rows) against the CPU's, the update through the same generated kernels. The CPU adds a
    row's squares eight lanes at a time and a column's eight rows at a time, CUDA in its tiles'
    order."""
    assert_adafactor_matches_the_cpu(device, 21, [(2, 5, 4), (9, 3), (2, 11)], 3, options)


def test_adafactor_factors_of_matrices_past_one_tile_match_the_cpu(device):
    """Matrices of more rows and more columns than a block of the CUDA factors' pass sums (256 by
    256, sixteen rows at a time), with a last stage of 4 rows, in batches of two (one launch per
    kernel), one of them column-major (read as its transpose): each row's and column's sum
    gathered from several blocks."""
    assert_adafactor_matches_the_cpu(device, 31, [(260, 3), (2, 3, 260), (2, 258, 5)], 2, column_major=[2])


def test_adafactor_factors_when_the_grid_takes_turns_match_the_cpu(device, monkeypatch):
    """Grids capped at two blocks, so that each kernel of the CUDA factors' pass loops over its
    work (matrices, spans, factors) as it does past CUDA's grid limits: a batch of three, row- and
    column-major, and a vector."""
    from numadam.targets.cuda import factors as cuda_factors

    monkeypatch.setattr(cuda_factors, "MOST_BLOCKS", 2)
    assert_adafactor_matches_the_cpu(device, 41, [(3, 100, 3), (3, 100, 3), (300,)], 2, column_major=[1])


def test_a_gradient_of_no_elements_moves_no_factor(device, monkeypatch):
    """The CUDA factors' pass launches nothing for a gradient of no elements (its scratch, taken
    uninitialized, would have no span's sums written), and leaves the factors as they were."""
    from numadam.targets.cuda import factors as cuda_factors
    from numadam.targets.dispatch import backend_for

    launches = []
    monkeypatch.setattr(cuda_factors, "launch_kernel", lambda *arguments: launches.append(arguments))
    grad = device.to_device(np.zeros((0, 5), np.float32))
    factors_given = [np.zeros((0, 1), np.float32), np.full((1, 5), 0.5, np.float32), np.ones((1, 1), np.float32),
                     np.ones((0, 1), np.float32), np.ones((1, 5), np.float32)]
    on_device = [device.to_device(array) for array in factors_given]
    backend = backend_for([grad], ["grad"])
    cuda_factors.update_factors(backend, grad, *on_device, np.float32(0.2), np.float32(1e-3), 1.0, None)
    assert launches == []
    for actual, expected in zip(on_device, factors_given):
        np.testing.assert_array_equal(device.to_host(actual), expected)


@pytest.mark.parametrize("options", [
    {"nonfinite": "skip"},
    {"nonfinite": "skip", "clip_global_norm": 1.0},
    {"bounds": (-0.5, 0.5), "ema": 0.8},
    {"accumulate": 2, "clip_value": 0.3},
    {"nonfinite": "skip", "accumulate": 2},  # skipped on the host, which waits for the pre-pass
])
def test_the_policies_on_cuda_kernels_match_the_cpu(device, options):
    host, on_device = twins(device, 1, SHAPES)
    cpu = numadam.Adam(host, lr=0.05, **options)
    gpu = numadam.Adam(on_device, lr=0.05, **options)
    for grads in gradient_sequence(2, SHAPES, 9, poisoned={2, 5, 6}):
        cpu.step(grads)
        gpu.step([device.to_device(g) for g in grads])
    assert gpu.step_count == cpu.step_count and gpu.skipped_steps == cpu.skipped_steps
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected)
    if "ema" in options:
        for actual, expected in zip(gpu.ema_params(), cpu.ema_params()):
            device.assert_matches(actual, expected)


def test_device_steps_count_on_the_gpu_and_the_host_learns_them(device):
    from numadam.engine.device_steps import WINDOW

    host, on_device = twins(device, 3, SHAPES)
    cpu = numadam.NAdam(host, lr=0.05, nonfinite="skip")
    gpu = numadam.NAdam(on_device, lr=0.05, nonfinite="skip")
    poisoned = set(range(3, 3 + WINDOW + 2))  # more skips in a row than the window holds
    for grads in gradient_sequence(4, SHAPES, WINDOW + 8, poisoned=poisoned):
        cpu.step(grads)
        gpu.step([device.to_device(g) for g in grads])
    assert gpu._engine._device_steps is not None, "the GPU counted the steps"
    assert (gpu.step_count, gpu.skipped_steps) == (cpu.step_count, cpu.skipped_steps) == (6, WINDOW + 2)
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected)
    state = gpu.state_dict()
    assert state["step"] == 6 and state["skipped_steps"] == WINDOW + 2
    device.assert_carry_matches(state["carry"], cpu.state_dict()["carry"])


def test_lamb_and_a_groups_tree_on_cuda_kernels(device):
    host, on_device = twins(device, 5, SHAPES)
    make = lambda arrays: numadam.LAMB({"g": numadam.Group(arrays[:1], weight_decay=0.0), "rest": arrays[1:]},  # noqa
                                       lr=0.02, weight_decay=0.1)
    cpu, gpu = make(host), make(on_device)
    for grads in gradient_sequence(6, SHAPES, 4):
        cpu.step({"g": grads[:1], "rest": grads[1:]})
        gpu.step({"g": [device.to_device(grads[0])], "rest": [device.to_device(g) for g in grads[1:]]})
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected)


@pytest.mark.parametrize("storage", [
    {"dtype": "float16"}, {"dtype": "bfloat16"}, {"dtype": "bfloat16", "master_weights": True},
    {"dtype": "float16", "stochastic_rounding": True, "seed": 3}, {"dtype": "float32", "state_dtype": "bfloat16"},
    {"dtype": "bfloat16", "compensation": "kahan"}, {"dtype": "float16", "compensation": "kahan"},
], ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_every_storage_combination_on_cuda_kernels_matches_the_cpu(device, storage):
    """16-bit parameters, master copies, stochastic rounding (the same random bits on both), Kahan's
    compensation and 16-bit state."""
    options = dict(storage)
    name = options.pop("dtype")
    dtype = np.dtype(pytest.importorskip("ml_dtypes").bfloat16 if name == "bfloat16" else name)
    host, _ = twins(device, 7, SHAPES)
    host = [array.astype(dtype) for array in host]
    on_device = [device.to_device(array.copy()) for array in host]
    cpu, gpu = numadam.Adam(host, lr=0.01, **options), numadam.Adam(on_device, lr=0.01, **options)
    for grads in gradient_sequence(8, SHAPES, 4, dtype=np.float32):
        grads = [g.astype(dtype) for g in grads]
        cpu.step(grads)
        gpu.step([device.to_device(g) for g in grads])
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected, ulps=min(device.ulps, 2))
    if "compensation" in options:
        for actual, expected in zip(gpu.state_dict()["compensation"], cpu.state_dict()["compensation"]):
            device.assert_matches(actual, expected, ulps=min(device.ulps, 2))


@pytest.mark.parametrize("method, options", [("adam", {"amsgrad": True}), ("yogi", {"nonfinite": "skip"})])
def test_int8_state_on_cuda_kernels_matches_the_cpu(device, method, options):
    """8-bit blockwise state: codes and scales, a block per warp (strided lanes)."""
    shapes = [(4100,), (3, 9)]  # the first quantized in 17 blocks (the last of 4 elements); the second kept in float32
    host, on_device = twins(device, 9, shapes)
    cls = numadam.families()[method]
    cpu = cls(host, lr=0.01, state_dtype="int8", **options)
    gpu = cls(on_device, lr=0.01, state_dtype="int8", **options)
    for grads in gradient_sequence(10, shapes, 3, poisoned=(1,) if options else ()):
        cpu.step(grads)
        gpu.step([device.to_device(g) for g in grads])
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected)
    device.assert_trees_match(gpu.state_dict(), cpu.state_dict())


@pytest.mark.parametrize("options", [{"amsgrad": True}, {"convention": "optax", "weight_decay": 0.1,
                                                          "decoupled_weight_decay": True}])
def test_complex_magnitude_mode_on_cuda_kernels_matches_the_cpu(device, options):
    """A shared real second moment per complex element: complex elements in the table."""
    shapes = [(12,), (3, 4)]
    host, on_device = twins(device, 11, shapes, np.complex64)
    cpu = numadam.Adam(host, lr=0.01, complex_mode="magnitude", **options)
    gpu = numadam.Adam(on_device, lr=0.01, complex_mode="magnitude", **options)
    for grads in gradient_sequence(12, shapes, 3, dtype=np.complex64):
        cpu.step(grads)
        gpu.step([device.to_device(g) for g in grads])
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected)
    device.assert_trees_match(gpu.state_dict(), cpu.state_dict())


def test_a_users_cuda_kernel_calls_the_engines_rule(device):
    """numadam.jit's rule as a device function in the user's own @cuda.jit kernel, with the host's
    scalars and flags: the trajectory of numadam.Adam on the CPU."""

    @cuda.jit
    def adam_kernel(param, grad, exp_avg, exp_avg_sq, scalars, flags):
        i = cuda.grid(1)
        if i < param.size:
            state = (exp_avg[i], exp_avg_sq[i], exp_avg_sq[i])  # no AMSGrad: its maximum is ignored
            param[i], (exp_avg[i], exp_avg_sq[i], _) = jit.adam_rule(param[i], grad[i], state, scalars, flags)

    shapes = [(50,)]
    (host,), (param,) = twins(device, 15, shapes, np.float64)
    exp_avg, exp_avg_sq = device.to_device(np.zeros(50)), device.to_device(np.zeros(50))
    cpu = numadam.Adam([host], lr=0.01, weight_decay=0.1)
    for step, (grad,) in enumerate(gradient_sequence(16, shapes, 3, dtype=np.float64), start=1):
        cpu.step([grad])
        adam_kernel[1, 64](param, device.to_device(grad), exp_avg, exp_avg_sq,
                           jit.adam_scalars(step, 0.01, weight_decay=0.1), jit.adam_flags(0.01, weight_decay=0.1))
    device.assert_matches(param, host)
    device.assert_matches(exp_avg_sq, cpu.state_dict()["exp_avg_sq"][0])


@pytest.mark.parametrize("options", [{}, {"nonfinite": "skip", "clip_global_norm": 1.0}, {"weight_decay": 0.1}])
def test_rows_gradients_on_cuda_kernels_match_the_cpu(device, options):
    """Row-sparse gradients (numadam.Rows) with values on the device, rows once and repeated: the
    same listed-row plan as the CPU's; device-counted skips and the clip's pre-pass over its pieces."""
    shapes = [(30, 3), (25,)]
    host, on_device = twins(device, 3, shapes)
    cpu, gpu = numadam.Adam(host, lr=0.05, **options), numadam.Adam(on_device, lr=0.05, **options)
    rng = np.random.default_rng(4)
    for step in range(5):
        grads = []
        for shape in shapes:
            index = rng.integers(0, shape[0], 6) if step % 2 else rng.choice(shape[0], 6, replace=False)
            values = random_array(rng, (6,) + shape[1:], np.float32)
            if step == 3:
                values.flat[0] = np.nan
            grads.append((index, values))
        cpu.step([numadam.Rows(index, values) for index, values in grads])
        gpu.step([numadam.Rows(index, device.to_device(values)) for index, values in grads])
    assert gpu.step_count == cpu.step_count and gpu.skipped_steps == cpu.skipped_steps
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected)
    device.assert_trees_match(gpu.state_dict(), cpu.state_dict())


# -- the scalars of a step: kernel arguments, not a copy to the GPU ----------------------------------

@pytest.fixture
def uploads(monkeypatch):
    """Every array CudaBackend copies to the GPU (segment tables, pieces, scalar rows), in order."""
    copied = []
    original = CudaBackend._upload

    def upload(self, rows):
        copied.append(np.array(rows))
        return original(self, rows)

    monkeypatch.setattr(CudaBackend, "_upload", upload)
    return copied


def refill(array, values):
    """Copy ``values`` into the device array ``array``, in place: the next step keeps its plan."""
    if hasattr(array, "copy_to_device"):  # numba-cuda's device arrays (the simulator's)
        array.copy_to_device(values)
    else:  # CuPy's
        array.set(values)


def grouped(arrays, n_rows, group=True):
    """A tree of ``arrays`` whose optimizer takes ``n_rows`` scalar rows: its own, for the first
    arrays, and one per :class:`numadam.Group` of one array each (``group``: else plain lists, the
    gradients' tree)."""
    n_groups = n_rows - 1
    rest = len(arrays) - n_groups
    tree = {"rest": list(arrays[:rest])}
    for k in range(n_groups):
        tree[f"g{k}"] = (numadam.Group([arrays[rest + k]], lr=0.01 * (k + 2), weight_decay=0.1 * k) if group
                         else [arrays[rest + k]])
    return tree


def leaves(tree):
    """The arrays of a tree of dicts and lists, in order."""
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in leaves(tree[key])]
    if isinstance(tree, list):
        return [leaf for item in tree for leaf in leaves(item)]
    return [tree]


def assert_states_match(device, gpu, cpu):
    """The state arrays of two optimizers over the same tree."""
    actual, expected = gpu.state_dict(), cpu.state_dict()
    for kind in gpu._engine.state_names():
        for a, e in zip(leaves(actual[kind]), leaves(expected[kind]), strict=True):
            device.assert_matches(a, e)
    assert (actual["step"], gpu.skipped_steps) == (expected["step"], cpu.skipped_steps)


def steps_of_the_same_gradients(device, gpu, cpu, shapes, n_rows, dtype, uploads, steps=4):
    """``steps`` steps of both optimizers with the same device gradient arrays, refilled in place:
    the device arrays' copies made after the first step."""
    sequence = gradient_sequence(18, shapes, steps, dtype=dtype)
    grads = [device.to_device(g) for g in sequence[0]]
    copied = []
    for step, values in enumerate(sequence):
        if step:
            for array, host in zip(grads, values):
                refill(array, host)
        uploads.clear()
        cpu.step(grouped(values, n_rows, group=False))
        gpu.step(grouped(grads, n_rows, group=False))
        if step:
            copied += uploads
    return copied


SCALAR_SHAPES = [(40,), (3, 9), (70,), (5,), (2, 3)]
assert ARGUMENT_ROWS + 1 <= len(SCALAR_SHAPES), "a Group of one array for each row past the optimizer's own"


@pytest.mark.parametrize("n_rows", [1, 2, ARGUMENT_ROWS + 1], ids=lambda n: f"{n}-rows")
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64], ids=lambda d: np.dtype(d).name)
def test_a_step_passes_its_scalars_as_kernel_arguments(device, uploads, dtype, n_rows):
    """A step of the same gradients copies nothing to the GPU: its scalar rows (one per group, the
    optimizer's own included) are the kernel's arguments, one or two groups' and up to
    ARGUMENT_ROWS; past that, one copy of the rows per step. The results stay the CPU's."""
    host, on_device = twins(device, 17, SCALAR_SHAPES, dtype)
    cpu = numadam.Adam(grouped(host, n_rows), lr=0.01, amsgrad=True)
    gpu = numadam.Adam(grouped(on_device, n_rows), lr=0.01, amsgrad=True)
    copied = steps_of_the_same_gradients(device, gpu, cpu, SCALAR_SHAPES, n_rows, dtype, uploads)
    if n_rows <= 2:
        assert copied == []
    else:
        n_scalars = len(numadam.Adam.algorithm.Scalars._fields)
        row_bytes = n_rows * n_scalars * np.dtype(dtype).type(0).real.dtype.itemsize
        assert [array.nbytes for array in copied] == [-(-row_bytes // 8) * 8] * 3  # in 8-byte words
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected)
    assert_states_match(device, gpu, cpu)


@pytest.mark.parametrize("n_rows", [1, 2], ids=lambda n: f"{n}-rows")
@pytest.mark.parametrize("options", [{"clip_global_norm": 0.5}, {"state_dtype": "int8"}],
                         ids=lambda options: ",".join(options))
def test_the_prepass_and_8_bit_state_take_their_scalars_as_arguments_too(device, uploads, options, n_rows):
    """Clipping by the global norm (the pre-pass, whose pieces and sums are placed on the GPU once
    per plan, then the update) and 8-bit state (a warp per state block) copy nothing per step."""
    host, on_device = twins(device, 19, SCALAR_SHAPES)
    cpu = numadam.Adam(grouped(host, n_rows), lr=0.01, **options)
    gpu = numadam.Adam(grouped(on_device, n_rows), lr=0.01, **options)
    assert steps_of_the_same_gradients(device, gpu, cpu, SCALAR_SHAPES, n_rows, np.float32, uploads) == []
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected)
    assert_states_match(device, gpu, cpu)


@pytest.mark.parametrize("method, options, keyword_state", [
    ("adam", {"amsgrad": True}, ["max_exp_avg_sq"]), ("nadam", {}, []), ("sgd", {"momentum": 0.9}, ["momentum_buffer"])],
    ids=["adam-amsgrad", "nadam", "sgd-momentum"])
def test_the_functional_step_of_the_same_arrays_copies_nothing_after_its_first_call(device, uploads, method,
                                                                                     options, keyword_state):
    """The functional step keeps the checked plan of its last call: called again with the very same
    device arrays (the gradient refilled in place) and hyperparameters, it copies no segment table
    to the GPU, and each call stays the CPU's. New hyperparameters are planned again."""
    step = functional_step(method)
    P = inspect.Parameter
    positional = [p.name for p in inspect.signature(step).parameters.values()
                  if p.kind == P.POSITIONAL_OR_KEYWORD][2:]
    rng = np.random.default_rng(23)
    host = {"param": random_array(rng, (3, 50), np.float32)}
    host.update({name: np.zeros((3, 50), np.float32) for name in positional + keyword_state})
    on_device = {name: device.to_device(array.copy()) for name, array in host.items()}
    sequence = gradient_sequence(24, [(3, 50)], 5)
    grad = device.to_device(sequence[0][0])
    carries = {"cpu": None, "gpu": None}
    params, copies = [], []
    for where, arrays in (("cpu", host), ("gpu", on_device)):  # one after the other: each keeps its plan
        for t, (values,) in enumerate(sequence, start=1):
            if where == "gpu" and t > 1:
                refill(grad, values)
            lr = 0.01 if t < 5 else 0.02  # the last call's new hyperparameters: planned again, and applied
            uploads.clear()
            carries[where] = step(arrays["param"], values if where == "cpu" else grad,
                                  *[arrays[n] for n in positional], step=t, lr=lr, carry=carries[where],
                                  **{n: arrays[n] for n in keyword_state}, **options)
            if where == "cpu":
                params.append(arrays["param"].copy())
            else:
                copies.append(len(uploads))
                device.assert_matches(arrays["param"], params[t - 1])
    assert copies[0] >= 1 and copies[1:4] == [0, 0, 0] and copies[4] >= 1, copies
    for name in positional + keyword_state:
        device.assert_matches(on_device[name], host[name])


def test_lambs_functional_step_never_waits_for_the_gpu(device, monkeypatch):
    """``numadam.lamb_step`` on device arrays takes the objects' one queued call (the norms pass, the
    trust ratio computed on the GPU, the update): nothing comes back to the host, at the first call
    (checked) or the next (planned), and each step stays the CPU's."""
    fetched = []
    original = CudaBackend._to_host
    monkeypatch.setattr(CudaBackend, "_to_host", lambda self, array: fetched.append(1) or original(self, array))
    rng = np.random.default_rng(29)
    host = [random_array(rng, (3, 50), np.float32), np.zeros((3, 50), np.float32), np.zeros((3, 50), np.float32)]
    on_device = [device.to_device(array.copy()) for array in host]
    sequence = gradient_sequence(30, [(3, 50)], 4)
    grad = device.to_device(sequence[0][0])
    for t, (values,) in enumerate(sequence, start=1):
        refill(grad, values)
        numadam.lamb_step(host[0], values, *host[1:], step=t, lr=0.02, weight_decay=0.1)
        numadam.lamb_step(on_device[0], grad, *on_device[1:], step=t, lr=0.02, weight_decay=0.1)
    assert fetched == []
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected)


NORMS_CASES = [("lamb", np.float32), ("lamb", np.float64), ("lamb", np.complex64), ("adafactor", np.float32),
               ("adafactor", np.float64)]


def norms_family(method, arrays):
    """An optimizer of ``method`` over two groups of ``arrays``: LAMB's first group takes no trust
    ratio (apex's convention without weight decay), Adafactor's has its own ``d``."""
    if method == "lamb":
        return numadam.LAMB({"g": numadam.Group(arrays[:2], weight_decay=0.0), "rest": arrays[2:]}, lr=0.02,
                            weight_decay=0.1, convention="apex")
    return numadam.Adafactor({"g": numadam.Group(arrays[:2], d=1.5), "rest": arrays[2:]}, lr=0.02,
                             weight_decay=0.1)


@pytest.mark.parametrize("method, dtype", NORMS_CASES, ids=lambda v: v if isinstance(v, str) else np.dtype(v).name)
def test_a_norms_step_never_copies_its_norms_to_the_host(device, monkeypatch, method, dtype):
    """LAMB's and Adafactor's common steps queue their kernels (Adafactor's factors' pass, the
    norms pass, the family's value of each parameter written into the update's rows on the GPU,
    the update) and never wait for the GPU: nothing comes back to the host. Five parameters (more
    rows than kernel arguments take), one of them zero-size and one of many pieces (its sums added
    in another order than the CPU's: a few ulps in float64), matrices and vectors, two groups.
    Adafactor within a few ulps (the CPU's factors' pass sums its norms in its own order)."""
    fetched = []
    original = CudaBackend._to_host
    monkeypatch.setattr(CudaBackend, "_to_host", lambda self, array: fetched.append(1) or original(self, array))
    shapes = [(40,), (0,), (3, 9), (300,), (7, 5)]
    host, on_device = twins(device, 31, shapes, dtype)
    cpu, gpu = norms_family(method, host), norms_family(method, on_device)
    for grads in gradient_sequence(32, shapes, 4, dtype=dtype):
        cpu.step({"g": grads[:2], "rest": grads[2:]})
        gpu.step({"g": [device.to_device(g) for g in grads[:2]], "rest": [device.to_device(g) for g in grads[2:]]})
    assert fetched == []
    ulps = 8 if method == "adafactor" or np.dtype(dtype).itemsize == 8 else None
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected, ulps)
    actual, expected = gpu.state_dict(), cpu.state_dict()
    kinds = [kind for kind in gpu._engine.state_names() if kind in expected]  # the state dict's own
    assert kinds
    for kind in kinds:
        for a, e in zip(leaves(actual[kind]), leaves(expected[kind]), strict=True):
            device.assert_matches(a, e, ulps)


def test_prodigy_with_slice_p_matches_the_cpu(device):
    """Prodigy's s and p0 on every third element: its sampled pass (array operators) on the device's
    arrays, the kernels without them; the state dict and d as the CPU's."""
    host, on_device = twins(device, 41, SHAPES)
    cpu, gpu = numadam.Prodigy(host, slice_p=3), numadam.Prodigy(on_device, slice_p=3)
    for grads in gradient_sequence(42, SHAPES, 10):
        cpu.step(grads)
        gpu.step([device.to_device(g) for g in grads])
    for actual, expected in zip(on_device, host):
        device.assert_matches(actual, expected)
    device.assert_trees_match(gpu.state_dict(), cpu.state_dict())
    assert [a.shape for a in cpu.state_dict()["s"]] == [(14,), (9,), (24,)]
