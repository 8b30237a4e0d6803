"""The members of the Adam family: one module each, its rule and its declaration.

Every module of this package (but those whose names start with ``_``)
declares one :class:`~numadam.core.algorithm.Algorithm`: its element rule, host
scalars, hyperparameters, state and docs. The package is a leaf of rules and
declarations: its modules import :mod:`numadam.core` and nothing above it.
Everything else is derived from the declarations elsewhere: the kernels read
them (:func:`numadam.targets.spec.algorithm`), and :mod:`numadam.registry`
makes the optimizer classes, the functional steps and :func:`numadam.families`.
A new member is its module, its NumPy reference (``tests/reference.py``) and
its docs page (``docs/families/<name>.md``), and nothing else.
"""
