r"""Gradient clipping on a tree of NumPy or CuPy arrays, in place.

Three rules, for gradients ``grads`` given as one array or a dict/list/tuple
tree of arrays (complex numbers count as pairs of reals, as in the optimizers):

* :func:`clip_by_value` bounds every element: :math:`g \leftarrow \min(\max(g, -c), c)`.
* :func:`clip_by_norm` rescales each array whose L2 norm exceeds :math:`c`.
* :func:`clip_by_global_norm` rescales all arrays by one factor when the L2 norm
  of all of them together exceeds :math:`c`.

Norms are accumulated in float64, dividing by the largest magnitude first
where squares could overflow or underflow (float64 values beyond about
:math:`10^{\pm 100}`), so they are right for any finite input, whatever the dtype.
Every check (the limit; each array's type, dtype, writability; that no two
arrays share memory) runs before anything is written, and a norm that is not
finite (an array holding NaN or infinity) is an error raised before any array
is scaled: a failed call changes nothing. The arrays' own methods do the work,
so CuPy arrays stay on the GPU and NumPy input never imports CuPy. The
formulas themselves (the clamp, the scale :math:`\min(1, c/N)`) are
:mod:`numadam.core.clip_math`'s, which the optimizers' ``clip_value`` and
``clip_global_norm`` and :func:`numadam.minimize`'s ``clip`` use too.
"""

import contextlib
import math
import string

import numpy as np

from .core import validate
from .core.clip_math import clamp_in_place, norm_and_scale, sum_is_final
from .targets.dispatch import backend_for
from .adapters.foreign import adopt
from .adapters.tree import flatten


def clip_by_value(grads, max_value):
    r"""Clip every element of ``grads`` to :math:`[-c, c]` in place; return ``grads``.

    .. math::

        g_i \leftarrow \min(\max(g_i, -c), c), \qquad c = \texttt{max\_value}

    Complex elements have their real and imaginary parts clipped separately
    (complex numbers as pairs of reals), so the result lies in a square, not a
    disc. NaN stays NaN; infinities become :math:`\pm c`.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> g = {"w": np.array([-3.0, 0.5, 2.0]), "z": np.array([4 - 0.2j])}
    >>> numadam.clip_by_value(g, 1.0)["w"]
    array([-1. ,  0.5,  1. ])
    >>> g["z"]
    array([1.-0.2j])
    """
    limit = validate.check_limit("max_value", max_value)
    with _checked_leaves(grads) as (leaves, _):
        for leaf in leaves:
            for part in _real_parts(leaf):
                clamp_in_place(part, limit)
    return grads


def clip_by_norm(grads, max_norm):
    r"""Rescale each array of ``grads`` whose L2 norm exceeds ``max_norm``, in place.

    For every array :math:`g` (complex parts counted as reals),

    .. math::

        \|g\|_2 = \Bigl(\sum_i |g_i|^2\Bigr)^{1/2}, \qquad
        g \leftarrow \frac{c}{\|g\|_2}\, g \quad \text{if } \|g\|_2 > c,
        \qquad c = \texttt{max\_norm},

    and arrays with :math:`\|g\|_2 \le c` are left untouched. No epsilon is added
    to the norm, so a clipped array has norm :math:`c` up to rounding.

    Returns
    -------
    norms : float, or a tree of floats shaped like ``grads``
        Each array's norm before clipping (``inf`` only if it exceeds the
        float64 range; the array is then still scaled correctly).

    Raises
    ------
    ValueError
        If an array holds NaN or infinity: its norm is not finite and no array
        is changed.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> g = {"a": np.array([3.0, 4.0]), "b": np.array([0.1, 0.0])}
    >>> numadam.clip_by_norm(g, 1.0)
    {'a': 5.0, 'b': 0.1}
    >>> g["a"], g["b"]
    (array([0.6, 0.8]), array([0.1, 0. ]))
    """
    limit = validate.check_limit("max_norm", max_norm)
    with _checked_leaves(grads) as (leaves, treedef):
        paths = treedef.paths("grads")
        measures = [_finite_measure(leaf, path) for leaf, path in zip(leaves, paths)]
        norms = []
        for leaf, (largest, scaled_sum) in zip(leaves, measures):
            norm, scale = norm_and_scale.py_func(limit, largest, scaled_sum)
            if scale != 1.0:  # the norm exceeds the limit
                leaf *= scale
            norms.append(norm)
    return treedef.unflatten(norms)


