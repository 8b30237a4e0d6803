"""Dask arrays: numadam's own kernel on every chunk; parameters and state replaced, not written.

Dask arrays are immutable, so a step cannot update them in place. It builds
one task per chunk that runs the family's functional step
(:func:`numadam.functional.run_step`: the CPU kernel on NumPy chunks, the CUDA
kernel on CuPy chunks) out of place: it reads the chunk's parameter and state
and writes their new values into new arrays in one pass, and returns those
together as one tuple. Dask has no multi-output blockwise: an optimizer keeps
the tuples themselves (:class:`DaskState`: the next step's task reads them,
and its parameters and state are views of them), so a step is one task per
chunk; the functional steps, which must answer with arrays, add one
``getitem`` task per chunk and output. Everything is persisted in one call,
so every chunk's task runs once, where its inputs live (Dask's work stealing
may still hand a task, and its chunks, to an idle worker: docs/frameworks.md).
New arrays rather than in-place writes: a task
that Dask runs again (after a lost worker) starts from its own inputs, never
from half-updated ones, so a recovered step is the step.

Global reductions (the gradients' global norm for ``clip_global_norm``, the
non-finite count for ``nonfinite``) are Dask tree reductions, computed before
the step's tasks are built. LAMB's per-parameter norms take a first round of
tasks (:meth:`DaskState._step_with_norms`). The elementwise policies
(``clip_value``, ``bounds`` given as numbers or arrays, the moving average
``ema``, the mean of accumulated micro-batches, the float32 master copy) run
inside each chunk's task (:class:`ChunkPolicy`), and each parameter steps with
its group's hyperparameters. The moving average, the accumulator and the
master copy are held as more items of each chunk's tuple.

Nothing here imports Dask before a Dask array shows up.
"""

import contextlib
import functools
import math
import operator
import os
import sys

from typing import NamedTuple

import numpy as np

from ..adapters import chunk_pool
from ..core import dtypes
from ..core.family import StateKind
from ..core.policies import Policies, global_scale

#: The policies a step over Dask arrays applies; the others are refused with this list.
SUPPORTED_POLICIES = ("clip_global_norm", "nonfinite", "clip_value", "bounds", "ema", "ema_bias_correction",
                      "accumulate", "state_dtype", "complex_mode", "master_weights")


#: A :class:`ChunkPolicy`'s ``low`` or ``high`` that is an array: its chunk comes last in the task's arguments.
ARRAY_BOUND = "array"


class ChunkPolicy(NamedTuple):
    """What a chunk's task applies around the family's rule, elementwise.

    The gradient is scaled by ``grad_scale`` (global-norm clipping, computed by
    a tree reduction first), then clipped to ``[-clip_value, clip_value]``; the
    new parameter is projected onto ``[low, high]`` (numbers, ``None``: no bound,
    or :data:`ARRAY_BOUND`: the chunk of an array bound, given after the state);
    the moving average of the parameter takes it with decay ``ema``. With
    ``accumulate`` (the number of micro-batches) the gradient the rule sees is
    first the mean of the accumulated ones and this one, and the accumulator
    is cleared. With ``master`` the update reads and writes a float32 copy of
    the 16-bit parameter (projected there) and rounds it into the parameter.
    The average's chunk, the accumulator's, then the master copy's come last in
    the task's state. The same order as the kernels' policies, the same numbers.
    """

    grad_scale: float = 1.0
    clip_value: float | None = None
    low: float | str | None = None
    high: float | str | None = None
    ema: float | None = None
    accumulate: int | None = None
    master: bool = False


def is_dask_array(value):
    """Whether ``value`` is a ``dask.array.Array`` (decided by its type, without importing Dask)."""
    kind = type(value)
    return kind.__name__ == "Array" and kind.__module__.startswith("dask.array")


