"""Following calls: what calling a method or a notebook function does to the notebook's globals.

A notebook function called from top-level code runs with the calling cell, so the globals its
body reads and binds count for that cell (:func:`call_effects`, rule 3); a callback runs later,
when a person acts, and the globals it writes are what a stage waits for (:func:`callback_writes`,
rule 2). Both follow the notebook functions they call.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from freezer.facts import FunctionEffects, NotebookFunction, WidgetValue
from freezer.syntax import dotted, literal_names, root_name, target_names

REGISTER_METHODS = frozenset({"on_click", "observe", "on_submit", "on_msg", "on_trait_change"})
"""Widget methods that register a callback (rule 2); calling one does not read the widget."""
QUIET_METHODS = frozenset({
    "unobserve", "unobserve_all", "add_class", "remove_class", "close", "hold_sync",
    "hold_trait_notifications", "set_title", "clear_output", "send",
})
"""Widget methods that neither read the widget's state nor return it."""
COLLECTING_METHODS = frozenset({
    "append", "extend", "insert", "add", "update", "setdefault", "appendleft", "extendleft",
})
"""Methods that put things into a collection; calling one does not read the collection."""
MUTATING_METHODS = COLLECTING_METHODS | {
    "pop", "remove", "clear", "discard", "popitem", "sort", "reverse", "put", "__setitem__",
}


WidgetValueOf = Callable[[ast.expr], WidgetValue | None]
"""Whether evaluating an expression makes widgets, as the calling cell sees it."""


def returns_widget(node: ast.FunctionDef | ast.AsyncFunctionDef,
                   widget_value: WidgetValueOf) -> bool:
    """A widget factory: the function returns a widget it constructs (rule 1)."""
    made: set[str] = set()
    returns: list[ast.expr] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assign) and widget_value(sub.value) is not None:
            made.update(n for t in sub.targets for n in target_names(t, None))
        elif isinstance(sub, ast.Return) and sub.value is not None:
            returns.append(sub.value)
    for value in returns:
        if isinstance(value, ast.Name) and value.id in made:
            return True
        if not isinstance(value, ast.Name) and widget_value(value) is not None:
            return True
    return False


def _local_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
                 body: list[ast.AST]) -> tuple[set[str], set[str]]:
    """(the function's local names, the names it declares global)."""
    args = node.args
    params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    params.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    declared: set[str] = set()
    assigned: set[str] = set()
    for part in body:
        for sub in ast.walk(part):
            if isinstance(sub, ast.Global):
                declared.update(sub.names)
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store | ast.Del):
                assigned.add(sub.id)
            elif isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                assigned.add(sub.name)
            elif isinstance(sub, ast.Import | ast.ImportFrom):
                assigned.update((a.asname or a.name).split(".")[0] for a in sub.names)
    return params | (assigned - declared), declared


def call_effects(function: NotebookFunction, functions: dict[str, NotebookFunction],
                 widget_value: WidgetValueOf, seen: set[int]) -> FunctionEffects:
    """Globals a function's body reads, binds and shows, following the notebook functions it
    calls; nested function and class bodies are left out (they run later, if at all)."""
    if function.effects is not None:
        return function.effects
    if id(function) in seen:
        return FunctionEffects()
    seen.add(id(function))
    node = function.node
    body: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
    local, declared = _local_names(node, body)
    reads: list[str] = []
    binds: list[tuple[str, WidgetValue | None]] = []
    shows: set[str] = set()
    made: dict[str, WidgetValue] = {}  # local names holding widgets the function builds
    not_read: set[int] = set()  # `x.a = v`, `x[k] = v`, `x.append(v)`: x is changed, not read
    for part in body:
        for sub in ast.walk(part):
            if isinstance(sub, ast.Attribute | ast.Subscript) and isinstance(sub.ctx, ast.Store):
                target = sub.value
            elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) \
                    and sub.func.attr in COLLECTING_METHODS | QUIET_METHODS | REGISTER_METHODS:
                target = sub.func.value
            else:
                continue
            while isinstance(target, ast.Attribute | ast.Subscript):
                target = target.value
            not_read.add(id(target))
    published: dict[str, set[str]] = {}  # local name -> the globals assigned from it
    todo = list(reversed(body))
    while todo:
        sub = todo.pop()
        if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id not in local \
                and sub.id not in reads and id(sub) not in not_read:
            reads.append(sub.id)
        elif isinstance(sub, ast.Assign):
            value = sub.value
            widget = made.get(value.id) if isinstance(value, ast.Name) else None
            widget = widget or widget_value(value)
            for target in sub.targets:
                if isinstance(target, ast.Name) and target.id in declared:
                    binds.append((target.id, widget))
                    if isinstance(value, ast.Name):
                        published.setdefault(value.id, set()).add(target.id)
                elif isinstance(target, ast.Name) and widget is not None:
                    made[target.id] = widget
        elif isinstance(sub, ast.Call):
            parts = dotted(sub.func)
            if parts is not None and parts[-1] == "display":
                shows.update(n for a in sub.args for n in literal_names(a))
            callee = functions.get(sub.func.id) if isinstance(
                sub.func, ast.Name) and sub.func.id not in local else None
            if callee is not None:
                inner = call_effects(callee, functions, widget_value, seen)
                reads.extend(n for n in inner.reads if n not in reads)
                binds.extend(inner.binds)
                shows.update(inner.shows)
        todo.extend(reversed(list(ast.iter_child_nodes(sub))))
    shows.update(g for name in list(shows) for g in published.get(name, ()))
    function.effects = FunctionEffects(tuple(reads), tuple(binds), tuple(sorted(shows)))
    return function.effects


def callback_writes(function: NotebookFunction, functions: dict[str, NotebookFunction],
                    seen: set[int]) -> tuple[str, ...]:
    """Globals a callback assigns (`global x`) or mutates, following notebook functions."""
    if function.writes is not None:
        return function.writes
    if id(function) in seen:
        return ()
    seen.add(id(function))
    node = function.node
    body: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
    local, declared = _local_names(node, body)
    writes: list[str] = []

    def add(name: str | None) -> None:
        if name is not None and name not in local and name not in writes:
            writes.append(name)

    for part in body:
        for sub in ast.walk(part):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store | ast.Del) \
                    and sub.id in declared:
                add(sub.id)
            elif isinstance(sub, ast.Attribute | ast.Subscript) \
                    and isinstance(sub.ctx, ast.Store | ast.Del):
                add(root_name(sub))
            elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) \
                    and sub.func.attr in MUTATING_METHODS:
                add(root_name(sub.func.value))
            elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) \
                    and sub.func.id in functions and sub.func.id not in local:
                for name in callback_writes(functions[sub.func.id], functions, seen):
                    add(name)
    function.writes = tuple(writes)
    return function.writes
