"""The package's layers: every import goes down, and no modules import each other in a circle.

The import graph is read from the sources (every ``import`` statement, those
inside functions too), not from what a run happens to import. The layer order
is stated here and in docs/architecture.md ("The layers"), which this test
also checks against it.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "numadam"

#: The layers, lowest first, each with the modules (and packages) it holds. A module may import
#: its own layer's modules and the layers below; nothing above.
LAYERS = (
    ("core", ("numadam.core",)),
    ("families", ("numadam.families",)),
    ("targets", ("numadam.targets",)),
    ("adapters", ("numadam.adapters",)),
    ("engine", ("numadam.engine",)),
    ("front", ("numadam.optimizers", "numadam.functional", "numadam.state_files", "numadam.schedules",
               "numadam.clipping", "numadam.plotting")),
    ("matrix", ("numadam.muon",)),
    ("registry", ("numadam.registry",)),
    ("solver", ("numadam.jit", "numadam.solver")),
    ("package", ("numadam",)),  # numadam/__init__.py: the public names
    ("tools", ("numadam.bench", "numadam.demo", "numadam.cli", "numadam.__main__")),  # users of the public names
)


def modules():
    """``{module name: (path, is a package)}`` of every module of numadam."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def imported(name, package, node, known):
    """The modules of numadam that the import statement ``node`` of module ``name`` names."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        here = name.split(".") if package else name.split(".")[:-1]
        base = ".".join(here[:len(here) - node.level + 1] + [node.module or ""]).strip(".") if node.level \
            else node.module or ""
        # ``from package import name``: the submodule where ``name`` is one, else the package
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = set()
    for target in targets:
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in known and target != name:
            found.add(target)
    return found


def import_graph():
    """``{module: the modules of numadam it imports}``, at any depth of its code."""
    known = modules()
    return {name: set().union(*[imported(name, package, node, known) for node in ast.walk(ast.parse(path.read_text()))
                                if isinstance(node, (ast.Import, ast.ImportFrom))])
            for name, (path, package) in known.items()}


def layer_of(module):
    """The index in :data:`LAYERS` of ``module``'s layer: the longest name that holds it."""
    best, length = None, -1
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            holds = module == member or (member != "numadam" and module.startswith(member + "."))
            if holds and len(member) > length:
                best, length = index, len(member)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and to docs/architecture.md"
    return best


def cycles(graph):
    """The strongly connected components of ``graph`` with more than one module (Tarjan's algorithm,
    iterative)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_modules_import_each_other_in_a_circle():
    assert cycles(import_graph()) == []


def test_every_import_goes_down_the_layers():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for module, targets in sorted(import_graph().items()) for target in sorted(targets)
              if layer_of(target) > layer_of(module)]
    assert upward == []


def test_the_graph_reader_sees_imports_inside_functions_and_relative_ones():
    """The reader must be able to fail: the known edges of today's package are found."""
    graph = import_graph()
    assert "numadam.core.algorithm" in graph["numadam.core.pipeline"]            # inside a function
    assert "numadam.solver.compiled" in graph["numadam.solver.minimize"]         # ``from . import compiled``
    assert "numadam.targets.spec" in graph["numadam.targets.body"]               # ``from .spec import ...``
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_layers_are_those_docs_architecture_states():
    """docs/architecture.md's table of layers lists them in this order (top first) with these modules."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text[text.index("## The layers"):]
    rows = re.findall(r"^\| (\w+) \| ([^|]+) \|", table, re.MULTILINE)
    stated = [(layer, tuple(sorted(re.findall(r"`numadam/([\w/]+?)(?:\.py|/)?`", modules_text))))
              for layer, modules_text in rows if layer != "layer"]
    wanted = [(layer, tuple(sorted(member.removeprefix("numadam").lstrip(".").replace(".", "/") or "__init__"
                                   for member in members)))
              for layer, members in reversed(LAYERS)]
    assert stated == wanted
