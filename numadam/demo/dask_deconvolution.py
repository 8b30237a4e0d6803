r"""Example 5 (``numadam demo --dask``): the deconvolution of example 4 on a Dask array, on a local cluster.

The problem of :mod:`numadam.demo.deconvolution` (a piecewise signal blurred by a
Gaussian, observed with noise, recovered by minimizing
:math:`\tfrac12\lVert Ax - y\rVert^2 + \tfrac{\alpha}{2}\lVert Dx\rVert^2`) at
2 million points (example 4 has 400, and its normal equations would be a
dense matrix of 32 TB here), split into chunks on a ``distributed.LocalCluster``
of two worker processes. The blur and the differences act chunk by chunk with
``map_overlap`` (each chunk sees its neighbours' edges), the objective is a
Dask reduction, and ``numadam.minimize`` takes the Dask array as it comes: each
iterate is a new persisted array on the workers, and only the objective and the
gradient's largest element travel back. The dashboard's address is printed, to
watch the tasks run.

Needs ``pip install "numadam[dask]"`` (and ``bokeh`` for the dashboard).
"""

import logging
import time

import numpy as np

import numadam

from .deconvolution import gaussian_kernel, signal_at
from .report import ExampleResult

TITLE = "deconvolution on a Dask array: numadam.minimize on a LocalCluster"


def blur(x, kernel):
    """:math:`Ax` for a Dask array: each chunk convolved with its neighbours' edges, zero outside."""
    return x.map_overlap(_convolved, depth=len(kernel) // 2, boundary=0, dtype=x.dtype, kernel=kernel)


def _convolved(block, kernel):
    return np.convolve(block, kernel, mode="same")


def _second_difference(block):
    out = np.zeros_like(block)
    out[1:-1] = 2 * block[1:-1] - block[:-2] - block[2:]
    return out


def difference_normal(x):
    r""":math:`D^TDx` for a Dask array (:math:`D` the forward difference): the edges repeated outside."""
    return x.map_overlap(_second_difference, depth=1, boundary="nearest", dtype=x.dtype)


def make_problem(n, chunks, sigma=4.0, noise=0.01, alpha=1e-2, seed=0):
    """``(objective, y, x_true)`` as Dask arrays of ``n`` points in chunks of ``chunks``;
    ``objective(x)`` gives :math:`(f(x), \\nabla f(x))`, both lazy."""
    import dask.array as da

    kernel = gaussian_kernel(sigma)
    x_true = signal_at(da.linspace(0, 1, n, chunks=chunks))
    noise = noise * da.random.default_rng(seed).standard_normal(n, chunks=chunks)
    y = (blur(x_true, kernel) + noise).persist()
    return tikhonov_objective(y, kernel, alpha), y, x_true


def tikhonov_objective(y, kernel, alpha):
    """``objective(x) -> (f(x), grad f(x))`` for the data ``y`` (Dask arrays, lazy results)."""

    def objective(x):
        residual = blur(x, kernel) - y
        curvature = difference_normal(x)
        value = 0.5 * (residual * residual).sum() + 0.5 * alpha * (x * curvature).sum()
        return value, blur(residual, kernel) + alpha * curvature

    return objective


def run(quick=False, n=None, chunk=None, maxiter=None, lr=0.1, out=print):
    """Start a LocalCluster, deconvolve, print the report; return an :class:`ExampleResult`."""
    import distributed

    n = n or (100_000 if quick else 2_000_000)
    chunk = chunk or n // 8
    maxiter = maxiter or (60 if quick else 300)
    example_start = time.perf_counter()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  silence_logs=logging.CRITICAL) as cluster, \
            distributed.Client(cluster) as client:
        out(f"LocalCluster: {len(cluster.workers)} worker processes; dashboard: {client.dashboard_link}"
            + ("" if _has_bokeh() else " (pip install bokeh to serve it)"))
        objective, y, x_true = make_problem(n, chunk)
        x0 = y.map_blocks(np.zeros_like, dtype=y.dtype)  # zeros made where y's chunks live
        out(f"n = {n:,} points in {n // chunk} chunks; Adam lr={lr:g} with cosine decay over {maxiter} iterations")
        start = time.perf_counter()
        result = numadam.minimize(objective, x0, jac=True, lr=lr, maxiter=maxiter, gtol=1e-10,
                                  schedule=numadam.schedules.CosineDecay(lr, total_steps=maxiter))
        seconds = time.perf_counter() - start
        error = float((da_norm(result.x - x_true) / da_norm(x_true)).compute())
    out(f"numadam.minimize: {result.nit} iterations in {seconds:.1f} s ({seconds / max(result.nit, 1) * 1e3:.0f} ms "
        f"each), f = {result.fun:.6e}; {result.message}")
    out(f"|x - x_true| / |x_true| = {error:.1%} (the blur and the noise cost this much)")
    history = np.asarray(result.history, dtype=float)
    return ExampleResult(
        title=TITLE,
        xlabel="iteration",
        ylabel="f / f(0)",
        curves=[("numadam.minimize on Dask", np.arange(len(history)), history / history[0])],
        seconds=time.perf_counter() - example_start,
        summary=f"{n:,} points, {result.nit} iterations, {seconds:.1f} s, reconstruction error {error:.1%}",
        metrics={"fun": result.fun, "nit": result.nit, "seconds": seconds, "reconstruction_error": error,
                 "history": history},
    )


def _has_bokeh():
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def da_norm(x):
    """The Euclidean norm of a Dask array, lazily."""
    return (x * x).sum() ** 0.5
