"""Every check numadam makes, run before any array is written.

Errors say the rule and then the value: ``ValueError("lr must be finite and
>= 0; got -1.0")``, ``TypeError("grads['W'] has dtype float64 but its parameter
has dtype float32")``. Types that are wrong raise ``TypeError``, values that are
wrong raise ``ValueError``.
"""

import math
import numbers

import numpy as np

from . import dtypes
from .memory import MemoryRanges, may_overlap_itself, memory_bounds


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


def check_betas(betas, count=2):
    """A tuple of ``count`` betas (``beta1``, ``beta2``, ...), each in [0, 1)."""
    if type(betas) is tuple and len(betas) == count and all(type(b) is float and 0.0 <= b < 1.0 for b in betas):
        return betas
    if not isinstance(betas, (tuple, list)) or len(betas) != count:
        names = ", ".join(f"beta{index}" for index in range(1, count + 1))
        kind = {2: "pair", 3: "triple"}.get(count, f"tuple of {count}")
        raise TypeError(f"betas must be a {kind} ({names}); got {betas!r}")
    return tuple(check_beta(f"beta{index}", beta) for index, beta in enumerate(betas, start=1))


def check_beta(name, value):
    checked = _real_number(name, value)
    if not 0.0 <= checked < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {value!r}")
    return checked


def check_real(name, value):
    """A finite real number."""
    checked = _real_number(name, value)
    if not math.isfinite(checked):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return checked


def check_nonnegative(name, value):
    """A real number, finite and >= 0."""
    checked = _real_number(name, value)
    if not (math.isfinite(checked) and checked >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
    return checked


def check_positive(name, value):
    """A real number, finite and > 0."""
    checked = _real_number(name, value)
    if not (math.isfinite(checked) and checked > 0.0):
        raise ValueError(f"{name} must be finite and > 0; got {value!r}")
    return checked


def check_optional_count(name, value):
    """``None`` or an integer >= 1 (a number of steps)."""
    return None if value is None else check_count(name, value, minimum=1)


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
    if not dtypes.is_supported(dtype):
        if dtype.kind in "fc" and dtypes.is_supported(dtype.newbyteorder("=")):
            raise TypeError(f"{path} must be in native byte order; got dtype {dtype.str} "
                            f"(convert it with .astype({dtype.newbyteorder('=').name!r}))")
        raise TypeError(f"{path} has dtype {dtype}; numadam updates {dtypes.supported_names()} arrays")


def check_layout(info, path, writable):
    """Aligned elements; for arrays that are written, writable and free of self-overlap."""
    real_itemsize = dtypes.real_itemsize(info.dtype)
    if info.address % real_itemsize or any(stride % real_itemsize for stride in info.strides):
        raise ValueError(
            f"{path} must be aligned to its {real_itemsize}-byte elements; "
            f"got address {info.address:#x} and strides {info.strides} (arrays read straight from a network "
            "buffer, such as a distributed Dask compute's, can be unaligned: pass a copy)"
        )
    if not writable:
        return
    if info.readonly:
        raise ValueError(f"{path} is read-only; numadam updates it in place, so it must be writable")
    if may_overlap_itself(info):
        raise ValueError(
            f"{path} has elements that may share memory (shape {info.shape}, strides {info.strides}); "
            "arrays written in place need strides that nest, each at least the span of the smaller ones"
        )


def check_matches(info, path, reference, reference_path):
    """``info`` must have the dtype and shape of ``reference`` (an array or an ``ArrayInfo`` each)."""
    if info.dtype != reference.dtype:
        raise TypeError(f"{path} has dtype {info.dtype} but {reference_path} has dtype {reference.dtype}")
    if info.shape != reference.shape:
        raise ValueError(f"{path} has shape {info.shape} but {reference_path} has shape {reference.shape}")


def check_disjoint(infos, paths, arrays, written):
    """No array that is written may share memory with any other array of the update."""
    ranges = MemoryRanges([memory_bounds(info) for info in infos], arrays)
    pair = ranges.first_shared_pair(written)
    if pair is not None:
        first, second = pair
        raise ValueError(
            f"{paths[first]} and {paths[second]} share memory; every array numadam writes "
            "must be separate from the other arrays of the update"
        )


def check_limit(name, value):
    """A clipping limit or tolerance: a real number, finite and >= 0."""
    return check_nonnegative(name, value)


def check_clippable(info, path):
    """A gradient that clipping rewrites: floating or complex, writable, no self-overlap."""
    if info.dtype not in dtypes.CLIPPABLE_DTYPES:
        raise TypeError(f"{path} has dtype {info.dtype}; clipping takes {dtypes.names(dtypes.CLIPPABLE_DTYPES)} arrays")
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
