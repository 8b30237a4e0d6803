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


def sampled_sums(bucket, step, rows, flags, policy, q):
    """Per parameter of ``bucket``, in its order, the two sums the family's sampled pass adds (its
    sampled state moved in place), over the gradients of the bucket's last bind; ``rows[k]`` is
    parameter ``k``'s scalar row of the first pass (the family's fields first)."""
    algorithm = bucket.algorithm
    sums = np.zeros((len(bucket.params), 2))
    accumulators = bucket.policy_state.get("accumulator")
    for k, grad in enumerate(bucket.bound_grads):
        param = bucket.policy_state["master"][k] if policy.master else bucket.params[k]
        gradient = sample(grad, step, bucket.compute)
        accumulated = (None if accumulators is None or policy.accumulate != "apply"
                       else sample(accumulators[k], step, bucket.compute))
        gradient = effective_gradient(gradient, accumulated, policy, q)
        state = {name: bucket.state[name][k] for name in bucket.sampled}
        s = algorithm.Scalars(*(float(value) for value in rows[k][:len(algorithm.Scalars._fields)]))
        sums[k] = algorithm.norms.sampled(sample(param, step, bucket.compute), gradient, state, s,
                                          algorithm.Flags(*flags))
    return sums
