"""Every code example of the README and docs/ runs as a reader would run it, and shows what its page says.

A page is read top to bottom, its blocks run in order in one namespace:

- a ```` ```python ```` block runs as a script (it checks itself with ``assert``);
- a ```` ```pycon ```` block is a doctest (``ELLIPSIS``, ``NORMALIZE_WHITESPACE``): what it prints
  must be what the page shows;
- a ```` ```{code-block} python ```` block with ``:class: requires-<x>`` needs ``x``: ``cuda`` (a
  GPU that CuPy sees) or a module (``requires-torch``, ``requires-dask``, ...);
- blocks indented inside a list item count as well; other fences (``shell``, ``text``) are not code.

Each page is one test of the blocks that need nothing optional: the README's runs in the quick
tier (it is what a newcomer runs first), every other page in the full tier (they compile every
family and run long solves). Each block that needs something optional is a test of its own,
skipped with the reason where that is missing, never passed over in silence; where it is there,
the test runs the page up to that block. And no example escapes: a Python fence of another
spelling, a ``python`` block holding ``>>>`` prompts (their output would go unchecked), a
``pycon`` block without one (it would check nothing) or a fence the parser cannot pair fails in
the quick tier.
"""

import doctest
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(page for page in DOCS.rglob("*.md") if "_build" not in page.parts)
QUICK_PAGES = {"README.md"}
# The optional requirements that start a Dask cluster: their blocks take the `dask` marker too.
CLUSTER_MODULES = {"dask", "distributed"}

# A fenced block, at the start of a line or indented inside a list item: the indent, the fence, its
# info string, the body, and the same fence at the same indent closing it.
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                   re.MULTILINE | re.DOTALL)
DIRECTIVE_OPTION = re.compile(r"^:(?P<name>[\w-]+):[ \t]*(?P<value>.*)$")
# An info string that names Python in any spelling (the ones the harness runs are checked apart).
PYTHONIC = re.compile(r"\b(?:py|py3|python\d?|pycon|ipython\d?|ipython3?-?console)\b", re.IGNORECASE)
RUN_AS = {"python": "script", "pycon": "doctest"}


class Block:
    """One runnable block of a page: ``kind`` is "script" or "doctest"; ``needs`` is ``None`` or
    what it requires ("cuda", or a module's name)."""

    def __init__(self, page, line, kind, source, needs=None):
        self.page, self.line, self.kind, self.source, self.needs = page, line, kind, source, needs

    @property
    def where(self):
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def fences(page):
    """``(info, first_line, body)`` of every fenced block of ``page``, its body dedented."""
    text = page.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        first_line = text.count("\n", 0, match.start("body")) + 1
        yield match["info"].strip(), first_line, textwrap.dedent(match["body"])


def blocks(page):
    """The runnable :class:`Block` s of ``page``, in order."""
    found = []
    for info, line, body in fences(page):
        if info in RUN_AS:
            found.append(Block(page, line, RUN_AS[info], body))
        elif info == "{code-block} python":
            options, source = _directive_options(body)
            requirement = options.get("class", "")
            if not requirement.startswith("requires-"):
                raise ValueError(f"{page.name}:{line}: a code-block of Python must say what it needs, "
                                 f"':class: requires-cuda' or ':class: requires-<module>'; got options {options}")
            found.append(Block(page, line + body.count("\n") - source.count("\n"), "script", source,
                               requirement[len("requires-"):]))
    return found


def _directive_options(body):
    """Split a MyST directive's body into its leading ``:name: value`` options and its content."""
    lines = body.splitlines(keepends=True)
    options = {}
    while lines and (option := DIRECTIVE_OPTION.match(lines[0].strip())):
        options[option["name"]] = option["value"].strip()
        lines.pop(0)
    return options, "".join(lines).lstrip("\n")


def why_missing(needs):
    """Why a block that needs ``needs`` cannot run here, or ``None`` when it can."""
    if needs == "cuda":
        try:
            import cupy
        except ImportError:
            return "cupy is not installed"
        return None if cupy.cuda.is_available() else "no CUDA device: cupy.cuda.is_available() is false"
    import importlib.util

    return None if importlib.util.find_spec(needs) is not None else f"{needs} is not installed"


