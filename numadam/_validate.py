"""Every check numadam makes, run before any array is written.

Errors say the rule and then the value: ``ValueError("lr must be finite and
>= 0; got -1.0")``, ``TypeError("grads['W'] has dtype float64 but its parameter
has dtype float32")``. Types that are wrong raise ``TypeError``, values that are
wrong raise ``ValueError``.
"""

import math
import numbers

import numpy as np

SUPPORTED_DTYPES = tuple(np.dtype(name) for name in ("float32", "float64", "complex64", "complex128"))


def _real_number(name, value):
    if type(value) is float:  # the common case, checked first: this runs every step
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} of type {type(value).__name__}")
    return float(value)


def check_lr(lr):
    if type(lr) is not float and callable(lr):  # optax and Keras take a schedule as the learning rate
        raise TypeError(
            f"lr must be a real number; got the callable {lr!r}. Pass a learning-rate schedule as "
            "schedule=... (numadam.Adam, AdamW, minimize), or with adam_step pass lr=schedule(step - 1) each step"
        )
    value = _real_number("lr", lr)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"lr must be finite and >= 0; got {lr!r}")
    return value


def check_betas(betas):
    if type(betas) is tuple and len(betas) == 2 and type(betas[0]) is float and type(betas[1]) is float \
            and 0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0:
        return betas
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2); got {betas!r}")
    checked = []
    for index, beta in enumerate(betas, start=1):
        value = _real_number(f"beta{index}", beta)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"beta{index} must be in [0, 1); got {beta!r}")
        checked.append(value)
    return tuple(checked)


def check_eps(eps):
    value = _real_number("eps", eps)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"eps must be finite and >= 0; got {eps!r}")
    return value


def check_weight_decay(weight_decay):
    value = _real_number("weight_decay", weight_decay)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"weight_decay must be finite and >= 0; got {weight_decay!r}")
    return value


def check_flag(name, value):
    if value is True or value is False:
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_step(step):
    if type(step) is int and step >= 1:
        return step
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an integer; got {step!r}")
    if step < 1:
        raise ValueError(f"step must be >= 1 (the number of the step being taken); got {step!r}")
    return int(step)


def check_parameter_dtype(info, path):
    """The parameter's dtype must be one numadam updates, in native byte order."""
    dtype = info.dtype
    if dtype not in SUPPORTED_DTYPES:
        if dtype.kind in "fc" and dtype.newbyteorder("=") in SUPPORTED_DTYPES:
            raise TypeError(f"{path} must be in native byte order; got dtype {dtype.str}")
        raise TypeError(
            f"{path} has dtype {dtype}; numadam updates float32, float64, complex64 and complex128 arrays"
        )


def check_layout(info, path, writable):
    """Aligned elements; for arrays that are written, writable and free of self-overlap."""
    real_itemsize = info.dtype.itemsize // (2 if info.dtype.kind == "c" else 1)
    if info.address % real_itemsize or any(stride % real_itemsize for stride in info.strides):
        raise ValueError(
            f"{path} must be aligned to its {real_itemsize}-byte elements; "
            f"got address {info.address:#x} and strides {info.strides}"
        )
    if not writable:
        return
    if info.readonly:
        raise ValueError(f"{path} is read-only; numadam updates it in place, so it must be writable")
    if _may_overlap_itself(info):
        raise ValueError(
            f"{path} has elements that may share memory (shape {info.shape}, strides {info.strides}); "
            "arrays written in place need strides that nest, each at least the span of the smaller ones"
        )


def _may_overlap_itself(info):
    """Whether two elements may share memory (a sufficient test: sorted strides must nest)."""
    axes = sorted(
        (abs(stride), extent) for stride, extent in zip(info.strides, info.shape) if extent > 1
    )
    if any(extent == 0 for extent in info.shape):
        return False
    span = info.dtype.itemsize
    for stride, extent in axes:
        if stride < span:
            return True
        span += stride * (extent - 1)
    return False