def _chunk_step(cls, names, step, hyper, carry, policy, param, grad, *state):
    """One chunk's step into new arrays: ``(param, *state)`` after it; the chunks given stay as they were.

    The kernel reads the old chunks and writes new ones in one pass (out of
    place, :func:`_new_chunk`); new NumPy chunks come from recycled memory
    (:mod:`numadam.adapters.chunk_pool`), and the CPU kernel runs on as many threads as
    the worker gives a task (see :func:`_task_threads`).
    """
    from ..functional import run_step

    state, bounds = _split_bounds(state, policy)
    master = state.pop() if policy.master else None
    accumulator = state.pop() if policy.accumulate is not None else None
    average = state.pop() if policy.ema is not None else None
    if accumulator is not None:
        grad = _mean_gradient(accumulator, grad, policy.accumulate)
    old = dict(zip(("param", *names), (param, *state)))
    if master is not None:
        old["master"] = master
    new, sources = {}, {}
    for name, chunk in old.items():
        new[name], source = _new_chunk(chunk)
        if source is not None:
            sources[name] = source
    with _task_threads():
        run_step(cls, {**new, "grad": _usable_gradient(grad, policy)}, step, hyper, carry, sources=sources,
                 master=master is not None)
    new_master = new.pop("master", None)
    if new_master is None:
        _project(new["param"], policy, bounds)
    elif policy.low is not None or policy.high is not None:  # the float32 copy, then its rounding
        _project(new_master, policy, bounds, new["param"].dtype)
        new["param"][...] = new_master.astype(new["param"].dtype)
    buffers = [] if average is None else [_averaged(average, new["param"], policy.ema)]
    if accumulator is not None:
        buffers.append(_filled_like(accumulator, 0, accumulator.dtype))
    if new_master is not None:
        buffers.append(new_master)
    return (*new.values(), *buffers)


def _mean_gradient(accumulator, grad, count):
    """The gradient of an accumulated update: the mean of the ``count`` micro-batch gradients, summed
    in the float64 ``accumulator`` but for this last one, ``grad``; in ``grad``'s dtype, as the
    kernels compute it."""
    total = accumulator + grad.astype(accumulator.dtype)
    return (total / accumulator.real.dtype.type(count)).astype(grad.dtype)


def _accumulated(item, held, grad):
    """A chunk's holdings after a micro-batch that only accumulates: ``grad`` added into the
    accumulator (item ``item``, a new array); the parameter and the other items are the same arrays."""
    return (*held[:item], held[item] + grad.astype(held[item].dtype), *held[item + 1:])


def _mean_of_held(item, count, held, grad):
    """The gradient an accumulated update will see: the accumulator (item ``item``) and ``grad``'s mean."""
    return _mean_gradient(held[item], grad, count)


def _chunk_first_pass(cls, names, step, hyper, carry, policy, param, grad, *state):
    """The first pass over one chunk (LAMB's): ``(*state, sums)``, the new state (copies) and the
    float64 sums of squares of the parameter and of the update direction over the chunk."""
    from ..functional import run_step

    state = [_fresh(array) for array in state]
    grad = _usable_gradient(grad, policy)
    if isinstance(param, np.ndarray) and not (param.flags.aligned and param.flags.writeable):
        param = chunk_pool.copy_of(param)  # only read, but checked like a parameter
    with _task_threads():
        norms = run_step(cls, dict(zip(("param", "grad", *names), (param, grad, *state))), step, hyper, carry,
                         passes=("first",))
    return (*state, np.array(norms, np.float64))


def _chunk_update(cls, names, step, hyper, carry, policy, norms, param, grad, *state):
    """The update over one chunk with its parameter's ``norms`` (LAMB's second pass, which reads
    the state): the new parameter (a copy)."""
    from ..functional import run_step

    state, bounds = _split_bounds(state, policy)
    param, state = _fresh(param), [_fresh(array) for array in state]
    with _task_threads():
        run_step(cls, dict(zip(("param", "grad", *names), (param, _usable_gradient(grad, policy), *state))),
                 step, hyper, carry, norms=norms, passes=("update",))
    _project(param, policy, bounds)
    return param


def _averaged(average, param, decay):
    r"""A new chunk of the moving average after a step: :math:`d\,\bar p + (1 - d)\,p`, in the
    real numbers of the average's dtype (complex as pairs), as the kernels compute it."""
    kind = average.real.dtype.type
    kept, taken = kind(decay), kind(1.0 - decay)
    new = _fresh(average)
    for part in (operator.attrgetter("real"), operator.attrgetter("imag"))[:2 if average.dtype.kind == "c" else 1]:
        out = part(new)
        out *= kept
        out += part(param) * taken
    return new


