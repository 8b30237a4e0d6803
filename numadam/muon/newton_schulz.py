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
through CuPy's ``matmul`` (one batched call for the stack), ``torch.matmul``
and ``baddbmm`` for torch tensors, in real bfloat16 there. NumPy and CuPy have
no bfloat16 product: they multiply the bfloat16 values in float32 and round
the result, which agrees with torch up to the order of accumulation.
"""

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
        return x
    import cupy

    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & _SIGN_AND_EXPONENT_MASK
    bits[...] = cupy.where(nan, (bits | np.uint32(0x00400000)) & _SIGN_AND_EXPONENT_MASK, rounded)
    return x


def _kept(x):
    return x


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
    for _ in range(steps):
        xp.matmul(x, x.swapaxes(-1, -2), out=gram)
        rounded(gram)
        xp.matmul(gram, gram, out=square)
        square *= c
        gram *= b
        square += gram
        rounded(square)  # B = b A + c A A
        xp.matmul(square, x, out=product)
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
