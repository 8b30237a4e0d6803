"""The documentation builds with warnings as errors, and its API page documents every public name.

Its examples run in tests/test_docs_examples.py. The Sphinx build runs in a subprocess into a
temporary folder and needs the ``docs`` extra (sphinx, myst-parser, furo); it is skipped without them.
"""

import subprocess
import sys
from pathlib import Path

import pytest

import numadam

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    for module in ("sphinx", "myst_parser", "furo"):
        pytest.importorskip(module, reason=f"building the docs needs {module} (pip install '.[docs]')")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    api = (tmp_path / "html" / "api.html").read_text(encoding="utf-8")
    undocumented = [name for name in numadam.__all__
                    if f'id="numadam.{name}"' not in api and f'id="module-numadam.{name}"' not in api]
    assert not undocumented, f"public names missing from docs/api.md: {undocumented}"
    algorithm = (tmp_path / "html" / "algorithm.html").read_text(encoding="utf-8")
    for reference in ("Kingma", "Loshchilov", "Reddi"):
        assert reference in algorithm