def _new_chunk(chunk):
    """``(new, source)``: where a task writes ``chunk``'s new values and where the kernel reads its old
    ones: an empty array laid out as ``chunk`` and ``chunk`` itself, or (for a layout that recycled
    memory does not reproduce, an unaligned buffer) a copy updated in place and ``None``."""
    if chunk.flags.c_contiguous and getattr(chunk.flags, "aligned", True):  # CuPy's memory is aligned
        new = chunk_pool.empty_like(chunk) if isinstance(chunk, np.ndarray) else type(chunk)(chunk.shape, chunk.dtype)
        if new.strides == chunk.strides:
            return new, chunk
    return _fresh(chunk), None


def _fresh(chunk):
    """A copy of ``chunk`` for a task to write: in recycled memory for NumPy (:mod:`numadam.adapters.chunk_pool`),
    from CuPy's own pool for CuPy."""
    return chunk_pool.copy_of(chunk) if isinstance(chunk, np.ndarray) else chunk.copy()


def _usable_gradient(grad, policy):
    """The gradient the rule sees: scaled, then clipped (new arrays; the chunk itself is never written)."""
    if isinstance(grad, np.ndarray) and not grad.flags.aligned:  # a buffer straight off the network
        grad = grad.copy()
    if policy.grad_scale != 1.0:
        grad = grad * grad.real.dtype.type(policy.grad_scale)
    if policy.clip_value is not None:
        limit = grad.real.dtype.type(policy.clip_value)
        grad = grad.clip(-limit, limit)
    return grad


def _split_bounds(state, policy):
    """``(state, bounds)``: a task's state chunks, and after them the chunks of its array bounds."""
    n_arrays = (policy.low == ARRAY_BOUND) + (policy.high == ARRAY_BOUND)
    return list(state[:len(state) - n_arrays]), state[len(state) - n_arrays:]


def _project(param, policy, bounds=(), dtype=None):
    """``param`` onto ``[low, high]``, in place (NaN stays NaN); ``bounds``: the chunks of array bounds.
    Number bounds are first rounded to ``dtype`` (the parameter's, where ``param`` is its float32 copy)."""
    chunks = iter(bounds)
    kind = (dtype or param.dtype).type
    sides = [next(chunks) if value == ARRAY_BOUND else None if value is None else kind(value)
             for value in (policy.low, policy.high)]
    if sides[0] is not None or sides[1] is not None:
        param.clip(*sides, out=param)


