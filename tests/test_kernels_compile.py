"""What the compilers make of the kernels: dtype kept, loops vectorized, CUDA code valid.

These read generated code rather than time it: a float32 kernel must contain no
float64 arithmetic (a promoted literal halves its speed), the CPU loop must be
vectorized, and the CUDA kernel must compile to PTX for Hopper with IEEE square
root and division (NVVM needs no GPU for that).
"""

import inspect
import re

import numba
import numpy as np
import pytest

import numadam
from numadam.targets.cpu import kernels as cpu
from numadam.core.pipeline import Policy
from numadam.engine.operands import kernel_spec
from numadam.targets.spec import algorithm

pytestmark = pytest.mark.slow


FAMILY = numadam.Adam.algorithm
VARIANTS = [(amsgrad, weight_decay) for amsgrad in (False, True) for weight_decay in (0.0, 0.1)]


def adam_spec(dtype, amsgrad, weight_decay):
    h = FAMILY.Hyper(**{**numadam.Adam._class_defaults, "amsgrad": amsgrad, "weight_decay": weight_decay})
    kinds = {kind.name for kind in FAMILY.state_kinds(h)}
    return kernel_spec(FAMILY, FAMILY.flags(h), np.dtype(dtype), kinds)


def assembly(kind, spec):
    """The machine code of a fresh compilation (Numba cannot inspect code it loaded from its cache)."""
    cached = cpu.update_parallel if kind == "parallel" else cpu.update_serial
    kernel = numba.njit(parallel=kind == "parallel", error_model="numpy")(cached.py_func)
    kernel.compile(cpu.signature("update", spec))
    return kernel.inspect_asm(cpu.signature("update", spec))


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


def family_spec(method, dtype):
    """The spec of ``method`` with its default options and weight decay on (every branch of the rule compiled)."""
    cls = numadam.families()[method]
    family = cls.algorithm
    decay = {"weight_decay": 0.1} if "weight_decay" in family.names else {}
    h = family.Hyper(**{**cls._class_defaults, **cls.pinned, **decay})
    return kernel_spec(family, family.flags(h), np.dtype(dtype), {k.name for k in family.state_kinds(h)})


@pytest.mark.parametrize("method", list(numadam.families()))
def test_every_family_keeps_float32_arithmetic_in_float32(method):
    """A float64 literal in a rule would promote the whole float32 update (and halve its speed)."""
    code = assembly("serial", family_spec(method, np.float32))
    if method == "lamb":  # its quotients by constants are float64 products (element_math.divided), on purpose
        assert re.search(r"\bvmulpd\b", code) and re.search(r"\bvcvtpd2ps\b", code)
        assert not re.search(r"\bv?(sqrt|add|sub)(sd|pd)\b|\bv?divpd\b", code), "float32 arithmetic promoted"
    else:
        assert not re.search(r"\bv?(sqrt|div|mul|add|sub)(sd|pd)\b", code), "float32 arithmetic promoted to float64"
        assert not re.search(r"\bv?cvtss2sd\b", code)
    assert re.search(r"\bv?(mul|add|sub)ps\b", code), "the contiguous loop is not vectorized"


@pytest.mark.parametrize("dtype, vector", [(np.float32, "v4.f32"), (np.float64, "v2.f64")])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_cuda_vector_accesses_are_one_instruction_per_operand(monkeypatch, dtype, vector, amsgrad):
    """With ``body.VECTOR_LOADS``, every operand's four neighbours are one vector load (float64: two
    16-byte ones) and every written operand's one vector store; without it, none."""
    from numadam.targets import body
    from numadam.targets.cuda import kernels as cuda_kernels

    spec = adam_spec(dtype, amsgrad, 0.0)
    n_read, n_written = (5, 4) if amsgrad else (4, 3)
    per_operand = 1 if dtype == np.float32 else 2
    complex_spec = kernel_spec(FAMILY, FAMILY.flags(FAMILY.Hyper(**numadam.Adam._class_defaults)),
                               np.dtype(np.complex64), {"exp_avg", "exp_avg_sq"})
    for enabled in (True, False):
        monkeypatch.setattr(body, "VECTOR_LOADS", enabled)
        cuda_kernels.kernel_for.cache_clear()
        assert "ld.global" in compile_cuda(complex_spec)  # complex operands: element by element, never a vector
        ptx = compile_cuda(spec)
        assert len(re.findall(rf"\bld\.global\.{vector}\b", ptx)) == (n_read * per_operand if enabled else 0)
        assert len(re.findall(rf"\bst\.global\.{vector}\b", ptx)) == (n_written * per_operand if enabled else 0)
    cuda_kernels.kernel_for.cache_clear()


