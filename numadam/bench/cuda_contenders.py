r"""What ``numadam bench --device cuda`` races on the GPU, and the platform that runs them.

numadam's own contenders (:class:`~numadam.bench.contenders.NumadamObject`,
:class:`~numadam.bench.contenders.NumadamFunctional`) run unchanged on CuPy
arrays. Against them:

- **same-traffic kernel (CuPy)**: the GPU roofline, a ``cupy.ElementwiseKernel``
  doing :math:`p \mathrel{+}= g,\ m \mathrel{+}= g,\ v \mathrel{+}= g` (and
  :math:`\hat v \mathrel{+}= g` for AMSGrad) in the arrays' dtype over one flat
  buffer: the bytes of an Adam step with trivial arithmetic; for many arrays
  also once per array, what a Python loop of launches costs;
- **device copy**: a copy of a buffer of half the step's bytes, so that its
  reads and writes are the step's traffic, by ``cudaMemcpyAsync`` and by a
  CuPy copy kernel; the faster is the device's copy bandwidth;
- **torch fused / foreach (CUDA)**: ``torch.optim.Adam``/``AdamW`` on CUDA
  tensors that share memory with CuPy arrays (DLPack), so that the check
  before timing compares the very arrays numadam updates;
- **numadam, one flat array**: numadam on one array holding every element of a
  many-array case, the yardstick of the per-array cost;
- **launch floors** (the 1e3 case): an empty numba-cuda kernel launched with
  numadam's kernel arguments, and an empty CuPy kernel: the host's cost of
  launching anything, below which no 1e3 step can go.

Nothing here imports CuPy, numba-cuda or torch before the GPU bench runs.
"""

import functools
import sys
import warnings
from functools import partial

import numpy as np

from .cases import BETAS, EPS, LR
from .contenders import Contender, NumadamFunctional, NumadamObject, Problem, to_host
from .cuda_timing import cuda_interleaved_medians
from .frameworks import Unavailable, _require
from .runner import Platform


class NoCudaDevice(Exception):
    """The GPU bench cannot run here; the message says why."""


def _cupy():
    import cupy

    return cupy


def cuda_platform():
    """The :class:`~numadam.bench.runner.Platform` of the GPU bench; raises :class:`NoCudaDevice`."""
    try:
        import cupy
    except ImportError:
        raise NoCudaDevice("cupy is not installed (pip install 'numadam[cuda]')") from None
    try:
        available = cupy.cuda.is_available()
    except Exception as error:  # noqa: BLE001 -- a broken driver is one more reason not to run
        raise NoCudaDevice(f"CuPy cannot reach the CUDA driver: {error}") from None
    if not available:
        raise NoCudaDevice("CuPy finds no CUDA device (cupy.cuda.is_available() is false)")
    return Platform(cuda_builders, cuda_interleaved_medians, _device_copies, _assign, cupy, _release)


def _device_copies(arrays):
    cupy = _cupy()
    return [cupy.asarray(array) for array in arrays]


def _assign(device_arrays, host_arrays):
    for device, host in zip(device_arrays, host_arrays):
        device.set(np.ascontiguousarray(host))


def _release():
    """Give the memory of the last variant's contenders back to the device (CuPy's and torch's pools)."""
    cupy = _cupy()
    cupy.cuda.runtime.deviceSynchronize()
    cupy.get_default_memory_pool().free_all_blocks()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def cuda_builders(case):
    """``(label, role, build)`` for every GPU contender of ``case``."""
    builders = [
        ("numadam", "numadam", NumadamObject),
        ("numadam.adam_step", "other", NumadamFunctional),
    ]
    if not case.single:
        builders.append(("numadam, one flat array", "other", NumadamOneFlatArray))
    builders.append(("same-traffic kernel (CuPy)", "roofline", partial(CupySameTraffic, per_array=False)))
    if not case.single:
        builders.append(("same-traffic kernel, one call per array", "other", partial(CupySameTraffic, per_array=True)))
    builders += [
        ("device copy, cudaMemcpyAsync", "copy", partial(DeviceCopy, engine="memcpy")),
        ("device copy, CuPy kernel", "copy", partial(DeviceCopy, engine="kernel")),
        ("torch fused (CUDA)", "other", partial(TorchCudaAdam, mode="fused")),
        ("torch foreach (CUDA)", "other", partial(TorchCudaAdam, mode="foreach")),
    ]
    if case.name == "small":
        builders += [
            ("launch floor: empty numba-cuda kernel", "other", NumbaEmptyLaunch),
            ("launch floor: empty CuPy kernel", "other", CupyEmptyLaunch),
        ]
    return builders


class NumadamOneFlatArray(Contender):
    """numadam over one array of all the case's elements; its gradient is a flat copy of the case's."""

    def __init__(self, problem, variant):
        cupy = _cupy()
        self._shapes = [p.shape for p in problem.params]
        self._problem_grads = problem.grads
        flat = np.concatenate([p.ravel() for p in problem.params])
        self._grad = cupy.empty(flat.size, flat.dtype)
        self.reload_grads()
        self._numadam = NumadamObject(Problem([flat], [self._grad], True, cupy), variant)

    def reload_grads(self):
        _cupy().concatenate([g.ravel() for g in self._problem_grads], out=self._grad)

    def step(self):
        self._numadam.step()

    def parameters(self):
        (flat,) = self._numadam.parameters()
        ends = np.cumsum([int(np.prod(shape)) for shape in self._shapes])
        return [piece.reshape(shape) for piece, shape in zip(np.split(flat, ends[:-1]), self._shapes)]


