"""numadam/__init__.pyi: the public API as IDEs and type checkers see it, kept in step with the package.

The family classes are built at import, so the stub is their only ``class`` statement.
"""

import ast
import inspect
from pathlib import Path

import numadam
from repo_scripts import script

ROOT = Path(__file__).resolve().parent.parent


def _make_stub():
    return script("tools/make_stub.py")


def test_the_stub_is_what_tools_make_stub_writes_from_the_package():
    assert (ROOT / "numadam" / "__init__.pyi").read_text() == _make_stub().stub_source(), (
        "numadam/__init__.pyi is out of date: run python tools/make_stub.py")


def test_the_stub_declares_every_public_name_and_each_class_s_real_signature():
    tree = ast.parse((ROOT / "numadam" / "__init__.pyi").read_text())
    declared = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            declared[node.name] = node
        elif isinstance(node, ast.ImportFrom):
            declared.update({alias.asname or alias.name: node for alias in node.names})
    assert set(numadam.__all__) | {"jit"} <= set(declared)
    for cls in numadam.families().values():
        init = next(n for n in declared[cls.__name__].body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
        names = [a.arg for a in init.args.args[1:] + init.args.kwonlyargs]
        assert names == list(inspect.signature(cls).parameters), cls.__name__
    step = declared["adam_step"]
    assert [a.arg for a in step.args.args + step.args.kwonlyargs] == list(inspect.signature(numadam.adam_step).parameters)


def test_the_package_ships_the_stub_and_its_marker():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["numadam"]
    assert {"py.typed", "__init__.pyi"} <= set(data)
    assert (ROOT / "numadam" / "py.typed").exists()