def compile_cuda(spec, device_step=False):
    from numba import cuda

    from numadam.targets.cuda import kernels as cuda_kernels

    if cuda_kernels.SIMULATED:
        pytest.fail("the simulator is on in the main test process")
    real = numba.types.float32 if spec.real == "float32" else numba.types.float64
    signature = (numba.types.int64,) * 6 + (real,) + (numba.types.int64,) * 3
    ptx, _ = cuda.compile_ptx(cuda_kernels.kernel_for(spec, device_step).py_func, signature, cc=(9, 0))
    return ptx


@pytest.mark.parametrize("spec", [adam_spec(dtype, *variant) for dtype in (np.float32, np.float64)
                                  for variant in VARIANTS]
                         + [family_spec(method, np.float32) for method in list(numadam.families())[2:]],
                         ids=lambda spec: f"{spec.rule}-{spec.real}-{spec.operands[-1] or 'no'}-{spec.flags}")
def test_cuda_kernel_compiles_to_ptx_for_hopper(spec):
    dtype = np.dtype(spec.real)
    ptx = compile_cuda(spec)
    width = 32 if dtype == np.float32 else 64
    assert ".target sm_90" in ptx
    source = inspect.getsource(algorithm(spec.rule).rule.py_func)
    if "sqrt(" in source:  # an infinity norm (Adamax) takes no root, plain SGD neither
        assert f"sqrt.rn.f{width}" in ptx, "square root must be IEEE round-to-nearest"
    if " / " in source:  # nor does the sign of a momentum (Lion) divide
        assert f"div.rn.f{width}" in ptx, "division must be IEEE round-to-nearest"
    assert not re.search(r"\b(sqrt|div)\.(approx|full)", ptx), "no approximate roots or divisions"
    assert re.search(rf"ld\.global(\.\w+)*\.f{width}", ptx), "element loads should be global-memory loads"
    if dtype == np.float32:
        assert not re.search(r"\b(add|sub|mul|div|sqrt|fma)(\.\w+)*\.f64\b", ptx), "float32 kernel uses float64"


def policy_spec(method, policy):
    cls = numadam.families()[method]
    family = cls.algorithm
    decay = {"weight_decay": 0.1} if "weight_decay" in family.names else {}
    h = family.Hyper(**{**cls._class_defaults, **cls.pinned, **decay})
    return kernel_spec(family, family.flags(h), np.dtype(np.float32), {k.name for k in family.state_kinds(h)}, policy)


POLICIES = {
    "everything": Policy(accumulate="apply", grad_scale=True, clip_value=True, bounds=True, ema=True),
    "add": Policy(accumulate="add"),
}


@pytest.mark.parametrize("name", POLICIES)
def test_policy_kernels_compile_to_ptx_and_for_the_cpu_in_float32(name):
    spec = policy_spec("adam", POLICIES[name])
    ptx = compile_cuda(spec)
    assert ".target sm_90" in ptx
    code = assembly("serial", spec)
    if name == "add":  # the float64 accumulator: float32 gradients are widened, nothing else
        assert re.search(r"\bv?addpd\b|\bv?addsd\b", code)
    else:
        assert not re.search(r"\bv?(sqrt|mul)(sd|pd)\b", code), "float32 arithmetic promoted to float64"


@pytest.mark.parametrize("method, reduction", [("adam", "gradient"), ("lamb", "norms")])
def test_reduction_kernels_compile_to_ptx(method, reduction):
    from numba import cuda

    from numadam.targets.cuda import kernels as cuda_kernels

    spec = policy_spec(method, Policy(reduction=reduction))
    signature = (numba.types.int64,) * 5 + (numba.types.int64, numba.types.float32, numba.types.int64)
    ptx, _ = cuda.compile_ptx(cuda_kernels.reduction_kernel_for(spec).py_func, signature, cc=(9, 0))
    assert ".shared" in ptx and "bar.sync" in ptx, "a block reduces its threads' sums in shared memory"
    assert re.search(r"add(\.rn)?\.f64", ptx), "the sums are float64"


