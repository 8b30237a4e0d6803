"""Arrays of other libraries, seen as the NumPy or CUDA arrays over their memory.

numadam's kernels update NumPy and CUDA arrays (:mod:`numadam.targets.dispatch`).
Other libraries' arrays are *adopted* here, zero copy, before any check:

- **torch tensors** on the CPU become ``tensor.detach().numpy()`` (bfloat16
  through its bits, as ``ml_dtypes.bfloat16``), CUDA tensors CuPy arrays over
  the same device memory (DLPack). Every write through them is followed by
  ``torch.autograd.graph.increment_version``, so autograd catches what it
  catches after torch's own optimizers, and a CUDA launch runs on torch's
  current stream (:func:`launch_stream`).
- **other DLPack exporters** (``__dlpack__``) become ``numpy.from_dlpack``
  views, or CuPy's for CUDA memory; a read-only export is refused when it
  would be written.
- **JAX arrays** are immutable: refused, with the way that works.

The kind of a type is decided once and cached, by its module's name: torch,
JAX and CuPy are never imported here (a tensor's own methods are used, and
``sys.modules`` holds torch once a tensor exists).
"""

import contextlib
import sys

import numpy as np

from ..targets.dispatch import describe_type
from .rows import Rows, is_rows

_KIND_BY_TYPE = {np.ndarray: None}


def _kind(array_type):
    """``"torch"``, ``"jax"``, ``"dlpack"`` or ``None`` (NumPy, CuPy, anything else) for a type."""
    try:
        return _KIND_BY_TYPE[array_type]
    except KeyError:
        pass
    package = (array_type.__module__ or "").partition(".")[0]
    if package == "torch" and hasattr(array_type, "data_ptr"):
        kind = "torch"
    elif package in ("jax", "jaxlib"):
        kind = "jax"
    elif issubclass(array_type, np.ndarray) or package == "cupy" or hasattr(array_type, "__cuda_array_interface__"):
        kind = None  # numadam's own: numadam.targets.dispatch takes it from here
    elif hasattr(array_type, "__dlpack__"):
        kind = "dlpack"
    else:
        kind = None
    _KIND_BY_TYPE[array_type] = kind
    return kind


def is_foreign(value):
    """Whether ``value`` is an array this module adopts (or refuses): torch, JAX, DLPack."""
    return _kind(type(value)) is not None


def is_tensor(value):
    return _kind(type(value)) == "torch"


def is_jax(value):
    return _kind(type(value)) == "jax"


class Adopted:
    """Leaves as NumPy or CUDA arrays over the same memory, and the tensors a write must tell.

    ``arrays`` are the leaves to check and update; ``tensors`` the torch tensors
    among the written leaves (their version counters go up after a write);
    ``stream`` torch's current CUDA stream for CUDA tensors (``None`` otherwise).
    """

    __slots__ = ("arrays", "tensors", "stream")

    def __init__(self, arrays, tensors=(), stream=None):
        self.arrays = arrays
        self.tensors = list(tensors)
        self.stream = stream

    def launch(self):
        """A context in which kernels launch on the tensors' stream (a no-op for NumPy and CuPy)."""
        return contextlib.nullcontext() if self.stream is None else _cupy_stream(self.stream)

    def written(self):
        """Tell autograd that the written tensors changed (``increment_version``)."""
        if self.tensors:
            sys.modules["torch"].autograd.graph.increment_version(self.tensors)


def adopt(leaves, paths, written):
    """:class:`Adopted` of ``leaves`` (named ``paths``); ``written[k]`` says whether leaf ``k`` is written.

    NumPy and CuPy leaves pass through as they are; anything else unknown is left
    for :func:`numadam.targets.dispatch.backend_for` to refuse.
    """
    if all(_kind(type(leaf)) is None and not is_rows(leaf) for leaf in leaves):
        return Adopted(leaves)
    arrays, tensors, stream = [], [], None
    for leaf, path, writes in zip(leaves, paths, written):
        kind = _kind(type(leaf))
        if is_rows(leaf):  # its index and values adopted as any gradient is
            arrays.append(Rows(*adopt([leaf.index, leaf.values], [f"{path}.index", f"{path}.values"],
                                      [False, False]).arrays))
        elif kind is None:
            arrays.append(leaf)
        elif kind == "torch" and leaf.layout is not sys.modules["torch"].strided:
            arrays.append(_sparse_rows(leaf, path, writes))
        elif kind == "torch":
            array, leaf_stream = _tensor_array(leaf, path, writes)
            arrays.append(array)
            if writes:
                tensors.append(leaf)
            stream = stream if leaf_stream is None else leaf_stream
        elif kind == "jax":
            raise TypeError(
                f"{path} is a {describe_type(leaf)}: JAX arrays are immutable and numadam updates arrays in "
                "place. Use optax (optax.adam, optax.adamw, ...) for JAX, or step numadam on a NumPy copy "
                "(np.array(x)) and convert back with jax.numpy.asarray")
        else:
            arrays.append(_dlpack_array(leaf, path, writes))
    return Adopted(arrays, tensors, stream)