def check_matches(info, path, reference, reference_path):
    """``info`` must have the dtype and shape of ``reference`` (an array or an ``ArrayInfo`` each)."""
    if info.dtype != reference.dtype:
        raise TypeError(f"{path} has dtype {info.dtype} but {reference_path} has dtype {reference.dtype}")
    if info.shape != reference.shape:
        raise ValueError(f"{path} has shape {info.shape} but {reference_path} has shape {reference.shape}")


def memory_bounds(info):
    """``[low, high)``: the bytes an array's elements can touch."""
    if any(extent == 0 for extent in info.shape):
        return info.address, info.address
    low = high = info.address
    for stride, extent in zip(info.strides, info.shape):
        reach = stride * (extent - 1)
        if reach < 0:
            low += reach
        else:
            high += reach
    return low, high + info.dtype.itemsize


def check_disjoint(infos, paths, arrays, written):
    """No array that is written may share memory with any other array of the update.

    Bounds decide; where bounds overlap and both arrays are NumPy arrays,
    ``numpy.shares_memory`` gives the exact answer.
    """
    bounds = [memory_bounds(info) for info in infos]
    active = []  # arrays seen so far whose bytes reach past the current start
    for k in sorted(range(len(infos)), key=lambda index: bounds[index][0]):
        low, high = bounds[k]
        if low == high:
            continue
        active = [a for a in active if bounds[a][1] > low]
        for a in active:
            if not (written[a] or written[k]):
                continue
            if isinstance(arrays[a], np.ndarray) and isinstance(arrays[k], np.ndarray):
                if not np.shares_memory(arrays[a], arrays[k]):
                    continue
            first, second = sorted((a, k))
            raise ValueError(
                f"{paths[first]} and {paths[second]} share memory; every array numadam writes "
                "must be separate from the other arrays of the update"
            )
        active.append(k)


def check_limit(name, value):
    """A clipping limit or tolerance: a real number, finite and >= 0."""
    checked = _real_number(name, value)
    if not (math.isfinite(checked) and checked >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
    return checked


CLIPPABLE_DTYPES = tuple(np.dtype(name) for name in ("float16", "float32", "float64", "complex64", "complex128"))


def check_clippable(info, path):
    """A gradient that clipping rewrites: floating or complex, writable, no self-overlap."""
    if info.dtype not in CLIPPABLE_DTYPES:
        raise TypeError(
            f"{path} has dtype {info.dtype}; clipping takes float16, float32, float64, complex64 "
            "and complex128 arrays"
        )
    check_layout(info, path, writable=True)


def check_schedule(schedule):
    """A learning-rate schedule: ``None`` or a callable ``step_count -> lr``."""
    if schedule is not None and not callable(schedule):
        raise TypeError(f"schedule must be callable (step_count -> lr) or None; got {schedule!r}")
    return schedule


def check_count(name, value, minimum):
    """An integer count (not a bool) of at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return int(value)


def contiguous_operands(arrays, written, address_of):
    """The addresses of ``arrays`` when they pass every check the easy way; else ``None``.

    The easy way: all are C-contiguous, aligned ``numpy.ndarray``s of one
    supported dtype and one shape, those ``written`` are writable, and their byte
    ranges are disjoint. Anything else (``None``) goes through the general checks,
    which accept or explain it.
    """
    first = arrays[0]
    dtype, shape = first.dtype, first.shape
    if dtype not in SUPPORTED_DTYPES:
        return None
    for array, writes in zip(arrays, written):
        if type(array) is not np.ndarray or array.dtype is not dtype or array.shape != shape:
            return None
        flags = array.flags
        if not (flags.c_contiguous and flags.aligned) or (writes and not flags.writeable):
            return None
    addresses = [address_of(array) for array in arrays]
    ends = sorted((address, address + first.nbytes) for address in addresses)
    if first.nbytes and any(following[0] < previous[1] for previous, following in zip(ends, ends[1:])):
        return None
    return addresses