@pytest.mark.parametrize("method", ["adam", "lamb", "prodigy"])
def test_a_family_with_a_norms_pass_stores_its_state_there_and_its_update_only_the_parameter(method):
    """LAMB's and Prodigy's update reads the state its first pass stored and leaves it as it is, so
    it stores the parameter alone (Prodigy: 4 bytes an element instead of 20); Adam's update
    stores its moments. (Adafactor's state is its factors, which its factors' pass stores.)"""
    from numadam.targets import body

    spec = policy_spec(method, Policy())
    family = numadam.families()[method].algorithm
    state = [k for k in range(2, 2 + len(family.state)) if spec.operands[k]
             and family.state_names[k - 2] not in family.read_only_state]
    assert state, "every family here has state its rule writes"

    def stored(source):
        return {int(k) for k in re.findall(r"^\s*o(\d+)\[[^\]]*\] = ", source, re.MULTILINE)}

    for strided_threads in (False, True):
        update = stored(body.piece_source(spec, strided_threads))
        assert update == ({0} if family.norms is not None else {0, *state})
    if family.norms is not None:
        first_pass = stored(body.reduction_source(policy_spec(method, Policy(reduction="norms")), False))
        assert first_pass == set(state)


def test_the_device_counted_step_kernels_compile_to_ptx():
    """The update that reads its step from the control block, and the one-block kernels around it."""
    from numba import cuda

    from numadam.targets.cuda import kernels as cuda_kernels

    ptx = compile_cuda(policy_spec("nadam", Policy(grad_scale=True)), device_step=True)
    assert ".target sm_90" in ptx
    finalize, commit = cuda_kernels.control_kernels()
    int64, float64, float32 = numba.types.int64, numba.types.float64, numba.types.float32
    cuda.compile_ptx(finalize.py_func, (int64, int64, int64, float64, int64, int64, int64, int64, float32), cc=(9, 0))
    cuda.compile_ptx(commit.py_func, (int64,), cc=(9, 0))


@pytest.mark.parametrize("real", ["float32", "float64"])
@pytest.mark.parametrize("method", ["lamb", "adafactor"])
def test_the_norms_values_kernel_compiles_to_ptx_with_ieee_roots_and_divisions(method, real):
    """LAMB's trust ratios and Adafactor's step sizes (a value per parameter, from its row) on
    the GPU: the norms' sums per parameter, the family's value written into the update's rows.
    Valid PTX for Hopper, its square roots and division IEEE (``.rn``), and the value stored in
    the rows' dtype."""
    from numba import cuda

    from numadam.targets.cuda import kernels as cuda_kernels

    family = numadam.families()[method].algorithm
    kernel = cuda_kernels.norms_values_kernel(family.norms.value,
                                              family.Scalars if family.norms.per_parameter else None)
    int64 = numba.types.int64
    ptx, _ = cuda.compile_ptx(kernel.py_func, (int64,) * 8 + (getattr(numba.types, real),), cc=(9, 0))
    assert ".target sm_90" in ptx
    assert re.search(r"sqrt\.rn\.f64", ptx) and re.search(r"div\.rn\.f64", ptx)
    assert re.search(r"st\.global\.f32" if real == "float32" else r"st\.global\.f64", ptx)


def storage_spec(storage, state=None, **policy):
    storage = np.dtype(pytest.importorskip("ml_dtypes").bfloat16 if storage == "bfloat16" else storage)
    h = FAMILY.Hyper(**{**numadam.Adam._class_defaults, "weight_decay": 0.1})
    kinds = {kind.name for kind in FAMILY.state_kinds(h)}
    return kernel_spec(FAMILY, FAMILY.flags(h), storage, kinds, Policy(**policy),
                       None if state is None else np.dtype(pytest.importorskip("ml_dtypes").bfloat16))


STORAGE_SPECS = {
    "float16": ("float16", None, {}),
    "bfloat16": ("bfloat16", None, {}),
    "bfloat16-master": ("bfloat16", None, {"master": True}),
    "float16-stochastic": ("float16", None, {"stochastic": True}),
    "float32-bfloat16-state": ("float32", "bfloat16", {}),
}


@pytest.mark.parametrize("name", STORAGE_SPECS)
def test_16_bit_storage_compiles_to_16_bit_moves_and_float32_arithmetic(name):
    """16-bit operands are loaded and stored as 16 bits and computed on in float32, on both targets."""
    storage, state, policy = STORAGE_SPECS[name]
    spec = storage_spec(storage, state, **policy)
    ptx = compile_cuda(spec)
    assert re.search(r"ld\.global(\.\w+)*\.[ub]16", ptx) and re.search(r"st\.global(\.\w+)*\.[ub]16", ptx)
    assert not re.search(r"\b(add|sub|mul|div|sqrt|fma)(\.\w+)*\.f(16|64)\b", ptx), "arithmetic outside float32"
    if storage == "float16":
        assert re.search(r"cvt\.rn\.f16\.f32", ptx), "narrowing to half must round to nearest even"
    code = assembly("serial", spec)
    assert not re.search(r"\bv?(sqrt|div|mul)(sd|pd)\b", code), "float32 arithmetic promoted to float64"


