"""How a member of the Adam family is declared: once, in a module of its own.

A :class:`Family` holds everything numadam needs to know about an optimizer:

- its :class:`Hyperparameter` list (names, defaults, checks, docs), from which
  the class signature, validation, properties, ``state_dict``, the docs'
  parameter lists and :func:`numadam.minimize`'s options all derive;
- its :class:`StateKind` list: the per-element state arrays, in the order the
  rule reads them;
- ``scalars(step, h, carry)``: the per-step scalars in float64, from the step
  number ``step`` (from 1), the hyperparameters ``h`` (a named tuple) and the
  running host values ``carry``; each backend rounds them once to the
  parameters' real dtype;
- ``flags(h)``: the compile-time switches of the rule;
- ``rule``: the element update, ``rule(param, grad, state, s, flags) -> (param, state)``,
  written once and compiled into every kernel.

With :class:`numadam.Group`, hyperparameters may differ between parts of the
parameters; the kernel then compiles the union of the groups' flags (a flag
is on if any group needs it), so a rule must give the same result with a
flag on and that group's scalars neutral (a zero decay coefficient, say).
Hyperparameters marked ``per_group=False`` change the state or the compiled
code's shape and are set once per optimizer.
"""

import dataclasses
from collections import namedtuple
from typing import Callable, NamedTuple

from ..targets.spec import register_rule


class Hyperparameter(NamedTuple):
    """One hyperparameter: ``check(name, value)`` returns the value to use or raises."""

    name: str
    default: object
    check: Callable
    doc: str
    per_group: bool = True


class StateKind(NamedTuple):
    """One per-element state array of a family.

    ``doc`` describes it in a phrase (for messages); ``initial`` is a number,
    ``"param"`` (a copy of the parameter) or ``initial(h)`` giving a number from
    the hyperparameters ``h``; ``present(h)`` says whether the
    hyperparameters ``h`` use it (``None``: always), ``when`` says the same in
    words ("amsgrad=True").

    ``magnitude`` marks state that the rule builds from squared magnitudes only
    (with :func:`numadam.families._common.square`, never ``g * g``): with
    ``complex_mode="magnitude"`` it is one real number per complex element,
    while the parameter, the gradient and the other state are complex numbers.
    A family takes ``complex_mode="magnitude"`` when some of its state is so marked.
    """

    name: str
    doc: str
    initial: object = 0.0
    nonnegative: bool = False
    present: Callable | None = None
    when: str = ""
    magnitude: bool = False


class Carry(NamedTuple):
    """Running host-side values of a family (a schedule's running maximum, say).

    ``advance(step, h, carry)`` returns the values for step ``step`` from those
    of the step before; ``initial`` holds the values before the first step.
    """

    fields: tuple
    initial: tuple
    advance: Callable


class Norms(NamedTuple):
    """A first pass for families whose update needs each parameter's norms (LAMB's trust ratio).

    ``rule(param, grad, state, s, flags) -> (state, direction)`` updates the
    state and returns the update direction; the pass sums, per parameter, the
    squares of the parameter and of the direction. ``scalars(values, hypers,
    row_of, param_squares, direction_squares)`` then returns the scalar rows for
    the second pass, the family's ``rule``, which applies the update without
    touching the state: ``values`` holds the family's scalars, one float64 row
    per parameter; parameter ``k`` has the hyperparameters ``hypers[row_of[k]]``
    and the sums ``param_squares[k]`` and ``direction_squares[k]``. It works on
    whole arrays: a thousand parameters cost one NumPy call, not a thousand.
    ``one(h, param_squares, direction_squares)`` is the value it sets in the
    field ``field`` of the scalars for one parameter, as plain Python that njit
    code compiles (:mod:`numadam.jit`).
    """

    rule: object
    scalars: Callable
    one: Callable
    field: str


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
    """A member of the Adam family, as the engine sees it (see the module docstring)."""

    name: str
    title: str
    hyperparameters: tuple
    state: tuple
    scalars: Callable
    Scalars: type
    flags: Callable
    Flags: type
    rule: object
    carry: Carry | None = None
    #: ``check_combination(h)`` raises if hyperparameters are wrong together.
    check_combination: Callable | None = None
    #: A first pass that needs each parameter's norms before its update (LAMB), or None.
    norms: "Norms | None" = None

    def __post_init__(self):
        register_rule(self.name, self.rule, self.Scalars, self.Flags, [kind.name for kind in self.state],
                      None if self.norms is None else self.norms.rule)
        object.__setattr__(self, "Hyper", namedtuple(f"{self.title}Hyper", self.names))

    @property
    def names(self):
        return tuple(h.name for h in self.hyperparameters)

    def hyperparameter(self, name):
        for hyper in self.hyperparameters:
            if hyper.name == name:
                return hyper
        raise KeyError(name)

    def checked(self, name, value):
        """``value`` checked as hyperparameter ``name``."""
        return self.hyperparameter(name).check(name, value)

    def state_kinds(self, h):
        """The state kinds the hyperparameters ``h`` use, in the rule's order."""
        return tuple(kind for kind in self.state if kind.present is None or kind.present(h))

    def initial_carry(self):
        return () if self.carry is None else tuple(self.carry.initial)

    def step_scalars(self, step, h, carry):
        """``(scalars, carry)`` of step ``step``: the carry advanced, then the scalars (floats)."""
        if self.carry is not None:
            carry = tuple(self.carry.advance(step, h, carry))
        return self.scalars(step, h, carry), carry

    def union_flags(self, hypers):
        """The flags of several groups' hyperparameters, each on if any group needs it."""
        flags = [tuple(self.flags(h)) for h in hypers]
        return tuple(any(values) for values in zip(*flags))
