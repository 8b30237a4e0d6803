"""Other libraries' arrays: DLPack exporters updated in place (zero copy), read-only exports and JAX
arrays refused with the rule, and NumPy users never importing torch, JAX or Dask."""

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import numadam
from arrays import random_array
from reference import adam_exact


class Exporter:
    """A minimal DLPack producer over a NumPy array, as an array library of its own would be."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **options):
        return self.array.__dlpack__(**options)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def test_a_dlpack_exporter_is_updated_in_place_by_the_objects_and_the_functional_step():
    rng = np.random.default_rng(0)
    start = random_array(rng, (6, 5), np.float64)
    grads = [random_array(rng, (6, 5), np.float64) for _ in range(3)]
    memory = start.copy()
    opt = numadam.Adam([Exporter(memory)], lr=0.05)
    functional = start.copy()
    exp_avg, exp_avg_sq = np.zeros_like(start), np.zeros_like(start)
    expected = start, np.zeros_like(start), np.zeros_like(start)
    for step, grad in enumerate(grads, start=1):
        opt.step([Exporter(grad)])
        numadam.adam_step(Exporter(functional), Exporter(grad), Exporter(exp_avg), Exporter(exp_avg_sq),
                          step=step, lr=0.05)
        expected = adam_exact(expected[0], grad, expected[1], expected[2], step=step, lr=0.05, betas=(0.9, 0.999), eps=1e-8)[:3]
    np.testing.assert_array_equal(memory, expected[0])  # the exporter's own memory moved
    np.testing.assert_array_equal(functional, expected[0])
    np.testing.assert_array_equal(exp_avg_sq, expected[2])
    assert isinstance(opt.params[0], Exporter)


def test_a_read_only_export_is_refused_when_written_and_read_when_it_is_a_gradient():
    param = np.zeros(4)
    frozen = np.ones(4)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is a .*Exporter that exports read-only memory over DLPack; "
                                         r"numadam writes its parameters and state in place"):
        numadam.Adam([Exporter(frozen)])
    with pytest.raises(ValueError, match="exp_avg is a .*Exporter that exports read-only memory"):
        numadam.adam_step(param, np.ones(4), Exporter(frozen), np.zeros(4), step=1)
    assert not param.any()  # refused before anything was written
    opt = numadam.Adam([Exporter(param)], lr=0.5)
    opt.step([Exporter(frozen)])  # a read-only gradient is fine
    np.testing.assert_allclose(param, -0.5)


def jax_like_type(name="Array", module="jax._src.array"):
    """A type that dispatch sees as JAX's (keyed on the module's name), for machines without JAX."""
    return type(name, (Exporter,), {"__module__": module})


@pytest.mark.parametrize("where", ["object", "functional", "clipping"])
def test_jax_arrays_are_refused_with_the_way_that_works(where):
    jax_array = jax_like_type()(np.zeros(3))
    message = r"JAX arrays are immutable .* Use optax .* or step numadam on a NumPy copy \(np.array\(x\)\)"
    with pytest.raises(TypeError, match=message):
        if where == "object":
            numadam.Adam({"w": jax_array})
        elif where == "functional":
            numadam.adam_step(jax_array, np.ones(3), np.zeros(3), np.zeros(3), step=1)
        else:
            numadam.clip_by_global_norm([jax_array], 1.0)


def test_real_jax_arrays_are_refused_but_minimize_reads_a_jax_x0():
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(TypeError, match="JAX arrays are immutable.*optax"):
        numadam.Adam([jnp.zeros(3)])
    result = numadam.minimize(lambda x: (float(np.sum((x - 2.0) ** 2)), 2 * (x - 2.0)), jnp.zeros(3),
                              jac=True, lr=0.1, maxiter=3000, gtol=1e-6)
    assert result.success
    np.testing.assert_allclose(result.x, 2.0, atol=1e-5)


def test_numpy_users_never_import_torch_jax_or_dask():
    if not any(importlib.util.find_spec(name) for name in ("torch", "jax", "dask")):
        pytest.skip("none of torch, JAX and Dask is installed: nothing could be imported")
    code = """
        import sys
        import numpy as np
        import numadam
        params = {"w": np.ones((10, 10), np.float32), "b": np.zeros(10)}
        opt = numadam.Adam(params, lr=0.1)
        opt.step({"w": np.ones((10, 10), np.float32), "b": np.ones(10)})
        numadam.adam_step(np.ones(3), np.ones(3), np.zeros(3), np.zeros(3), step=1)
        numadam.clip_by_global_norm([np.ones(3)], 1.0)
        numadam.minimize(lambda x: (float(x @ x), 2 * x), np.ones(3), jac=True, maxiter=3)
        print(sorted({name.split(".")[0] for name in sys.modules} & {"torch", "jax", "jaxlib", "dask"}))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
