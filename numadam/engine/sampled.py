"""State kept on a sample of each parameter's elements (Prodigy's ``slice_p``).

A state kind may keep one value for every k-th element of its parameter
(:attr:`numadam.core.algorithm.StateKind.sampled`): the elements at C-order
positions 0, k, 2k, ..., as ``p.flatten()[::k]`` takes them, ceil(n / k) values
in one dimension. The kernels never see such state. Before the first pass of
a step, the family's :attr:`~numadam.core.algorithm.Norms.sampled` pass moves
it from the same elements of the parameter and of the gradient, and returns
what they add to the pass's two sums. This module takes those elements out of
the arrays (:func:`sample`) and forms the gradient the first pass would read
there (:func:`effective_gradient`), with array methods only, so that NumPy's
and CuPy's arrays take the same code.
"""

import numpy as np

from ..core import dtypes


def check_sampled(algorithm, h, parameter_dtypes, paths):
    """What state kept on a sample refuses, before anything is made: complex parameters (a sample
    of complex numbers has no real sums to add)."""
    step = algorithm.sample_step(h)
    if step == 1:
        return
    for dtype, path in zip(parameter_dtypes, paths):
        if dtype.kind == "c":
            raise ValueError(f"slice_p={step} keeps {algorithm.title}'s statistics on one element in every {step}, "
                             f"which takes real parameters; {path} is {dtype} (take slice_p=1)")


def sample_size(size, step):
    """The number of elements a sample of every ``step``-th of ``size`` keeps: ceil(size / step)."""
    return -(-int(size) // int(step))


def sample(array, step, dtype):
    """Every ``step``-th element of ``array`` in C order (a one-dimensional copy of dtype ``dtype``).
    A parameter whose elements do not lie in C order is first copied whole (``reshape``)."""
    return array.reshape(-1)[::step].astype(dtype)


def effective_gradient(grad, accumulated, policy, q):
    """The gradient the first pass reads, from the sampled ``grad`` and ``accumulated`` (the sampled
    accumulator, or ``None``), as the kernels form it (:func:`numadam.targets.body._gradient_lines`):
    the micro-batches' mean, times the scale, clipped to ``[-clip_value, clip_value]`` (NaN stays
    NaN). ``policy`` is the first pass's :class:`~numadam.core.pipeline.Policy`, ``q`` its
    :class:`~numadam.core.pipeline.PolicyScalars` (float64; each rounded to the gradient's dtype once)."""
    real = grad.dtype.type
    if policy.accumulate == "apply":
        grad = (accumulated + grad) / real(q.accumulate_count)
    if policy.grad_scale:
        grad = grad * real(q.grad_scale)
    if policy.clip_value:
        grad = grad.clip(-real(q.clip_value), real(q.clip_value))
    return grad


def sample_pass(backend, algorithm, param, grad, accumulated, state, step, row, flags, policy, q):
    """The family's pass over one parameter's sampled state ``state`` (its arrays, in the family's
    order, moved in place): the backend's compiled pass where it has one for these arrays, else
    :func:`array_pass`. ``param`` is what the rule reads (the master copy where there is one),
    ``accumulated`` the accumulator or ``None``, ``row`` the parameter's scalar row of the first pass
    (the family's fields first, float64), ``flags`` the rule's flags' values, ``policy`` and ``q``
    the first pass's policy and its scalars. Returns the two sums (float64)."""
    row = row[:len(algorithm.Scalars._fields)]
    compiled = backend.sampled_pass
    if compiled is not None:
        found = compiled(algorithm, param, grad, accumulated, state, step, row, flags, policy, q)
        if found is not None:
            return found
    return array_pass(algorithm, param, grad, accumulated, state, step, row, flags, policy, q)


def array_pass(algorithm, param, grad, accumulated, state, step, row, flags, policy, q):
    """:func:`sample_pass` with array operations (NumPy's or CuPy's): the family's rule applied to
    the whole sample at once, each scalar rounded to the compute dtype once; the terms summed
    in float64."""
    compute = dtypes.compute_dtype(param.dtype)
    real = compute.type
    s = algorithm.Scalars(*(real(value) for value in row))
    gradient = sample(grad, step, compute)
    if accumulated is not None and policy.accumulate == "apply":
        accumulated = sample(accumulated, step, compute)
    gradient = effective_gradient(gradient, accumulated, policy, q)
    moved, (first, second) = algorithm.norms.sampled(sample(param, step, compute), gradient,
                                                    tuple(array.astype(compute) for array in state), s,
                                                    algorithm.Flags(*flags))
    for target, value in zip(state, moved):
        target[...] = value
    return float(np.sum(first, dtype=np.float64)), float(np.sum(second, dtype=np.float64))


def sampled_sums(bucket, step, rows, flags, policy, q):
    """Per parameter of ``bucket``, in its order, the two sums the family's sampled pass adds (its
    sampled state moved in place), over the gradients of the bucket's last bind; ``rows[k]`` is
    parameter ``k``'s scalar row of the first pass (the family's fields first)."""
    names = [kind.name for kind in bucket.algorithm.state if kind.name in bucket.sampled]
    sums = np.zeros((len(bucket.params), 2))
    accumulators = bucket.policy_state.get("accumulator")
    for k, grad in enumerate(bucket.bound_grads):
        param = bucket.policy_state["master"][k] if policy.master else bucket.params[k]
        accumulated = None if accumulators is None else accumulators[k]
        sums[k] = sample_pass(bucket.backend, bucket.algorithm, param, grad, accumulated,
                              [bucket.state[name][k] for name in names], step, rows[k], flags, policy, q)
    return sums
