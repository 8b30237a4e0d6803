"""Write the list of every public name into ``docs/api.md``: readable as plain Markdown.

    python tools/make_api_page.py            (from the repository root)

The documentation's address in ``pyproject.toml`` is the ``docs`` folder on
GitHub, which shows the pages as Markdown: Sphinx's autodoc directives are not
rendered there. So ``docs/api.md`` opens with a list written from the package
itself: every name of ``numadam.__all__`` with its signature and the first
sentence of its docstring, each optimizer class's hyperparameters and the
options they all share, the methods and attributes every optimizer has, and
every function of ``numadam.jit``. The list sits between two marker comments;
the rest of the page (the autodoc directives that render the whole docstrings
in the built site) is written by hand. ``tests/test_api_page.py`` fails when
the list is not what this script writes from the package as it is.
"""

import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "api.md"
BEGIN = "<!-- The list below is written by tools/make_api_page.py from the package: do not edit it by hand. -->"
END = "<!-- End of the list written by tools/make_api_page.py. -->"

# Where the options every optimizer shares are explained (a page of docs/ per option).
OPTION_PAGES = {
    "schedule": "schedules.md", "clip_global_norm": "policies.md", "clip_value": "policies.md",
    "nonfinite": "policies.md", "bounds": "policies.md", "nonneg": "policies.md", "ema": "policies.md",
    "ema_bias_correction": "policies.md", "accumulate": "policies.md", "state_dtype": "precision.md",
    "master_weights": "precision.md", "stochastic_rounding": "precision.md", "seed": "precision.md",
    "complex_mode": "precision.md",
}
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|doc|ref):`~?(?:[^`<]*<)?([^`>]+)>?`")
_MATH = re.compile(r":math:`([^`]+)`")


def summary(value):
    """The first sentence of ``value``'s docstring, its reST roles turned into Markdown code."""
    doc = inspect.getdoc(getattr(value, "py_func", value)) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z(`])", paragraph, maxsplit=1)[0]
    sentence = _MATH.sub(lambda match: f"${match[1]}$", sentence)
    return _ROLE.sub(lambda match: f"``{match[1].rsplit('.', 1)[-1] if '~' in match[0] else match[1]}``", sentence)


def _signature(value, drop=()):
    """``value``'s parameters as Python source, without ``self`` and the names in ``drop``."""
    parameters = [p for name, p in inspect.signature(value).parameters.items() if name not in drop]
    return str(inspect.Signature(parameters))


def _entry(name, value, drop=()):
    """A list item: ``name`` with ``value``'s signature, then its docstring's first sentence."""
    text = summary(value)
    return f"- `{name}{_signature(value, drop)}`" + (f": {text}" if text else "")


def shared_options(classes):
    """The keyword-only options every optimizer class takes, in signature order, with defaults."""
    first = inspect.signature(classes[0]).parameters.values()
    names = [p.name for p in first if p.kind is p.KEYWORD_ONLY]
    for cls in classes[1:]:
        names = [n for n in names if n in inspect.signature(cls).parameters]
    return [(name, inspect.signature(classes[0]).parameters[name].default) for name in names]


def _optimizer_base(classes):
    """The class every optimizer class derives from, whatever module holds it."""
    bases = set.intersection(*(set(cls.__mro__[1:]) for cls in classes)) - {object}
    return min(bases, key=lambda base: classes[0].__mro__.index(base))


def _read_only(cls):
    """Hyperparameters set at construction: assigning one raises (checked on a throwaway optimizer)."""
    import numpy as np

    optimizer = cls(np.zeros(2))
    fixed = []
    for name in inspect.signature(cls).parameters:
        if name == "params" or not hasattr(type(optimizer), name):
            continue
        try:
            setattr(optimizer, name, getattr(optimizer, name))
        except (AttributeError, ValueError):
            fixed.append(name)
    return fixed


def _classes_section(classes, options):
    lines = ["### Optimizer classes", "",
             "Each class takes `params` (one array, or a dict, list or tuple tree of arrays, updated in place) "
             "and its hyperparameters, by position or keyword, with these defaults; every hyperparameter is "
             "also an attribute (`opt.lr = 1e-4` between steps), except those set at construction. "
             "Then come the keyword-only options every class shares (`*, ...`, listed below).", ""]
    option_names = {name for name, _ in options}
    for cls in classes:
        signature = _signature(cls, drop=option_names)
        signature = signature[:-1] + (", ...)" if "*" in signature else ", *, ...)")
        lines.append(f"- `{cls.__name__}{signature}`: {summary(cls)}")
        fixed = _read_only(cls)
        methods = [m.__name__ for m in cls.algorithm.methods] if cls.algorithm.methods else []
        notes = ([f"set at construction: {', '.join(f'`{n}`' for n in fixed)}"] if fixed else []) + \
                ([f"its own methods: {', '.join(f'`{n}()`' for n in methods)}"] if methods else [])
        if notes:
            lines.append(f"  ({'; '.join(notes)})")
    lines += ["", "The options every optimizer class takes, keyword-only, with their defaults:", ""]
    lines += [f"- `{name}={default!r}`: [{OPTION_PAGES[name][:-3]}]({OPTION_PAGES[name]})"
              if name in OPTION_PAGES else f"- `{name}={default!r}`" for name, default in options]
    return lines


def _members_section(base):
    lines = ["", "### What every optimizer has", "",
             f"Methods and attributes of every optimizer object (their common class, "
             f"`{base.__module__}.{base.__qualname__}`, is not a public name itself):", ""]
    for name, value in vars(base).items():
        if name.startswith("_") or not (inspect.isfunction(value) or isinstance(value, property)):
            continue
        if isinstance(value, property):
            lines.append(f"- `opt.{name}`: {summary(value)}")
        else:
            lines.append(_entry(f"opt.{name}", value, drop=("self",)))
    return lines


def _functions_section(numadam, classes):
    steps = [name for name in numadam.__all__ if name.endswith("_step")]
    lines = ["", "### Functional steps", "",
             "One step on arrays you own, updated in place, with the state arrays passed in and the step "
             "number counted by you (from 1):", ""]
    lines += [_entry(name, getattr(numadam, name)) for name in steps]
    declared = {cls.__name__ for cls in classes} | set(steps)
    others = [name for name in numadam.__all__ if name not in declared and name != "schedules"]
    lines += ["", "### Other names", ""]
    lines += [_entry(name, getattr(numadam, name)) for name in others]
    schedules = numadam.schedules
    public = [(name, value) for name, value in vars(schedules).items()
              if not name.startswith("_") and getattr(value, "__module__", None) == schedules.__name__
              and (inspect.isclass(value) or inspect.isfunction(value))]
    lines += ["", f"`numadam.schedules`: {summary(schedules)}", ""]
    lines += [_entry(f"schedules.{name}", value) for name, value in public]
    return lines


def _jit_section():
    import numadam.jit as jit

    lines = ["", "### `numadam.jit`", "", f"{summary(jit)} Import it as `from numadam import jit`; every "
             "function is a Numba function that `@numba.njit` code calls (the rules also run inside "
             "`@cuda.jit` kernels).", ""]
    lines.append(_entry("jit.adam_step", jit.adam_step))
    families = {}
    for name in jit.__all__:
        if name != "adam_step":  # (torch's signature, above; the family's own step is not offered by name)
            families.setdefault(name.rsplit("_", 1)[0], []).append(name)
    lines += ["", "For every family: `<family>_step(param, grad, *state, step, *hyperparameters)` steps 1-D "
              "arrays in place; `<family>_scalars(step, *hyperparameters)` gives the step's float64 scalars; "
              "`<family>_flags(*hyperparameters)` the rule's switches; `<family>_rule(param, grad, state, "
              "scalars, flags)` updates one element.", ""]
    for family, names in families.items():
        shown = [f"`jit.{name}{_signature(getattr(jit, name))}`" if name.endswith("_step") else f"`jit.{name}`"
                 for name in names]
        lines.append(f"- {', '.join(shown)}")
    return lines


def page_list():
    """The Markdown between the markers, from the package as it is imported now."""
    import numadam

    classes = list(numadam.families().values())
    options = shared_options(classes)
    version = getattr(numadam, "__version__", None)
    lines = [BEGIN, "", "## Every public name", "",
             "Every name here is importable from the top-level package (`numadam.Adam`); the "
             "functions of `numadam.jit` are its attributes once imported (`from numadam import jit`).", ""]
    if version is not None:
        lines.append("- `numadam.__version__`: the version of the package, a string.")
    else:
        lines.append('- `numadam.__version__` is not defined; `importlib.metadata.version("numadam")` '
                     "gives the installed version.")
    lines.append("")
    lines += _classes_section(classes, options)
    lines += _members_section(_optimizer_base(classes))
    lines += _functions_section(numadam, classes)
    lines += _jit_section()
    return "\n".join(lines + ["", END])


def page_text(current):
    """``current`` (the text of docs/api.md) with its list written anew."""
    start, stop = current.index(BEGIN), current.index(END) + len(END)
    return current[:start] + page_list() + current[stop:]


if __name__ == "__main__":
    PAGE.write_text(page_text(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the list of {PAGE}", file=sys.stderr)
