"""The optimizer objects on CuPy arrays on a real GPU against the same objects on NumPy arrays.

The cases are ``tests/cuda_object_cases.py``'s, which the simulator runs bit
for bit (``tests/simulator/test_objects_on_the_simulator.py``). On hardware
NVVM fuses multiplies and adds (FMA) where the CPU kernel rounds twice, so
values agree within a few units in the last place, and an 8-bit code within
one step of the CPU's.
"""

import pytest

from cuda_object_cases import *  # noqa: F401,F403 (the shared tests)
from cuda_object_cases import Device

try:
    import cupy
except ImportError:  # the gpu marker skips (or fails) every test before it uses cupy
    cupy = None

pytestmark = pytest.mark.gpu


@pytest.fixture
def device():
    return Device(to_device=lambda array: cupy.asarray(array), to_host=cupy.asnumpy, ulps=64, code_steps=1)
