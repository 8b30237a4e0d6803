"""What ``numadam bench`` times: the arrays of each case and the three update variants.

Every case is a list of parameter shapes of one dtype. The many-array cases are
the ones where per-call overhead shows: a thousand small arrays, and the layers
of a small convolutional network (3x3 kernels, biases, batch-norm scales and
shifts, a dense head).

Examples
--------
>>> case = bench_cases()["many"]
>>> case.title, case.n_elements
('1000 arrays of 1e3 float32', 1000000)
>>> VARIANTS[2].bytes_per_element(np.float32)   # AMSGrad reads and writes one more array
36
"""

import math
from typing import NamedTuple

import numpy as np


#: Hyperparameters shared by every variant and implementation.
LR = 1e-3
BETAS = (0.9, 0.999)
EPS = 1e-8


class Variant(NamedTuple):
    """One member of the family, as options every implementation understands."""

    name: str
    weight_decay: float
    decoupled: bool
    amsgrad: bool

    def bytes_per_element(self, dtype):
        """The least memory traffic of one step per parameter element.

        Adam and AdamW read ``param``, ``grad``, ``exp_avg``, ``exp_avg_sq`` and
        write ``param``, ``exp_avg``, ``exp_avg_sq``: 7 arrays (28 bytes in float32).
        AMSGrad also reads and writes ``max_exp_avg_sq``: 9 arrays.
        """
        return (9 if self.amsgrad else 7) * np.dtype(dtype).itemsize


VARIANTS = (
    Variant("adam", weight_decay=0.0, decoupled=False, amsgrad=False),
    Variant("adamw", weight_decay=1e-2, decoupled=True, amsgrad=False),
    Variant("amsgrad", weight_decay=0.0, decoupled=False, amsgrad=True),
)


class Case(NamedTuple):
    """Parameter arrays of one dtype: their shapes, and a title for the table."""

    name: str
    title: str
    shapes: tuple
    dtype: np.dtype

    @property
    def n_elements(self):
        return sum(math.prod(shape) for shape in self.shapes)

    @property
    def single(self):
        """One array: implementations take it bare, not in a list."""
        return len(self.shapes) == 1


#: The small CNN's widths and hidden units (28 arrays, 0.8e6 elements); --quick shrinks them.
CNN_WIDTHS, CNN_HIDDEN = (32, 32, 64, 64, 128, 128), 256


def cnn_shapes(widths=CNN_WIDTHS, hidden=CNN_HIDDEN, in_channels=3, classes=10, side=4):
    """The parameter shapes of a small VGG-like network for 32x32 images.

    Each width adds a 3x3 convolution (kernel and bias) and a batch norm (scale
    and shift); after the last convolution, a ``side`` x ``side`` feature map feeds
    a dense layer of ``hidden`` units and a dense classifier.
    """
    shapes = []
    channels = in_channels
    for width in widths:
        shapes += [(width, channels, 3, 3), (width,), (width,), (width,)]
        channels = width
    shapes += [(hidden, channels * side * side), (hidden,), (classes, hidden), (classes,)]
    return tuple(shapes)


def count_text(n):
    """An element count as ``6e7`` when it has one significant digit, else as digits (this module
    imports nothing of numadam's: the asv suite loads it by path from each checkout)."""
    mantissa, exponent = f"{n:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}" if float(f"{n:.0e}") == n and n >= 1000 else f"{n}"


def _title(count, size, dtype):
    arrays = "1 array" if count == 1 else f"{count} arrays"
    return f"{arrays} of {count_text(size)} {np.dtype(dtype).name}"


def _uniform(name, count, size, dtype):
    return Case(name, _title(count, size, dtype), ((size,),) * count, np.dtype(dtype))


def _common_cases(large, quick):
    """The cases both devices run: one large and one small array, many arrays, a small CNN, large float64."""
    many = 100 if quick else 1000
    widths, hidden = ((8, 8, 16, 16, 32, 32), 64) if quick else (CNN_WIDTHS, CNN_HIDDEN)
    shapes = cnn_shapes(widths, hidden)
    cnn_elements = sum(math.prod(shape) for shape in shapes)
    return [
        _uniform("large", 1, large, np.float32),
        _uniform("small", 1, 1000, np.float32),
        _uniform("many", many, 1000, np.float32),
        Case("cnn", f"small CNN: {len(shapes)} arrays, {cnn_elements} float32", shapes, np.dtype(np.float32)),
        _uniform("large-f64", 1, large, np.float64),
    ]


#: Arrays of a case's size and dtype its contenders hold at once, at most (each implementation's
#: parameters, state and scratch, and the gradients): what a run of the case needs in memory.
HELD_ARRAYS = 48

#: The cases whose size ``--size`` sets: the roofline studies.
LARGE_CASES = ("large", "large-f64")


def bench_cases(quick=False, large=None):
    """The cases by name, with ``large`` elements in the large ones (default 1e7, or 2^17 with
    ``quick``, which also shrinks the many-array cases for tests and CI)."""
    cases = _common_cases(large or (1 << 17 if quick else 10**7), quick)
    return {case.name: case for case in cases}


#: The sizes of the one-array float32 cases run by name (``f32-1e4`` ...): with ``large`` (past the
#: last-level cache), the sizes at which Adam is held to DeepSpeed's CPU Adam (issue 54).
SIZE_LADDER = (10**4, 10**5, 10**6, 10**7)


def optional_cases(quick=False):
    """Cases run only when ``--cases`` names them: ``dask``, one array of 1e8 float32 (1e6 with
    ``quick``) on a local Dask cluster (:mod:`numadam.bench.dask_contenders`); ``f32-1e4`` to
    ``f32-1e7``, one float32 array of each size of :data:`SIZE_LADDER`."""
    case = _uniform("dask", 1, 10**6 if quick else 10**8, np.float32)
    cases = {case.name: case._replace(title=case.title + " as a Dask array: 16 chunks, 2-worker LocalCluster")}
    for size in SIZE_LADDER:
        ladder = _uniform(f"f32-{count_text(size)}", 1, size, np.float32)
        cases[ladder.name] = ladder
    return cases


def cuda_bench_cases(quick=False):
    """The cases of ``numadam bench --device cuda`` by name; ``quick`` shrinks the large ones.

    The same names as the CPU cases where they mean the same thing; the large
    arrays are ten times larger (1e8 elements, 0.4 GB each in float32) so
    that a step takes long enough on the GPU to measure bandwidth rather than
    launch cost, and float64 and complex64 come at the same size.
    """
    large = 1 << 20 if quick else 10**8
    cases = _common_cases(large, quick) + [_uniform("large-c64", 1, large, np.complex64)]
    return {case.name: case for case in cases}
