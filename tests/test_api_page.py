"""docs/api.md names every public name, readable as plain Markdown, and stays in step with the package.

Its list is written by ``tools/make_api_page.py`` (as ``numadam/__init__.pyi`` by
``tools/make_stub.py``); the autodoc directives after it render the whole docstrings
in the built site.
"""

import inspect
import re
from pathlib import Path

import numadam
from repo_scripts import script

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "api.md"
# What the issue that asked for the page lists of every optimizer object.
OPTIMIZER_MEMBERS = ("step", "state_dict", "load_state_dict", "save", "load", "zero_grad", "ema_params", "params",
                     "step_count", "skipped_steps", "groups")


def _make_api_page():
    return script("tools/make_api_page.py")


def _the_list():
    tool = _make_api_page()
    text = PAGE.read_text(encoding="utf-8")
    return text[text.index(tool.BEGIN):text.index(tool.END)]


def test_the_list_is_what_tools_make_api_page_writes_from_the_package():
    tool = _make_api_page()
    text = PAGE.read_text(encoding="utf-8")
    assert text == tool.page_text(text), "docs/api.md's list is out of date: run python tools/make_api_page.py"


def test_the_list_names_every_public_name_and_every_jit_function():
    from numadam import jit

    listed = set(re.findall(r"`(?:jit\.|schedules\.|opt\.)?(\w+)\(", _the_list())) | set(
        re.findall(r"`(?:jit\.)?(\w+)`", _the_list()))
    missing = [name for name in numadam.__all__ if name not in listed and name != "schedules"]
    assert not missing, f"public names missing from docs/api.md's list: {missing}"
    assert "`numadam.schedules`" in _the_list()
    missing = [name for name in jit.__all__ if name not in listed]
    assert not missing, f"numadam.jit functions missing from docs/api.md's list: {missing}"
    assert "numadam.__version__" in _the_list()


def test_the_list_gives_every_optimizer_member_and_every_constructor_option():
    text = _the_list()
    for member in OPTIMIZER_MEMBERS:
        assert f"`opt.{member}" in text, member
    for cls in numadam.families().values():
        for name, parameter in inspect.signature(cls).parameters.items():
            shown = name if parameter.default is parameter.empty else f"{name}={parameter.default!r}"
            assert shown in text, f"{cls.__name__}'s option {shown} is not in docs/api.md"


def test_the_built_site_renders_the_docstrings_of_every_optimizer_member():
    text = PAGE.read_text(encoding="utf-8")
    assert ".. autoclass:: numadam.optimizers.Optimizer\n   :members:" in text
    assert ".. automodule:: numadam.jit" in text
