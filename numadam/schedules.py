r"""Learning-rate schedules: the rate of each step as a function of the steps taken.

A schedule is called with :math:`k`, the number of steps already taken (the
optimizer's ``step_count``), and returns the learning rate :math:`\eta_k` of the
next step; the first step uses :math:`\eta_0`. All but :class:`ReduceOnPlateau`
are closed forms in :math:`k`. Every schedule also has

* ``observe(loss)``: report the latest loss (only :class:`ReduceOnPlateau` uses it);
* ``state_dict()`` / ``load_state_dict(state)``: plain data, restored exactly,
  as part of the optimizer's own ``state_dict`` and ``save``/``load`` files.

Attach one to an optimizer with ``numadam.Adam(params, schedule=...)``, or pass
one to :func:`numadam.minimize`. :class:`LinearWarmup` puts a linear warmup in
front of any other schedule.

Examples
--------
>>> from numadam import schedules
>>> cosine = schedules.LinearWarmup(schedules.CosineDecay(0.1, total_steps=4), warmup_steps=1)
>>> [round(cosine(k), 4) for k in range(6)]
[0.05, 0.1, 0.0854, 0.05, 0.0146, 0.0]
"""

import math
import numbers

from .core import validate


class Schedule:
    """Base class: subclasses define ``__call__(step)`` and list their constructor arguments in ``_fields``."""

    _fields = ()

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must define __call__(step)")

    def observe(self, loss):
        """Report the latest loss. Closed-form schedules ignore it."""

    def state_dict(self):
        """``{"kind": class name, "config": constructor arguments}``: plain data."""
        return {"kind": type(self).__name__, "config": {name: getattr(self, name) for name in self._fields}}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` output; everything is checked before anything changes."""
        config = _checked_config(self, state, ("kind", "config"))
        vars(self).update(vars(type(self)(**config)))

    def __repr__(self):
        arguments = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({arguments})"


class Constant(Schedule):
    r"""The same rate at every step: :math:`\eta_k = \eta`, with :math:`\eta` = ``lr``.

    Examples
    --------
    >>> from numadam.schedules import Constant
    >>> Constant(0.01)(1000)
    0.01
    """

    _fields = ("lr",)

    def __init__(self, lr):
        self.lr = validate.check_lr(lr)

    def __call__(self, step):
        _check_steps_taken(step)
        return self.lr


class StepDecay(Schedule):
    r"""Multiply the rate by ``gamma`` every ``step_size`` steps.

    .. math::

        \eta_k = \eta\, \gamma^{\lfloor k / s \rfloor}

    with :math:`\eta` = ``lr``, :math:`\gamma` = ``gamma`` in (0, 1] and
    :math:`s` = ``step_size`` >= 1 (``torch.optim.lr_scheduler.StepLR``, counting steps).

    Examples
    --------
    >>> from numadam.schedules import StepDecay
    >>> schedule = StepDecay(1.0, step_size=2, gamma=0.5)
    >>> [schedule(k) for k in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    _fields = ("lr", "step_size", "gamma")

    def __init__(self, lr, step_size, gamma=0.1):
        self.lr = validate.check_lr(lr)
        self.step_size = validate.check_count("step_size", step_size, minimum=1)
        self.gamma = _decay_factor("gamma", gamma)

    def __call__(self, step):
        return step_decay_rate(_check_steps_taken(step), self.lr, self.step_size, self.gamma)


class ExponentialDecay(Schedule):
    r"""Multiply the rate by ``gamma`` every step: :math:`\eta_k = \eta\, \gamma^k`, :math:`\gamma \in (0, 1]`.

    Examples
    --------
    >>> from numadam.schedules import ExponentialDecay
    >>> [ExponentialDecay(1.0, gamma=0.5)(k) for k in range(4)]
    [1.0, 0.5, 0.25, 0.125]
    """

    _fields = ("lr", "gamma")

    def __init__(self, lr, gamma):
        self.lr = validate.check_lr(lr)
        self.gamma = _decay_factor("gamma", gamma)

    def __call__(self, step):
        return exponential_rate(_check_steps_taken(step), self.lr, self.gamma)


class CosineDecay(Schedule):
    r"""Half a cosine from ``lr`` down to ``min_lr`` over ``total_steps`` steps, then ``min_lr``.

    .. math::

        \eta_k = \eta_{\min} + \frac{\eta - \eta_{\min}}{2}
                 \Bigl(1 + \cos\frac{\pi \min(k, T)}{T}\Bigr)

    with :math:`\eta` = ``lr``, :math:`\eta_{\min}` = ``min_lr`` (0 <= ``min_lr`` <= ``lr``)
    and :math:`T` = ``total_steps`` (Loshchilov & Hutter 2017, without restarts).

    Examples
    --------
    >>> from numadam.schedules import CosineDecay
    >>> schedule = CosineDecay(1.0, total_steps=2, min_lr=0.2)
    >>> [round(schedule(k), 6) for k in range(4)]
    [1.0, 0.6, 0.2, 0.2]

    References
    ----------
    Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
    """

    _fields = ("lr", "total_steps", "min_lr")

    def __init__(self, lr, total_steps, min_lr=0.0):
        self.lr = validate.check_lr(lr)
        self.total_steps = validate.check_count("total_steps", total_steps, minimum=1)
        min_lr = validate.check_limit("min_lr", min_lr)
        if min_lr > self.lr:
            raise ValueError(f"min_lr must be <= lr ({self.lr!r}); got {min_lr!r}")
        self.min_lr = min_lr

    def __call__(self, step):
        return cosine_rate(_check_steps_taken(step), self.lr, self.total_steps, self.min_lr)


class LinearWarmup(Schedule):
    r"""A linear ramp over ``warmup_steps`` steps, then ``schedule`` (started afresh).

    .. math::

        \eta_k = \begin{cases}
            \dfrac{k + 1}{W + 1}\, \eta^{(s)}_0 & k < W \\[1ex]
            \eta^{(s)}_{k - W} & k \ge W
        \end{cases}

    with :math:`W` = ``warmup_steps`` and :math:`\eta^{(s)}` the wrapped schedule:
    the rate climbs in equal increments from :math:`\eta^{(s)}_0/(W+1)` and
    reaches :math:`\eta^{(s)}_0` at step :math:`W`, where the wrapped schedule
    begins its own step 0 (so a :class:`CosineDecay` over :math:`T` steps ends
    at step :math:`W + T`). ``observe`` is passed on to the wrapped schedule.

    Parameters
    ----------
    schedule : Schedule or float
        The schedule after the warmup; a number means :class:`Constant`.
    warmup_steps : int >= 0

    Examples
    --------
    >>> from numadam.schedules import LinearWarmup, ExponentialDecay
    >>> schedule = LinearWarmup(ExponentialDecay(0.8, gamma=0.5), warmup_steps=3)
    >>> [schedule(k) for k in range(6)]
    [0.2, 0.4, 0.6000000000000001, 0.8, 0.4, 0.2]
    """

    _fields = ("warmup_steps",)

    def __init__(self, schedule, warmup_steps):
        if isinstance(schedule, numbers.Real) and not isinstance(schedule, bool):
            schedule = Constant(schedule)
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a numadam.schedules.Schedule or a number; got {schedule!r}")
        self.schedule = schedule
        self.warmup_steps = validate.check_count("warmup_steps", warmup_steps, minimum=0)

    def __call__(self, step):
        steps_taken = _check_steps_taken(step)
        if steps_taken < self.warmup_steps:
            return warmup_rate(steps_taken, self.warmup_steps, self.schedule(0))
        return self.schedule(steps_taken - self.warmup_steps)

    def observe(self, loss):
        """Pass ``loss`` on to the wrapped schedule."""
        self.schedule.observe(loss)

    def state_dict(self):
        """The warmup length and the wrapped schedule's own state dict."""
        return {"kind": "LinearWarmup", "config": {"warmup_steps": self.warmup_steps},
                "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state):
        config = _checked_config(self, state, ("kind", "config", "schedule"))
        warmup_steps = LinearWarmup(self.schedule, **config).warmup_steps
        self.schedule.load_state_dict(state["schedule"])
        self.warmup_steps = warmup_steps

    def __repr__(self):
        return f"LinearWarmup({self.schedule!r}, warmup_steps={self.warmup_steps})"


class ReduceOnPlateau(Schedule):
    r"""Cut the rate by ``factor`` when the observed loss stops improving.

    Call :meth:`observe` with each new loss :math:`f`. With :math:`f^*` the best
    loss so far, :math:`f` improves on it when

    .. math::

        f < f^* - \tau |f^*| \;\; (\texttt{threshold\_mode="rel"}), \qquad
        f < f^* - \tau \;\; (\texttt{"abs"}),

    :math:`\tau` = ``threshold``. After more than ``patience`` observations in a
    row without improvement the rate becomes :math:`\max(\rho\,\eta, \eta_{\min})`,
    :math:`\rho` = ``factor``, :math:`\eta_{\min}` = ``min_lr``, and the count
    restarts; for the next ``cooldown`` observations nothing counts as a miss.
    A loss that is not finite (NaN, inf) counts as a miss. The rate does not
    depend on the ``step`` it is called with. For finite losses and a positive best loss these are the rules of
    ``torch.optim.lr_scheduler.ReduceLROnPlateau`` in ``"min"`` mode with ``eps=0``
    (PyTorch's default ``eps=1e-8`` skips a cut smaller than that); when :math:`f^* < 0`,
    PyTorch's relative test :math:`f < f^* (1 - \tau)` accepts a loss slightly *above*
    :math:`f^*` as an improvement, where the rule above asks for a real decrease.

    Examples
    --------
    >>> from numadam.schedules import ReduceOnPlateau
    >>> schedule = ReduceOnPlateau(1.0, factor=0.5, patience=1)
    >>> for loss in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]:
    ...     schedule.observe(loss)
    >>> schedule(6)
    0.25
    """

    _fields = ("lr", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr")

    def __init__(self, lr, factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0):
        self.lr = validate.check_lr(lr)
        factor = validate.check_limit("factor", factor)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1); got {factor!r}")
        self.factor = factor
        self.patience = validate.check_count("patience", patience, minimum=0)
        self.threshold = validate.check_limit("threshold", threshold)
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs'; got {threshold_mode!r}")
        self.threshold_mode = threshold_mode
        self.cooldown = validate.check_count("cooldown", cooldown, minimum=0)
        self.min_lr = validate.check_limit("min_lr", min_lr)
        self.current_lr = self.lr
        self.best = math.inf
        self.bad_steps = 0
        self.cooldown_left = 0

    def __call__(self, step):
        _check_steps_taken(step)
        return self.current_lr

    def observe(self, loss):
        """Count ``loss`` as an improvement or a miss, and cut the rate after too many misses."""
        loss = _real_value("loss", loss)
        if math.isfinite(loss) and loss < self._improvement_bound():
            self.best = loss
            self.bad_steps = 0
        else:
            self.bad_steps += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_steps = 0
        if self.bad_steps > self.patience:
            self.current_lr = max(self.current_lr * self.factor, self.min_lr)
            self.cooldown_left = self.cooldown
            self.bad_steps = 0

    def _improvement_bound(self):
        if self.best == math.inf:
            return math.inf
        margin = self.threshold * abs(self.best) if self.threshold_mode == "rel" else self.threshold
        return self.best - margin

    def state_dict(self):
        """Configuration plus the running state: current rate, best loss, counters."""
        state = super().state_dict()
        state["state"] = {"current_lr": self.current_lr, "best": self.best,
                          "bad_steps": self.bad_steps, "cooldown_left": self.cooldown_left}
        return state

    def load_state_dict(self, state):
        config = _checked_config(self, state, ("kind", "config", "state"))
        fresh = ReduceOnPlateau(**config)
        running = state["state"]
        names = ("current_lr", "best", "bad_steps", "cooldown_left")
        if not isinstance(running, dict) or sorted(running) != sorted(names):
            raise ValueError(f"state['state'] must be a dict with keys {list(names)}; got {running!r}")
        fresh.current_lr = validate.check_lr(running["current_lr"])
        best = running["best"]
        fresh.best = _real_value("state['state']['best']", best)
        if not (math.isfinite(fresh.best) or fresh.best == math.inf):
            raise ValueError(f"state['state']['best'] must be finite or inf; got {best!r}")
        fresh.bad_steps = validate.check_count("state['state']['bad_steps']", running["bad_steps"], minimum=0)
        fresh.cooldown_left = validate.check_count("state['state']['cooldown_left']", running["cooldown_left"],
                                                    minimum=0)
        vars(self).update(vars(fresh))


# The closed forms, as functions of plain numbers: the classes call them, and a compiled
# solve (numadam.solver.compiled) compiles the very same functions. Powers take a float
# exponent, as Python's float ** int does, so compiled code computes the same bits.


def step_decay_rate(steps_taken, lr, step_size, gamma):
    """:class:`StepDecay`'s :math:`\\eta\\,\\gamma^{\\lfloor k/s \\rfloor}`."""
    return lr * gamma ** float(steps_taken // step_size)


def exponential_rate(steps_taken, lr, gamma):
    """:class:`ExponentialDecay`'s :math:`\\eta\\,\\gamma^k`."""
    return lr * gamma ** float(steps_taken)


def cosine_rate(steps_taken, lr, total_steps, min_lr):
    """:class:`CosineDecay`'s half cosine from ``lr`` to ``min_lr`` over ``total_steps``."""
    progress = min(steps_taken, total_steps) / total_steps
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def warmup_rate(steps_taken, warmup_steps, first_rate):
    """:class:`LinearWarmup`'s ramp, at ``steps_taken < warmup_steps``, to the wrapped schedule's first rate."""
    return first_rate * (steps_taken + 1) / (warmup_steps + 1)


def _check_steps_taken(step):
    if type(step) is int and step >= 0:
        return step
    return validate.check_count("step", step, minimum=0)


def _real_value(name, value):
    """``value`` as a float: a real number or a 0-d real array (NumPy or CuPy)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if getattr(value, "shape", None) == () and getattr(getattr(value, "dtype", None), "kind", None) in ("f", "i", "u"):
        return float(value)
    raise TypeError(f"{name} must be a real number; got {value!r}")


def _decay_factor(name, value):
    checked = validate.check_limit(name, value)
    if not 0.0 < checked <= 1.0:
        raise ValueError(f"{name} must be in (0, 1]; got {value!r}")
    return checked


def _checked_config(schedule, state, keys):
    """The ``config`` of a state dict meant for ``schedule``, after checking its shape."""
    kind = type(schedule).__name__
    if not isinstance(state, dict):
        raise TypeError(f"a schedule state must be a dict from state_dict(); got {type(state).__name__}")
    if sorted(state) != sorted(keys):
        raise ValueError(f"a {kind} state must have keys {list(keys)}; got {sorted(state)}")
    if state["kind"] != kind:
        raise ValueError(f"state is for a {state['kind']!r} schedule, not {kind!r}")
    config = state["config"]
    if not isinstance(config, dict) or sorted(config) != sorted(schedule._fields):
        raise ValueError(f"state['config'] must be a dict with keys {list(schedule._fields)}; got {config!r}")
    return config
