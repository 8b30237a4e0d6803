"""The bounds of every parameter (``bounds=(low, high)``), checked once, for either engine."""

import math


def checked_bounds(given, leaves, paths, as_array, evaluate):
    """Each leaf's ``(low, high)``: a number (infinite where the bound was ``None``) or an array.

    ``given`` holds each leaf's pair as given (numbers or arrays, see
    :func:`numadam.core.pipeline.leaf_bound`); ``as_array(value, leaf, side,
    path)`` makes a given array the engine's own (its copy, or a Dask array
    chunked like the leaf), refusing what it cannot take; ``evaluate(checks)``
    gives the truth of the checks (lazy for Dask, computed together). Bounds
    apply to real parameters; an array bound has its leaf's shape and no NaN,
    and ``low <= high`` everywhere.
    """
    checked, messages, checks = [], [], []
    for (low, high), leaf, path in zip(given, leaves, paths):
        if leaf.dtype.kind == "c":
            raise TypeError(f"bounds apply to real parameters; {path} is {leaf.dtype}")
        sides = []
        for side, value in (("low", low), ("high", high)):
            if isinstance(value, float):
                sides.append(value)
                continue
            if getattr(value, "shape", None) != leaf.shape:
                raise ValueError(f"the {side} bound of {path} must have its shape {leaf.shape}; got {value.shape}")
            array = as_array(value, leaf, side, path)
            messages.append(f"the {side} bound of {path} must not hold NaN")
            checks.append((array != array).any())
            sides.append(array)
        low, high = sides
        message = f"the bounds of {path} must have low <= high"
        if isinstance(low, float) and isinstance(high, float):
            if low > high:
                raise ValueError(message)
        elif not (isinstance(low, float) and low == -math.inf) and not (isinstance(high, float) and high == math.inf):
            messages.append(message)
            checks.append((low > high).any())
        checked.append(tuple(sides))
    for message, failed in zip(messages, evaluate(checks)):
        if failed:
            raise ValueError(message)
    return checked