def int8_spec():
    """Adam with AMSGrad and 8-bit state, float32 parameters."""
    h = FAMILY.Hyper(**{**numadam.Adam._class_defaults, "amsgrad": True})
    return kernel_spec(FAMILY, FAMILY.flags(h), np.dtype(np.float32), {k.name for k in FAMILY.state_kinds(h)},
                       state=np.dtype(np.int8))


def test_the_8_bit_state_block_kernel_compiles_to_ptx():
    """Blocks of 8-bit codes: byte loads and stores, a shared-memory block of new state per warp, the
    largest magnitude by shuffles, no barrier across the thread block, float32 arithmetic."""
    from numba import cuda

    from numadam.targets.cuda import kernels as cuda_kernels

    int64 = numba.types.int64
    signature = (int64,) * 6 + (numba.types.float32, int64)
    ptx, _ = cuda.compile_ptx(cuda_kernels.block_kernel_for(int8_spec()).py_func, signature, cc=(9, 0))
    assert re.search(r"ld\.global(\.\w+)*\.[us]8", ptx) and re.search(r"st\.global(\.\w+)*\.[us]8", ptx)
    assert ".shared" in ptx and "shfl.sync.bfly" in ptx and "bar.warp.sync" in ptx
    assert "bar.sync" not in ptx and "barrier.sync" not in ptx, "the warps of a thread block wait for each other"
    assert not re.search(r"\b(add|sub|mul|div|sqrt|fma)(\.\w+)*\.f64\b", ptx), "arithmetic outside float32"
    # Decoding is arithmetic: no table of numbers (a table is constant data, copied for each use)
    # beyond the octaves' bounds, slopes and offsets that encoding picks from.
    arrays = re.findall(r"^\s*\.(?:global|const)\s+\.align\s+\d+\s+\.[bufs](\d+)\s+\S+\[(\d+)\]", ptx, re.M)
    assert all(int(count) <= 8 for _, count in arrays), arrays


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_elements_compile_on_both_targets(dtype):
    """complex_mode='magnitude': complex operands and a real second moment, in the parts' precision."""
    h = FAMILY.Hyper(**{**numadam.Adam._class_defaults, "amsgrad": True, "weight_decay": 0.1})
    spec = kernel_spec(FAMILY, FAMILY.flags(h), np.dtype(dtype), {k.name for k in FAMILY.state_kinds(h)})
    assert spec.operands[:5] == ("c8", "c8", "c8", "f4", "f4") if dtype == np.complex64 else \
        spec.operands[:5] == ("c16", "c16", "c16", "f8", "f8")
    ptx = compile_cuda(spec)
    if dtype == np.complex64:
        assert not re.search(r"\b(add|sub|mul|div|sqrt|fma)(\.\w+)*\.f64\b", ptx), "arithmetic outside float32"
        assert not re.search(r"\bv?(sqrt|div|mul)(sd|pd)\b", assembly("serial", spec)), "promoted to float64"
    else:
        assembly("serial", spec)


def scalar_arguments_ptx(kind, spec, n_values):
    """PTX of the ``kind`` kernel of ``spec`` taking ``n_values`` scalars as arguments (0: at an address)."""
    from numba import cuda

    from numadam.targets.cuda import kernels as cuda_kernels

    signature = cuda_kernels.update_signature(spec, n_values)
    if kind != "update":  # (table, width, segments, pieces or blocks, their count, scalars, like, out or scales)
        signature = signature[:7] + (numba.types.int64,)
    kernel = {"update": cuda_kernels.kernel_for, "reduction": cuda_kernels.reduction_kernel_for,
              "blocks": cuda_kernels.block_kernel_for}[kind](spec)
    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
    return ptx


def kernel_parameters(ptx):
    """The types of the kernel's parameters, in order."""
    entry = ptx[ptx.index(".entry"):]
    return re.findall(r"\.param \.(\w+)", entry[:entry.index(")")])


