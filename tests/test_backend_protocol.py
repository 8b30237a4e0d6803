"""The written backend contract: the CPU and CUDA backends are :class:`~numadam.targets.backend.Backend`s,
and the engine asks a backend for a capability instead of probing for it.

The simulator's backend (the CUDA backend under ``NUMBA_ENABLE_CUDASIM``) is
checked in tests/simulator/test_cuda_kernel.py with the same helper.
"""

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import numadam

from numadam.targets import backend as protocol
from numadam.targets import dispatch
from numadam.targets.cpu.backend import CpuBackend
from numadam.targets.cuda.backend import CudaBackend

ROOT = Path(__file__).resolve().parent.parent


def contract_breaches(cls):
    """What ``cls`` does not keep of the protocol: a required member it leaves to the protocol's
    stub, a method whose parameters differ from the protocol's, an optional member that is neither
    its default nor a method, a member the protocol does not list."""
    breaches = []
    if protocol.Backend not in cls.__mro__:  # (issubclass refuses a protocol with data members)
        breaches.append(f"{cls.__name__} does not subclass Backend")
    for name in protocol.REQUIRED:
        owner = next((klass for klass in cls.__mro__ if name in vars(klass)), None)
        if owner is None and f"self.{name} = " in inspect.getsource(cls.__init__):
            continue  # a data member each object sets
        if owner is None or owner is protocol.Backend or owner.__module__ == "typing":
            breaches.append(f"{cls.__name__} does not define {name}")
            continue
        stub = vars(protocol.Backend).get(name)
        if inspect.isfunction(stub):
            mine = inspect.getattr_static(cls, name)
            function = mine.__func__ if isinstance(mine, staticmethod) else mine
            given = list(inspect.signature(function).parameters)
            given = given if isinstance(mine, staticmethod) else given[1:]
            if given != list(inspect.signature(stub).parameters)[1:]:
                breaches.append(f"{cls.__name__}.{name}{tuple(given)} differs from the protocol's")
    for name in protocol.OPTIONAL:
        value = inspect.getattr_static(cls, name)
        default = vars(protocol.Backend)[name]
        if value is not default and not callable(value) and not isinstance(value, (bool, staticmethod)):
            breaches.append(f"{cls.__name__}.{name} is {value!r}: a method, or the default {default!r}")
    if inspect.getattr_static(cls, "tables_in_place", False) is True and inspect.getattr_static(
            cls, "address_function") is vars(protocol.Backend)["address_function"]:
        breaches.append(f"{cls.__name__} reads its tables in place but gives no address_function")
    listed = set(protocol.REQUIRED) | set(protocol.OPTIONAL)
    for name, value in vars(cls).items():
        if not name.startswith("_") and callable(value) and name not in listed and not _used_inside(cls, name):
            breaches.append(f"{cls.__name__}.{name} is public but neither in the protocol nor used by the backend")
    return breaches


def _used_inside(cls, name):
    """Whether ``cls``'s own module calls ``name`` (a helper of the backend itself)."""
    return f".{name}(" in inspect.getsource(inspect.getmodule(cls))


def test_the_cpu_and_cuda_backends_keep_the_protocol():
    assert contract_breaches(CpuBackend) == []
    assert contract_breaches(CudaBackend) == []


def test_the_check_can_fail():
    class Forgetful(protocol.Backend):
        name = "forgetful"

        def describe(self, array, extra):
            return array

        norms_launcher = 3
        tables_in_place = True

    breaches = contract_breaches(Forgetful)
    assert "Forgetful does not define launcher" in breaches
    assert any("Forgetful.describe" in breach for breach in breaches)
    assert any("Forgetful.norms_launcher is 3" in breach for breach in breaches)
    assert "Forgetful reads its tables in place but gives no address_function" in breaches


def test_the_cpu_backend_in_use_is_a_backend():
    backend = dispatch.backend_for([np.zeros(3)], ["x"])
    assert isinstance(backend, protocol.Backend) and type(backend) is CpuBackend
    assert backend.device_steps is False and backend.norms_step_launcher is not None


def test_the_engine_asks_and_never_probes():
    """No ``getattr``/``hasattr`` on a backend in the engine, the functional steps or the solver."""
    sources = [*(ROOT / "numadam" / "engine").rglob("*.py"), ROOT / "numadam" / "functional.py",
               *(ROOT / "numadam" / "solver").rglob("*.py")]
    probes = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
                if "backend" in ast.unparse(node.args[0]):
                    probes.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert probes == []


def test_the_named_arguments_are_the_kernels_parameters_in_order():
    """The records that carry a one-call kernel's arguments across layers name its parameters."""
    from numadam.targets.cpu import factored_step, kernels

    for record, function in ((kernels.NormsStepArguments, kernels.norms_then_update_serial),
                             (factored_step.FactoredStepArguments, factored_step.factored_step_serial)):
        assert record._fields == tuple(inspect.signature(function.py_func).parameters)


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex128", "int8", "uint16", "int64"])
@pytest.mark.parametrize("size", [0, 1, 37, 1 << 20])
def test_the_cpu_backend_s_zeros_start_on_a_cache_line(dtype, size):
    """State buffers start on a line (a row of 16 float32 is then one line, not two), hold zeros of
    the dtype and size asked, and are writable, C-contiguous, and independent of each other (an
    empty one has no memory to place)."""
    from numadam.targets.cpu.backend import CpuBackend
    from numadam.targets.cpu.kernels import LINE

    first, second = CpuBackend.zeros(size, np.dtype(dtype)), CpuBackend.zeros(size, dtype)
    for array in (first, second):
        assert array.ctypes.data % LINE == 0 or not size
        assert array.dtype == np.dtype(dtype) and array.shape == (size,) and not array.any()
        assert array.flags.c_contiguous and array.flags.writeable
    if size:
        first[...] = 1
        assert not second.any() and not np.shares_memory(first, second)


def test_an_optimizer_s_state_starts_on_a_cache_line():
    """Each state kind of a CPU optimizer lives in a buffer that starts on a line."""
    from numadam.targets.cpu.kernels import LINE

    param = np.ones((100_000, 16), np.float32)  # (so large that NumPy's allocator starts it 16 bytes into a page)
    opt = numadam.SparseAdam(param)
    buffers = [buffer for bucket in opt._engine.buckets for buffer in bucket.buffers.values()]
    assert len(buffers) == 2 and all(buffer.ctypes.data % LINE == 0 for buffer in buffers)


@pytest.mark.parametrize("size", [-1, -16, 2.0, (3,)])
def test_the_cpu_backend_s_zeros_refuse_a_size_that_is_no_count(size):
    """A negative or non-integer size is refused, as NumPy refuses it, and never read as a slice's end."""
    from numadam.targets.cpu.backend import CpuBackend

    with pytest.raises((ValueError, TypeError)):
        CpuBackend.zeros(size, np.dtype(np.float32))
