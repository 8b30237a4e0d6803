r"""The Newton–Schulz iteration of Muon, on a stack of same-shape matrices at once.

For each matrix :math:`G` of a stack (shape ``(k, m, n)``), with coefficients
:math:`(a, b, c)` and ``steps`` iterations, as ``torch.optim.Muon`` computes it:

.. math::

    X &\leftarrow G^{\top} \text{ if } m > n \text{ else } G, \qquad
    X \leftarrow X / \max(\|X\|_F, \epsilon) \\
    A &= X X^{\top}, \qquad B = b A + c A A, \qquad X \leftarrow a X + B X
    \quad \text{(``steps`` times)}

transposed back at the end. With ``ns_dtype="bfloat16"`` the matrix is rounded
to bfloat16 first and every product's result (``A``, ``B``, the new ``X``) and
the normalized ``X`` are rounded to bfloat16, each product accumulating in
float32: torch's arithmetic. With ``"float32"`` nothing is rounded.

The products are the array library's own: NumPy's BLAS (OpenBLAS), cuBLAS
for CuPy (one batched call for the stack), ``torch.matmul`` and ``baddbmm``
for torch tensors, in real bfloat16 there. NumPy and CuPy have no bfloat16
product: they multiply the bfloat16 values in float32 and round the result,
which agrees with torch up to the order of accumulation.

On a GPU with TF32 tensor cores (compute capability 8.0 and later), the
bfloat16 iteration's products run on them (cuBLAS's
``CUBLAS_COMPUTE_32F_FAST_TF32``): TF32 keeps 10 bits of fraction, so the
bfloat16 values (7 bits) reach the tensor cores exactly, and the products
accumulate in float32 as before. Only the order of accumulation changes. The
float32 iteration keeps cuBLAS's float32 arithmetic.
"""

import functools

import numpy as np

from ..adapters.foreign import is_tensor
from ..targets.disk_cache import cached_njit

#: The names ``ns_dtype`` takes.
NS_DTYPES = ("bfloat16", "float32")

_SIGN_AND_EXPONENT_MASK = np.uint32(0xFFFF0000)


@cached_njit()
def _round_to_bfloat16_cpu(bits):
    """Round float32 values (their bits, flat) to the nearest bfloat16 value, ties to even, in place.

    One thread, on purpose: it runs between BLAS calls, and a parallel region's OpenMP threads keep
    spinning after it, taking the cores from the next product's BLAS threads (measured: the
    iteration twice as slow on two cores)."""
    for i in range(bits.size):
        word = bits[i]
        if (word & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):  # NaN: stays a (quiet) NaN
            bits[i] = (word | np.uint32(0x00400000)) & _SIGN_AND_EXPONENT_MASK
        else:
            bits[i] = (word + np.uint32(0x7FFF) + ((word >> np.uint32(16)) & np.uint32(1))) & _SIGN_AND_EXPONENT_MASK


def round_to_bfloat16(x):
    """``x`` (a C-contiguous float32 NumPy or CuPy array) rounded to bfloat16 values in place; returns ``x``."""
    bits = x.reshape(-1).view(np.uint32)
    if isinstance(x, np.ndarray):
        _round_to_bfloat16_cpu(bits)
    else:
        _cupy_rounding_kernel()(bits, bits)
    return x


@functools.cache
def _cupy_rounding_kernel():
    """The rounding of :func:`_round_to_bfloat16_cpu` as one CuPy kernel over float32 bits (a chain of
    CuPy's array operations read and wrote the array about ten times: the iteration's largest cost)."""
    import cupy

    return cupy.ElementwiseKernel(
        "uint32 word", "uint32 rounded",
        """
        if ((word & 0x7FFFFFFFu) > 0x7F800000u) {
            rounded = (word | 0x00400000u) & 0xFFFF0000u;
        } else {
            rounded = (word + 0x7FFFu + ((word >> 16) & 1u)) & 0xFFFF0000u;
        }
        """,
        "numadam_round_to_bfloat16")


def _kept(x):
    return x


def gemm_arguments(first_shape, second_shape, second_transposed):
    """cuBLAS's column-major arguments for ``out[i] = first[i] @ second[i]`` (``second[i]ᵀ`` with
    ``second_transposed``) over C-contiguous ``(count, rows, columns)`` stacks.

    cuBLAS reads a row-major matrix as its transpose, so it computes
    :math:`C^{\top} = B^{\top} A^{\top}`: its first operand is ``second``'s memory
    and its second ``first``'s. A transposed ``second`` is read as it lies
    (``transa`` = 1). Returns ``(transa, transb, m, n, k, lda, stride_a, ldb,
    stride_b, ldc, stride_c)``, where ``a`` is ``second`` and ``b`` is ``first``.
    """
    count, rows, inner = first_shape
    if second_transposed:
        columns, second_inner = second_shape[1:]
    else:
        second_inner, columns = second_shape[1:]
    if second_inner != inner or second_shape[0] != count:
        raise ValueError(f"stacks of shapes {first_shape} and {second_shape} do not multiply "
                         f"(second transposed: {second_transposed})")
    lda = inner if second_transposed else columns
    return (1 if second_transposed else 0, 0, columns, rows, inner, lda, inner * columns, inner,
            rows * inner, columns, rows * columns)