@pytest.mark.parametrize("kind, spec", [("update", adam_spec(np.float32, True, 0.1)),
                                        ("update", adam_spec(np.float64, False, 0.0)),
                                        ("reduction", policy_spec("adam", Policy(accumulate="apply",
                                                                                 reduction="gradient"))),
                                        ("reduction", policy_spec("lamb", Policy(reduction="norms"))),
                                        ("blocks", int8_spec())],
                         ids=["update-float32", "update-float64", "reduction", "norms", "blocks"])
def test_scalars_passed_as_arguments_are_kernel_parameters(kind, spec):
    """Two rows of scalars as arguments: a parameter of the real dtype for each value where the
    address was, stored once into the thread's local memory, where each piece reads its row.
    (The gradient's pre-pass reads a scalar only when it takes the mean of accumulated gradients.)"""
    width = 32 if spec.real == "float32" else 64
    n_values = 2 * spec.n_scalars
    by_address = kernel_parameters(scalar_arguments_ptx(kind, spec, 0))
    ptx = scalar_arguments_ptx(kind, spec, n_values)
    assert kernel_parameters(ptx) == by_address[:5] + [f"f{width}"] * n_values + by_address[6:]
    stored = re.findall(rf"st\.local(?:\.v(\d))?\.[bf]{width}\b", ptx)  # (st.local.v2.f32 stores two)
    assert sum(int(vector or 1) for vector in stored) == n_values, "one copy of the values"
    assert re.search(rf"ld\.local(\.v\d)?\.[bf]{width}\b", ptx), "rows read from the copy"
    if width == 32 and kind == "update":  # (the pre-pass sums in float64)
        assert not re.search(r"\b(add|sub|mul|div|sqrt|fma)(\.\w+)*\.f64\b", ptx), "float32 kernel uses float64"


@pytest.mark.parametrize("real", ["float32", "float64"])
def test_the_factors_pass_compiles_to_ptx(real):
    """Adafactor's factors' pass on CUDA: the tile kernel reads the gradient, stages its squares in
    shared memory and sums them in float64; the one-block row mean sums in a tree."""
    from numba import cuda

    from numadam.targets.cuda import factors as cuda_factors

    dtype = getattr(numba.types, real)
    matrices, factor, sums = dtype[:, :, :], dtype[:, :, :], numba.types.float64[:, :, :]  # batches of matrices
    ptx, _ = cuda.compile_ptx(cuda_factors._tile_sums.py_func, (matrices, dtype, dtype, sums, sums), cc=(9, 0))
    assert ".shared" in ptx and "bar.sync" in ptx, "the squares are staged in shared memory"
    assert re.search(r"add(\.rn)?\.f64", ptx), "the sums are float64"
    assert ".local" not in ptx, "nothing spills to local memory"
    column = dtype[:, :, ::1]  # the rows' factor comes as a transposed view (any layout), the columns' in C order
    cuda.compile_ptx(cuda_factors._finish_factors.py_func, (sums, numba.types.int64, factor, column, sums,
                                                            numba.types.int64, column, column, dtype, dtype),
                     cc=(9, 0))
    mean, _ = cuda.compile_ptx(cuda_factors._floored_mean.py_func, (factor, dtype, factor), cc=(9, 0))
    assert "bar.sync" in mean
    cuda.compile_ptx(cuda_factors._scales.py_func, (factor, factor, factor, factor, dtype, factor), cc=(9, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["momentum", "apply"])
def test_muons_elementwise_passes_compile_to_ptx_in_their_dtype(name, dtype):
    """Muon's two passes (numadam/muon/elementwise.py) are rules like every family's: their CUDA
    kernels compile for Hopper with every branch on, and a float32 kernel computes in float32."""
    from numadam.muon.elementwise import APPLY, MOMENTUM

    family = MOMENTUM if name == "momentum" else APPLY
    values = {"momentum": 0.95, "nesterov": True} if name == "momentum" else {"lr": 0.02, "weight_decay": 0.1,
                                                                           "ratio": 1.5}
    h = family.Hyper(**values)
    spec = kernel_spec(family, family.flags(h), np.dtype(dtype), {k.name for k in family.state_kinds(h)})
    ptx = compile_cuda(spec)
    width = 32 if dtype == np.float32 else 64
    assert ".target sm_90" in ptx and re.search(rf"ld\.global(\.\w+)*\.f{width}", ptx)
    if dtype == np.float32:
        assert not re.search(r"\b(add|sub|mul|div|sqrt|fma)(\.\w+)*\.f64\b", ptx), "float32 kernel uses float64"
