"""The documentation cannot rot: its examples run, and it builds with warnings as errors.

Every page in ``docs/``, and the README, is read top to bottom in one namespace, as a reader
would run it:

- a ```` ```python ```` block runs as a script (it checks itself with ``assert``);
- a ```` ```pycon ```` block is a doctest: its printed output must match;
- a ```` ```{code-block} python ```` with ``:class: requires-cuda`` runs only where
  ``cupy.cuda.is_available()``, one with ``:class: requires-torch`` (or another
  optional library: ``requires-<module>``) only where that module imports;
  other fences (``shell``, ``text``) are not code.

The Sphinx build runs in a subprocess into a temporary folder and needs the
``docs`` extra (sphinx, myst-parser, furo); it is skipped without them.
"""

import doctest
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import numadam

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(page for page in DOCS.rglob("*.md") if "_build" not in page.parts) + [ROOT / "README.md"]

# A fenced block: the opening fence, its info string, the body, and the same fence closing it.
FENCE = re.compile(r"^(?P<fence>`{3,})(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.MULTILINE | re.DOTALL)
DIRECTIVE_OPTION = re.compile(r"^:(?P<name>[\w-]+):[ \t]*(?P<value>.*)$")


def code_blocks(page):
    """``(kind, first_line, source)`` for every runnable block of ``page``, in order.

    ``kind`` is ``"script"``, ``"doctest"``, ``"cuda-script"`` or ``"<module>-script"``.
    """
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        body = match["body"]
        first_line = text.count("\n", 0, match.start("body")) + 1
        if info == "python":
            blocks.append(("script", first_line, body))
        elif info == "pycon":
            blocks.append(("doctest", first_line, body))
        elif info == "{code-block} python":
            options, source = _directive_options(body)
            requirement = options.get("class", "")
            if not requirement.startswith("requires-"):
                raise ValueError(f"{page.name}:{first_line}: a code-block that is not python or pycon "
                                 f"must be marked ':class: requires-cuda' (or requires-<module>); got options {options}")
            kind = requirement[len("requires-"):] + "-script"
            blocks.append((kind, first_line + body.count("\n") - source.count("\n"), source))
    return blocks


def _directive_options(body):
    """Split a MyST directive body into its leading ``:name: value`` options and the content."""
    lines = body.splitlines(keepends=True)
    options = {}
    while lines and (option := DIRECTIVE_OPTION.match(lines[0].strip())):
        options[option["name"]] = option["value"].strip()
        lines.pop(0)
    return options, "".join(lines).lstrip("\n")


def cuda_available():
    try:
        import cupy
    except ImportError:
        return False
    return bool(cupy.cuda.is_available())


def run_doctest(source, namespace, name, page, first_line):
    """Run one ``pycon`` block in ``namespace``; return the failure report ('' when it passed).

    doctest runs in a copy of ``namespace``; the names the block defines are copied back.
    """
    test = doctest.DocTestParser().get_doctest(source, namespace, name, str(page), first_line - 1)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)
    return "".join(report)


def test_the_harness_finds_the_examples():
    kinds = {page.name: [kind for kind, _, _ in code_blocks(page)] for page in PAGES}
    assert {"index.md", "quickstart.md", "minimize.md", "schedules.md", "clipping.md", "algorithm.md", "api.md",
            "README.md"} <= set(kinds)
    assert kinds["README.md"].count("script") >= 2
    assert "script" in kinds["quickstart.md"] and "doctest" in kinds["quickstart.md"]
    assert "cuda-script" in kinds["quickstart.md"]
    assert "doctest" in kinds["algorithm.md"]
    for guide in ("minimize.md", "schedules.md", "clipping.md"):
        assert "script" in kinds[guide] and "doctest" in kinds[guide]
    assert "cuda-script" in kinds["minimize.md"]


@pytest.mark.slow
@pytest.mark.parametrize("page", [page for page in PAGES if code_blocks(page)], ids=lambda page: page.name)
def test_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may save files
    namespace = {"__name__": f"docs.{page.stem}"}
    for kind, first_line, source in code_blocks(page):
        where = f"{page.relative_to(ROOT)}:{first_line}"
        if kind == "cuda-script" and not cuda_available():
            continue
        if kind.endswith("-script") and kind != "cuda-script" and importlib.util.find_spec(kind[:-len("-script")]) \
                is None:
            continue
        if kind == "doctest":
            failures = run_doctest(source, namespace, where, page, first_line)
            assert not failures, failures
        else:
            # Leading newlines make tracebacks point at the right line of the page.
            exec(compile("\n" * (first_line - 1) + source, str(page), "exec"), namespace)


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
