"""The CPU's compiled pass over state kept on a sample of a parameter's elements.

Prodigy's ``slice_p`` keeps its s and p0 on every k-th element of each
parameter (:mod:`numadam.engine.sampled`). Over NumPy arrays with the elements
in C order, this loop visits those elements where they lie: it forms the
gradient the first pass reads there (the micro-batches' mean, times the
scale, clipped, as :func:`numadam.targets.body._gradient_lines` writes it),
applies the family's :attr:`~numadam.core.algorithm.Norms.sampled` rule to one
element at a time and adds its two terms in float64. The array operations of
:func:`numadam.engine.sampled.array_pass`, the path of every other layout,
take three passes over the sample's lines and copies of it; this loop takes
one and none.

The sample's elements are cut into blocks of :data:`BLOCK`; each block's sums
are added in order, then the blocks' in order, so the sums are the same
whatever the threads. The loops are compiled once per family and number of
sampled state kinds, in each process (they are not cached on disk: the rule
they inline is the family's, and no key would follow its edits).
"""

import functools

import numpy as np
from numba import njit, prange

from ...core.clip_math import clamped
from . import threads

#: Sampled elements per block of the sums (and per piece of parallel work).
BLOCK = 8192

_SOURCE = '''
def sampled_loop(param, grad, accumulated, {states}, step, s, flags, accumulate, count, scaled, scale, clipped,
                 clip, partial):
    n = {first}.size
    for block in prange(partial.shape[0]):
        first = 0.0
        second = 0.0
        for i in range(block * BLOCK, min(n, (block + 1) * BLOCK)):
            j = i * step
            g = grad[j]
            if accumulate:
                g = (accumulated[j] + g) / count
            if scaled:
                g = g * scale
            if clipped:
                g = clamped(g, clip)
            state, terms = rule(param[j], g, ({loads},), s, flags)
{stores}
            first += terms[0]
            second += terms[1]
        partial[block, 0] = first
        partial[block, 1] = second
'''


@functools.cache
def _loop(rule, n_states, parallel):
    """The compiled loop applying ``rule`` (the family's plain function) over ``n_states`` sampled arrays."""
    names = [f"state{k}" for k in range(n_states)]
    source = _SOURCE.format(states=", ".join(names), first=names[0],
                            loads=", ".join(f"{name}[i]" for name in names),
                            stores="\n".join(f"            {name}[i] = state[{k}]" for k, name in enumerate(names)))
    namespace = {"prange": prange, "BLOCK": BLOCK, "clamped": clamped, "rule": njit(inline="always")(rule)}
    exec(source, namespace)
    return njit(parallel=parallel, error_model="numpy")(namespace["sampled_loop"])


def _flat_view(array):
    """``array``'s elements in C order as one dimension, without a copy; ``None`` where they are not
    so laid out."""
    if array is None:
        return None
    if type(array) is not np.ndarray or not array.flags.c_contiguous:
        return None
    return array.reshape(-1)


def sampled_pass(algorithm, param, grad, accumulated, state, step, row, flags, policy, q):
    """The two sums of the family's sampled rule over ``param``'s every ``step``-th element, its
    sampled ``state`` moved in place, in one compiled loop (see the module docstring and
    :func:`numadam.engine.sampled.sample_pass` for the arguments); ``None`` where the arrays do
    not allow it (elements not in C order, a dtype other than the compute dtype: the array path
    takes those)."""
    compute = param.dtype
    flat_param, flat_grad = _flat_view(param), _flat_view(grad)
    using = accumulated if policy.accumulate == "apply" else None
    flat_accumulated = _flat_view(using)
    if (flat_param is None or flat_grad is None or (using is not None and flat_accumulated is None)
            or compute.kind != "f" or compute.itemsize < 4 or grad.dtype != compute
            or any(type(a) is not np.ndarray or a.dtype != compute or a.ndim != 1 for a in state)
            or (using is not None and using.dtype != compute)):
        return None
    real = compute.type
    n = state[0].size
    partial = np.zeros((-(-n // BLOCK), 2))
    loop = _loop(algorithm.norms.sampled, len(state), partial.shape[0] > 1 and threads.parallel_allowed())
    loop(flat_param, flat_grad, flat_grad if flat_accumulated is None else flat_accumulated, *state, int(step),
         algorithm.Scalars(*(real(value) for value in row)), algorithm.Flags(*flags),
         using is not None, real(q.accumulate_count if using is not None else 1.0),
         bool(policy.grad_scale), real(q.grad_scale if policy.grad_scale else 1.0),
         bool(policy.clip_value), real(q.clip_value if policy.clip_value else 0.0), partial)
    first, second = partial.sum(axis=0)
    return float(first), float(second)
