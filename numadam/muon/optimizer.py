r"""``numadam.Muon``: momentum orthogonalized by Newton–Schulz, over a tree of matrices and other leaves.

A step, for each matrix :math:`W` (a parameter of two or more dimensions, read
as ``W.reshape(W.shape[0], -1)``) with gradient :math:`G`:

.. math::

    B &\leftarrow \operatorname{lerp}(B, G, 1 - \mu), \qquad
    U = \operatorname{lerp}(G, B, \mu) \ \text{(Nesterov; else } U = B) \\
    O &= \mathrm{NS}^{(a,b,c)}_{k}(U; \epsilon), \qquad
    W \leftarrow W\,(1 - \eta\lambda) - \eta\, r(A, B)\, O

with :math:`r = \sqrt{\max(1, A/B)}` ("original") or :math:`0.2\sqrt{\max(A, B)}`
("match_rms_adamw") for an :math:`A \times B` matrix: ``torch.optim.Muon``'s
step (see :mod:`numadam.muon.elementwise` and :mod:`numadam.muon.newton_schulz`).
Matrices of one shape, dtype and device go through one batched iteration.

Other leaves (biases, gains, and the matrices ``aux_filter`` picks, such as
embeddings) are stepped by an auxiliary :class:`numadam.AdamW` in the same
:meth:`Muon.step`.
"""

import contextlib
import inspect
import math
import threading
from collections.abc import Iterator

import numba
import numpy as np

from ..adapters.tree import flatten
from ..core import validate
from ..core.memory import MemoryRanges
from ..state_files import load_state, save_state
from . import newton_schulz
from .arrays import address_range, as_matrix, checked_leaves, first_overlap, on_device_of, staged
from .elementwise import MuonApply, momentum_step

#: torch.optim.Muon's Newton–Schulz coefficients (a, b, c).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
#: The names ``adjust_lr_fn`` takes (``None`` is "original").
ADJUST_LR_FNS = ("original", "match_rms_adamw")
#: Iterations torch refuses (and so does numadam): ``ns_steps`` is below this.
MOST_NS_STEPS = 100


def lr_ratio(adjust_lr_fn, rows, columns):
    """The factor of ``lr`` for a ``rows x columns`` matrix: torch.optim.Muon's ``_adjust_lr``."""
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1.0, rows / columns))
    return 0.2 * math.sqrt(max(rows, columns))


