r"""The same-traffic kernels: the memory roofline of an Adam step.

An Adam step is bound by memory, so the fastest conceivable step is a loop
that moves the same bytes and does almost no arithmetic. For every element,

.. math::

    p \leftarrow p + g, \qquad m \leftarrow m + g, \qquad v \leftarrow v + g
    \;(\text{and } \hat v \leftarrow \hat v + g \text{ for AMSGrad})

reads ``p, g, m, v`` (and ``v_max``) and writes ``p, m, v`` (and ``v_max``):
exactly the traffic of :func:`numadam.adam_step`, in the array's dtype. Other
members of the family, policies and storage formats move other bytes:
:func:`traffic_kernel` makes the loop for any list of read-and-written and
read-only arrays. Each loop is compiled twice: on Numba's thread pool
(``parallel=True``), and on the calling thread, which wins for small arrays
because waking threads costs microseconds.

Examples
--------
>>> import numpy as np
>>> p, g, m, v = (np.full(4, x, np.float32) for x in (1, 2, 3, 4))
>>> kernel_for(4, amsgrad=False)(p, m, v, g)
>>> p, m, v
(array([3., 3., 3., 3.], dtype=float32), array([5., 5., 5., 5.], dtype=float32), array([6., 6., 6., 6.], dtype=float32))
"""

import functools

import numpy as np
from numba import njit, prange

#: Below this many elements :func:`kernel_for` picks the serial kernel.
SERIAL_BELOW = 1 << 16


@functools.cache
def traffic_kernel(written, read, parallel):
    """A loop that reads arrays of dtypes ``written`` and ``read`` and writes those of ``written``.

    The dtypes are names (``"float32"``, ``"uint16"``, ``"int8"``, ...); the loop
    takes 1-D arrays of one length, the written ones first. Float arrays get the
    sum of the read ones added; integer arrays are XORed with its lowest bit:
    every byte is read or written once, with almost no arithmetic.
    """
    names = [f"w{k}" for k in range(len(written))] + [f"r{k}" for k in range(len(read))]
    wide = "float64" if np.dtype("float64") in map(np.dtype, written + read) else "float32"
    lines = [f"def traffic({', '.join(names)}):", "    for i in prange(w0.size):",
             "        x = " + " + ".join(f"{wide}(r{k}[i])" for k in range(len(read))),
             "        bit = int64(x) & 1"]
    for k, dtype in enumerate(written):
        if np.dtype(dtype).kind == "f":
            lines.append(f"        w{k}[i] += x")
        else:
            lines.append(f"        w{k}[i] = w{k}[i] ^ {np.dtype(dtype).name}(bit)")
    namespace = {"prange": prange, "float64": np.float64, "float32": np.float32, "int64": np.int64, "uint16": np.uint16,
                 "int8": np.int8, "uint8": np.uint8}
    exec("\n".join(lines), namespace)
    return njit(parallel=parallel, error_model="numpy")(namespace["traffic"])


def traffic_bytes(written, read):
    """The bytes per element :func:`traffic_kernel` moves."""
    return sum(2 * np.dtype(d).itemsize for d in written) + sum(np.dtype(d).itemsize for d in read)


def same_traffic_kernel(amsgrad, parallel, dtype=np.float32):
    """The kernel with Adam's (or AMSGrad's) traffic in ``dtype``, threaded or serial.

    It takes 1-D contiguous arrays of one dtype: ``(param, exp_avg, exp_avg_sq
    [, max_exp_avg_sq], grad)``.
    """
    name = np.dtype(dtype).name
    return traffic_kernel((name,) * (4 if amsgrad else 3), (name,), parallel)


def kernel_for(n_elements, amsgrad, dtype=np.float32):
    """The kernel a tuned library would pick for ``n_elements``: serial when small."""
    return same_traffic_kernel(amsgrad, n_elements >= SERIAL_BELOW, dtype)