def _sparse_rows(tensor, path, writes):
    """The :class:`~numadam.adapters.rows.Rows` of a sparse COO gradient tensor whose sparse
    dimension is its first (``nn.Embedding(sparse=True)``'s), over the tensor's own index and values."""
    torch = sys.modules["torch"]
    if writes or tensor.layout is not torch.sparse_coo:
        raise TypeError(f"{path} is a torch tensor of layout {tensor.layout}; numadam updates strided tensors, "
                        "and takes sparse COO tensors as gradients")
    if tensor.sparse_dim() != 1:
        raise ValueError(f"{path} is a sparse COO tensor with {tensor.sparse_dim()} sparse dimensions; numadam "
                         "takes sparse gradients whose first dimension alone is sparse (rows), as "
                         "nn.Embedding(sparse=True) gives")
    index, values = tensor._indices()[0], tensor._values()
    (index, values) = adopt([index, values], [f"{path}'s indices", f"{path}'s values"], [False, False]).arrays
    return Rows(index, values)


def _tensor_array(tensor, path, writes):
    """``(array, stream)``: the NumPy or CuPy array over a torch tensor's memory, and for a CUDA
    tensor torch's current stream on its device."""
    if writes and tensor.requires_grad and not tensor.is_leaf:
        raise ValueError(f"{path} is a tensor computed from others (not a leaf of the autograd graph); "
                         "optimize the leaf tensors it comes from, as torch.optim does")
    if not tensor.requires_grad:
        try:
            return tensor.numpy(), None  # a CPU tensor of one of NumPy's dtypes: the common case, kept short
        except (TypeError, RuntimeError):
            pass  # CUDA, bfloat16, a lazy view: see below
    if tensor.is_conj() or tensor.is_neg():
        raise TypeError(f"{path} is a lazily conjugated or negated torch view; pass tensor.resolve_conj()"
                        ".resolve_neg() (a copy) or the tensor it views")
    data = tensor.detach()
    device = data.device.type
    if device == "cpu":
        return _cpu_tensor_array(data, path), None
    if device == "cuda":
        cupy = _require_cupy(path)
        torch = sys.modules["torch"]
        with cupy.cuda.Device(data.device.index):
            return cupy.from_dlpack(data), torch.cuda.current_stream(data.device).cuda_stream
    raise TypeError(f"{path} is a torch tensor on device {data.device}; numadam updates CPU and CUDA tensors")


def _cpu_tensor_array(data, path):
    torch = sys.modules["torch"]
    if data.dtype == torch.bfloat16:
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError(f"{path} is a bfloat16 tensor; numadam sees bfloat16 through ml_dtypes "
                            "(pip install ml_dtypes)") from None
        return data.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    try:
        return data.numpy()
    except (TypeError, RuntimeError) as error:
        raise TypeError(f"{path} is a torch tensor of dtype {data.dtype}, which NumPy cannot view: {error}") from None


def _dlpack_array(value, path, writes):
    """The NumPy (CPU) or CuPy (CUDA) array over a DLPack exporter's memory, zero copy."""
    device_type = value.__dlpack_device__()[0] if hasattr(value, "__dlpack_device__") else 1
    if device_type in (2, 13):  # kDLCUDA, kDLCUDAManaged
        array = _require_cupy(path).from_dlpack(value)
        readonly = False
    elif device_type in (1, 3):  # kDLCPU, kDLCUDAHost
        try:
            array = np.from_dlpack(value)
        except (BufferError, TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"{path} is a {describe_type(value)} whose DLPack export NumPy cannot read: {error}") \
                from None
        readonly = not array.flags.writeable
    else:
        raise TypeError(f"{path} is a {describe_type(value)} on DLPack device type {device_type}; numadam "
                        "updates CPU (NumPy) and CUDA arrays")
    if writes and readonly:
        raise ValueError(f"{path} is a {describe_type(value)} that exports read-only memory over DLPack; "
                         "numadam writes its parameters and state in place, so they must be writable")
    return array


def _require_cupy(path):
    try:
        import cupy
    except ImportError:
        raise TypeError(f"{path} lives in CUDA memory; numadam's CUDA path needs CuPy "
                        "(pip install cupy-cuda12x)") from None
    return cupy


class _StreamHandle:
    """A raw CUDA stream handle in the CUDA stream protocol, which CuPy 14's ``Stream.from_external`` takes."""

    def __init__(self, pointer):
        self.pointer = pointer

    def __cuda_stream__(self):
        return (0, self.pointer)


def _cupy_stream(pointer):
    cuda = sys.modules["cupy"].cuda
    if hasattr(cuda.Stream, "from_external"):  # ExternalStream is deprecated from CuPy 14
        return cuda.Stream.from_external(_StreamHandle(pointer))
    return cuda.ExternalStream(pointer)


def tensor_like(array, reference):
    """``array`` (numadam's NumPy or CuPy result) as a torch tensor sharing its memory, on
    ``reference``'s device, when ``reference`` is a torch tensor; else ``array`` itself."""
    if not is_tensor(reference):
        return array
    torch = sys.modules["torch"]
    if isinstance(array, np.ndarray):
        if array.dtype.name == "bfloat16":
            return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(array)
    return torch.from_dlpack(array)
