"""The members of the Adam family, one module each, and :func:`families`, their registry.

A new member is a module declaring its :class:`~numadam.core.family.Family` (rule,
scalars, hyperparameters, state) with its class and functional step, and one
line in :data:`_REGISTRY`.
"""

from .adabelief import AdaBelief, adabelief_step
from .adam import Adam, AdamW, adam_step
from .adamax import Adamax, adamax_step
from .ademamix import AdEMAMix, ademamix_step
from .adopt import ADOPT, adopt_step
from .lamb import LAMB, lamb_step
from .lion import Lion, lion_step
from .nadam import NAdam, nadam_step
from .radam import RAdam, radam_step
from .schedule_free import ScheduleFreeAdamW, schedule_free_adamw_step
from .yogi import Yogi, yogi_step

#: method name -> (optimizer class, functional step), in the order the docs list them.
_REGISTRY = {
    "adam": (Adam, adam_step),
    "adamw": (AdamW, adam_step),
    "nadam": (NAdam, nadam_step),
    "radam": (RAdam, radam_step),
    "adamax": (Adamax, adamax_step),
    "adabelief": (AdaBelief, adabelief_step),
    "yogi": (Yogi, yogi_step),
    "lion": (Lion, lion_step),
    "ademamix": (AdEMAMix, ademamix_step),
    "adopt": (ADOPT, adopt_step),
    "schedule_free_adamw": (ScheduleFreeAdamW, schedule_free_adamw_step),
    "lamb": (LAMB, lamb_step),
}


def families():
    """The optimizers numadam has, by the name :func:`numadam.minimize` takes as ``method``.

    Examples
    --------
    >>> import numadam
    >>> numadam.families()["adamw"]
    <class 'numadam.families.adam.AdamW'>
    >>> list(numadam.families())[:4]
    ['adam', 'adamw', 'nadam', 'radam']
    """
    return {name: cls for name, (cls, _) in _REGISTRY.items()}


def optimizer_class(method):
    """The class of ``method`` (a name from :func:`families`, any case)."""
    found = _REGISTRY.get(method.lower() if isinstance(method, str) else None)
    if found is None:
        raise ValueError(f"method must be one of {list(_REGISTRY)}; got {method!r}")
    return found[0]


def functional_step(method):
    """The functional step of ``method`` (a name from :func:`families`)."""
    optimizer_class(method)
    return _REGISTRY[method.lower()][1]