@contextlib.contextmanager
def _task_threads():
    """Numba's threads for a kernel in a Dask task: ``OMP_NUM_THREADS`` of the worker when it is
    set (Dask's nannies set 1, one core per worker thread), all of them otherwise."""
    import numba

    wanted = os.environ.get("OMP_NUM_THREADS", "")
    if not wanted.isdigit() or int(wanted) < 1:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(min(int(wanted), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _filled_like(block, value, dtype):
    """A new chunk shaped like ``block`` (NumPy or CuPy), every real number ``value`` (a complex
    element is a pair of them, as the kernels see it: Yogi's initial 1e-6 is 1e-6 + 1e-6j)."""
    return np.full_like(block, complex(value, value) if np.dtype(dtype).kind == "c" else value, dtype=dtype)


def _together(*chunks):
    """One chunk of an optimizer's holdings: its parameter's chunk and its state's, in one tuple."""
    return chunks


def _item(held, item):
    """Item ``item`` of a chunk of the holdings (a Python function: Dask inspects a builtin's
    signature slowly)."""
    return held[item]


def _step_held(run, held, grad, *bounds):
    """``run`` on one chunk of the holdings (and of array bounds): the next holdings' chunk."""
    return run(held[0], grad, *held[1:], *bounds)


def _held_array(da, function, arrays, token):
    """The Dask array of tuples made by ``function`` over ``arrays`` chunk by chunk (one task per chunk)."""
    return da.map_blocks(function, *arrays, dtype=object, meta=np.empty((0,) * arrays[0].ndim, object), token=token)


def _view(held, item, meta):
    """The Dask array of item ``item`` of each tuple of ``held``, whose chunks are like ``meta``."""
    return held.map_blocks(_item, item, dtype=meta.dtype, meta=meta)


def stepped_blocks(da, run, param, grad, states, token):
    """The lazy arrays ``(param, *states)`` after ``run`` on each chunk: one task per chunk returning
    them all, then one item task per chunk and output (Dask has no multi-output blockwise)."""
    together = _held_array(da, run, [param, grad, *states], token)
    return [_view(together, i, _meta(output, output.dtype)) for i, output in enumerate([param, *states])]


def functional_step(cls, operands, step, hyper, carry):
    """``(param, *state)`` after one step of Dask arrays ``operands`` (``param``, ``grad``, the
    state in the family's order), persisted: the functional steps' answer for Dask arrays."""
    import dask

    from .bucket import expected_state_dtype

    da = _import_dask_array()
    names = [name for name in operands if name not in ("param", "grad")]
    param = operands["param"]
    _check_dtype(param.dtype, "param")
    arrays = {}
    expected_state = expected_state_dtype(param.dtype, operands[names[0]].dtype if names else None)
    magnitude = {kind.name for kind in cls.family.state if kind.magnitude} if param.dtype.kind == "c" else set()
    for name, array in operands.items():
        if not is_dask_array(array):
            raise TypeError(f"{name} is a {type(array).__name__} but param is a Dask array: every operand of a "
                            "step over Dask arrays must be one")
        if array.shape != param.shape:
            raise ValueError(f"{name} must have param's shape {param.shape}; got {array.shape}")
        expected = param.dtype if name in ("param", "grad") else expected_state
        if name in magnitude and array.dtype.kind != "c":  # complex_mode="magnitude": real numbers
            expected = dtypes.storage_dtype(param.dtype)
        if array.dtype != expected:
            raise TypeError(f"{name} is {array.dtype} but must be {expected} (param is {param.dtype})")
        arrays[name] = array if array.chunks == param.chunks else array.rechunk(param.chunks)
    run = functools.partial(_chunk_step, cls, names, step, hyper, carry, ChunkPolicy())
    pieces = stepped_blocks(da, run, param, arrays["grad"], [arrays[name] for name in names],
                            f"numadam-{cls.family.name}-step-{step}")
    return dask.persist(*pieces)


def _meta(array, dtype):
    """An empty array of ``array``'s chunk type (NumPy or CuPy) and ``dtype``."""
    return _empty_like(array._meta, dtype)


def _empty_like(meta, dtype):
    """``meta`` (an empty chunk) in ``dtype``: made anew, not cast (a complex meta has nothing to discard)."""
    return np.empty_like(meta, dtype=dtype)


class DaskState:
    """The parameters of one optimizer as Dask arrays, and their state chunked like them.

    Each parameter and its state are held together: ``holdings[k]`` is a
    persisted Dask array of tuples, one per chunk of parameter ``k``:
    ``(param, *state)``. A step is then one task per chunk, which reads the
    tuple and the gradient's chunk and returns the next tuple: the workaround
    for Dask's lack of a multi-output blockwise that adds no task (a ``getitem``
    task per chunk and output would quadruple what the scheduler handles for
    Adam). ``params[k]`` and ``state[name][k]`` are views of the holdings:
    Dask arrays whose chunks are items of those tuples, computed where the
    tuples live. A view you keep holds its whole tuple (the state too) in the
    workers' memory. The optimizer's own arrays (:attr:`buffers`: the moving
    average, the accumulator, the float32 master copy) are more items of each
    tuple, after the family's state.
    """

    def __init__(self, cls, leaves, paths, h, policies, bounds=None):
        self.da = _import_dask_array()
        self.cls = cls
        self.family = cls.family
        self.paths = paths
        _check_policies(policies, cls)
        wide_only = [name for name, used in (  # what acts on a step's float32 values
            ("clip_global_norm", policies.clip_global_norm is not None),
            ("clip_value", policies.clip_value is not None), ("ema", policies.ema is not None),
            ("accumulate", policies.accumulate > 1)) if used]
        for leaf, path in zip(leaves, paths):
            if not is_dask_array(leaf):
                raise TypeError(f"{path} is a {type(leaf).__name__} but other parameters are Dask arrays: "
                                "all parameters of a Dask optimizer must be Dask arrays")
            _check_dtype(leaf.dtype, path)
            if wide_only and dtypes.is_low_precision(leaf.dtype):
                raise ValueError(f"on Dask arrays {wide_only[0]} takes float32, float64 and complex parameters; {path} "
                                 f"is {leaf.dtype} (only the fused kernel keeps the step's float32 values)")
        if policies.master_weights and self.family.norms is not None:
            raise ValueError(f"on Dask arrays master_weights is not available for {self.family.title}: its first "
                             "pass over the chunks reads the parameters, not their float32 copies")
        self.kinds = self.family.state_kinds(h)
        buffer_kinds = _buffer_kinds(policies)
        #: The optimizer's own arrays beside the family's state, by name, in their order in the tuples.
        self.buffers = tuple(kind.name for kind in buffer_kinds)
        self._accumulate = policies.accumulate
        self._state_dtype = policies.state_dtype  # None (the default) or bfloat16
        self._magnitude = {kind.name for kind in self.kinds if kind.magnitude} \
            if policies.complex_mode == "magnitude" else set()
        self._metas = [leaf._meta for leaf in leaves]
        state = {kind.name: [self._initial(kind, h, leaf) for leaf in leaves] for kind in (*self.kinds, *buffer_kinds)}
        self._bounds = None if bounds is None else self._checked_bounds(bounds, leaves)
        self._hold(list(leaves), state)

    def _checked_bounds(self, bounds, leaves):
        """Each leaf's ``(low, high)``: a number (``None`` where infinite) or a persisted Dask array of
        its dtype, chunked like it; arrays checked for NaN and ``low <= high`` in one computation."""
        import dask

        checked, checks = [], []
        for (low, high), leaf, path in zip(bounds, leaves, self.paths):
            if leaf.dtype.kind == "c":
                raise TypeError(f"bounds apply to real parameters; {path} is {leaf.dtype}")
            sides = []
            for side, value in (("low", low), ("high", high)):
                if isinstance(value, float):
                    sides.append(None if math.isinf(value) else value)
                    continue
                if not (is_dask_array(value) or isinstance(value, np.ndarray)
                        or hasattr(value, "__cuda_array_interface__")):
                    raise TypeError(f"the {side} bound of {path} must be a number, None or an array; got "
                                    f"{type(value).__name__}")
                if value.shape != leaf.shape:
                    raise ValueError(f"the {side} bound of {path} must have its shape {leaf.shape}; got {value.shape}")
                if not is_dask_array(value):
                    value = self.da.from_array(value, chunks=leaf.chunks)
                value = value.astype(leaf.dtype).rechunk(leaf.chunks)
                checks.append((f"the {side} bound of {path} must not hold NaN", self.da.isnan(value).any()))
                sides.append(value)
            low, high = sides
            if low is not None and high is not None:
                message = f"the bounds of {path} must have low <= high"
                if isinstance(low, float) and isinstance(high, float):
                    if low > high:
                        raise ValueError(message)
                else:
                    checks.append((message, (low > high).any()))
            checked.append(sides)
        failed = dask.compute(*(check for _, check in checks))
        for (message, _), bad in zip(checks, failed):
            if bad:
                raise ValueError(message)
        arrays = [value for sides in checked for value in sides if is_dask_array(value)]
        persisted = iter(dask.persist(*arrays))
        return [[next(persisted) if is_dask_array(value) else value for value in sides] for sides in checked]

    def _leaf_policy(self, policy, k):
        """``(policy, arrays)``: ``policy`` with leaf ``k``'s bounds, and the Dask arrays of those that are arrays."""
        if self._bounds is None:
            return policy, []
        sides = self._bounds[k]
        arrays = [value for value in sides if is_dask_array(value)]
        low, high = (ARRAY_BOUND if is_dask_array(value) else value for value in sides)
        return policy._replace(low=low, high=high), arrays

    def _hold(self, params, state):
        """Hold ``params`` and ``state`` (Dask arrays chunked alike), persisted as tuples (one task per chunk)."""
        names = list(state)
        self._held(_held_array(self.da, _together, [param, *(state[name][k] for name in names)], "numadam-held")
                   for k, param in enumerate(params))

    def _held(self, holdings):
        """Persist ``holdings`` and make the views of them."""
        import dask

        self.holdings = list(dask.persist(*holdings))
        self._views = None

    @property
    def params(self):
        """The parameters: views of the holdings (made at the first call after a step)."""
        return self._made_views()[0]

    @property
    def state(self):
        """Each state kind's arrays: views of the holdings."""
        return self._made_views()[1]

    def _made_views(self):
        if self._views is None:
            def views(item, metas):
                return [_view(held, item, meta) for held, meta in zip(self.holdings, metas)]

            params = views(0, self._metas)
            self._views = params, {name: views(i + 1, [_empty_like(meta, self.item_dtype(name, meta.dtype))
                                                       for meta in self._metas])
                                   for i, name in enumerate(self.names)}
        return self._views

    def item_dtype(self, name, dtype):
        """The dtype of the item ``name`` (a state kind or a buffer) held beside a parameter of ``dtype``:
        float64 sums for the accumulator, the compute dtype for the average, one real number per
        complex element for magnitude state, else the state dtype (bfloat16 when asked)."""
        if name == "accumulator":
            return _accumulator_dtype(dtype)
        if name in self._magnitude and dtype.kind == "c":
            return dtypes.storage_dtype(dtype)
        if name in ("ema", "master") or self._state_dtype is None:
            return state_dtype(dtype)
        return self._state_dtype

    @property
    def names(self):
        """The names of the items after the parameter in each tuple: the state kinds, then the buffers."""
        return [kind.name for kind in self.kinds] + list(self.buffers)

    def _initial(self, kind, h, param):
        initial = kind.initial(h) if callable(kind.initial) else kind.initial
        dtype = self.item_dtype(kind.name, param.dtype)
        if isinstance(initial, str):  # "param": the state starts at the parameters
            return param.astype(dtype, copy=True)
        # A task per chunk that reads the parameter's chunk: Dask puts it where that chunk lives.
        return param.map_blocks(_filled_like, initial, dtype, dtype=dtype, meta=_meta(param, dtype))

    def checked_grads(self, grads, grad_paths):
        """The gradients as Dask arrays chunked like their parameters (rechunked if needed)."""
        checked = []
        for grad, param, meta, path in zip(grads, self.holdings, self._metas, grad_paths):
            if not is_dask_array(grad):
                if isinstance(grad, np.ndarray) or hasattr(grad, "__cuda_array_interface__"):
                    grad = self.da.from_array(grad, chunks=param.chunks)
                else:
                    raise TypeError(f"{path} must be a Dask array (or a NumPy array, scattered like its "
                                    f"parameter); got {type(grad).__name__}")
            if grad.shape != param.shape:
                raise ValueError(f"{path} must have its parameter's shape {param.shape}; got {grad.shape}")
            if grad.dtype != meta.dtype:
                raise TypeError(f"{path} is {grad.dtype} but its parameter is {meta.dtype}")
            if grad.chunks != param.chunks:
                grad = grad.rechunk(param.chunks)
            checked.append(grad)
        return checked

    def reduce(self, grads, policies, phase=""):
        """``(sum of squares, non-finite count)`` per gradient, float64, by Dask tree reductions: of the
        gradient the update sees (the mean of the micro-batches for ``phase="apply"``)."""
        import dask

        if phase == "apply":
            grads = self._mean_gradients(grads)
        wanted = []
        for grad in grads:
            wanted.append(_sum_of_squares(self.da, grad) if policies.clip_global_norm is not None and phase != "add"
                          else 0.0)
            wanted.append(self.da.sum(~self.da.isfinite(grad)) if policies.nonfinite != "propagate" else 0)
        values = dask.compute(*wanted)
        return np.array(values[0::2], np.float64), np.array(values[1::2], np.float64)

    def check_alive(self):
        """Raise if the cluster lost what the optimizer holds (a restarted client, a worker gone with
        data it could not recompute): the step would fail later, less clearly."""
        futures_of = getattr(sys.modules.get("distributed"), "futures_of", None)
        if futures_of is None:
            return
        for held in self.holdings:
            for future in futures_of(held):
                if future.status in ("cancelled", "lost", "error"):
                    raise RuntimeError(
                        f"the optimizer's parameters or state on the Dask cluster are {future.status} (a worker "
                        "died or the client restarted); nothing was stepped. Resume from a saved state: "
                        "make a new optimizer over the parameters and load_state_dict(saved)")

    def accumulate(self, grads):
        """Add ``grads`` into the accumulators (a micro-batch that takes no step): one task per chunk."""
        add = functools.partial(_accumulated, self._item_of("accumulator"))
        self._held([_held_array(self.da, add, [held, grad], "numadam-accumulate")
                    for held, grad in zip(self.holdings, grads)])

    def _mean_gradients(self, grads):
        """The gradients an accumulated update sees (lazy): the mean of the accumulators and ``grads``."""
        mean = functools.partial(_mean_of_held, self._item_of("accumulator"), self._accumulate)
        return [self.da.map_blocks(mean, held, grad, dtype=grad.dtype, meta=grad._meta)
                for held, grad in zip(self.holdings, grads)]

    def _item_of(self, name):
        """Where ``name`` lies in each held tuple (the parameter is item 0)."""
        return 1 + self.names.index(name)

    def step(self, grads, step, hypers, carries, policy):
        """Replace the parameters and state by their values after step ``step`` (persisted): parameter
        ``k`` with the hyperparameters ``hypers[k]`` and carry ``carries[k]`` (its group's), and
        ``policy`` (a :class:`ChunkPolicy`) around the rule."""
        if self.family.norms is not None:
            self._step_with_norms(grads, step, hypers, carries, policy)
            return
        names = [kind.name for kind in self.kinds]
        holdings = []
        for k, (held, grad) in enumerate(zip(self.holdings, grads)):
            leaf_policy, bounds = self._leaf_policy(policy, k)
            run = functools.partial(_chunk_step, self.cls, names, step, hypers[k], carries[k], leaf_policy)
            holdings.append(_held_array(self.da, functools.partial(_step_held, run), [held, grad, *bounds],
                                        f"numadam-{self.family.name}-step-{step}"))
        self._held(holdings)

    def _step_with_norms(self, grads, step, hypers, carries, policy):
        """LAMB's two passes: per chunk, the new state and its two sums of squares (one task per
        chunk); the sums added up per parameter, in chunk order; then per chunk, the update with its
        parameter's norms."""
        import dask

        names = [kind.name for kind in self.kinds]
        token = f"numadam-{self.family.name}-step-{step}"
        if policy.accumulate is not None:  # both passes see the mean of the micro-batches
            grads = self._mean_gradients(grads)
        states, sums = {name: [] for name in names}, []
        for k, (param, grad) in enumerate(zip(self.params, grads)):
            first = functools.partial(_chunk_first_pass, self.cls, names, step, hypers[k], carries[k], policy)
            old = [self.state[name][k] for name in names]
            together = _held_array(self.da, first, [param, grad, *old], token + "-first")
            for i, (name, array) in enumerate(zip(names, old)):
                states[name].append(_view(together, i, _meta(array, array.dtype)))
            sums.append([dask.delayed(operator.getitem)(block, len(names))
                         for block in together.to_delayed().ravel()])
        n_arrays = len(self.params) * len(names)
        persisted = dask.persist(*(array for name in names for array in states[name]), *sum(sums, []))
        state = {name: list(persisted[len(self.params) * i:len(self.params) * (i + 1)])
                 for i, name in enumerate(names)}
        chunk_sums = dask.compute(*persisted[n_arrays:])
        norms, position = [], 0
        for blocks in sums:
            total = np.zeros(2)
            for block in chunk_sums[position:position + len(blocks)]:
                total += block
            norms.append(tuple(total.tolist()))
            position += len(blocks)
        params = []
        for k, (param, grad) in enumerate(zip(self.params, grads)):
            leaf_policy, bounds = self._leaf_policy(policy, k)
            update = functools.partial(_chunk_update, self.cls, names, step, hypers[k], carries[k], leaf_policy,
                                       norms[k])
            params.append(self.da.map_blocks(update, param, grad, *(state[name][k] for name in names), *bounds,
                                             dtype=param.dtype, meta=_meta(param, param.dtype),
                                             token=token + "-update"))
        if policy.ema is not None:
            state["ema"] = [self.da.map_blocks(_averaged, average, param, policy.ema, dtype=average.dtype,
                                               meta=_meta(average, average.dtype), token=token + "-ema")
                            for average, param in zip(self.state["ema"], params)]
        if policy.accumulate is not None:
            state["accumulator"] = [self.da.map_blocks(_filled_like, old, 0, old.dtype, dtype=old.dtype,
                                                       meta=_meta(old, old.dtype), token=token + "-cleared")
                                    for old in self.state["accumulator"]]
        self._hold(params, state)

    def gathered_state(self, lazy):
        """Each state kind's arrays: computed to NumPy (or CuPy), or if ``lazy`` the Dask arrays that view
        the persisted holdings."""
        if lazy:
            return {name: list(arrays) for name, arrays in self.state.items()}
        import dask

        names = list(self.state)
        computed = dask.compute(*(array for name in names for array in self.state[name]))
        n = len(self.params)
        return {name: list(computed[n * i:n * (i + 1)]) for i, name in enumerate(names)}

    def checked_state(self, name, leaves, paths):
        """``leaves`` (NumPy, CuPy or Dask) as Dask arrays chunked like the parameters, checked."""
        checked = []
        for leaf, param, path in zip(leaves, self.params, paths):
            dtype = self.item_dtype(name, param.dtype)
            if not is_dask_array(leaf):
                if not (isinstance(leaf, np.ndarray) or hasattr(leaf, "__cuda_array_interface__")):
                    raise TypeError(f"{path} must be an array; got {type(leaf).__name__}")
                leaf = self.da.from_array(leaf, chunks=param.chunks)
            if leaf.shape != param.shape:
                raise ValueError(f"{path} must have shape {param.shape}; got {leaf.shape}")
            if not np.can_cast(leaf.dtype, dtype, "same_kind"):
                raise TypeError(f"{path} has dtype {leaf.dtype}, which does not cast to the state's {dtype}")
            checked.append(leaf.astype(dtype).rechunk(param.chunks))
        return checked

    def load(self, state):
        """Replace the state by ``state`` (a dict of checked Dask arrays per kind), persisted."""
        self._hold(self.params, state)


def _sum_of_squares(da, grad):
    """The float64 sum of the squares of ``grad``'s real numbers, as a tree reduction."""
    parts = (grad.real, grad.imag) if grad.dtype.kind == "c" else (grad,)
    return sum(da.sum(part.astype(np.float64) ** 2) for part in parts)


def _buffer_kinds(policies):
    """The optimizer's own arrays held beside the family's state, as state kinds in their order in
    each tuple: the moving average (started at the parameters, or at zero when it is bias
    corrected), the sums of micro-batches (float64, :func:`_accumulator_dtype`), the float32 copy."""
    kinds = []
    if policies.ema is not None:
        kinds.append(StateKind("ema", "the moving average", initial=0.0 if policies.ema_bias_correction else "param"))
    if policies.accumulate > 1:
        kinds.append(StateKind("accumulator", "the sum of micro-batches"))
    if policies.master_weights:
        kinds.append(StateKind("master", "the float32 copy", initial="param"))
    return kinds


def _accumulator_dtype(dtype):
    return np.dtype(np.complex128 if dtype.kind == "c" else np.float64)


def state_dtype(dtype):
    """The dtype of the state of a parameter of ``dtype``: float32 for 16-bit floats, else its own."""
    return dtypes.compute_dtype(dtype) if dtypes.is_low_precision(dtype) else dtype


def _check_dtype(dtype, path):
    if not dtypes.is_supported(dtype):
        raise TypeError(f"{path} has dtype {dtype}; numadam updates {dtypes.supported_names()}")


def _check_policies(policies, cls):
    default = Policies()
    given = {name for name in Policies._fields if getattr(policies, name) != getattr(default, name)}
    unsupported = sorted(given - set(SUPPORTED_POLICIES))
    if unsupported:
        raise ValueError(f"on Dask arrays numadam applies {', '.join(SUPPORTED_POLICIES)}; got "
                         f"{', '.join(unsupported)} (step the NumPy arrays of one machine for the others)")
    if policies.state_dtype is not None and policies.state_dtype.name != "bfloat16":
        raise ValueError(f"on Dask arrays state_dtype may be 'bfloat16' (or the default); got "
                         f"{policies.state_dtype.name!r}")


def chunk_policy(policies, grad_scale):
    """The :class:`ChunkPolicy` of an optimizer's checked ``policies`` for one step (each parameter's
    bounds are set by :meth:`DaskState._leaf_policy`)."""
    return ChunkPolicy(grad_scale, policies.clip_value, None, None, policies.ema,
                       policies.accumulate if policies.accumulate > 1 else None, policies.master_weights)


def skip_or_scale(policies, squares, bad, grad_paths):
    """``None`` to skip the step (``nonfinite="skip"``), else the gradients' scale (global-norm clipping).

    Raises ``FloatingPointError`` for ``nonfinite="raise"``.
    """
    if bad.any():
        if policies.nonfinite == "raise":
            path = grad_paths[int(np.flatnonzero(bad)[0])]
            raise FloatingPointError(f"{path} holds NaN or infinity (nonfinite='raise'); nothing was changed")
        if policies.nonfinite == "skip":
            return None
    if policies.clip_global_norm is None:
        return 1.0
    return global_scale(policies.clip_global_norm, math.fsum(squares.tolist()))


def _import_dask_array():
    import dask.array

    return dask.array
