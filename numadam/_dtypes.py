"""The one dtype table: which arrays numadam updates and the real numbers it computes with.

A complex array is updated as pairs of reals (torch's ``view_as_real``): its
real dtype is the dtype of its parts, and its layout gains a trailing axis of
length 2. That decision is made here and nowhere else.
"""

import numpy as np

#: Parameter dtype -> the real dtype of its numbers (and of the kernel's arithmetic).
_REAL_DTYPES = {
    np.dtype(name): np.dtype(real)
    for name, real in (("float32", "float32"), ("float64", "float64"),
                       ("complex64", "float32"), ("complex128", "float64"))
}

#: The dtypes a parameter may have, in the order error messages list them.
PARAMETER_DTYPES = tuple(_REAL_DTYPES)

#: The dtypes the clipping functions rewrite in place (with NumPy's own arithmetic).
CLIPPABLE_DTYPES = (np.dtype(np.float16),) + PARAMETER_DTYPES


def names(dtypes):
    """``"float32, float64 and complex64"``: a list of dtypes for error messages."""
    listed = [dtype.name for dtype in dtypes]
    return ", ".join(listed[:-1]) + " and " + listed[-1]


def supported_names():
    """The parameter dtypes, for error messages."""
    return names(PARAMETER_DTYPES)


def is_supported(dtype):
    return dtype in _REAL_DTYPES


def real_dtype(dtype):
    """The dtype of the real numbers an array of ``dtype`` holds (float32 for complex64)."""
    return _REAL_DTYPES[dtype]


def real_itemsize(dtype):
    """The size of one real number of an array of ``dtype`` (its alignment requirement)."""
    return dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize


def real_layout(shape, strides, dtype):
    """Shape and byte strides of an array of ``dtype`` seen as real numbers."""
    if dtype.kind == "c":
        return tuple(shape) + (2,), tuple(strides) + (dtype.itemsize // 2,)
    return tuple(shape), tuple(strides)


def real_size(shape, dtype):
    """How many real numbers an array of ``shape`` and ``dtype`` holds."""
    size = int(np.prod(shape, dtype=np.int64))
    return 2 * size if dtype.kind == "c" else size