def run(block, namespace):
    """Run ``block`` in ``namespace`` (a page's), as the reader would; fail with the page's line."""
    if block.kind == "doctest":
        test = doctest.DocTestParser().get_doctest(block.source, namespace, block.where, str(block.page),
                                                   block.line - 1)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        report = []
        runner.run(test, out=report.append, clear_globs=False)
        namespace.update(test.globs)
        assert not report, "".join(report)
    else:
        # Leading newlines make a traceback point at the page's own line.
        exec(compile("\n" * (block.line - 1) + block.source, str(block.page), "exec"), namespace)


def _page_param(page):
    return pytest.param(page, id=page.name if page.parent != DOCS / "families" else f"families/{page.name}",
                        marks=() if page.name in QUICK_PAGES else pytest.mark.slow)


def _gated_param(block):
    marks = [pytest.mark.slow]
    if block.needs == "cuda":
        marks.append(pytest.mark.gpu)
    if block.needs in CLUSTER_MODULES:
        marks.append(pytest.mark.dask)
    return pytest.param(block, id=f"{block.where}:requires-{block.needs}", marks=marks)


PAGES_WITH_CODE = [page for page in PAGES if blocks(page)]
GATED = [block for page in PAGES for block in blocks(page) if block.needs]


@pytest.fixture
def in_a_scratch_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may save files


@pytest.mark.parametrize("page", [_page_param(page) for page in PAGES_WITH_CODE])
def test_a_pages_examples_run_and_print_what_it_shows(page, in_a_scratch_folder):
    namespace = {"__name__": f"docs.{page.stem}"}
    for block in blocks(page):
        if block.needs is None:
            run(block, namespace)


@pytest.mark.parametrize("block", [_gated_param(block) for block in GATED])
def test_an_example_that_needs_more_runs_where_that_is_there(block, in_a_scratch_folder):
    reason = why_missing(block.needs)
    if reason is not None:
        pytest.skip(f"{block.where} needs {block.needs}: {reason}")
    namespace = {"__name__": f"docs.{block.page.stem}"}
    for earlier in blocks(block.page):
        if earlier.line > block.line:
            break
        if earlier.needs is None or why_missing(earlier.needs) is None:
            run(earlier, namespace)


def test_no_example_escapes():
    problems = []
    for page in PAGES:
        for info, line, body in fences(page):
            where = f"{page.relative_to(ROOT)}:{line}"
            if PYTHONIC.search(info) and info not in RUN_AS and info != "{code-block} python":
                problems.append(f"{where}: a Python block fenced as {info!r}, which no test runs: "
                                f"use python, pycon or {{code-block}} python with :class: requires-<x>")
            if info == "python" and re.search(r"^>>> ", body, re.MULTILINE):
                problems.append(f"{where}: a python block with >>> prompts: fence it as pycon, so that "
                                f"its output is checked")
            if info == "pycon" and not re.search(r"^>>> ", body, re.MULTILINE):
                problems.append(f"{where}: a pycon block without a >>> prompt checks nothing")
        fence_lines = len(re.findall(r"^[ \t]*`{3,}", page.read_text(encoding="utf-8"), re.MULTILINE))
        if fence_lines != 2 * len(list(fences(page))):
            problems.append(f"{page.relative_to(ROOT)}: {fence_lines} fence lines but {len(list(fences(page)))} "
                            f"blocks found: a fence the harness cannot pair (an indent that changes?)")
        blocks(page)  # raises for a Python code-block that does not say what it needs
    assert not problems, "\n".join(problems)


def test_the_harness_finds_the_examples():
    kinds = {page.name: [(block.kind, block.needs) for block in blocks(page)] for page in PAGES}
    assert ("script", None) in kinds["README.md"] and ("doctest", None) in kinds["README.md"]
    for guide in ("quickstart.md", "minimize.md", "schedules.md", "clipping.md"):
        assert ("script", None) in kinds[guide] and ("doctest", None) in kinds[guide], guide
    assert ("script", "cuda") in kinds["quickstart.md"] and ("script", "torch") in kinds["frameworks.md"]
    python_blocks = [line for info, line, body in fences(DOCS / "groups.md") if info == "python"]
    assert len(python_blocks) >= 3  # two of them indented in a list item
