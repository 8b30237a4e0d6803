"""The dispatcher: NumPy goes to the CPU kernel without ever importing CuPy or numba-cuda."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from numadam.targets import dispatch


def run_python(code):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_numpy_path_never_imports_cupy_or_numba_cuda():
    pytest.importorskip("cupy")  # the check means something only where CuPy could be imported
    output = run_python("""
        import sys
        import numpy as np
        import numadam
        params = {"w": np.ones((10, 10), np.float32), "b": np.zeros(10)}
        opt = numadam.Adam(params, lr=0.1, amsgrad=True)
        opt.step({"w": np.ones((10, 10), np.float32), "b": np.ones(10)})
        numadam.adam_step(np.ones(3), np.ones(3), np.zeros(3), np.zeros(3), step=1, lr=0.1,
                          betas=(0.9, 0.999), eps=1e-8)
        assert params["b"][0] < 0
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("cupy", "cupyx")
                     or name.startswith("numba.cuda") or name.startswith("numba_cuda")))
    """)
    assert output.strip() == "[]"


def test_import_numadam_leaves_what_a_step_of_numpy_arrays_never_needs_to_first_use():
    """``import numadam`` imports neither numadam.jit's steps (with the compiled solve) nor the Dask
    engine; ``numadam.jit`` still answers, then and inside a user's ``@njit`` function."""
    output = run_python("""
        import sys
        import numpy as np
        import numadam
        lazy = ("numadam.jit", "numadam.solver.compiled", "numadam.engine.dask")
        print(sorted(name for name in lazy if name in sys.modules))
        from numba import njit

        @njit
        def step(p, g, m, v):
            numadam.jit.adam_step(p, g, m, v, 1, 0.1, 0.9, 0.999, 1e-8, 0.0)

        p = np.ones(3)
        step(p, np.ones(3), np.zeros(3), np.zeros(3))
        print(bool(np.all(p < 1.0)))
    """)
    assert output.split() == ["[]", "True"]


def test_backend_is_chosen_by_type_and_cached():
    backend = dispatch.backend_for([np.zeros(3), np.zeros(3)], ["a", "b"])
    assert backend.name == "numpy"
    assert dispatch.backend_for([np.zeros(2)], ["x"]) is backend
    assert dispatch._BACKEND_BY_TYPE[np.ndarray] == "numpy"


def test_ndarray_subclasses_are_numpy_but_masked_arrays_are_refused(tmp_path):
    memmap = np.memmap(tmp_path / "m.dat", dtype=np.float64, mode="w+", shape=(4,))
    assert dispatch.backend_for([memmap], ["m"]).name == "numpy"
    with pytest.raises(TypeError, match="must be a numpy.ndarray or a CUDA array"):
        dispatch.backend_for([np.ma.zeros(3)], ["masked"])


def test_memmap_parameters_are_updated_on_disk(tmp_path):
    import numadam

    memmap = np.memmap(tmp_path / "w.dat", dtype=np.float64, mode="w+", shape=(5,))
    opt = numadam.Adam({"w": memmap}, lr=0.5)
    opt.step({"w": np.ones(5)})
    memmap.flush()
    on_disk = np.fromfile(tmp_path / "w.dat", dtype=np.float64)
    np.testing.assert_allclose(on_disk, -0.5, rtol=1e-7)


def test_objects_with_cuda_array_interface_go_to_cuda():
    class Device:
        __cuda_array_interface__ = {}

    assert dispatch._backend_name(Device) == "cuda"
    assert dispatch._backend_name(list) is None


def test_host_instances_of_cuda_capable_types_are_refused_clearly():
    """torch and JAX put __cuda_array_interface__ on the type and refuse it for arrays in host memory."""
    class HostTensor:
        dtype = np.dtype(np.float32)
        shape = (3,)

        @property
        def __cuda_array_interface__(self):
            raise AttributeError("not a CUDA tensor")

    param = HostTensor()
    with pytest.raises(TypeError, match=r"param must be a numpy.ndarray or a CUDA array .*HostTensor \(not on a CUDA device\)"):
        import numadam

        numadam.adam_step(param, HostTensor(), HostTensor(), HostTensor(), step=1, lr=0.1,
                          betas=(0.9, 0.999), eps=1e-8)
