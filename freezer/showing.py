"""What an expression does with the widgets and data it names, beyond reading them.

Rule 4b of DESIGN §1: showing a widget is not reading it, and neither is building a container
from widget lists (`VBox(opts + [b])`, `HBox([*opts, b])`, `VBox(list(opts))`) or laying a
widget out (`m.children[-1].layout.height = ...`). Data handed to a widget constructor, on the
other hand, may be changed by the widget. The helpers here answer those questions about one
expression; :mod:`freezer.analysis` applies them.
"""

from __future__ import annotations

import ast

from freezer.syntax import literal_names

ARRANGING_ATTRIBUTES = frozenset({"layout", "style", "add_class", "remove_class"})
"""Widget attributes that arrange a widget on the page; accessing them reads no state (nor
does `.children`, unless the chain goes on to a child's state)."""
COPYING_BUILTINS = frozenset({"list", "tuple", "sorted", "reversed"})
"""Builtins that give a collection of the same widgets: `VBox(list(opts))` holds `opts`."""


def held_names(node: ast.expr) -> list[str]:
    """Names whose widgets a container built from `node` holds: `[a, *bs]`, `bs + [c]`,
    `list(bs)`, nested; like :func:`freezer.syntax.literal_names`, plus concatenation."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return held_names(node.left) + held_names(node.right)
    inner = copied_collection(node)
    if inner is not None:
        return held_names(inner)
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [n for e in node.elts for n in held_names(e)]
    if isinstance(node, ast.Starred):
        return held_names(node.value)
    return literal_names(node)


def copied_collection(node: ast.expr) -> ast.expr | None:
    """`x` of `list(x)`, `tuple(x)`, `sorted(x)`, `reversed(x)`; None for anything else."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in COPYING_BUILTINS and len(node.args) == 1 and not node.keywords:
        return node.args[0]
    return None


def access_chain(node: ast.Attribute | ast.Subscript) -> tuple[ast.Name | None, list[str],
                                                              list[ast.expr]]:
    """`a.b[k].c` -> (the name `a`, ["b", "c"] innermost first, the subscripts [k])."""
    attributes: list[str] = []
    slices: list[ast.expr] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute | ast.Subscript):
        if isinstance(current, ast.Attribute):
            attributes.append(current.attr)
        else:
            slices.append(current.slice)
        current = current.value
    root = current if isinstance(current, ast.Name) else None
    return root, attributes[::-1], slices[::-1]


def lays_out(attributes: list[str]) -> bool:
    """Whether an access chain on a widget only arranges it: `.layout...`, `.style...`,
    `.children[k]`, `.children[k].layout...` (but `.children[k].value` reads a child)."""
    depth = 0
    while depth < len(attributes) and attributes[depth] == "children":
        depth += 1
    if depth == len(attributes):
        return depth > 0
    return attributes[depth] in ARRANGING_ATTRIBUTES


def children_of(node: ast.expr) -> str | None:
    """`w` of `w.children`, `w.children[k]`, `w.children[k].children`: widgets held by `w`."""
    if not isinstance(node, ast.Attribute | ast.Subscript):
        return None
    root, attributes, _ = access_chain(node)
    if root is None or not attributes or any(a != "children" for a in attributes):
        return None
    return root.id


def is_immutable_literal(node: ast.expr) -> bool:
    """A value no widget can change: numbers, strings, None, tuples of them, f-strings."""
    if isinstance(node, ast.Constant | ast.JoinedStr):
        return True
    if isinstance(node, ast.UnaryOp):
        return is_immutable_literal(node.operand)
    if isinstance(node, ast.Tuple):
        return all(is_immutable_literal(e) for e in node.elts)
    return False
