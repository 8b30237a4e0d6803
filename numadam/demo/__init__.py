"""``numadam demo``: five worked examples that run offline, print a report and save a plot.

1. :mod:`~numadam.demo.linear_fit`: minimize :math:`(2W + b - 4)^2` from a random start.
2. :mod:`~numadam.demo.mlp_digits`: a 64-64-10 ReLU MLP on the UCI handwritten digits
   shipped in ``data/`` (CC BY 4.0).
3. :mod:`~numadam.demo.sequence_lstm`: an LSTM forecasting noisy two-tone signals,
   with gradient clipping by global norm.
4. :mod:`~numadam.demo.deconvolution`: Tikhonov-regularized deconvolution with
   ``numadam.minimize``, against scipy's L-BFGS-B.
5. :mod:`~numadam.demo.pixel_decay`: a decay rate per pixel of an image stack with
   ``numadam.minimize_batch``, beside a loop of SciPy fits.

``numadam demo --dask`` runs :mod:`~numadam.demo.dask_deconvolution` instead: the
same deconvolution at 2 million points on a Dask array, on a local cluster.

The networks' forward and backward passes are NumPy code in :mod:`~numadam.demo.nn`.
"""

import contextlib
import os
import time

import numpy as np

import numadam

from . import dask_deconvolution, deconvolution, linear_fit, mlp_digits, pixel_decay, sequence_lstm
from .report import save_figure

EXAMPLES = (linear_fit, mlp_digits, sequence_lstm, deconvolution, pixel_decay)
#: ``numadam demo --dask`` (its module imports dask and distributed only when it runs).
DASK_EXAMPLES = (dask_deconvolution,)
FIGURE_NAME = "loss_curves.png"


def compile_kernels():
    """Take one throwaway Adam step in float64 and float32, so that Numba compiles before the timings."""
    for dtype in (np.float64, np.float32):
        param = np.zeros(1, dtype=dtype)
        numadam.Adam(param).step(np.zeros_like(param))


def one_blas_thread():
    """Return a context limiting BLAS to one thread (with threadpoolctl, if installed) and its description.

    The demo's matrices are small: on a busy machine, waking BLAS thread pools cost
    up to 20 times the arithmetic (measured on 2 shared cores: the MLP's 100 epochs
    took 3 s with two OpenBLAS threads, 0.2 s with one), which would hide what the
    timings are meant to show.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "BLAS threads left as configured (threadpoolctl is not installed)"
    return threadpool_limits(limits=1, user_api="blas"), "BLAS limited to one thread (threadpoolctl)"


def run_demo(quick=False, output="numadam-demo-output", examples=EXAMPLES, out=print):
    """Run the examples, print a report and save the figure of their loss curves under ``output``.

    ``quick`` shortens the training runs to a few seconds in all. Return the list of
    :class:`~numadam.demo.report.ExampleResult` of the examples that ran.
    """
    mode = "quick mode" if quick else "full run"
    out(f"numadam demo ({mode}): Adam from NumPy, {len(examples)} examples")
    start = time.perf_counter()
    compile_kernels()
    out(f"compiled the Numba kernels in {time.perf_counter() - start:.2f} s (once per process)")
    blas_threads, blas_note = one_blas_thread()
    out(blas_note)
    width = max(len(example.TITLE) for example in examples)
    results, summary = [], []
    with blas_threads:
        for number, example in enumerate(examples, start=1):
            out("")
            out(f"== {number}. {example.TITLE} ==")
            result = example.run(quick=quick, out=out)
            out(f"time: {result.seconds:.2f} s")
            results.append(result)
            summary.append(f"{number}. {example.TITLE:<{width}}  {result.seconds:6.2f} s  {result.summary}")
    out("")
    out("== summary ==")
    for line in summary:
        out(line)
    out(f"total {time.perf_counter() - start:.1f} s")
    figure = save_figure(results, os.path.join(output, FIGURE_NAME))
    if figure is None:
        out("plot skipped: matplotlib is not installed (pip install matplotlib)")
    else:
        out(f"loss curves saved to {figure}")
    return results
