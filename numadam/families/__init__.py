"""The members of the Adam family, one module each, and :func:`families`, their registry.

A new member is a module declaring its :class:`~numadam._family.Family` (rule,
scalars, hyperparameters, state) with its class and functional step, and one
line in :data:`_REGISTRY`.
"""

from .adam import Adam, AdamW, adam_step

#: method name -> optimizer class, in the order the docs list them.
_REGISTRY = {
    "adam": Adam,
    "adamw": AdamW,
}


def families():
    """The optimizers numadam has, by the name :func:`numadam.minimize` takes as ``method``.

    Examples
    --------
    >>> import numadam
    >>> numadam.families()["adamw"]
    <class 'numadam.families.adam.AdamW'>
    """
    return dict(_REGISTRY)


def optimizer_class(method):
    """The class of ``method`` (a name from :func:`families`, any case)."""
    found = _REGISTRY.get(method.lower() if isinstance(method, str) else None)
    if found is None:
        raise ValueError(f"method must be one of {list(_REGISTRY)}; got {method!r}")
    return found


__all__ = ["Adam", "AdamW", "adam_step", "families", "optimizer_class"]
