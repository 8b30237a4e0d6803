r"""The same-traffic kernels: the memory roofline of an Adam step.

An Adam step is bound by memory, so the fastest conceivable step is a loop
that moves the same bytes and does almost no arithmetic. For every element,

.. math::

    p \leftarrow p + g, \qquad m \leftarrow m + g, \qquad v \leftarrow v + g
    \;(\text{and } \hat v \leftarrow \hat v + g \text{ for AMSGrad})

reads ``p, g, m, v`` (and ``v_max``) and writes ``p, m, v`` (and ``v_max``):
exactly the traffic of :func:`numadam.adam_step`, in the array's dtype. Each
loop is compiled twice: on Numba's thread pool (``parallel=True``), and on the
calling thread, which wins for small arrays because waking threads costs
microseconds.

Examples
--------
>>> import numpy as np
>>> p, g, m, v = (np.full(4, x, np.float32) for x in (1, 2, 3, 4))
>>> kernel_for(4, amsgrad=False)(p, g, m, v)
>>> p, m, v
(array([3., 3., 3., 3.], dtype=float32), array([5., 5., 5., 5.], dtype=float32), array([6., 6., 6., 6.], dtype=float32))
"""

from numba import njit, prange

#: Below this many elements :func:`kernel_for` picks the serial kernel.
SERIAL_BELOW = 1 << 16


def _adam_traffic(param, grad, exp_avg, exp_avg_sq):
    for i in prange(param.size):
        g = grad[i]
        param[i] += g
        exp_avg[i] += g
        exp_avg_sq[i] += g


def _amsgrad_traffic(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq):
    for i in prange(param.size):
        g = grad[i]
        param[i] += g
        exp_avg[i] += g
        exp_avg_sq[i] += g
        max_exp_avg_sq[i] += g


# ``prange`` is a plain ``range`` when the function is compiled without parallel=True.
adam_traffic_parallel = njit(parallel=True, error_model="numpy")(_adam_traffic)
adam_traffic_serial = njit(error_model="numpy")(_adam_traffic)
amsgrad_traffic_parallel = njit(parallel=True, error_model="numpy")(_amsgrad_traffic)
amsgrad_traffic_serial = njit(error_model="numpy")(_amsgrad_traffic)


def same_traffic_kernel(amsgrad, parallel):
    """The kernel with Adam's (or AMSGrad's) traffic, threaded or serial.

    It takes 1-D contiguous arrays of one dtype: ``(param, grad, exp_avg,
    exp_avg_sq)``, plus ``max_exp_avg_sq`` with ``amsgrad``.
    """
    if amsgrad:
        return amsgrad_traffic_parallel if parallel else amsgrad_traffic_serial
    return adam_traffic_parallel if parallel else adam_traffic_serial


def kernel_for(n_elements, amsgrad):
    """The kernel a tuned library would pick for ``n_elements``: serial when small."""
    return same_traffic_kernel(amsgrad, parallel=n_elements >= SERIAL_BELOW)