def same_traffic_kernel(amsgrad):
    """The CuPy kernel with the traffic of an Adam (or AMSGrad) step: ``kernel(g, p, m, v[, v_max])``."""
    return elementwise_traffic_kernel(3 if amsgrad else 2)


@functools.cache
def elementwise_traffic_kernel(n_states):
    """The CuPy kernel with the traffic of an elementwise step with ``n_states`` state arrays:
    ``kernel(g, p, s_1, ..., s_n)`` reads ``g`` and adds it to ``p`` and to each state."""
    outputs = ", ".join(["T p"] + [f"T s{i}" for i in range(n_states)])
    body = " ".join(["p += g;"] + [f"s{i} += g;" for i in range(n_states)])
    return _cupy().ElementwiseKernel("T g", outputs, body, f"numadam_same_traffic_{n_states}")


class CupySameTraffic(Contender):
    """The same-traffic kernel over one flat buffer, or once per array (``per_array``)."""

    checked = False

    def __init__(self, problem, variant, per_array):
        cupy = _cupy()
        self._kernel = same_traffic_kernel(variant.amsgrad)
        if per_array:
            pairs = [(p.ravel(), g.ravel()) for p, g in zip(problem.params, problem.grads)]
        else:
            pairs = [(np.concatenate([p.ravel() for p in problem.params]),
                      cupy.concatenate([g.ravel() for g in problem.grads]))]
        n_state = 3 if variant.amsgrad else 2
        # (g, p, m, v[, v_max]): the kernel's inputs, then its outputs
        self._arrays = [[grad, cupy.asarray(param)] + [cupy.zeros(param.size, param.dtype) for _ in range(n_state)]
                        for param, grad in pairs]

    def step(self):
        for arrays in self._arrays:
            self._kernel(*arrays)

    def parameters(self):
        return [to_host(arrays[1]) for arrays in self._arrays]


class DeviceCopy(Contender):
    """A device-to-device copy of half a step's bytes: its reads and writes are the step's traffic."""

    checked = False

    def __init__(self, problem, variant, engine):
        cupy = _cupy()
        n_elements = sum(p.size for p in problem.params)
        dtype = problem.params[0].dtype
        n_words = n_elements * variant.bytes_per_element(dtype) // 2 // 4
        self._source = cupy.arange(n_words, dtype=cupy.int32)
        self._target = cupy.empty_like(self._source)
        self._engine = engine

    def step(self):
        if self._engine == "memcpy":
            stream = _cupy().cuda.get_current_stream()
            self._target.data.copy_from_device_async(self._source.data, self._source.nbytes, stream)
        else:
            self._target[...] = self._source

    def parameters(self):
        return []


class TorchCudaAdam(Contender):
    """``torch.optim.Adam``/``AdamW`` on CUDA tensors sharing memory with CuPy arrays (DLPack)."""

    def __init__(self, problem, variant, mode):
        torch = _require("torch")
        if not torch.cuda.is_available():
            raise Unavailable(f"torch {torch.__version__} has no CUDA device")
        if mode == "fused" and np.dtype(problem.params[0].dtype).kind == "c":  # it raises at the first step
            raise Unavailable("torch's fused Adam takes no complex tensors")
        cupy = _cupy()
        self._params = [cupy.array(p, copy=True) for p in problem.params]
        tensors = []
        for param, grad in zip(self._params, problem.grads):
            tensor = torch.nn.Parameter(torch.from_dlpack(param))
            tensor.grad = torch.from_dlpack(grad)
            tensors.append(tensor)
        optimizer = torch.optim.AdamW if variant.decoupled else torch.optim.Adam
        options = dict(lr=LR, betas=BETAS, eps=EPS, weight_decay=variant.weight_decay, amsgrad=variant.amsgrad)
        try:
            self._optimizer = optimizer(tensors, **options, **{mode: True})
        except (RuntimeError, ValueError) as refusal:
            raise Unavailable(f"torch refuses {mode}=True here: {refusal}") from None

    def step(self):
        self._optimizer.step()

    def parameters(self):
        return [to_host(p) for p in self._params]


@functools.cache
def _empty_numba_kernel():
    from numba import cuda

    @cuda.jit
    def empty(table_address, width, n_segments, n_chunks, chunk_size, scalars_address, like):
        pass

    return empty


class NumbaEmptyLaunch(Contender):
    """An empty numba-cuda kernel launched with the argument types of numadam's kernel, one block."""

    checked = False

    def __init__(self, problem, variant):
        from numadam.targets.cuda import kernels as cuda_kernels

        real_dtype = problem.params[0].dtype.type(0).real.dtype
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Grid size")
            self._launch = _empty_numba_kernel()[1, cuda_kernels.THREADS_PER_BLOCK, 0]
        self._args = (0, 13, 1, 1, cuda_kernels.CHUNK_SIZE, 0, real_dtype.type(0))

    def step(self):
        self._launch(*self._args)

    def parameters(self):
        return []


class CupyEmptyLaunch(Contender):
    """An empty CuPy ``RawKernel``, one block: CuPy's launch cost."""

    checked = False

    def __init__(self, problem, variant):
        cupy = _cupy()
        self._kernel = cupy.RawKernel('extern "C" __global__ void numadam_empty() {}', "numadam_empty")

    def step(self):
        self._kernel((1,), (256,), ())

    def parameters(self):
        return []
