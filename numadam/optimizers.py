"""``Adam`` and ``AdamW``: trees of arrays, updated in place, with owned state."""

import numpy as np

from . import _validate
from ._dispatch import backend_for
from ._group import STATE_KINDS, WrittenMemory, group_by_dtype
from ._hyper import adam_scalars, uses_l2_decay
from ._state import load_state, save_state
from ._tree import flatten

_HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")


class Adam:
    r"""Adam (Kingma & Ba 2015) over a tree of NumPy or CuPy arrays, updated in place.

    Each call ``opt.step(grads)`` takes step :math:`t` (counting from 1) for every
    element of every parameter, complex numbers as pairs of reals:

    .. math::

        g &\leftarrow -g \text{ if maximize}, \qquad
        g \leftarrow g + \lambda p \text{ (L2) or } p \leftarrow p(1-\eta\lambda) \text{ (decoupled)} \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2, \qquad
        \hat v \leftarrow \max(\hat v, v) \text{ (AMSGrad)} \\
        p &\leftarrow p - \frac{\eta}{1-\beta_1^t}\, m \Big/
              \Bigl(\frac{\sqrt{\hat v}}{\sqrt{1-\beta_2^t}} + \epsilon\Bigr)

    with :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
    :math:`\epsilon` = ``eps`` and :math:`\lambda` = ``weight_decay``. This is
    ``torch.optim.Adam``'s update for the same options: ``eps`` comes after the
    bias-corrected square root, AMSGrad keeps the maximum of the raw ``v``, and
    ``decoupled_weight_decay=True`` gives AdamW (Loshchilov & Hutter 2019).

    Parameters
    ----------
    params : array or dict/list/tuple tree of arrays
        float32, float64, complex64 or complex128 NumPy or CuPy arrays, all on one
        backend, writable and not sharing memory. They are updated in place; their
        layout and writability are checked here, once, so an array made read-only
        later is still updated (to freeze some parameters, give them their own
        optimizer, or none).
    lr, betas, eps, weight_decay, maximize, decoupled_weight_decay
        May be changed between steps, e.g. ``opt.lr = 1e-4``.
    amsgrad : bool
        Keep ``max_exp_avg_sq`` (Reddi et al. 2018). Set at construction, and by
        :meth:`load_state_dict` to the loaded state's value.
    schedule : callable or None
        A learning-rate schedule (see :mod:`numadam.schedules`, or any callable
        ``step_count -> lr``): before each step ``lr`` is set to
        ``schedule(step_count)``, so the ``lr`` argument only matters while no
        step has been taken. A schedule's ``state_dict()`` is saved with the
        optimizer's; for :class:`~numadam.schedules.ReduceOnPlateau` report
        losses with ``opt.schedule.observe(loss)``.

    Every array of a real dtype is updated by one kernel pass per step. Passing
    the same gradient arrays every step (filled in place) also skips re-reading
    their layout.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.array([1.0, 2.0])
    >>> opt = numadam.Adam({"w": w}, lr=0.1)
    >>> for _ in range(100):
    ...     opt.step({"w": 2 * w})          # gradient of sum(w**2)
    >>> bool(np.all(np.abs(w) < 0.1))
    True

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        maximize=False,
        decoupled_weight_decay=False,
        schedule=None,
    ):
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.maximize = maximize
        self.decoupled_weight_decay = decoupled_weight_decay
        self.schedule = schedule
        self._amsgrad = _validate.check_flag("amsgrad", amsgrad)
        leaves, self._treedef = flatten(params)
        if not leaves:
            raise ValueError(f"params must hold at least one array; got {params!r}")
        self._paths = self._treedef.paths("params")
        self._backend = backend_for(leaves, self._paths)
        self._infos = [self._backend.describe(leaf) for leaf in leaves]
        for info, path in zip(self._infos, self._paths):
            _validate.check_parameter_dtype(info, path)
            _validate.check_layout(info, path, writable=True)
        _validate.check_disjoint(self._infos, self._paths, leaves, [True] * len(leaves))
        array_type = self._backend.array_type
        for leaf, path in zip(leaves, self._paths):
            if not isinstance(leaf, array_type):
                raise TypeError(
                    f"{path} is a {type(leaf).__name__}; the optimizer objects take "
                    f"{array_type.__module__}.{array_type.__name__} parameters"
                )
        self._leaves = leaves
        self._step = 0
        self._install_groups(self._amsgrad)

    def _install_groups(self, amsgrad):
        groups = group_by_dtype(self._backend, self._leaves, self._infos, self._paths, amsgrad)
        written = [array for group in groups for array in group.written_arrays()]
        self._groups = groups
        self._written = WrittenMemory(self._backend, written)
        self._amsgrad = amsgrad
        self._locations = [None] * len(self._leaves)
        for group in groups:
            for local, k in enumerate(group.indices):
                self._locations[k] = (group, local)

    # -- hyperparameters -------------------------------------------------------

    @property
    def lr(self):
        """Learning rate :math:`\\eta` (finite, >= 0)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _validate.check_lr(value)

    @property
    def betas(self):
        """``(beta1, beta2)``, each in [0, 1)."""
        return self._betas

    @betas.setter
    def betas(self, value):
        self._betas = _validate.check_betas(value)

    @property
    def eps(self):
        """Added to the bias-corrected :math:`\\sqrt{v}` (finite, >= 0)."""
        return self._eps

    @eps.setter
    def eps(self, value):
        self._eps = _validate.check_eps(value)

    @property
    def weight_decay(self):
        """Weight decay :math:`\\lambda` (finite, >= 0), L2 or decoupled."""
        return self._weight_decay

    @weight_decay.setter
    def weight_decay(self, value):
        self._weight_decay = _validate.check_weight_decay(value)

    @property
    def maximize(self):
        """Ascend instead of descend."""
        return self._maximize

    @maximize.setter
    def maximize(self, value):
        self._maximize = _validate.check_flag("maximize", value)

    @property
    def decoupled_weight_decay(self):
        """Decay the parameters directly (AdamW) instead of adding L2 to the gradient."""
        return self._decoupled

    @decoupled_weight_decay.setter
    def decoupled_weight_decay(self, value):
        self._decoupled = _validate.check_flag("decoupled_weight_decay", value)

    @property
    def schedule(self):
        """The learning-rate schedule that sets ``lr`` before each step, or ``None``."""
        return self._schedule

    @schedule.setter
    def schedule(self, value):
        self._schedule = _validate.check_schedule(value)

    @property
    def amsgrad(self):
        """Whether the running maximum of ``exp_avg_sq`` is kept (set at construction or by loading)."""
        return self._amsgrad

    @property
    def step_count(self):
        """Steps taken so far (the next step is number ``step_count + 1``)."""
        return self._step

    @property
    def params(self):
        """The parameter arrays, in the tree they were given in."""
        return self._treedef.unflatten(self._leaves)

    def hyperparameters(self):
        """The current hyperparameters as a dict."""
        return {
            "lr": self._lr,
            "betas": self._betas,
            "eps": self._eps,
            "weight_decay": self._weight_decay,
            "amsgrad": self._amsgrad,
            "maximize": self._maximize,
            "decoupled_weight_decay": self._decoupled,
        }

    def __repr__(self):
        options = ", ".join(f"{name}={value!r}" for name, value in self.hyperparameters().items())
        return f"{type(self).__name__}({options}; {len(self._leaves)} arrays on {self._backend.name}, step {self._step})"

    # -- the step ----------------------------------------------------------------

    def step(self, grads):
        """Apply one Adam step with ``grads``, a tree shaped like ``params``.

        Every gradient is checked (structure, backend, dtype, shape, no memory
        shared with what the step writes) before anything is written; on error
        nothing has changed. With a schedule, ``lr`` becomes
        ``schedule(step_count)`` once the gradients have passed their checks.
        """
        leaves = self._treedef.flatten_like(grads, "grads")
        groups = self._groups
        if len(groups) == 1:
            plans = [groups[0].bind(leaves, self._written)]
        else:
            plans = [group.bind([leaves[k] for k in group.indices], self._written) for group in groups]
        if self._schedule is not None:
            self.lr = self._schedule(self._step)
        step = self._step + 1
        beta1, beta2 = self._betas
        l2_decay = uses_l2_decay(self._weight_decay, self._decoupled)
        hyper = adam_scalars(step, self._lr, beta1, beta2, self._eps, self._weight_decay,
                             self._decoupled, self._maximize)
        for group, plan in zip(groups, plans):
            group.backend.run(plan, group.real_dtype, hyper, self._amsgrad, l2_decay)
        self._step = step

    # -- state -----------------------------------------------------------------

    def state_dict(self):
        """Plain data: hyperparameters, step count, and copies of the state arrays.

        The state arrays (``exp_avg``, ``exp_avg_sq`` and, with AMSGrad,
        ``max_exp_avg_sq``) are trees shaped like ``params``, on the parameters'
        backend. A schedule with a ``state_dict`` method adds its own under
        ``"schedule"``. Restore with :meth:`load_state_dict`.
        """
        state = {
            "optimizer": type(self).__name__,
            "step": self._step,
            "hyperparameters": self.hyperparameters(),
        }
        for kind in STATE_KINDS:
            if kind in self._groups[0].state:
                state[kind] = self._treedef.unflatten(
                    [group.state[kind][local].copy() for group, local in self._locations]
                )
        if callable(getattr(self._schedule, "state_dict", None)):
            state["schedule"] = self._schedule.state_dict()
        return state

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict` (NumPy or CuPy arrays alike).

        Everything is checked first; on error the optimizer is unchanged. A state
        without a ``"schedule"`` entry leaves this optimizer's schedule as it is.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(); got {type(state).__name__}")
        missing = [key for key in ("step", "hyperparameters", "exp_avg", "exp_avg_sq") if key not in state]
        if missing:
            raise ValueError(f"state is missing {missing}")
        step = state["step"]
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"state['step'] must be an integer >= 0; got {step!r}")
        if step < 0:
            raise ValueError(f"state['step'] must be an integer >= 0; got {step!r}")
        hyper = self._checked_hyperparameters(state["hyperparameters"])
        kinds = STATE_KINDS if hyper["amsgrad"] else STATE_KINDS[:2]
        arrays = {kind: self._checked_state_arrays(state, kind) for kind in kinds}
        undo_schedule = self._load_schedule_state(state.get("schedule"))

        previous_groups = (self._groups, self._written, self._amsgrad, self._locations)
        try:
            self._install_groups(hyper["amsgrad"])
            for kind, leaves in arrays.items():
                for (group, local), source in zip(self._locations, leaves):
                    group.assign_state(kind, local, source)
        except BaseException:
            self._groups, self._written, self._amsgrad, self._locations = previous_groups
            undo_schedule()
            raise
        for name in ("lr", "betas", "eps", "weight_decay", "maximize", "decoupled_weight_decay"):
            setattr(self, name, hyper[name])
        self._step = int(step)

    def _load_schedule_state(self, schedule_state):
        """Load ``schedule_state`` into the schedule (all or nothing); return what undoes it."""
        if schedule_state is None:
            return lambda: None
        schedule = self._schedule
        if not callable(getattr(schedule, "load_state_dict", None)):
            raise ValueError(
                f"state holds a learning-rate schedule but this optimizer has "
                f"{'none' if schedule is None else 'one without load_state_dict'}; "
                "construct it with the same kind of schedule=..."
            )
        previous = schedule.state_dict()
        schedule.load_state_dict(schedule_state)
        return lambda: schedule.load_state_dict(previous)

    def _checked_hyperparameters(self, hyper):
        if not isinstance(hyper, dict):
            raise TypeError(f"state['hyperparameters'] must be a dict; got {type(hyper).__name__}")
        unknown = sorted(set(hyper) - set(_HYPERPARAMETERS))
        missing = [name for name in _HYPERPARAMETERS if name not in hyper]
        if unknown or missing:
            raise ValueError(f"state['hyperparameters'] must have keys {list(_HYPERPARAMETERS)}; "
                             f"missing {missing}, unexpected {unknown}")
        return {
            "lr": _validate.check_lr(hyper["lr"]),
            "betas": _validate.check_betas(tuple(hyper["betas"]) if isinstance(hyper["betas"], list)
                                           else hyper["betas"]),
            "eps": _validate.check_eps(hyper["eps"]),
            "weight_decay": _validate.check_weight_decay(hyper["weight_decay"]),
            "amsgrad": _validate.check_flag("amsgrad", hyper["amsgrad"]),
            "maximize": _validate.check_flag("maximize", hyper["maximize"]),
            "decoupled_weight_decay": self._checked_decoupling(hyper["decoupled_weight_decay"]),
        }

    def _checked_decoupling(self, value):
        return _validate.check_flag("decoupled_weight_decay", value)

    def _checked_state_arrays(self, state, kind):
        root = f"state[{kind!r}]"
        if kind not in state:
            raise ValueError(f"state has amsgrad=True but no {kind!r}")
        leaves = self._treedef.flatten_like(state[kind], root)
        paths = self._treedef.paths(root)
        for leaf, path, info in zip(leaves, paths, self._infos):
            backend_for([leaf], [path])
            _validate.check_matches(leaf, path, info, "its parameter")
            if kind != "exp_avg" and _has_negative_entries(leaf):
                raise ValueError(f"{path} has negative entries; second moments are >= 0")
        return leaves

    def save(self, path):
        """Write :meth:`state_dict` to one ``.npz`` file, atomically."""
        save_state(self.state_dict(), path)

    def load(self, path):
        """Restore the state saved by :meth:`save`."""
        self.load_state_dict(load_state(path))


def _has_negative_entries(array):
    real = array.real if array.dtype.kind == "c" else array
    negative = bool((real < 0).any())
    if array.dtype.kind == "c":
        negative = negative or bool((array.imag < 0).any())
    return negative


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.

    Before the moment updates, every parameter is multiplied by
    :math:`1 - \eta\lambda`; the gradient itself gets no decay term. This is
    ``torch.optim.AdamW``'s update, and ``Adam(..., decoupled_weight_decay=True)``.

    Examples
    --------
    >>> import numpy as np, numadam
    >>> w = np.ones(3, np.float32)
    >>> opt = numadam.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> opt.step([np.zeros(3, np.float32)])   # zero gradient: only the decay acts
    >>> w
    array([0.95, 0.95, 0.95], dtype=float32)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False, schedule=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True,
                         schedule=schedule)

    @Adam.decoupled_weight_decay.setter
    def decoupled_weight_decay(self, value):
        if not _validate.check_flag("decoupled_weight_decay", value):
            raise ValueError(f"AdamW always decouples weight decay; got decoupled_weight_decay={value!r}")
        self._decoupled = True

    def _checked_decoupling(self, value):
        if not _validate.check_flag("decoupled_weight_decay", value):
            raise ValueError("state has decoupled_weight_decay=False, which AdamW cannot load; use numadam.Adam")
        return True
