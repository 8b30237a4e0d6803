"""Shared fixtures, and the ``gpu`` marker.

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


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"gpu: needs a CUDA device through CuPy; skipped without one, failed with {REQUIRE_GPU}=1"
    )


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
