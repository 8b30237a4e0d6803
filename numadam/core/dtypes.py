"""The one dtype table: which arrays numadam updates, how their numbers are stored and computed on.

A complex array is updated as pairs of reals (torch's ``view_as_real``): its
numbers are stored in the dtype of its parts, and its layout gains a trailing
axis of length 2. float16 and bfloat16 (``ml_dtypes.bfloat16``, found by name,
never imported here) are computed on in float32. These decisions are made here
and nowhere else.
"""

import numpy as np

_F4, _F8 = np.dtype(np.float32), np.dtype(np.float64)

#: Parameter dtype -> (the dtype its real numbers are stored in, the dtype the kernel computes in).
_TABLE = {
    _F4: (_F4, _F4),
    _F8: (_F8, _F8),
    np.dtype(np.complex64): (_F4, _F4),
    np.dtype(np.complex128): (_F8, _F8),
    np.dtype(np.float16): (np.dtype(np.float16), _F4),
}
_BFLOAT16 = "bfloat16"


def _entry(dtype):
    found = _TABLE.get(dtype)
    if found is None and dtype.name == _BFLOAT16 and dtype.itemsize == 2:
        return dtype, _F4
    return found


#: The dtypes a parameter may have, in the order error messages list them.
PARAMETER_DTYPES = tuple(_TABLE)

#: The dtypes the clipping functions rewrite in place (with NumPy's own arithmetic).
CLIPPABLE_DTYPES = (np.dtype(np.float16), _F4, _F8, np.dtype(np.complex64), np.dtype(np.complex128))


def names(dtypes):
    """``"float32, float64 and complex64"``: a list of dtypes for error messages."""
    listed = [dtype.name for dtype in dtypes]
    return ", ".join(listed[:-1]) + " and " + listed[-1]


def supported_names():
    """The parameter dtypes, for error messages."""
    return names(PARAMETER_DTYPES) + " (and ml_dtypes.bfloat16)"


def is_supported(dtype):
    return _entry(dtype) is not None


def is_low_precision(dtype):
    """float16 and bfloat16: computed on in float32, their state kept in float32 by default."""
    return _entry(dtype)[0].itemsize == 2


def storage_dtype(dtype):
    """The dtype an array of ``dtype`` stores its real numbers in (float32 for complex64)."""
    return _entry(dtype)[0]


def compute_dtype(dtype):
    """The dtype the kernels compute in for arrays of ``dtype`` (float32 for float16 and bfloat16)."""
    return _entry(dtype)[1]


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


def complex_of(real):
    """The complex dtype whose parts are ``real`` (complex64 for float32)."""
    return np.dtype(np.complex64 if real == _F4 else np.complex128)
