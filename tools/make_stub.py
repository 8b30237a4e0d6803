"""Write ``numadam/__init__.pyi``: the public API as type checkers and IDEs see it.

    python tools/make_stub.py            (from the repository root)

The family classes and their functional steps are made at import
(``numadam/families/__init__.py`` builds them from each family's declarations), so
no ``class Adam`` statement exists for an IDE to find, and their ``__init__``
takes ``*args, **kwargs``. The stub declares each one with its real signature
(the class's ``__signature__``, the step's own), its hyperparameters as
attributes and its extra methods; every other public name is imported from
the module that defines it. Each keeps the first line of its docstring (the
rest is the package's, for ``help()``). ``tests/test_stub.py`` fails when the stub is not
what this script writes from the package as it is.
"""

import ast
import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "numadam" / "__init__.pyi"


def _literal(value):
    """``value``'s source where it is a literal, else ``...``."""
    text = repr(value)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return "..."
    return text


def _parameters(signature, skip_self=False):
    """The parameter list of ``signature`` as stub source (defaults as literals)."""
    parts, keyword_only_seen = (["self"] if skip_self else []), False
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            parts.append(f"*{parameter.name}")
            keyword_only_seen = True
            continue
        if parameter.kind is parameter.VAR_KEYWORD:
            parts.append(f"**{parameter.name}")
            continue
        if parameter.kind is parameter.KEYWORD_ONLY and not keyword_only_seen:
            parts.append("*")
            keyword_only_seen = True
        default = "" if parameter.default is parameter.empty else f"={_literal(parameter.default)}"
        parts.append(parameter.name + default)
    return ", ".join(parts)


def _docstring(value, indent):
    """The first line of ``value``'s docstring as a stub line at ``indent`` (a raw string): what an
    IDE shows beside the signature; ``help()`` reads the whole docstring from the package itself,
    which this stub does not repeat."""
    doc = inspect.getdoc(value)
    if not doc or '"""' in doc.splitlines()[0] or doc.splitlines()[0].endswith("\\"):
        return []
    return [f'{indent}r"""{doc.splitlines()[0]}"""']


def _family_class(cls, base):
    lines = [f"class {cls.__name__}({base}):"] + _docstring(cls, "    ")
    public = {name: value for name, value in vars(cls).items()
              if not name.startswith("_") and name not in ("algorithm", "defaults", "pinned")}
    attributes = [name for name, value in public.items() if not inspect.isfunction(value)]
    if attributes:  # the hyperparameters, read and set by name: one line (a variant repeats its base's)
        lines.append("    " + "; ".join(f"{name}: Any" for name in attributes))
    lines += [f"    def {name}({_parameters(inspect.signature(value))}): ..."
              for name, value in public.items() if inspect.isfunction(value)]
    lines.append(f"    def __init__({_parameters(inspect.signature(cls), skip_self=True)}) -> None: ...")
    return lines


def stub_source():
    """The stub's text, from the package as it is imported now."""
    import numadam

    classes = {cls.__name__: cls for cls in numadam.families().values()}
    lines = ['"""The public API of numadam for type checkers and IDEs: written by tools/make_stub.py, not by hand."""',
             "", "from typing import Any", "", "from .optimizers import Optimizer as Optimizer"]
    imported, declared = [], []
    for name in numadam.__all__:
        value = getattr(numadam, name)
        if name in classes:
            declared += [""] + _family_class(value, "Optimizer")
        elif inspect.isfunction(value) and value.__module__.startswith("numadam.families."):
            declared += ["", f"def {name}({_parameters(inspect.signature(value))}) -> Any:"]
            declared += _docstring(value, "    ") or ["    ..."]
        elif inspect.ismodule(value):
            imported.append(f"from . import {name} as {name}")
        else:
            imported.append(f"from .{value.__module__.removeprefix('numadam.')} import {name} as {name}")
    lines += sorted(imported)
    lines += ["from . import jit as jit", "", "__version__: str", f"__all__ = {sorted(numadam.__all__)!r}", ""]
    return "\n".join(lines + declared) + "\n"


if __name__ == "__main__":
    STUB.write_text(stub_source())
    print(f"wrote {STUB}", file=sys.stderr)
