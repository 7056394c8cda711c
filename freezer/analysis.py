"""Static analysis of notebook cells: what each cell binds, reads, shows and registers.

A :class:`NotebookAnalyzer` reads the code cells in notebook order (what one cell imports or
defines matters to the next) and turns each into :class:`CellFacts`: an ordered list of events
(:class:`Read`, :class:`Bind`, :class:`Register`) that the planner replays against its pending
names, plus what the cell does that cannot work in an app (`input()`, `%pip install`) and the
`%block` markers it holds. Cells are parsed with `ast` after IPython's input transformation, so
magics and `!cmd` lines parse; rules 1-3 of DESIGN §1 live here, with widget recognition in
:mod:`freezer.widgetnames`, expressions in :mod:`freezer.exprwalker`, calls in
:mod:`freezer.callwalker` and call following in :mod:`freezer.calls`.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from freezer.calls import returns_widget
from freezer.callwalker import CallWalker, stdin_call
from freezer.facts import (
    Bind,
    CellFacts,
    Event,
    Marker,
    NotebookFunction,
    Read,
    Register,
    Scope,
    WidgetValue,
)
from freezer.showing import is_immutable_literal
from freezer.syntax import (
    BUILTIN_NAMES,
    ParsedCell,
    comment_out,
    drop_lines,
    is_pip_install,
    parse_cell,
    root_name,
    target_names,
)
from freezer.widgetnames import (
    CALLBACK_FUNCTIONS,
    callee_widget,
    custom_widget,
    defines,
    record_import,
    widget_function,
)

__all__ = [
    "Bind", "CellFacts", "Event", "Marker", "NotebookAnalyzer", "ParsedCell", "Read", "Register",
    "Scope", "WidgetValue", "is_pip_install", "parse_cell",
]


class NotebookAnalyzer:
    """Analyses the code cells of one notebook, in order."""

    def __init__(self, library_widgets: frozenset[tuple[str, str]] = frozenset(),
                 library_custom: Mapping[tuple[str, str], bool] | None = None) -> None:
        self.scope = Scope(library_widgets=library_widgets, library_custom=library_custom or {})

    def analyze(self, index: int, source: str, parsed: ParsedCell | None = None) -> CellFacts:
        """Facts about code cell `index`; updates the scope for the cells after it."""
        parsed = parsed or parse_cell(source)
        facts = CellFacts(index=index, source=source, parsed=parsed)
        tree, offset = parsed.tree, parsed.offset
        facts.syntax_error = parsed.error
        if tree is None:
            return facts
        walker = _CellWalker(self.scope, facts, offset)
        try:
            walker.walk(tree)
        except RecursionError:
            facts.too_deep = True
        lines = source.split("\n")
        facts.pip_lines = [(ln, lines[ln - 1].strip() if ln <= len(lines) else text)
                           for ln, text in facts.pip_lines]
        commented = {ln for ln, _ in facts.pip_lines} | {m.line for m in facts.markers}
        facts.source = comment_out(source, commented)
        facts.parsed = drop_lines(parsed, source, commented)
        if facts.markers:
            marker_lines = {m.line for m in facts.markers}
            stmts = [s for s in tree.body if s.lineno + offset not in marker_lines]
            facts.marker_only = not stmts
            last = max(marker_lines)
            after = [s.lineno + offset for s in stmts if s.lineno + offset > last]
            facts.code_after_marker = after[0] if after else None
        return facts


class _CellWalker(CallWalker):
    """Walks the top-level code of one cell in execution order, emitting events."""
    # -- statements ---------------------------------------------------------------------------

    def walk(self, tree: ast.Module) -> None:
        body = tree.body
        for n, stmt in enumerate(body):
            if n == len(body) - 1 and isinstance(stmt, ast.Expr):
                if self._shows_bare(stmt.value):
                    continue
                if self.widget_value(stmt.value) is not None:  # `VBox([t, go])`: shows t, go
                    self._show_children(stmt.value)
            self.stmt(stmt)
        if "input" not in self.facts.source and "getpass" not in self.facts.source:
            return
        seen = {ln for ln, _, _ in self.facts.stdin}
        for node in self.deferred:
            for sub in ast.walk(node):  # runs later, if at all: a warning, not an error
                what = stdin_call(sub)
                if what is not None and self.line(sub) not in seen:
                    seen.add(self.line(sub))
                    self.facts.stdin.append((self.line(sub), False, what))

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            self.import_(node)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(node)
        elif isinstance(node, ast.ClassDef):
            self.class_(node)
        elif isinstance(node, ast.Assign):
            self.assign(node.targets, node.value, node)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.annotation)
            if node.value is not None:
                self.assign([node.target], node.value, node)
        elif isinstance(node, ast.AugAssign):
            self.aug_assign(node)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.for_(node)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                if not (isinstance(item.context_expr, ast.Name)
                        and self._canon(item.context_expr.id) in self.scope.widgets):
                    self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.bind_target(item.optional_vars, None, node)
            self.block(node.body)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.emit(Bind(target.id, self.line(node), None))
                else:
                    self.expr(target)
        elif isinstance(node, ast.Expr):
            self.expr(node.value)
        elif isinstance(node, ast.Global | ast.Nonlocal | ast.Pass | ast.Break | ast.Continue):
            pass
        else:  # if, while, try, match, raise, assert, return: every part in source order
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.stmt(child)
                elif isinstance(child, ast.expr):
                    self.expr(child)
                elif isinstance(child, ast.excepthandler | ast.match_case):
                    for part in ast.iter_child_nodes(child):
                        if isinstance(part, ast.stmt):
                            self.stmt(part)
                        elif isinstance(part, ast.expr):
                            self.expr(part)
                    if isinstance(child, ast.ExceptHandler) and child.name:
                        self.emit(Bind(child.name, self.line(child), None))

    def block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.stmt(stmt)

    def import_(self, node: ast.Import | ast.ImportFrom) -> None:
        for local in record_import(self.scope, node):
            self.emit(Bind(local, self.line(node), None))

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.expr(default)
        self.deferred.append(node)
        info = NotebookFunction(node, returns_widget(node, self.widget_value))
        self.scope.functions[node.name] = info
        for decorator in node.decorator_list:
            call = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = widget_function(self.scope, call)
            if name is None and isinstance(call, ast.Attribute) and call.attr == "options":
                name = widget_function(self.scope, call.value)
            if name in CALLBACK_FUNCTIONS:
                self._register(info, name, decorator)
                if isinstance(decorator, ast.Call):
                    self.widget_args(decorator, show=True)
            else:
                self.expr(decorator)
        self.emit(Bind(node.name, self.line(node), None))

    def class_(self, node: ast.ClassDef) -> None:
        self.deferred.append(node)
        bases: list[WidgetValue] = []
        for base in node.bases:
            self.expr(base)
            base_widget = callee_widget(self.scope, base)
            if base_widget is not None:
                bases.append(base_widget)
        for decorator in node.decorator_list:
            self.expr(decorator)
        self.emit(Bind(node.name, self.line(node), None))
        custom = [c for c in (custom_widget(self.scope, base) for base in node.bases) if c]
        self.scope.custom_classes.pop(node.name, None)
        if bases:
            button = any(b.button for b in bases)
            self.scope.widget_classes[node.name] = WidgetValue("widget", True, button=button)
            self.scope.notebook_classes.add(node.name)
            if custom:  # a custom widget: can Freezer disable it after Next?
                disables = any(has for _, has in custom) or defines(node, "disabled")
                self.scope.custom_classes[node.name] = disables
                if not disables:
                    self.scope.undisableable.add(node.name)
                    self.facts.undisableable.append((self.line(node), node.name))
        else:
            self.scope.widget_classes.pop(node.name, None)
            self.scope.notebook_classes.discard(node.name)

    def assign(self, targets: list[ast.expr], value: ast.expr, node: ast.stmt) -> None:
        self.children(value)
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if len(names) > 1 and self.widget_value(value) is not None:
            for name in names:  # `a = b = Slider()`: showing one shows the other
                self.scope.contains.setdefault(name, set()).update(names)
        for target in targets:
            if isinstance(target, ast.Tuple | ast.List) \
                    and isinstance(value, ast.Tuple | ast.List) \
                    and _pairwise(target, value):
                for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
                    self.bind_target(sub_target, sub_value, node)
            else:
                self.bind_target(target, value, node)

    def aug_assign(self, node: ast.AugAssign) -> None:
        target = node.target
        if isinstance(target, ast.Name):
            name = self._canon(target.id)
            self.emit(Read(name, self.line(node), self.scope.widgets.get(name)))
            self.children(node.value)
            widget = self.widget_value(node.value) or self.scope.widgets.get(target.id)
            self.emit(Bind(target.id, self.line(node), widget))
            return
        self.children(node.value)
        self.store(target, node.value, node)

    def for_(self, node: ast.For | ast.AsyncFor) -> None:
        walked = self._walked_collection(node.iter)
        if walked is None:
            self.expr(node.iter)
            self.bind_target(node.target, None, node)
        else:
            for name in target_names(node.target, walked[1]):
                self.aliases[name] = walked[0]
        self.block(node.body)
        self.block(node.orelse)

    def bind_target(self, target: ast.expr, value: ast.expr | None, node: ast.AST) -> None:
        if isinstance(target, ast.Name):
            widget = self.widget_value(value) if value is not None else None
            if value is not None and widget is not None:
                self._contain(target.id, value)
            by_call = isinstance(value, ast.Call | ast.Await)
            if by_call and isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
                by_call = value.func.id not in BUILTIN_NAMES
            self.emit(Bind(target.id, self.line(node), widget, by_call))
            if value is not None and is_immutable_literal(value):
                self.scope.constants.add(target.id)
            else:
                self.scope.constants.discard(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for elt in target.elts:
                self.bind_target(elt, None, node)
        elif isinstance(target, ast.Starred):
            self.bind_target(target.value, None, node)
        else:
            self.store(target, value, node)

    def store(self, target: ast.expr, value: ast.expr | None, node: ast.AST) -> None:
        """`a.b = v`, `a[k] = v`: not a read of `a`; widgets stored make `a` hold them."""
        if isinstance(target, ast.Subscript):
            self.expr(target.slice)
        inner = target.value if isinstance(target, ast.Attribute | ast.Subscript) else target
        while isinstance(inner, ast.Attribute | ast.Subscript):
            if isinstance(inner, ast.Subscript):
                self.expr(inner.slice)
            inner = inner.value
        root = root_name(target)
        if root is None:
            self.expr(inner)
            return
        root = self._canon(root)
        widget = self.widget_value(value) if value is not None else None
        if value is not None and widget is not None:
            self._contain(root, value)
            if root not in self.scope.widgets:
                self.emit(Bind(root, self.line(node), widget))


def _pairwise(target: ast.Tuple | ast.List, value: ast.Tuple | ast.List) -> bool:
    """`a, b = x, y`: each target takes the value beside it."""
    starred = any(isinstance(e, ast.Starred) for e in [*target.elts, *value.elts])
    return not starred and len(target.elts) == len(value.elts)
