"""Nested containers of arrays ("trees"): flatten them to leaves and back.

A tree is a leaf (anything that is not a dict, list or tuple), or a dict, list
or tuple of trees. Leaves are numbered in a fixed order: dicts in insertion
order, lists and tuples by position. Leaves are named by their path, such as
``params['W']`` or ``grads[0]['bias']``, so that errors point at them.

A parameter tree may wrap subtrees in :class:`numadam.Group`; a group is
transparent everywhere else: gradient and state trees have the plain structure,
and paths do not mention it.
"""

from .group import Group

_SEQUENCES = (list, tuple)
_SEQUENCE_OF_KIND = {"list": list, "tuple": tuple}


class TreeDef:
    """The structure of a tree without its leaves.

    ``kind`` is ``"leaf"``, ``"dict"``, ``"list"``, ``"tuple"`` or ``"group"``
    (its one child wrapped in the :class:`~numadam.Group` ``group``); ``keys``
    holds a dict's keys in order; ``children`` the sub-structures.
    """

    __slots__ = ("kind", "keys", "children", "num_leaves", "leaves_only", "group")

    def __init__(self, kind, keys=(), children=(), group=None):
        self.kind = kind
        self.keys = tuple(keys)
        self.children = tuple(children)
        self.group = group
        self.num_leaves = 1 if kind == "leaf" else sum(c.num_leaves for c in children)
        #: A list or tuple whose items are all leaves (checked in one pass).
        self.leaves_only = kind in ("list", "tuple") and all(c.kind == "leaf" for c in self.children)

    def __repr__(self):
        if self.kind == "leaf":
            return "*"
        if self.kind == "group":
            return f"Group({self.children[0]!r})"
        if self.kind == "dict":
            return "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.keys, self.children)) + "}"
        inner = ", ".join(map(repr, self.children))
        return f"[{inner}]" if self.kind == "list" else f"({inner}{',' if len(self.children) == 1 else ''})"

    def paths(self, root):
        """The path of every leaf, in leaf order, e.g. ``["params['W']", "params['b']"]``."""
        if self.kind == "leaf":
            return [root]
        if self.kind == "group":
            return self.children[0].paths(root)
        labels = self.keys if self.kind == "dict" else range(len(self.children))
        return [
            path
            for label, child in zip(labels, self.children)
            for path in child.paths(f"{root}[{label!r}]")
        ]

    def groups(self):
        """The groups of the tree in leaf order, and for each leaf the index of
        its group in that list (``None`` outside any group)."""
        found, of_leaf = [], []
        self._collect_groups(None, found, of_leaf)
        return found, of_leaf

    def _collect_groups(self, current, found, of_leaf):
        if self.kind == "leaf":
            of_leaf.append(current)
            return
        if self.kind == "group":
            if current is not None:
                raise ValueError("numadam.Group cannot hold another Group; give each subtree one Group")
            found.append(self.group)
            current = len(found) - 1
        for child in self.children:
            child._collect_groups(current, found, of_leaf)

    def unflatten(self, leaves, keep_groups=False):
        """Rebuild a tree of this structure from ``leaves`` (in leaf order); its groups
        become plain subtrees unless ``keep_groups``."""
        iterator = iter(leaves)
        tree = self._build(iterator, keep_groups)
        if next(iterator, _END) is not _END:
            raise ValueError(f"too many leaves for a tree of {self.num_leaves}")
        return tree

    def _build(self, iterator, keep_groups):
        if self.kind == "leaf":
            leaf = next(iterator, _END)
            if leaf is _END:
                raise ValueError(f"too few leaves for a tree of {self.num_leaves}")
            return leaf
        items = [child._build(iterator, keep_groups) for child in self.children]
        if self.kind == "group":
            return self.group.with_params(items[0]) if keep_groups else items[0]
        if self.kind == "dict":
            return dict(zip(self.keys, items))
        return items if self.kind == "list" else tuple(items)

    def flatten_like(self, tree, root, exact_sequences=False):
        """The leaves of ``tree``, which must have this structure.

        Dict keys must match exactly; lists and tuples must too with
        ``exact_sequences`` (gradients), else they may stand for each other (state
        read back from a file, which may keep a tuple as a list). Raises
        ``TypeError`` or ``ValueError`` naming the first path that differs and
        the structure expected there.
        """
        leaves = []
        self._collect_like(tree, root, leaves, exact_sequences)
        return leaves

    def _collect_like(self, tree, path, leaves, exact):
        """Append the leaves of ``tree`` to ``leaves``.

        ``path`` is a root name or a ``(parent_path, label)`` pair, spelled out
        by :func:`_spell` only for an error message: this runs on every step.
        """
        kind = self.kind
        if kind == "group":
            self.children[0]._collect_like(tree, path, leaves, exact)
            return
        if kind == "leaf":
            if isinstance(tree, _CONTAINERS):
                raise TypeError(f"{_spell(path)} must be an array like its parameter; got a {type(tree).__name__}")
            leaves.append(tree)
            return
        if kind == "dict":
            if not isinstance(tree, dict):
                raise TypeError(f"{_spell(path)} must be a dict like the parameters' {self!r}; "
                                f"got a {type(tree).__name__}")
            if len(tree) != len(self.keys) or any(k not in tree for k in self.keys):
                missing = [k for k in self.keys if k not in tree]
                extra = [k for k in tree if k not in set(self.keys)]
                raise ValueError(
                    f"{_spell(path)} must have the parameters' keys {list(self.keys)}; "
                    f"missing {missing}, unexpected {extra}"
                )
            for key, child in zip(self.keys, self.children):
                child._collect_like(tree[key], (path, key), leaves, exact)
            return
        if not isinstance(tree, _SEQUENCES) or (exact and not isinstance(tree, _SEQUENCE_OF_KIND[kind])):
            expected = kind if exact else "list or tuple"
            raise TypeError(f"{_spell(path)} must be a {expected} like the parameters' {self!r}; "
                            f"got a {type(tree).__name__}")
        if len(tree) != len(self.children):
            raise ValueError(
                f"{_spell(path)} must have {len(self.children)} items like the parameters' {self!r}; got {len(tree)}"
            )
        if self.leaves_only:
            if not _CONTAINER_TYPES.isdisjoint(map(type, tree)):
                index = next(i for i, item in enumerate(tree) if isinstance(item, _CONTAINERS))
                raise TypeError(
                    f"{_spell((path, index))} must be an array like its parameter; got a {type(tree[index]).__name__}"
                )
            leaves.extend(tree)
            return
        for index, (item, child) in enumerate(zip(tree, self.children)):
            child._collect_like(item, (path, index), leaves, exact)


_END = object()
_CONTAINERS = (dict, list, tuple, Group)
_CONTAINER_TYPES = frozenset(_CONTAINERS)  # exact types, for a one-pass check of many leaves


def _spell(path):
    """``"grads['W'][0]"`` from ``(("grads", "W"), 0)``."""
    labels = []
    while isinstance(path, tuple):
        path, label = path
        labels.append(f"[{label!r}]")
    return path + "".join(reversed(labels))


def flatten(tree):
    """``(leaves, treedef)`` of ``tree``."""
    leaves = []
    treedef = _flatten_into(tree, leaves)
    return leaves, treedef


def _flatten_into(tree, leaves):
    if isinstance(tree, Group):
        return TreeDef("group", (), [_flatten_into(tree.params, leaves)], group=tree)
    if isinstance(tree, dict):
        return TreeDef("dict", tree.keys(), [_flatten_into(v, leaves) for v in tree.values()])
    if isinstance(tree, _SEQUENCES):
        kind = "list" if isinstance(tree, list) else "tuple"
        return TreeDef(kind, (), [_flatten_into(v, leaves) for v in tree])
    leaves.append(tree)
    return TreeDef("leaf")
