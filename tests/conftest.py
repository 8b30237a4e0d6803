"""Shared fixtures, the test tiers, and the ``gpu`` marker.

The tiers: ``python -m pytest`` runs the quick tier (the README's command adds
``-n auto``: a process per core),
every test but those marked ``slow`` (they compile many kernels or run long
solves), ``dask`` (they start a cluster) and ``subprocess`` (they start new
Python processes); ``python -m pytest --full`` runs everything, and a
``-m`` expression picks tests as usual (CI runs ``-m "slow or dask or
subprocess"`` after the quick tier). The CUDA simulator's tests
(``tests/simulator``) run in a process of their own, started with
``NUMBA_ENABLE_CUDASIM=1`` (which must be set before Numba is imported):
``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/simulator``.

A test marked ``gpu`` needs a CUDA device through CuPy. Without one it is
skipped, with the reason; with ``NUMADAM_REQUIRE_GPU=1`` it fails instead, so
that a run on a GPU machine cannot pass by skipping everything. Select the GPU
tests with ``python -m pytest -m gpu``.
"""

import functools
import os

import numpy as np
import pytest

REQUIRE_GPU = "NUMADAM_REQUIRE_GPU"
#: The markers of the full tier: the quick tier leaves these tests out.
FULL_TIER = {
    "slow": "compiles many kernels or runs long: full tier only (python -m pytest --full)",
    "dask": "starts a Dask cluster: full tier only",
    "subprocess": "starts new Python processes: full tier only",
}


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help=f"run every test, those marked {', '.join(FULL_TIER)} too (the quick tier leaves them out)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"gpu: needs a CUDA device through CuPy; skipped without one, failed with {REQUIRE_GPU}=1"
    )
    for marker, meaning in FULL_TIER.items():
        config.addinivalue_line("markers", f"{marker}: {meaning}")


def pytest_collection_modifyitems(config, items):
    """The quick tier: without ``--full`` or a ``-m`` expression, leave out the full tier's tests."""
    if config.getoption("--full") or config.getoption("markexpr"):
        return
    quick, full = [], []
    for item in items:
        (full if any(item.get_closest_marker(marker) for marker in FULL_TIER) else quick).append(item)
    if full:
        config.hook.pytest_deselected(items=full)
        items[:] = quick


@functools.cache
def why_no_gpu():
    """Why the GPU tests cannot run here, or ``None`` when they can."""
    try:
        import cupy
    except ImportError:
        return "cupy is not installed"
    if not cupy.cuda.is_available():
        return "no CUDA device: cupy.cuda.is_available() is false"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is None:
        return
    reason = why_no_gpu()
    if reason is None:
        return
    if os.environ.get(REQUIRE_GPU) == "1":
        pytest.fail(f"{REQUIRE_GPU}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
