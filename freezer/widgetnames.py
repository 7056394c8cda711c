"""Recognising widgets: which names refer to ipywidgets, and which calls construct widgets.

Rule 1 of DESIGN §1 lives here: an ipywidgets class, a notebook class derived from one, a
notebook function that returns a widget it builds, or an imported library class that
:mod:`freezer.libwidgets` resolved to a widget class (anywidget's `AnyWidget` among them: a
custom widget, see :func:`custom_widget`). :func:`library_candidates` lists the imported names
worth resolving (rule 5b).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable

from freezer import libwidgets
from freezer.facts import Scope, WidgetKind, WidgetValue
from freezer.showing import children_of, held_names
from freezer.syntax import BUILTIN_NAMES, ParsedCell, dotted, evaluated_calls

CALLBACK_FUNCTIONS = frozenset({"interact", "interact_manual", "interactive", "interactive_output"})
SHOWING_FUNCTIONS = frozenset({"interact", "interact_manual"})


def ipywidget_value(name: str) -> WidgetValue:
    """What constructing the ipywidgets class `name` makes."""
    return WidgetValue("widget", name in libwidgets.INPUT_CLASSES, button=name == "Button")


def record_import(scope: Scope, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Note in `scope` what an import brings in; returns the local names it binds, in order."""
    bound: list[str] = []
    for alias in node.names:
        if isinstance(node, ast.Import):
            local = alias.asname or alias.name.split(".")[0]
            target = alias.name if alias.asname else alias.name.split(".")[0]
            if target in libwidgets.WIDGET_MODULES:
                scope.widget_modules.add(local)
            else:
                scope.modules[local] = target
            bound.append(local)
            continue
        module = node.module or ""
        if node.level:
            module = "." * node.level + module
        if alias.name == "*":
            if module in libwidgets.WIDGET_MODULES:
                for name in libwidgets.WIDGET_CLASSES:
                    scope.widget_classes[name] = ipywidget_value(name)
                for name in libwidgets.WIDGET_FUNCTIONS:
                    scope.widget_functions[name] = name
            elif not module.startswith("ipywidgets") and module not in scope.star_modules:
                scope.star_modules.append(module)
            continue
        local = alias.asname or alias.name
        if module.startswith("ipywidgets"):
            if f"{module}.{alias.name}" in libwidgets.WIDGET_MODULES:
                scope.widget_modules.add(local)
            elif alias.name in libwidgets.WIDGET_CLASSES:
                scope.widget_classes[local] = ipywidget_value(alias.name)
            elif alias.name in libwidgets.WIDGET_FUNCTIONS:
                scope.widget_functions[local] = alias.name
        else:
            scope.from_imports[local] = (module, alias.name)
        bound.append(local)
    return bound


def callee_widget(scope: Scope, func: ast.expr) -> WidgetValue | None:
    """The widget a call of `func` constructs, if it is a widget class or factory."""
    parts = dotted(func)
    if parts is None:
        return None
    head, rest = parts[0], parts[1:]
    if not rest:
        if head in scope.widget_classes:
            return scope.widget_classes[head]
        function = scope.functions.get(head)
        if function is not None and function.returns_widget:
            return WidgetValue("widget", True)
        if head in scope.from_imports:
            module, attr = scope.from_imports[head]
            if (module, attr) in scope.library_widgets:
                return WidgetValue("library", True)
        elif any((m, head) in scope.library_widgets for m in scope.star_modules):
            return WidgetValue("library", True)
        return None
    if head in scope.widget_modules:
        if rest[-1] in libwidgets.WIDGET_CLASSES and rest[:-1] in ([], ["widgets"]):
            return ipywidget_value(rest[-1])
        return None
    if head in scope.modules:
        module, qualname = scope.modules[head], ".".join(rest)
    elif head in scope.from_imports:
        module, attr = scope.from_imports[head]
        qualname = ".".join([attr, *rest])
    else:
        return None
    if (module, qualname) in scope.library_widgets:
        return WidgetValue("library", True)
    return None


def custom_widget(scope: Scope, func: ast.expr) -> tuple[str, bool] | None:
    """(its name, whether it has a `disabled` trait) when `func` names a custom widget class
    (an anywidget `AnyWidget` subclass, the notebook's or a library's); else None."""
    parts = dotted(func)
    if parts is None:
        return None
    head, rest = parts[0], parts[1:]
    name: tuple[str, str] | None = None
    if not rest and head in scope.custom_classes:
        return head, scope.custom_classes[head]
    if head in scope.modules and rest:
        name = scope.modules[head], ".".join(rest)
    elif head in scope.from_imports:
        module, attr = scope.from_imports[head]
        name = module, ".".join([attr, *rest])
    elif not rest:
        name = next(((m, head) for m in scope.star_modules if (m, head) in scope.library_custom),
                    None)
    if name is None or name not in scope.library_custom:
        return None
    return ".".join(name), scope.library_custom[name]


