"""Walking the expressions of a cell: the names it reads, widget access, comprehensions.

:class:`ExpressionWalker` is the base of the cell walker of :mod:`freezer.analysis`: it emits the
:class:`Read` and :class:`Bind` events of DESIGN §1 rules 1-3 for the expressions a cell
evaluates, in evaluation order, and follows loop variables over widget collections. What a call
does is the subclass :class:`freezer.callwalker.CallWalker`; the statements are the analysis's.
"""

from __future__ import annotations

import ast

from freezer.facts import Bind, CellFacts, Event, Read, Scope, WidgetValue
from freezer.showing import (
    access_chain,
    children_of,
    copied_collection,
    held_names,
    lays_out,
)
from freezer.syntax import dotted, evaluated_calls, literal_names, target_names
from freezer.widgetnames import widget_value


class ExpressionWalker:
    """Emits the events of the expressions one cell evaluates; its subclasses provide
    :meth:`call` (the call walker), :meth:`block`, :meth:`bind_target` and :meth:`store` (the
    statement walker)."""

    def __init__(self, scope: Scope, facts: CellFacts, offset: int) -> None:
        self.scope = scope
        self.facts = facts
        self.offset = offset
        self.locals: list[set[str]] = []  # comprehension variables, innermost last
        self.aliases: dict[str, str] = {}  # loop variable -> the widget collection it walks
        self.deferred: list[ast.AST] = []  # function, lambda and class bodies: they run later

    def line(self, node: ast.AST) -> int:
        """The source line of a node of this cell's tree."""
        return getattr(node, "lineno", 1) + self.offset

    def emit(self, event: Event) -> None:
        """Record an event; a bind updates which names hold widgets."""
        self.facts.events.append(event)
        if isinstance(event, Bind):
            if event.widget is not None:
                self.scope.widgets[event.name] = event.widget
                self.facts.shows_widgets = True
            else:
                self.scope.widgets.pop(event.name, None)
                self.aliases.pop(event.name, None)

    def block(self, body: list[ast.stmt]) -> None:
        """Walk statements (those `%time` runs); provided by the statement walker."""
        raise NotImplementedError

    def bind_target(self, target: ast.expr, value: ast.expr | None, node: ast.AST) -> None:
        """Bind an assignment target (`:=`); provided by the statement walker."""
        raise NotImplementedError

    def store(self, target: ast.expr, value: ast.expr | None, node: ast.AST) -> None:
        """`a.b = v`, `a[k] = v`; provided by the statement walker."""
        raise NotImplementedError

    def call(self, node: ast.Call) -> None:
        """A call: what calling it reads, shows and registers; provided by the call walker."""
        raise NotImplementedError

    # -- expressions --------------------------------------------------------------------------

    def children(self, node: ast.expr) -> None:
        """`a`, `[a, b, make()]`, `{k: a}`: widget names in literals are held, not read."""
        if isinstance(node, ast.Name) and self._canon(node.id) in self.scope.widgets:
            return
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            for elt in node.elts:
                self.children(elt)
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                if key is not None:
                    self.expr(key)
            for value in node.values:
                self.children(value)
        elif isinstance(node, ast.Starred):
            self.children(node.value)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            self.children(node.left)  # `opts + [b]`: both sides are held
            self.children(node.right)
        elif copied_collection(node) is not None:
            self.children(copied_collection(node) or node)  # `list(opts)`
        else:
            self.expr(node)

    def expr(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load) and not any(node.id in s for s in self.locals):
                name = self._canon(node.id)
                self.emit(Read(name, self.line(node), self.scope.widgets.get(name)))
            return
        if isinstance(node, ast.Call):
            self.call(node)
            return
        if isinstance(node, ast.Attribute | ast.Subscript) and self._widget_access(node):
            return
        if isinstance(node, ast.Lambda):
            self.deferred.append(node)
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.expr(default)
            return
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            self.comprehension(node)
            return
        if isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.bind_target(node.target, node.value, node)
            return
        if isinstance(node, ast.Attribute) and node.attr == "stdin" and dotted(node) == [
            "sys", "stdin"
        ]:
            self.facts.stdin.append((self.line(node), True, "sys.stdin"))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child)
            elif isinstance(child, ast.comprehension | ast.keyword):
                self.expr(child.value if isinstance(child, ast.keyword) else child.iter)

    def _widget_access(self, node: ast.Attribute | ast.Subscript) -> bool:
        """`w.value` reads widget `w`; `w.layout.width`, `w.children[-1]` only arrange it."""
        root, attributes, slices = access_chain(node)
        if root is None or any(root.id in s for s in self.locals):
            return False
        name = self._canon(root.id)
        widget = self.scope.widgets.get(name)
        if widget is None:
            return False
        if not lays_out(attributes):
            self.emit(Read(name, self.line(root), widget))
        for part in slices:
            self.expr(part)
        return True

    def comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        names: set[str] = set()
        saved = dict(self.aliases)
        for gen in node.generators:
            self.locals.append(names)
            walked = self._walked_collection(gen.iter)
            if walked is None:
                self.expr(gen.iter)
                names.update(target_names(gen.target, None))
            else:
                aliased = target_names(gen.target, walked[1])
                for name in aliased:
                    self.aliases[name] = walked[0]
                names.update(set(target_names(gen.target, None)) - set(aliased))
            self.locals.pop()
            self.locals.append(names)
            for cond in gen.ifs:
                self.expr(cond)
            self.locals.pop()
        self.locals.append(names)
        if isinstance(node, ast.DictComp):
            self.expr(node.key)
            self.expr(node.value)
        else:
            self.expr(node.elt)
        self.locals.pop()
        self.aliases = saved

    # -- widget values ------------------------------------------------------------------------

    def widget_value(self, node: ast.expr | None) -> WidgetValue | None:
        """Whether evaluating `node` makes widgets (rule 1), with this cell's loop aliases."""
        return widget_value(self.scope, node, self._canon)

    def _contain(self, container: str, value: ast.expr) -> None:
        holder = value.id if isinstance(value, ast.Name) else children_of(value)
        if holder is not None:  # `x = picker`, `out = ui.children[-1]`: shown with it
            self.scope.contains.setdefault(self._canon(holder), set()).add(container)
        children = self.scope.contains.setdefault(container, set())
        children.update(self._canon(n) for n in literal_names(value))
        for call in evaluated_calls(value):
            for arg in [*call.args, *(k.value for k in call.keywords)]:
                children.update(self._canon(n) for n in held_names(arg))

    def _walked_collection(self, node: ast.expr) -> tuple[str, bool] | None:
        """`coll`, `coll.values()`, `coll.items()` over a widget collection: (name, items?)."""
        items = False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("values", "items") and not node.args:
            items = node.func.attr == "items"
            node = node.func.value
        holder = children_of(node)  # `for c in ui.children`: walks the widgets of `ui`
        name = node.id if isinstance(node, ast.Name) else holder
        if name is not None and self._canon(name) in self.scope.widgets:
            return self._canon(name), items
        return None

    def _canon(self, name: str) -> str:
        return self.aliases.get(name, name)
