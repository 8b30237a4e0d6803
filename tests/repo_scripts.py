"""The repository's scripts (tools/, asv_benchmarks/), loaded as modules for the tests that check them."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def script(relative_path, name=None):
    """The script at ``relative_path`` (from the repository's root), run as module ``name``
    (default: its file's stem)."""
    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