def clip_by_global_norm(grads, max_norm):
    r"""Rescale all arrays of ``grads`` together so that their joint L2 norm is at most ``max_norm``.

    .. math::

        N = \Bigl(\sum_{\text{arrays } g} \sum_i |g_i|^2\Bigr)^{1/2}, \qquad
        g \leftarrow \frac{c}{N}\, g \text{ for every array} \quad \text{if } N > c,
        \qquad c = \texttt{max\_norm}.

    The factor is exactly :math:`\min(1, c/N)`: nothing is scaled when
    :math:`N \le c` and no epsilon is added to :math:`N` (``torch.nn.utils.clip_grad_norm_``
    uses :math:`c/(N + 10^{-6})`), so the clipped gradients have joint norm
    :math:`c` up to rounding. The direction of the whole gradient is kept.

    Returns
    -------
    float
        :math:`N` before clipping, computed in float64 (``inf`` only if it
        exceeds the float64 range; the arrays are then still scaled correctly).

    Raises
    ------
    ValueError
        If an array holds NaN or infinity: :math:`N` is not finite and no array
        is changed.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> g = [np.array([3.0]), np.array([4.0], np.float32)]
    >>> numadam.clip_by_global_norm(g, 1.0)
    5.0
    >>> g
    [array([0.6]), array([0.8], dtype=float32)]
    """
    limit = validate.check_limit("max_norm", max_norm)
    with _checked_leaves(grads) as (leaves, treedef):
        paths = treedef.paths("grads")
        measures = [_finite_measure(leaf, path) for leaf, path in zip(leaves, paths)]
        largest = max(measure[0] for measure in measures)
        if largest == 0.0:
            return 0.0
        scaled_sum = math.fsum(total * (peak / largest) ** 2 for peak, total in measures if peak)
        norm, scale = norm_and_scale.py_func(limit, largest, scaled_sum)
        if scale != 1.0:  # the norm exceeds the limit
            for leaf in leaves:
                leaf *= scale
    return norm


@contextlib.contextmanager
def _checked_leaves(grads):
    """``(arrays, treedef)`` of ``grads``, checked, to rewrite in the context (torch gradients are told
    of the write when it ends)."""
    given, treedef = flatten(grads)
    if not given:
        raise ValueError(f"grads must hold at least one array; got {grads!r}")
    paths = treedef.paths("grads")
    adopted = adopt(given, paths, [True] * len(given))
    leaves = adopted.arrays
    backend = backend_for(leaves, paths)
    infos = []
    for leaf, path in zip(leaves, paths):
        if backend.name == "cuda" and not isinstance(leaf, backend.array_type):
            raise TypeError(f"{path} is a {type(leaf).__name__}; clipping takes NumPy or CuPy arrays")
        info = backend.describe(leaf)
        validate.check_clippable(info, path)
        infos.append(info)
    validate.check_disjoint(infos, paths, leaves, [True] * len(leaves))
    with adopted.launch():
        yield leaves, treedef
    adopted.written()


def _real_parts(array):
    """Writable views of the real numbers in ``array``: itself, or its real and imaginary parts."""
    return (array.real, array.imag) if array.dtype.kind == "c" else (array,)


def _finite_measure(array, path):
    r"""``(a, s)`` with :math:`\|array\|_2 = a \sqrt{s}`, in float64.

    One pass first: the sum of squares in float64 (``a = 1``), final where
    :func:`~numadam.core.clip_math.sum_is_final` says so (float16/float32 values,
    or a finite sum that is not tiny). Otherwise ``a`` is the largest magnitude and the
    squares are summed after dividing by it. Raises ``ValueError`` if ``array``
    holds NaN or infinity.
    """
    if array.size == 0:
        return 0.0, 0.0
    parts = _real_parts(array)
    with np.errstate(over="ignore", invalid="ignore"):
        total = sum(_float64_sum_of_squares(part) for part in parts)
    narrow = array.dtype.itemsize < (16 if array.dtype.kind == "c" else 8)
    if sum_is_final.py_func(total, narrow):
        return (1.0, total) if total else (0.0, 0.0)
    return _scaled_measure(parts, path)


def _float64_sum_of_squares(part):
    """``sum(part**2)`` accumulated in float64 (NumPy casts in buffered chunks, without a float64 copy)."""
    if isinstance(part, np.ndarray):
        indices = string.ascii_letters[:part.ndim]
        return float(np.einsum(f"{indices},{indices}->", part, part, dtype=np.float64))
    flat = part.astype(np.float64).ravel()
    return float(flat.dot(flat))


def _scaled_measure(parts, path):
    """``(a, s)`` with ``a`` the largest magnitude of ``parts`` and ``s`` the sum of ``(x / a)**2``."""
    peaks = [float(abs(part).max()) for part in parts]
    if not all(map(math.isfinite, peaks)):
        raise ValueError(f"{path} holds NaN or infinity, so its norm is not finite; no gradient was clipped")
    largest = max(peaks)
    if largest == 0.0:
        return 0.0, 0.0
    scaled_sum = 0.0
    for part in parts:
        scaled = part.astype(np.float64)
        scaled /= largest
        scaled *= scaled
        scaled_sum += float(scaled.sum())
    return largest, scaled_sum