def _tf32_products(first, second, out, second_transposed):
    """``out[i] = first[i] @ second[i]`` (``second[i]ᵀ``) for C-contiguous float32 CuPy stacks, in one
    cuBLAS call on TF32 tensor cores, on the current stream."""
    from cupy.cuda import device
    from cupy_backends.cuda.api import runtime
    from cupy_backends.cuda.libs import cublas

    transa, transb, m, n, k, lda, stride_a, ldb, stride_b, ldc, stride_c = gemm_arguments(
        first.shape, second.shape, second_transposed)
    one, zero = np.ones(1, dtype=np.float32), np.zeros(1, dtype=np.float32)
    cublas.gemmStridedBatchedEx(
        device.get_cublas_handle(), transa, transb, m, n, k, one.ctypes.data,
        second.data.ptr, runtime.CUDA_R_32F, lda, stride_a,
        first.data.ptr, runtime.CUDA_R_32F, ldb, stride_b,
        zero.ctypes.data, out.data.ptr, runtime.CUDA_R_32F, ldc, stride_c,
        first.shape[0], cublas.CUBLAS_COMPUTE_32F_FAST_TF32, cublas.CUBLAS_GEMM_DEFAULT)
    return out


def _has_tf32_tensor_cores():
    import cupy

    return int(cupy.cuda.Device().compute_capability) >= 80


class Workspace:
    """The arrays one stack's iteration writes, kept between steps (NumPy and CuPy): fresh ones at
    every step cost page faults and allocator work that measured 15% of a 64 x 256 x 256 step."""

    def __init__(self, stack):
        xp = np if isinstance(stack, np.ndarray) else _cupy()
        count, rows, columns = stack.shape
        short, long = min(rows, columns), max(rows, columns)
        self.x = xp.empty((count, short, long), dtype=np.float32)
        self.product = xp.empty_like(self.x)
        self.gram = xp.empty((count, short, short), dtype=np.float32)
        self.square = xp.empty_like(self.gram)
        transposed = rows > columns
        #: The result in the stack's dtype and layout, where the iterate is not already that.
        self.result = xp.empty(stack.shape, dtype=stack.dtype) if transposed or stack.dtype != np.float32 else None
        #: Whether the bfloat16 iteration's products run on TF32 tensor cores (CuPy, on such a GPU).
        self.tensor_cores = xp is not np and _has_tf32_tensor_cores()


def orthogonalized(stack, coefficients, steps, eps, ns_dtype, workspace=None):
    """The Newton–Schulz iterate of each matrix of ``stack`` (``(k, m, n)``), in ``stack``'s dtype and C order.

    ``stack`` is a NumPy, CuPy or torch array and is left as it is. For NumPy
    and CuPy the result lives in ``workspace`` (a :class:`Workspace` of this
    stack; a new one if ``None``) until the next call with it.
    """
    if is_tensor(stack):
        iterate = _orthogonalized_torch(stack, coefficients, steps, eps, ns_dtype)
        return iterate.to(stack.dtype).contiguous()
    work = Workspace(stack) if workspace is None else workspace
    xp = np if isinstance(stack, np.ndarray) else _cupy()
    rounded = round_to_bfloat16 if ns_dtype == "bfloat16" else _kept
    a, b, c = (np.float32(value) for value in coefficients)
    tall = stack.shape[-2] > stack.shape[-1]
    x, gram, square, product = work.x, work.gram, work.square, work.product
    x[...] = stack.swapaxes(-1, -2) if tall else stack
    rounded(x)
    norm = xp.sqrt(xp.square(x).sum(axis=(1, 2), dtype=np.float64)).astype(np.float32)
    floor = rounded(xp.full(1, eps, dtype=np.float32))
    norm = xp.maximum(rounded(norm), floor)
    x /= norm[:, None, None]
    rounded(x)
    if ns_dtype == "bfloat16" and work.tensor_cores:
        multiplied = _tf32_products
    else:
        def multiplied(first, second, out, second_transposed):
            return xp.matmul(first, second.swapaxes(-1, -2) if second_transposed else second, out=out)
    for _ in range(steps):
        multiplied(x, x, gram, True)
        rounded(gram)
        multiplied(gram, gram, square, False)
        square *= c
        gram *= b
        square += gram
        rounded(square)  # B = b A + c A A
        multiplied(square, x, product, False)
        x *= a
        x += product
        rounded(x)  # X = a X + B X
    if work.result is None:
        return x
    work.result[...] = x.swapaxes(-1, -2) if tall else x
    return work.result


def _orthogonalized_torch(stack, coefficients, steps, eps, ns_dtype):
    """torch's own iteration, batched with ``baddbmm`` (``addmm`` for one matrix, as torch.optim.Muon)."""
    import torch

    a, b, c = coefficients
    x = stack.to(torch.bfloat16 if ns_dtype == "bfloat16" else torch.float32)
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    if x.shape[0] == 1:
        x = x[0]
        x = x / x.norm().clamp(min=eps)
        for _ in range(steps):
            gram = x @ x.T
            square = torch.addmm(gram, gram, gram, beta=b, alpha=c)
            x = torch.addmm(x, square, x, beta=a)
        x = x[None]
    else:
        x = x / torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True).clamp(min=eps)
        for _ in range(steps):
            gram = x @ x.mT
            square = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
            x = torch.baddbmm(x, square, x, beta=a)
    return x.mT if tall else x


def _cupy():
    import cupy

    return cupy
