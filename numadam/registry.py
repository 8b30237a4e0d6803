"""The optimizer classes and functional steps, derived from the families' declarations.

Each module of :mod:`numadam.families` declares one
:class:`~numadam.core.algorithm.Algorithm`. Importing this module imports them
all and derives, from each declaration, the optimizer class (and its variants,
such as AdamW), the functional step ``<name>_step``, their docstrings, and the
entries of :func:`families`, which :func:`numadam.minimize`, ``numadam.jit``
and the tests read. The classes are made at import, so ``numadam/__init__.pyi``
declares them for IDEs and type checkers (``python tools/make_stub.py``).
"""

import importlib
import pkgutil

from . import families as _members
from .core.algorithm import Example, declared_in
from .functional import step_function
from .muon import Muon
from .optimizers import Optimizer

#: method name -> (optimizer class, functional step), in alphabetical order of the methods.
_REGISTRY = {}
__all__ = ["families"]


def _example(example, title):
    """The doctest lines of a class's docstring (see :class:`~numadam.core.algorithm.Example`)."""
    if not isinstance(example, Example):
        return example
    return (">>> import numpy as np, numadam\n"
            ">>> w = np.array([1.0, -1.0])\n"
            f">>> opt = numadam.{title}(w, {example.options})\n"
            f">>> for _ in range({example.steps}):\n"
            "...     opt.step(2 * w)\n"
            f">>> bool(np.all(np.abs(w) < {example.tolerance}))\n"
            "True")


def _sections(*sections):
    """``(title, text)`` sections as a numpydoc docstring's, those with text only."""
    return "".join(f"\n\n{title}\n{'-' * len(title)}\n{text}" for title, text in sections if text)


def _class_doc(algorithm):
    return algorithm.doc + _sections(("Examples", _example(algorithm.example, algorithm.title)),
                                     ("References", "\n".join(algorithm.references)))


def _step_doc(algorithm):
    lead = (f"Take {algorithm.title} step ``step`` on ``param`` and its state, in place.\n\n"
            f"The update of :class:`numadam.{algorithm.title}`, on single arrays.")
    extra = f"\n\n{algorithm.step_doc}" if algorithm.step_doc else ""
    return lead + extra + _sections(("Examples", algorithm.step_example),
                                    ("References", "\n".join(algorithm.references)))


def _make_class(module, title, namespace):
    cls = type(title, (Optimizer,), {"__module__": module.__name__, "__qualname__": title, **namespace})
    setattr(module, title, cls)  # where its docstring's examples are found and run (doctest)
    return cls


def _register(module):
    """Derive the classes, the functional step and the registry entries of ``module``'s algorithm."""
    algorithm = declared_in(module)
    if algorithm is None:
        raise TypeError(f"{module.__name__} must declare exactly one Algorithm")
    methods = {method.__name__: method for method in algorithm.methods}
    main = _make_class(module, algorithm.title, {"algorithm": algorithm, "__doc__": _class_doc(algorithm), **methods})
    step = step_function(main, f"{algorithm.name}_step", _step_doc(algorithm))
    setattr(module, step.__name__, step)
    _REGISTRY[algorithm.name] = (main, step)
    globals().update({algorithm.title: main, step.__name__: step})
    __all__.extend([algorithm.title, step.__name__])
    for variant in algorithm.variants:
        cls = _make_class(module, variant.title, {"algorithm": algorithm, "__doc__": variant.doc,
                                                  "defaults": variant.defaults, "pinned": variant.pinned, **methods})
        _REGISTRY[variant.title.lower()] = (cls, step)
        globals()[variant.title] = cls
        __all__.append(variant.title)


for _found in sorted(pkgutil.iter_modules(_members.__path__), key=lambda found: found.name):
    if not _found.name.startswith("_"):
        _register(importlib.import_module(f"{_members.__name__}.{_found.name}"))
_REGISTRY = dict(sorted(_REGISTRY.items()))
#: Methods that are not elementwise families (no functional step): method name -> class.
_MATRIX_METHODS = {"muon": Muon}
__all__.append("Muon")


def families():
    """The elementwise optimizers numadam has, by the name :func:`numadam.minimize` takes as ``method``.

    These are the engine's families: each has a functional step, ``numadam.jit``
    steps and every policy. :class:`numadam.Muon`, whose step multiplies whole
    matrices, is not among them; ``minimize`` takes it as ``method="muon"``.

    Examples
    --------
    >>> import numadam
    >>> numadam.families()["adamw"]
    <class 'numadam.families.adam.AdamW'>
    >>> list(numadam.families())[:4]
    ['adabelief', 'adadelta', 'adafactor', 'adagrad']
    """
    return {name: cls for name, (cls, _) in _REGISTRY.items()}


def optimizer_class(method):
    """The class of ``method`` (a name from :func:`families`, or ``"muon"``; any case)."""
    name = method.lower() if isinstance(method, str) else None
    found = _REGISTRY.get(name)
    if found is None:
        if name in _MATRIX_METHODS:
            return _MATRIX_METHODS[name]
        raise ValueError(f"method must be one of {list(_REGISTRY) + list(_MATRIX_METHODS)}; got {method!r}")
    return found[0]


def method_name(cls):
    """The method name of an optimizer class (``numadam.AdamW`` -> ``"adamw"``)."""
    return next(name for name, found in {**families(), **_MATRIX_METHODS}.items() if found is cls)


def functional_step(method):
    """The functional step of ``method`` (a name from :func:`families`)."""
    optimizer_class(method)
    if method.lower() in _MATRIX_METHODS:
        raise ValueError(f"{method!r} has no functional step: its Newton–Schulz iteration takes whole matrices "
                         "and its state; step numadam.Muon")
    return _REGISTRY[method.lower()][1]