def _check_coefficients(value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
        raise ValueError(f"ns_coefficients must be three numbers (a, b, c); got {value!r}")
    return tuple(validate.check_real("ns_coefficients", item) for item in value)


def _checked(name, value):
    """One of Muon's own hyperparameters, checked; the value to keep."""
    if name == "lr":
        return validate.check_lr(value)
    if name in ("weight_decay", "momentum", "eps"):
        return validate.check_nonnegative(name, value)
    if name == "nesterov":
        return validate.check_flag(name, value)
    if name == "ns_coefficients":
        return _check_coefficients(value)
    if name == "ns_steps":
        steps = validate.check_count(name, value, 0)
        if steps >= MOST_NS_STEPS:
            raise ValueError(f"ns_steps must be below {MOST_NS_STEPS} (as torch.optim.Muon); got {value!r}")
        return steps
    if name == "adjust_lr_fn":
        if value is not None and value not in ADJUST_LR_FNS:
            raise ValueError(f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw'; got {value!r}")
        return value
    if name == "ns_dtype":
        if value not in newton_schulz.NS_DTYPES:
            raise ValueError(f"ns_dtype must be 'bfloat16' (torch's) or 'float32'; got {value!r}")
        return value
    raise KeyError(name)


_NAMES = ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps", "adjust_lr_fn",
          "ns_dtype")


def _stack_of(count, shape, like, library, zeroed=False):
    """A new C-contiguous ``(count, *shape)`` array of ``like``'s library, dtype and device."""
    if library == "torch":
        make = _torch().zeros if zeroed else _torch().empty
        return make((count, *shape), dtype=like.dtype, device=like.device)
    xp = np if library == "numpy" else _cupy()
    with on_device_of(like, library):
        return (xp.zeros if zeroed else xp.empty)((count, *shape), dtype=like.dtype)


def _gathered(arrays, out, library):
    """``arrays`` (same-shape matrices) copied side by side into ``out``: one copy for the whole stack.

    torch's copy runs in inference mode: outside it, ``stack(out=)`` refuses gradients that require
    grad (after ``backward(create_graph=True)``), and an ``out`` made in inference mode (a Muon
    built there) refuses in-place writes; numadam's kernels, which wrote these arrays before, are
    subject to neither."""
    if library == "torch":
        torch = _torch()
        with torch.inference_mode():
            return torch.stack(arrays, out=out)
    xp = np if library == "numpy" else _cupy()
    return xp.stack(arrays, out=out)


def _viewed(array, shape, library):
    """``array`` (C-contiguous) seen with ``shape``: a view, never a copy."""
    return array.view(shape) if library == "torch" else array.reshape(shape)


def _copy(array, library):
    return array.clone() if library == "torch" else array.copy()


def _torch():
    import torch

    return torch


def _cupy():
    import cupy

    return cupy


class _Settable:
    """``muon.<name>``: one of Muon's hyperparameters, checked when set."""

    def __init__(self, name, doc):
        self.name, self.__doc__ = name, doc

    def __get__(self, muon, owner=None):
        return self if muon is None else muon._hyper[self.name]

    def __set__(self, muon, value):
        checked = _checked(self.name, value)
        with muon._lock:  # (not in the middle of a step)
            muon._hyper[self.name] = checked


class _Stack:
    """Matrices of one 2-D shape, dtype and device, stepped together. Their gradients, momentum
    buffers and momentum updates lie side by side in ``(k, rows, columns)`` arrays, so that the
    momentum pass is one launch over the stack and the Newton–Schulz iteration one batched call;
    the decay-and-update pass is one step of a :class:`MuonApply` over the stack's parameters.
    On a GPU a launch per matrix cost about 0.2 ms of host time each (64 matrices of 256 x 256:
    24 ms a step, against 6.6 ms for the iteration). The gathered gradients cost memory: a stack
    holds three arrays of its matrices' size, and the iteration's (:class:`newton_schulz.Workspace`)."""

    def __init__(self, indices, matrices, library):
        self.indices = indices
        self.library = library
        count, shape, like = len(indices), tuple(matrices[0].shape), matrices[0]
        self.shape = shape
        self.grads = _stack_of(count, shape, like, library)
        self.buffers = _stack_of(count, shape, like, library, zeroed=True)
        self.updates = _stack_of(count, shape, like, library)
        with on_device_of(self.updates, library):
            self.workspace = None if library == "torch" else newton_schulz.Workspace(self.updates)
        #: The decay-and-update pass over the stack's parameters (see :meth:`applied`).
        self.apply = MuonApply(tuple(matrices), lr=1.0, weight_decay=0.0, ratio=1.0)
        self._settings = (1.0, 0.0, 1.0)
        self._orthogonal = self._orthogonal_views = None

    def moved(self, grads, step, momentum, nesterov):
        """The momentum pass: ``grads`` (this stack's gradient matrices) gathered, then every buffer
        and update stepped in one launch."""
        with on_device_of(self.grads, self.library):
            _gathered(grads, self.grads, self.library)
        momentum_step(self.updates, self.grads, self.buffers, step=step, momentum=momentum, nesterov=nesterov)

    def applied(self, orthogonal, lr, weight_decay, ratio):
        """The decay-and-update pass with ``orthogonal`` (the iterate of the stack), in one launch.

        The iterate of NumPy and CuPy stacks is the same array at every step, so its matrices'
        views are made once and the pass keeps its checked plan."""
        if orthogonal is not self._orthogonal:
            self._orthogonal = orthogonal
            self._orthogonal_views = tuple(orthogonal[j] for j in range(orthogonal.shape[0]))
        settings = (lr, weight_decay, ratio)
        if settings != self._settings:
            for name, value, old in zip(("lr", "weight_decay", "ratio"), settings, self._settings):
                if value != old:
                    setattr(self.apply, name, value)
            self._settings = settings
        self.apply.step(self._orthogonal_views)


class Muon:
    """Muon (Jordan et al. 2024): momentum orthogonalized by Newton–Schulz, ``torch.optim.Muon``'s update.

    .. math::

        B \\leftarrow \\operatorname{lerp}(B, G, 1 - \\mu), \\quad
        U = \\operatorname{lerp}(G, B, \\mu), \\quad
        W \\leftarrow W (1 - \\eta\\lambda) - \\eta\\, r\\, \\mathrm{NS}_k(U)

    Parameters
    ----------
    params : array or tree of arrays
        NumPy, CuPy or torch arrays (one kind), updated in place. Every leaf of
        two or more dimensions is a matrix for Muon, read as
        ``reshape(shape[0], -1)`` (a convolution's ``(out, in, h, w)`` weight
        is ``out x (in h w)``); other leaves go to the auxiliary AdamW.
    lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn
        As ``torch.optim.Muon`` (its defaults). The decay :math:`1 - \\eta\\lambda`
        uses the unadjusted ``lr``; the update ``lr`` times the shape's ratio
        :math:`r` (``adjust_lr_fn``: ``None``/"original" :math:`\\sqrt{\\max(1, A/B)}`,
        "match_rms_adamw" :math:`0.2\\sqrt{\\max(A, B)}`).
    ns_dtype : {"bfloat16", "float32"}
        The iteration's precision: torch's bfloat16 (each product rounded), or
        float32 (reproducible).
    aux : dict or None
        Options of the auxiliary :class:`numadam.AdamW` (``{}``: its defaults)
        that steps the leaves that are not Muon's. ``None`` (the default)
        refuses such leaves.
    aux_filter : callable or None
        ``aux_filter(path, array) -> bool``: True sends a leaf of two or more
        dimensions to the auxiliary AdamW too (embeddings, a final layer).
        ``path`` is the leaf's path, e.g. ``"params['embed']"``.
    schedule : callable or None
        ``schedule(step_count) -> lr`` for Muon's matrices, before each step.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> rng = np.random.default_rng(0)
    >>> target = rng.standard_normal((8, 4))
    >>> params = {"W": np.zeros((8, 4)), "b": np.zeros(4)}
    >>> opt = numadam.Muon(params, lr=0.05, weight_decay=0.0, aux={"lr": 0.05})
    >>> for _ in range(300):
    ...     opt.step({"W": params["W"] - target, "b": params["b"] - 1.0})
    >>> bool(np.abs(params["W"] - target).max() < 0.1), bool(np.abs(params["b"] - 1).max() < 0.05)
    (True, True)

    References
    ----------
    Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    Liu et al., "Muon is Scalable for LLM Training", arXiv:2502.16982, 2025.
    """

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=NS_COEFFICIENTS, eps=1e-7, ns_steps=5, adjust_lr_fn=None, ns_dtype="bfloat16",
                 *, aux=None, aux_filter=None, schedule=None):
        given = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                     ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn,
                     ns_dtype=ns_dtype)
        self._hyper = {name: _checked(name, value) for name, value in given.items()}
        if aux is not None and not isinstance(aux, dict):
            raise TypeError(f"aux must be None or a dict of numadam.AdamW's options; got {aux!r}")
        if aux_filter is not None and not callable(aux_filter):
            raise TypeError(f"aux_filter must be None or a callable (path, array) -> bool; got {aux_filter!r}")
        self._schedule = validate.check_schedule(schedule)
        self._lock = threading.RLock()
        if isinstance(params, Iterator):
            params = list(params)
        leaves, self._treedef = flatten(params)
        if not leaves:
            raise ValueError(f"params must hold at least one array; got {params!r}")
        if any(kind == "group" for kind in _kinds(self._treedef)):
            raise TypeError("Muon takes no numadam.Group: its hyperparameters are one set for every matrix "
                            "(the auxiliary AdamW's are aux)")
        self._paths = self._treedef.paths("params")
        self._leaves = leaves
        self._library, self._device = checked_leaves(leaves, self._paths, "params", writable=True)
        reaches = [address_range(leaf, self._library) for leaf in leaves]
        shared = first_overlap(reaches)
        if shared is not None:
            raise ValueError(f"{self._paths[shared[0]]} and {self._paths[shared[1]]} share memory; Muon updates "
                             "each parameter in place, once")
        empty = next((path for leaf, path in zip(leaves, self._paths) if leaf.ndim >= 2 and 0 in leaf.shape), None)
        if empty is not None:
            raise ValueError(f"{empty} has a dimension of length 0: a matrix for Muon needs rows and columns")
        matrix = [leaf.ndim >= 2 and not (aux_filter is not None and aux_filter(path, leaf))
                  for leaf, path in zip(leaves, self._paths)]
        self._matrix_indices = [i for i, is_matrix in enumerate(matrix) if is_matrix]
        self._aux_indices = [i for i, is_matrix in enumerate(matrix) if not is_matrix]
        if not self._matrix_indices:
            raise ValueError("params hold no matrix for Muon (a leaf of two or more dimensions that aux_filter "
                             "leaves to it); step these leaves with numadam.AdamW")
        if self._aux_indices and aux is None:
            first = self._aux_indices[0]
            raise ValueError(f"{self._paths[first]} (shape {tuple(leaves[first].shape)}) is not a matrix for Muon; "
                             "pass aux={...} (numadam.AdamW's options, {} for its defaults) to step such leaves "
                             "with an auxiliary AdamW")
        self._aux_options, self._aux_filter = aux, aux_filter
        self._aux = None
        if self._aux_indices:
            from ..families import adam  # its AdamW class is made by numadam.registry, which imports this module

            self._aux = adam.AdamW([leaves[i] for i in self._aux_indices], **aux)
        self._matrices = [as_matrix(leaves[i], self._library, self._paths[i], parameter=True)
                          for i in self._matrix_indices]
        self._stacks = self._made_stacks()
        buffers = [None] * len(self._matrices)
        for stack in self._stacks:
            for j, position in enumerate(stack.indices):
                buffers[position] = stack.buffers[j]
        #: Each matrix's momentum buffer, in its parameter's shape: a view of its stack's buffers.
        self._buffers = [_viewed(buffer, tuple(leaves[i].shape), self._library)
                         for i, buffer in zip(self._matrix_indices, buffers)]
        #: What a step reads must not meet what it writes: every parameter and stack.
        written = leaves + [array for s in self._stacks for array in (s.grads, s.buffers, s.updates)]
        self._written = MemoryRanges([address_range(a, self._library) for a in written], written)
        self._on_device = self._device != "cpu"
        self._step_count = 0

    # -- checks ------------------------------------------------------------------------------------

    def _checked_grads(self, grads):
        """``(leaves, matrices)`` of ``grads``, every check made before anything is written: the
        auxiliary AdamW's gradients too, under the user's paths."""
        leaves = self._treedef.flatten_like(grads, "grads", exact_sequences=True)
        paths = self._treedef.paths("grads")
        library, device = checked_leaves(leaves, paths, "gradients", writable=False)
        if (library, device) != (self._library, self._device):
            raise TypeError(f"grads are {library} arrays on {device} but params are {self._library} arrays on "
                            f"{self._device}")
        for grad, param, path in zip(leaves, self._leaves, paths):
            if tuple(grad.shape) != tuple(param.shape):
                raise ValueError(f"{path} must have its parameter's shape {tuple(param.shape)}; got "
                                 f"{tuple(grad.shape)}")
            if grad.dtype != param.dtype:
                raise TypeError(f"{path} must have its parameter's dtype {param.dtype}; got {grad.dtype}")
            if self._written.may_meet(*address_range(grad, library)):
                raise ValueError(f"{path} shares memory with a parameter or Muon's state, which the step writes")
        return leaves, [as_matrix(leaves[i], library, paths[i], parameter=False) for i in self._matrix_indices]

    def _made_stacks(self):
        """The matrices grouped by 2-D shape, dtype and device, in order of first appearance."""
        groups = {}
        for position, matrix in enumerate(self._matrices):
            groups.setdefault((tuple(matrix.shape), str(matrix.dtype)), []).append(position)
        return [_Stack(positions, [self._matrices[p] for p in positions], self._library)
                for positions in groups.values()]

    # -- stepping ----------------------------------------------------------------------------------

    def step(self, grads):
        """Take one step with ``grads`` (a tree like ``params``).

        Everything is checked first (the auxiliary AdamW's gradients too); a
        refused step changes nothing.
        """
        with self._lock:
            leaves, grad_matrices = self._checked_grads(grads)
            step = self._step_count + 1
            lr = self.lr if self._schedule is None else validate.check_lr(self._schedule(self._step_count))
            if self._aux is not None:
                self._aux.step([leaves[i] for i in self._aux_indices])
            h = self._hyper
            h["lr"] = lr  # (what a schedule set, as the other optimizers keep it)
            for stack in self._stacks:
                with self._beside_blas():
                    stack.moved([grad_matrices[p] for p in stack.indices], step, h["momentum"], h["nesterov"])
                with on_device_of(stack.updates, self._library):
                    orthogonal = newton_schulz.orthogonalized(stack.updates, h["ns_coefficients"], h["ns_steps"],
                                                              h["eps"], h["ns_dtype"], stack.workspace)
                with self._beside_blas():
                    stack.applied(orthogonal, lr, h["weight_decay"], lr_ratio(h["adjust_lr_fn"], *stack.shape))
            self._step_count = step

    @contextlib.contextmanager
    def _beside_blas(self):
        """The elementwise passes of host arrays on one Numba thread: between BLAS calls, a parallel
        region's OpenMP threads keep spinning after it and take the cores from the next product's
        BLAS threads (measured on 2 cores: 7 ms lost at each switch, against 1.5 ms for 64 serial
        passes over 256 x 256 matrices)."""
        if self._on_device:
            yield
            return
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            yield
        finally:
            numba.set_num_threads(threads)

    # -- attributes --------------------------------------------------------------------------------

    @property
    def params(self):
        """The parameters, as given (updated in place)."""
        return self._treedef.unflatten(self._leaves, keep_groups=True)

    @property
    def step_count(self):
        """Steps taken."""
        return self._step_count

    lr = _Settable("lr", "Learning rate :math:`\\eta` (>= 0) of the matrices; settable between steps.")
    weight_decay = _Settable("weight_decay", "Decoupled decay :math:`\\lambda` (>= 0) of the matrices; settable.")

    @property
    def aux(self):
        """The auxiliary :class:`numadam.AdamW` over the leaves that are not Muon's (``None`` without)."""
        return self._aux

    @property
    def aux_paths(self):
        """The paths of the auxiliary AdamW's leaves, in order."""
        return [self._paths[i] for i in self._aux_indices]

    def hyperparameters(self):
        """Muon's hyperparameters (a new dict)."""
        return dict(self._hyper)

    def __repr__(self):
        shown = ", ".join(f"{name}={value!r}" for name, value in self._hyper.items())
        return (f"Muon({len(self._matrix_indices)} matrices in {len(self._stacks)} stacks, "
                f"{len(self._aux_indices)} auxiliary leaves, {shown})")

    # -- state -------------------------------------------------------------------------------------

    def state_dict(self):
        """Plain data: the hyperparameters, the step count and copies of the momentum buffers.

        ``momentum_buffer`` is a tree shaped like ``params`` (``None`` at the
        auxiliary leaves), as torch.optim.Muon names it. With auxiliary leaves,
        ``"aux"`` holds the auxiliary AdamW's :meth:`~numadam.AdamW.state_dict`,
        whose trees are lists of those leaves in ``params``' leaf order
        (:attr:`aux_paths`).
        """
        with self._lock:
            buffers = [None] * len(self._leaves)
            for i, buffer in zip(self._matrix_indices, self._buffers):
                buffers[i] = _copy(buffer, self._library)
            state = {"optimizer": "Muon", "family": "muon", "step": self._step_count,
                     "hyperparameters": {**self._hyper, "ns_coefficients": list(self._hyper["ns_coefficients"])},
                     "momentum_buffer": self._treedef.unflatten(buffers)}
            if self._aux is not None:
                state["aux"] = self._aux.state_dict()
            return state

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict`; everything is checked first, and a failed load changes nothing."""
        with self._lock:
            if not isinstance(state, dict):
                raise TypeError(f"state must be a dict from Muon.state_dict(); got {type(state).__name__}")
            if state.get("family") != "muon":
                raise ValueError(f"state is for {state.get('family')!r}, not Muon")
            step = validate.check_count("state['step']", state.get("step"), 0)
            given = state.get("hyperparameters")
            if not isinstance(given, dict) or set(given) != set(_NAMES):
                raise ValueError(f"state['hyperparameters'] must have the keys {list(_NAMES)}; got "
                                 f"{None if not isinstance(given, dict) else list(given)}")
            hyper = {name: _checked(name, given[name]) for name in _NAMES}
            if "momentum_buffer" not in state:
                raise ValueError("state has no 'momentum_buffer'")
            found = self._treedef.flatten_like(state["momentum_buffer"], "state['momentum_buffer']")
            paths = self._treedef.paths("state['momentum_buffer']")
            buffers = [staged(found[i], buffer, self._library, paths[i])  # converted, so copying cannot fail
                       for i, buffer in zip(self._matrix_indices, self._buffers)]
            if ("aux" in state) != (self._aux is not None):
                raise ValueError("state['aux'] must be there exactly when this Muon has auxiliary leaves "
                                 f"({len(self._aux_indices)} here)")
            if self._aux is not None:
                self._aux.load_state_dict(state["aux"])  # checked whole before it changes anything
            for target, value in zip(self._buffers, buffers):
                if self._library == "torch":
                    target.copy_(value)
                else:
                    target[...] = value
            self._hyper = hyper
            self._step_count = step

    def save(self, path):
        """Write :meth:`state_dict` to one ``.npz`` file, atomically."""
        save_state(self.state_dict(), path)

    def load(self, path):
        """Restore the state :meth:`save` wrote."""
        self.load_state_dict(load_state(path))

    # -- copies ------------------------------------------------------------------------------------

    def __reduce__(self):
        """Pickle and ``copy.deepcopy`` rebuild the optimizer over copies of the parameters and load
        a copy of the state: no array is shared with the original."""
        with self._lock:
            options = {**self._hyper, "aux": self._aux_options, "aux_filter": self._aux_filter,
                       "schedule": self._schedule}
            return _rebuild, (self.params, options, self.state_dict())

    def __copy__(self):
        raise TypeError("copy.copy of a Muon would share its parameter and state arrays with the original; use "
                        "copy.deepcopy(optimizer) (or pickle) for an independent optimizer")

    # -- numadam.minimize --------------------------------------------------------------------------

    @classmethod
    def _checked_without_state(cls, x, schedule=None, bounds=None, **hyperparameters):
        """The optimizer :func:`numadam.minimize` steps: over one 2-D ``x``, without bounds."""
        if bounds is not None:
            raise TypeError("method='muon' takes no bounds: its orthogonalized step cannot be projected "
                            "elementwise and stay Muon's")
        if getattr(x, "ndim", None) != 2:
            raise ValueError(f"method='muon' orthogonalizes a matrix: x0 must be 2-D; got shape "
                             f"{tuple(getattr(x, 'shape', ()))}")
        return cls(x, schedule=schedule, **hyperparameters)

    def _install_state(self):
        """Nothing: Muon makes its state when it is made."""


Muon.__signature__ = inspect.signature(Muon)


def _rebuild(params, options, state):
    optimizer = Muon(params, **options)
    optimizer.load_state_dict(state)
    return optimizer


def _kinds(treedef):
    yield treedef.kind
    for child in treedef.children:
        yield from _kinds(child)
