"""What the README and the quickstart state about numadam stays true and traceable.

- Every speed figure of the README names its CPU (or GPU), its date and its raw record in
  docs/bench/, and every record the pages name exists.
- The quickstart names every hyperparameter that is set at construction (found by trying to set
  each one), and the README's and quickstart's dtype lists name 16-bit parameters.
- The README's summary of the one-``lr`` bowl agrees with the quickstart's doctest, which runs it.
- ``numadam --help`` and the package's description name more than Adam.
"""

import ast
import inspect
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

import numadam

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
QUICKSTART = ROOT / "docs" / "quickstart.md"
BENCH = ROOT / "docs" / "bench"

FENCED = re.compile(r"^([ \t]*)(`{3,})[^\n]*\n.*?^\1\2[ \t]*$", re.MULTILINE | re.DOTALL)
# A time (a number or a range, then its unit), a bandwidth, or "N× faster/slower".
SPEED_FIGURE = re.compile(r"\d(?:[\d.]*)(?:-[\d.]+)?\s?(?:ns|µs|us|ms|s|GB/s)\b|\d[\d.]*\s?[x×] (?:faster|slower)")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
MACHINE = re.compile(r"\b(?:EPYC|Zen \d|Xeon|H100|H200|A100|GPU model)\b")
RECORD = re.compile(r"(?:docs/)?(?:bench/)?([\w.-]+\.(?:txt|png))")


def prose(page):
    """``page``'s text without its fenced code blocks."""
    return FENCED.sub("", page.read_text(encoding="utf-8"))


def passages(text):
    """Each paragraph, list item and table of ``text``, with the paragraph that leads into it (for a
    list item or a table: the paragraph before its list or table)."""
    chunks = [chunk.strip() for chunk in re.split(r"\n\s*\n", text) if chunk.strip()]
    lead = ""
    for chunk in chunks:
        if chunk.startswith("|"):
            yield chunk, lead
        elif chunk.startswith("- "):
            for item in re.split(r"\n(?=- )", chunk):
                yield item, lead
        else:
            yield chunk, ""
            lead = chunk


def test_every_speed_figure_of_the_readme_names_its_machine_date_and_record():
    problems = []
    for passage, lead in passages(prose(README)):
        figures = SPEED_FIGURE.findall(passage)
        if not figures or passage.startswith("#"):
            continue
        context = passage + "\n" + lead
        records = [name for name in RECORD.findall(context) if (BENCH / name).exists()]
        missing = [what for what, found in (("a CPU or GPU", MACHINE.search(context)), ("a date", DATE.search(context)),
                                            ("a record in docs/bench/", records)) if not found]
        if missing:
            problems.append(f"{figures[0]!r} in {passage[:70]!r}... lacks {', '.join(missing)}")
    assert not problems, "\n".join(problems)


def test_every_record_the_pages_name_exists():
    pages = [README] + sorted((ROOT / "docs").rglob("*.md"))
    named = {(page.name, match) for page in pages
             for match in re.findall(r"(?:docs/)?bench/([\w.-]+\.(?:txt|png))", page.read_text(encoding="utf-8"))}
    missing = sorted(f"{page}: docs/bench/{name}" for page, name in named if not (BENCH / name).exists())
    assert not missing, missing


def _set_at_construction():
    """``{class name: [hyperparameters that refuse a new value]}``, found by setting each to its own value."""
    fixed = {}
    for cls in numadam.families().values():
        optimizer = cls(np.zeros(2))
        for name, parameter in inspect.signature(cls).parameters.items():
            if name == "params" or parameter.kind is not parameter.POSITIONAL_OR_KEYWORD:
                continue
            try:
                setattr(optimizer, name, getattr(optimizer, name))
            except AttributeError:
                fixed.setdefault(cls.__name__, []).append(name)
    return fixed


def test_the_quickstart_names_every_hyperparameter_set_at_construction():
    text = QUICKSTART.read_text(encoding="utf-8")
    sentence = text[text.index("Every hyperparameter can change between steps"):]
    sentence = sentence[:sentence.index("\n\n")]
    fixed = _set_at_construction()
    assert fixed, "no hyperparameter refused a new value: the check itself is broken"
    unnamed = sorted({f"{cls}.{name}" for cls, names in fixed.items() for name in names if f"`{name}`" not in sentence})
    assert not unnamed, f"docs/quickstart.md does not say these are set at construction: {unnamed}"


@pytest.mark.parametrize("page", [README, QUICKSTART], ids=lambda page: page.name)
def test_the_dtype_lists_name_16_bit_parameters_and_their_float32_state(page):
    lists = [passage for passage, _ in passages(prose(page)) if "complex64" in passage and "complex128" in passage]
    assert lists, f"{page.name} lists no dtypes"
    for passage in lists:
        assert "float16" in passage and "bfloat16" in passage and "float32" in passage, passage


def test_the_readmes_bowl_summary_is_what_the_quickstarts_doctest_shows():
    readme = prose(README)
    claim = re.search(r"(\d+) of the (\d+) methods converge.*?;\s*(.*?)\s+stop at\s+`maxiter`", readme, re.DOTALL)
    assert claim, "the README's choosing section no longer summarizes the bowl"
    converged, total, stopped = int(claim[1]), int(claim[2]), claim[3]
    assert total == len(numadam.families())
    shown = QUICKSTART.read_text(encoding="utf-8")
    count = re.search(r">>> sum\(res\.success for res in results\.values\(\)\)\n(\d+)\n", shown)
    names = re.search(r">>> sorted\(name for name, res in results\.items\(\).*\n(\[.*\])\n", shown)
    assert count and names, "the quickstart's bowl doctest changed shape"
    assert converged == int(count[1]) and converged + len(ast.literal_eval(names[1])) == total
    assert sorted(re.findall(r"[A-Za-z]+", stopped.replace(" and ", " "))) == sorted(
        numadam.families()[name].__name__ for name in ast.literal_eval(names[1]))


def test_the_description_names_more_than_adam(capsys):
    from numadam.cli import main

    description = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"]
    with pytest.raises(SystemExit):
        main(["--help"])
    for text in (description, capsys.readouterr().out):
        assert all(name in text for name in ("Adam", "SGD", "Adagrad", "RMSprop")), text
