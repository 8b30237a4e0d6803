"""``numadam demo --dask``: the deconvolution on a Dask array is example 4's problem, solved alike."""

import numpy as np
import pytest

import numadam
from numadam.demo import dask_deconvolution, deconvolution

da = pytest.importorskip("dask.array")


pytestmark = pytest.mark.dask


def test_the_dask_objective_is_example_4s_objective():
    rng = np.random.default_rng(3)
    n, chunk, alpha = 1000, 150, 1e-2  # chunks not dividing n, each wider than the blur's reach
    kernel = deconvolution.gaussian_kernel(4.0)
    y = rng.standard_normal(n)
    x = rng.standard_normal(n)
    numpy_objective = deconvolution.tikhonov_objective(y, kernel, alpha)
    dask_objective = dask_deconvolution.tikhonov_objective(da.from_array(y, chunks=chunk), kernel, alpha)
    value, grad = dask_objective(da.from_array(x, chunks=chunk))
    expected_value, expected_grad = numpy_objective(x)
    np.testing.assert_allclose(grad.compute(), expected_grad, rtol=1e-12, atol=1e-12)
    assert float(value.compute()) == pytest.approx(expected_value, rel=1e-12)


def test_minimize_on_the_dask_problem_follows_the_numpy_one():
    rng = np.random.default_rng(4)
    n, chunk, alpha = 600, 100, 1e-2
    kernel = deconvolution.gaussian_kernel(4.0)
    y = deconvolution.blur(deconvolution.true_signal(n), kernel) + 0.01 * rng.standard_normal(n)
    options = dict(jac=True, lr=0.1, maxiter=60, gtol=1e-12)
    on_numpy = numadam.minimize(deconvolution.tikhonov_objective(y, kernel, alpha), np.zeros(n), **options)
    with __import__("dask").config.set(scheduler="synchronous"):
        objective = dask_deconvolution.tikhonov_objective(da.from_array(y, chunks=chunk), kernel, alpha)
        on_dask = numadam.minimize(objective, da.zeros(n, chunks=chunk), **options)
        x = on_dask.x.compute()
    assert on_dask.nit == on_numpy.nit == 60
    np.testing.assert_allclose(x, on_numpy.x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(on_dask.history, on_numpy.history, rtol=1e-9)


def test_numadam_demo_dask_runs_on_a_local_cluster_and_prints_the_dashboard(tmp_path):
    pytest.importorskip("distributed")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "numadam", "demo", "--dask", "--quick", "--output", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LocalCluster: 2 worker processes; dashboard: http" in result.stdout
    assert "numadam.minimize: 60 iterations" in result.stdout and "|x - x_true| / |x_true| = " in result.stdout
    error = float(result.stdout.split("|x - x_true| / |x_true| = ")[1].split("%")[0])
    assert error < 30  # from 100% at x0 = 0