def defines(node: ast.ClassDef, name: str) -> bool:
    """Whether the body of class `node` binds `name` (`disabled = Bool().tag(sync=True)`)."""
    for stmt in node.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else \
            [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False


def widget_function(scope: Scope, func: ast.expr) -> str | None:
    """The ipywidgets function (`interact`, ...) that `func` names, if any."""
    parts = dotted(func)
    if parts is None:
        return None
    if len(parts) == 1:
        return scope.widget_functions.get(parts[0])
    if parts[0] in scope.widget_modules and parts[1:-1] in ([], ["widgets"]) \
            and parts[-1] in libwidgets.WIDGET_FUNCTIONS:
        return parts[-1]
    return None


def widget_value(scope: Scope, node: ast.expr | None,
                 canon: Callable[[str], str]) -> WidgetValue | None:
    """Whether evaluating `node` makes widgets (rule 1), and of which kind.

    `canon` maps a loop variable to the widget collection it walks.
    """
    if node is None:
        return None
    if isinstance(node, ast.Name):
        return scope.widgets.get(canon(node.id))
    if isinstance(node, ast.Starred):
        return widget_value(scope, node.value, canon)
    holder = children_of(node)
    if holder is not None:  # `ui.children[-1]`: one of the widgets `ui` holds
        return scope.widgets.get(canon(holder))
    found: list[WidgetValue] = []
    for call in evaluated_calls(node):
        widget = callee_widget(scope, call.func)
        if widget is None and widget_function(scope, call.func) in ("interact",
                                                                      "interact_manual"):
            widget = WidgetValue("widget", True)  # a named interact result (rule 5)
        if widget is not None:
            found.append(widget)
    # Widget names held by a literal, a concatenation or a copy: `[a, *bs]`, `bs + [c]`,
    # `list(bs)` (the calls inside were counted above, each once).
    found.extend(w for name in held_names(node) for w in [scope.widgets.get(canon(name))]
                 if w is not None)
    if not found:
        return None
    kind: WidgetKind = "library" if any(w.kind == "library" for w in found) else "widget"
    made = callee_widget(scope, node.func) if isinstance(node, ast.Call) else None
    return WidgetValue(kind, any(w.input for w in found), button=made is not None and made.button)


def library_candidates(
    cells: Iterable[tuple[int, ParsedCell]],
) -> tuple[set[tuple[str, str]], dict[str, tuple[int, int]]]:
    """Names from other packages that the notebook calls or subclasses (rule 5b).

    Returns the (module, qualname) candidates worth resolving, and where each module is first
    imported (cell, line) for diagnostics.
    """
    modules: dict[str, str] = {}
    from_imports: dict[str, tuple[str, str]] = {}
    where: dict[str, tuple[int, int]] = {}
    callees: list[list[str]] = []
    stars: set[str] = set()  # `from lib import *`: any bare name called may come from lib
    for index, parsed in cells:
        if parsed.tree is None:
            continue
        for node in ast.walk(parsed.tree):
            if isinstance(node, ast.Call):
                parts = dotted(node.func)
                if parts is not None:
                    callees.append(parts)
            elif isinstance(node, ast.ClassDef):
                callees.extend(p for p in map(dotted, node.bases) if p is not None)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name if alias.asname else alias.name.split(".")[0]
                    modules[alias.asname or target] = target
                    where.setdefault(target, (index, node.lineno + parsed.offset))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name == "*":
                        stars.add(node.module)
                    else:
                        from_imports[alias.asname or alias.name] = (node.module, alias.name)
                    where.setdefault(node.module, (index, node.lineno + parsed.offset))
    found: set[tuple[str, str]] = set()
    for parts in callees:
        head, rest = parts[0], parts[1:]
        if head in modules and rest:
            found.add((modules[head], ".".join(rest)))
        elif head in from_imports:
            module, attr = from_imports[head]
            found.add((module, ".".join([attr, *rest])))
        elif not rest and head not in BUILTIN_NAMES:
            found.update((module, head) for module in stars)
    found = {(m, q) for m, q in found if libwidgets.is_resolvable(m)}
    return found, where
