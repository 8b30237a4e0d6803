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

html_theme = "furo"
html_title = f"numadam {release}"
