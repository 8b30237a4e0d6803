"""Sphinx configuration: MyST markdown pages, furo theme, autodoc of numpydoc docstrings.

Build offline with ``python -m sphinx -W -b html docs docs/_build/html`` from the
repository root; ``tests/test_docs.py`` does the same in a temporary folder.
"""

import importlib.metadata
import sys
from pathlib import Path

# Document the checkout this file belongs to, not some other installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numadam  # noqa: E402

project = "numadam"
author = "numadam developers"
copyright = "numadam developers"
release = getattr(numadam, "__version__", None) or importlib.metadata.version("numadam")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]

myst_enable_extensions = ["dollarmath", "amsmath"]

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_param = False
autodoc_member_order = "bysource"



def _write_registry_pages():
    """The parts of the docs that list every algorithm, written from :func:`numadam.families` before
    each build (``docs/_generated``, not committed): the API entries of the classes and functional
    steps, and the table of families in :doc:`algorithm`. A new algorithm appears in them by itself."""
    generated = Path(__file__).resolve().parent / "_generated"
    generated.mkdir(exist_ok=True)
    classes, steps, rows = [], [], []
    for name, cls in numadam.families().items():
        algorithm = cls.algorithm
        members = "\n   :members: " + ", ".join(m.__name__ for m in algorithm.methods) if algorithm.methods else ""
        classes.append(f".. autoclass:: numadam.{cls.__name__}{members}\n")
        if name == algorithm.name:
            steps.append(f".. autofunction:: numadam.{name}_step\n")
            conventions = algorithm.hyperparameter("convention").options if "convention" in algorithm.names else ()
            variants = "".join(f", {variant.title}" for variant in algorithm.variants)
            rows.append(f"| {{doc}}`{cls.__name__}{variants} <families/{name}>` "
                        f"| {', '.join(f'`{c!r}`' for c in conventions) or '(one)'} "
                        f"| {', '.join(f'`{kind.name}`' for kind in algorithm.state)} "
                        f"| {algorithm.references[0] if algorithm.references else ''} |")
    (generated / "api_classes.md").write_text("```{eval-rst}\n" + "\n".join(classes) + "```\n")
    (generated / "api_steps.md").write_text("```{eval-rst}\n" + "\n".join(steps) + "```\n")
    (generated / "family_table.md").write_text(
        "| family | `convention=` (the first is the default) | state | paper |\n|---|---|---|---|\n"
        + "\n".join(rows) + "\n")


_write_registry_pages()
exclude_patterns.append("_generated")

html_theme = "furo"
html_title = f"numadam {release}"
