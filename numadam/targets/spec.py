"""What a kernel is compiled for: :class:`KernelSpec`.

A :class:`KernelSpec` names the family whose rule it applies (its
:class:`~numadam.core.algorithm.Algorithm`, declared once, is read through
:func:`algorithm`), the flags' values, the real dtype of the
arithmetic and how each operand is stored. Numba sees a spec as a type of its
own (:class:`KernelSpecType`): the CPU kernels take it as their first
argument, so each spec gets its own machine code, and because the type is
plain data the code is cached on disk across processes.

The type's key includes a fingerprint of the sources of every module the
kernel compiles in (the rule, its helpers, the code generated around it) and
of the package's version, so an edit or an upgrade can never load stale
machine code from Numba's cache (Numba itself only watches the file of the
cached function).
"""

import dataclasses

from numba import types
from numba.core.imputils import lower_constant
from numba.extending import NativeValue, models, register_model, typeof_impl, unbox

from .fingerprint import UNSHARED, fingerprint as source_fingerprint, kernel_modules
from ..core.algorithm import ALGORITHMS
from ..core.pipeline import CHUNK_POSITIONS, NO_POLICY, Policy, PolicyScalars


def algorithm(name):
    """The :class:`~numadam.core.algorithm.Algorithm` declared as ``name``: the one record of a
    family, from which a kernel reads its rule, scalars, flags, state and passes."""
    return ALGORITHMS[name]


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """Everything compiled into one kernel.

    ``flags`` holds the values of the rule's flags in their order;
    ``operands`` one storage code per operand (see
    :mod:`numadam.targets.storage`), ``""`` for an absent one, in the order
    param, grad, the family's state kinds, then the policy's operands
    (:data:`~numadam.core.pipeline.POLICY_OPERANDS`); ``policy`` is a
    :class:`~numadam.core.pipeline.Policy`; ``sources`` the operands whose old
    values are read from a source column of the table (an update out of place,
    see :mod:`~numadam.targets.segments`). (Not a tuple: Numba would type it
    by its items.)
    """

    rule: str
    flags: tuple
    real: str
    operands: tuple
    policy: Policy = NO_POLICY
    sources: tuple = ()

    def __hash__(self):  # computed once per object: specs are looked up on every step
        found = self.__dict__.get("_hash")
        if found is None:
            found = hash((self.rule, self.flags, self.real, self.operands, self.policy, self.sources))
            object.__setattr__(self, "_hash", found)
        return found

    def __reduce__(self):  # the fields only: a hash does not carry over to another process
        return KernelSpec, (self.rule, self.flags, self.real, self.operands, self.policy, self.sources)

    @property
    def n_operands(self):
        return len(self.operands)

    @property
    def positions(self):
        """Whether the table gives each segment's position in the whole parameter (a chunk's
        stochastic rounding: :data:`~numadam.core.pipeline.CHUNK_POSITIONS`)."""
        return self.policy.stochastic == CHUNK_POSITIONS

    @property
    def n_scalars(self):
        """Scalars per row: the rule's, then (with a policy) the policy's (computed once per object)."""
        found = self.__dict__.get("_n_scalars")
        if found is None:
            policy = len(PolicyScalars._fields) if self.policy.active else 0
            found = len(ALGORITHMS[self.rule].Scalars._fields) + policy
            object.__setattr__(self, "_n_scalars", found)
        return found


_FINGERPRINTS = {}


def fingerprint(rule_name):
    """The hash of what a kernel applying rule ``rule_name`` compiles in (see
    :mod:`~numadam.targets.fingerprint`), computed once per process and set of kernel modules."""
    key = rule_name, kernel_modules()  # a module of kernels registered later: a new hash, not a stale one
    found = _FINGERPRINTS.get(key)
    if found is None:
        declared = ALGORITHMS[rule_name]
        found = _FINGERPRINTS[key] = source_fingerprint((declared.rule, declared.norms_rule, declared.norms_value,
                                                         declared.factors, declared.direction_floor))
    return found


class KernelSpecType(types.Type):
    """Numba's type for a :class:`KernelSpec`: the spec itself is the key."""

    def __init__(self, spec, source):
        self.spec = spec
        self.source = source
        super().__init__(name=f"KernelSpec({spec.rule}, flags={spec.flags}, {spec.real}, {spec.operands}, "
                              f"{tuple(spec.policy)}, {spec.sources}, {source})")

    @property
    def key(self):
        return self.spec, self.source

    @property
    def unshared(self):
        """Whether the fingerprint is this process's alone (a source changed after the import):
        the disk cache then neither saves nor loads the kernel
        (:func:`~numadam.targets.fingerprint.source_digest`)."""
        return self.source.startswith(UNSHARED)


@typeof_impl.register(KernelSpec)
def _typeof_spec(spec, context):
    return KernelSpecType(spec, fingerprint(spec.rule))


register_model(KernelSpecType)(models.OpaqueModel)


@unbox(KernelSpecType)
def _unbox_spec(typ, obj, c):
    return NativeValue(c.context.get_dummy_value())


@lower_constant(KernelSpecType)
def _constant_spec(context, builder, typ, value):
    return context.get_dummy_value()
