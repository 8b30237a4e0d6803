"""How a member of the Adam family is declared: once, in a module of its own.

An :class:`Algorithm` holds everything numadam needs to know about one
optimizer of the family:

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
import importlib
import inspect
import sys
from collections import namedtuple
from typing import Callable, NamedTuple



class Hyperparameter(NamedTuple):
    """One hyperparameter: ``check(name, value)`` returns the value to use or raises; ``options``
    lists the values of one that takes a choice (``convention``)."""

    name: str
    default: object
    check: Callable
    doc: str
    per_group: bool = True
    options: tuple = ()


class StateKind(NamedTuple):
    """One per-element state array of a family.

    ``doc`` describes it in a phrase (for messages); ``initial`` is a number,
    ``"param"`` (a copy of the parameter) or ``initial(h)`` giving a number from
    the hyperparameters ``h``; ``present(h)`` says whether the
    hyperparameters ``h`` use it (``None``: always), ``when`` says the same in
    words ("amsgrad=True").

    ``magnitude`` marks state that the rule builds from squared magnitudes only
    (with :func:`numadam.core.element_math.square`, never ``g * g``): with
    ``complex_mode="magnitude"`` it is one real number per complex element,
    while the parameter, the gradient and the other state are complex numbers.
    A family takes ``complex_mode="magnitude"`` when some of its state is so marked.

    ``factor`` marks *factored* state (:mod:`numadam.core.factors`), whose shape
    is not the parameter's: one of :data:`numadam.core.factors.FACTORS` (rows,
    columns, means or scales of the last two dimensions: Adafactor's second
    moment and what its direction is made of). The rule reads it as if it had
    the parameter's shape (each value repeated along the dimensions it does not
    keep) and never writes it: the factors' own pass updates it before the rule
    runs. A ``derived`` kind is recomputed from the others at every step and is
    not part of the saved state.

    ``sampled(h)``, where given, is the step k between the elements a kind
    keeps (Prodigy's ``slice_p``): with k > 1 it holds one value for every k-th
    element of its parameter in C order (positions 0, k, 2k, ...: ceil(n / k)
    values, one dimension), the kernels never see it, and the family's
    :attr:`Norms.sampled` pass moves it; with k = 1 it is an operand like any
    other.
    """

    name: str
    doc: str
    initial: object = 0.0
    nonnegative: bool = False
    present: Callable | None = None
    when: str = ""
    magnitude: bool = False
    factor: str = ""
    derived: bool = False
    sampled: Callable | None = None

    def sample_step(self, h):
        """The step between the elements this kind keeps for hyperparameters ``h`` (1: every one)."""
        return 1 if self.sampled is None else int(self.sampled(h))

    def initial_for(self, h):
        """The initial value for hyperparameters ``h``: a number, or ``"param"``."""
        return self.initial(h) if callable(self.initial) else self.initial


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
    squares of the parameter and of the direction. Field ``field`` of each
    parameter's scalars is then set to ``value(param_squares,
    direction_squares)``, where ``applies(h)`` is true of the hyperparameters
    of its group, and the family's ``rule`` applies the update without touching
    the state. ``value`` is plain Python arithmetic on two floats that every
    path compiles: the host's loop over parameters, the CPU's one-call step,
    :mod:`numadam.jit`, and on CUDA the kernel that writes it into the
    update's rows on the GPU (:func:`~numadam.targets.cuda.kernels.norms_values_kernel`).

    With ``per_parameter`` the value also depends on the parameter:
    ``value(param_squares, direction_squares, count, s)`` takes its number of
    real elements and its scalars ``s`` (a NamedTuple of floats); the CPU's
    steps compute it on the host, CUDA's on the GPU, where it must compile
    as well (Adafactor's step size, from two root mean squares).

    The CPU's pass keeps each tile's directions apart from their float64 sums,
    so that a rule with divisions and roots vectorizes at the compute dtype's
    width (LAMB's, Adafactor's vectors); with ``tiled_matrices`` false, a
    matrix's layouts of factored state run in one loop instead, faster for a
    direction of products only (Adafactor's matrices).

    With ``terms`` the rule returns ``(state, (first, second))``, and the pass
    sums ``first`` and ``second`` themselves instead of the squares of the
    parameter and the direction. With ``total`` the sums are the whole
    optimizer's: ``total(first, second, carry, hypers) -> carry`` takes their
    totals over every parameter, the carry before the step (the first group's)
    and the hyperparameters of the groups that hold parameters, and returns the
    carry every group takes; the update's scalars are the family's ``scalars``
    of that carry (``field`` and ``value`` are then ``None``: Prodigy's d).
    ``check_groups(hypers)``, where given, raises before anything is written if
    the groups' hyperparameters cannot share one total.
    ``update_reads_gradient(h)``, where given and true, says that the update
    reads the gradient again (Prodigy without a first moment): it then takes
    the gradient scaled and clipped as the first pass did, and accumulation is
    refused (only the first pass sees the micro-batches' sum).

    ``sampled``, where given, is the pass over the state kinds kept on every
    k-th element (:attr:`StateKind.sampled`), run before the first pass when
    k > 1: ``sampled(param, grad, state, s, flags) -> (first,
    second)`` takes one parameter's sampled elements as one-dimensional arrays
    of its compute dtype (the effective gradient: accumulated, scaled and
    clipped as the first pass takes it), its sampled state arrays by name
    (written in place) and its scalar row, and returns what those elements add
    to the two sums (the rule's terms are then 0 there: its flags say so). It
    is written with array operators only, so NumPy and CuPy arrays both take it.
    """

    rule: object
    field: str | None
    applies: Callable
    value: Callable | None
    per_parameter: bool = False
    tiled_matrices: bool = True
    terms: bool = False
    total: Callable | None = None
    check_groups: Callable | None = None
    update_reads_gradient: Callable | None = None
    sampled: Callable | None = None


class Example(NamedTuple):
    r"""The example of a class's docstring: from ``w = [1, -1]``, ``steps`` steps on
    :math:`\sum w^2` with the options ``options`` bring every element within ``tolerance`` of 0."""

    options: str
    steps: int = 300
    tolerance: float = 0.05


class Variant(NamedTuple):
    """One more class over an algorithm (AdamW over Adam's): its name, docstring, the defaults it
    changes and the hyperparameters it fixes."""

    title: str
    doc: str
    defaults: dict
    pinned: dict


#: Every algorithm declared, by name, in the order their modules were imported.
ALGORITHMS = {}


@dataclasses.dataclass(frozen=True, eq=False)
class Algorithm:
    """One member of the Adam family, as the engine sees it (see the module docstring)."""

    name: str
    title: str
    hyperparameters: tuple
    state: tuple
    scalars: Callable
    flags: Callable
    rule: object
    carry: Carry | None = None
    #: ``check_combination(h)`` raises if hyperparameters are wrong together.
    check_combination: Callable | None = None
    #: A first pass that needs each parameter's norms before its update (LAMB), or None.
    norms: "Norms | None" = None
    #: With factored state: ``factors(s) -> (weight, floor)``, from a parameter's scalars ``s`` rounded
    #: to the dtype its step computes in, the weight of this step's squares in the factors' moving
    #: averages and the floor of the row mean (:mod:`numadam.core.factors`).
    factors: Callable | None = None
    #: With factored state whose direction is :math:`u = g / \sqrt{\max(\hat v, \epsilon_1^2)}`
    #: (Adafactor's): ``direction_floor(s)``, that floor from the scalars ``s`` as ``factors`` takes
    #: them, so that the factors' pass can sum the norms pass's :math:`\|p\|^2` and :math:`\|u\|^2`
    #: itself (:func:`numadam.core.factors.pass_constants`); None: the norms pass sums them. It must
    #: also be callable from compiled code (an ``overload`` of it, as Adafactor's): the one-call step
    #: (:mod:`numadam.targets.cpu.factored_step`) compiles it in.
    direction_floor: Callable | None = None
    #: The class's docstring before its example: what it computes (the math) and whose update it is.
    doc: str = ""
    #: The class docstring's example: an :class:`Example`, or doctest lines of its own.
    example: "Example | str" = None
    #: The papers, one a line.
    references: tuple = ()
    #: What the functional step's docstring says after its first paragraph (the carry, say).
    step_doc: str = ""
    #: The functional step's example, as doctest lines.
    step_example: str = ""
    #: More classes over this algorithm (:class:`Variant`).
    variants: tuple = ()
    #: Methods the classes get besides the optimizer's own (schedule-free AdamW's ``eval_params``).
    methods: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "Hyper", namedtuple(f"{self.title}Hyper", self.names))
        #: The named tuples of the rule's scalars and flags: what ``scalars`` and ``flags`` return.
        object.__setattr__(self, "Scalars", inspect.signature(self.scalars).return_annotation)
        object.__setattr__(self, "Flags", inspect.signature(self.flags).return_annotation)
        ALGORITHMS[self.name] = self

    def __reduce__(self):
        """numadam's own algorithms pickle as a reference to the module that declares them: a Dask
        task carries its algorithm to a worker with every step, and by value (its rule, its checks'
        lambdas, its docs) that took about 1 ms of the scheduler's time per task. Any other
        algorithm pickles by value, as any object does."""
        home = self._family_module()
        if home is not None:
            return family_algorithm, (home,)
        return _restored, (type(self), dict(vars(self)))

    def __dask_tokenize__(self):
        """What stands for this algorithm in a Dask task's key: its module (any other algorithm: its
        name and the object), instead of a hash of every field, which took Dask about 2 ms a step."""
        home = self._family_module()
        return ("numadam.Algorithm", home) if home is not None else ("numadam.Algorithm", self.name, id(self))

    def _family_module(self):
        """The name of the module of :mod:`numadam.families` that declares this algorithm, or None."""
        home = getattr(self.scalars, "__module__", "") or ""
        module = sys.modules.get(home)
        if home.startswith("numadam.families.") and module is not None and declared_in(module) is self:
            return home
        return None

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

    def check_combination_of(self, values):
        """Raise if the hyperparameters ``values`` (a dict of all of them) are wrong together."""
        if self.check_combination is not None:
            self.check_combination(self.Hyper(**values))

    @property
    def state_names(self):
        """The names of the rule's state operands, in its order."""
        return tuple(kind.name for kind in self.state)

    @property
    def read_only_state(self):
        """The names of the state operands the rule reads and never writes (factored state: the
        factors' pass moves them)."""
        return tuple(kind.name for kind in self.state if kind.factor)

    @property
    def state_written_by_update(self):
        """The names of the state operands the update stores: none for a family with a norms pass,
        whose first pass stores the state and whose update reads it and leaves it as it is (see
        :class:`Norms`: LAMB's and Prodigy's moments, Adafactor's factors); else all but the
        read-only ones."""
        if self.norms is not None:
            return ()
        return tuple(name for name in self.state_names if name not in self.read_only_state)

    @property
    def norms_rule(self):
        """The norms pass's rule (:attr:`Norms.rule`), or None."""
        return None if self.norms is None else self.norms.rule

    @property
    def norms_value(self):
        """What the norms pass's sums set in each parameter's scalars (:attr:`Norms.value`), or None."""
        return None if self.norms is None else self.norms.value

    @property
    def norms_tiled_matrices(self):
        """Whether the CPU's norms pass runs over a matrix's layouts in tiles (:attr:`Norms.tiled_matrices`)."""
        return self.norms is None or self.norms.tiled_matrices

    @property
    def sums_every_parameter(self):
        """Whether the norms pass's sums are the whole optimizer's (:attr:`Norms.total`: Prodigy's d),
        so that no step of one array alone, and no one-call kernel, takes it."""
        return self.norms is not None and self.norms.total is not None

    @property
    def factored(self):
        """Whether some state is factored (see :class:`StateKind`): the steps then run the factors'
        pass (:mod:`numadam.core.factors`) before the norms pass."""
        return self.factors is not None

    def saved_kinds(self, kinds):
        """The state kinds among ``kinds`` that a state dict holds (the derived ones are recomputed)."""
        return tuple(kind for kind in kinds if not kind.derived)

    def sample_step(self, h):
        """The step between the elements the sampled state kinds keep for hyperparameters ``h``
        (:attr:`StateKind.sampled`; 1 where none is sampled)."""
        return max((kind.sample_step(h) for kind in self.state), default=1)

    def state_kinds(self, h):
        """The state kinds the hyperparameters ``h`` use, in the rule's order."""
        return tuple(kind for kind in self.state if kind.present is None or kind.present(h))

    @property
    def takes_magnitude(self):
        """Whether ``complex_mode="magnitude"`` applies: some state is built from squared magnitudes
        and no norms pass reads complex numbers as pairs."""
        return any(kind.magnitude for kind in self.state) and self.norms is None

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


def family_algorithm(module):
    """The algorithm that module ``module`` of :mod:`numadam.families` declares (how one unpickles):
    importing the module declares it."""
    return declared_in(importlib.import_module(module))


def declared_in(module):
    """The one :class:`Algorithm` that ``module`` (a module of :mod:`numadam.families`) declares, or None."""
    found = [value for value in vars(module).values() if isinstance(value, Algorithm)]
    return found[0] if len(found) == 1 else None


def _restored(cls, attributes):
    """An algorithm pickled by value: its attributes, as they were (not declared again)."""
    algorithm = object.__new__(cls)
    vars(algorithm).update(attributes)
    return algorithm
