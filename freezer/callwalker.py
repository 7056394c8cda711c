"""Walking the calls of a cell: display, widget constructors, callbacks, notebook functions.

:class:`CallWalker` adds to the expression walker of :mod:`freezer.exprwalker` what a call does
(DESIGN §1 rules 1-4b): `display(...)` and a cell's last bare expression show names; a widget
call holds the widgets passed to it and may take data a person changes (`Tagger(labels)`); a
callback registered with `on_click`, `observe` or `interact` writes names later; a notebook
function called from top-level code runs its body now; an IPython line (`%pip install`, `%block`,
`%time`) is what IPython makes of it. The statement walker of :mod:`freezer.analysis` subclasses
it.
"""

from __future__ import annotations

import ast

from freezer.calls import (
    COLLECTING_METHODS,
    QUIET_METHODS,
    REGISTER_METHODS,
    call_effects,
    callback_writes,
)
from freezer.exprwalker import ExpressionWalker
from freezer.facts import Bind, Marker, NotebookFunction, Read, Register
from freezer.showing import held_names
from freezer.syntax import (
    BLOCK_MAGICS,
    BUILTIN_NAMES,
    PYTHON_CELL_MAGICS,
    dotted,
    evaluated_calls,
    has_non_literal,
    ipython_call,
    is_pip_install,
    literal_names,
    root_name,
)
from freezer.widgetnames import (
    CALLBACK_FUNCTIONS,
    SHOWING_FUNCTIONS,
    callee_widget,
    custom_widget,
    widget_function,
)


class CallWalker(ExpressionWalker):
    """The expression walker with calls: the events of what each call does."""

    def call(self, node: ast.Call) -> None:
        self._call(node)
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.scope.functions \
                and not any(func.id in s for s in self.locals):
            self._run_function(self.scope.functions[func.id], node)

    def _run_function(self, function: NotebookFunction, node: ast.Call) -> None:
        """A notebook function called from top-level code: its body runs now (rule 3)."""
        effects = call_effects(function, self.scope.functions, self.widget_value, set())
        line = self.line(node)
        for name in effects.reads:
            name = self._canon(name)
            self.emit(Read(name, line, self.scope.widgets.get(name), via_call=True))
        for name, widget in effects.binds:
            self.emit(Bind(name, line, widget))
        self.scope.shown.update(effects.shows)

    def _call(self, node: ast.Call) -> None:
        func = node.func
        special = ipython_call(node)
        if special is not None:
            self._ipython_line(node, *special)
            return
        what = stdin_call(node)
        if what is not None:
            self.facts.stdin.append((self.line(node), True, what))
        parts = dotted(func)
        if parts is not None and (parts == ["display"] or parts[-1] == "display" and parts[0] in (
            "IPython", "ipd", "display"
        ) or len(parts) == 1 and self.scope.from_imports.get(parts[0]) == (
            "IPython.display", "display"
        )):
            self.display(node)
            return
        function = widget_function(self.scope, func)
        if function is not None or callee_widget(self.scope, func) is not None:
            name = function or (parts[-1] if parts else "")
            if name in CALLBACK_FUNCTIONS and node.args:
                self._register_expr(node.args[0], name, node)
            self.widget_args(node, show=function in SHOWING_FUNCTIONS)
            if function is None:
                self._hand_over(node)
                self._check_custom(node)
            if isinstance(func, ast.Attribute):
                self._receiver(func.value)
            return
        if isinstance(func, ast.Attribute):
            receiver = func.value
            if func.attr in REGISTER_METHODS:
                self._receiver(receiver)
                handler = node.args[0] if node.args else _keyword(node, "handler")
                if handler is not None:
                    self._register_expr(handler, func.attr, node)
                self._args(node, skip=handler)
                return
            if func.attr in QUIET_METHODS and isinstance(receiver, ast.Name):
                self._args(node)
                return
            root = root_name(receiver)
            if func.attr in COLLECTING_METHODS and root is not None:
                self._receiver(receiver)
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    if self.widget_value(arg) is not None:
                        self.store(receiver, arg, node)
                    self.children(arg)
                return
        self.expr(func)
        self._args(node)

    def _check_custom(self, node: ast.Call) -> None:
        """A library's custom widget with no `disabled` trait, built here first: a warning."""
        custom = custom_widget(self.scope, node.func)
        if custom is not None and not custom[1] and custom[0] not in self.scope.undisableable:
            self.scope.undisableable.add(custom[0])
            self.facts.undisableable.append((self.line(node), custom[0]))

    def _hand_over(self, node: ast.Call) -> None:
        """`Tagger(labels)`: data handed to a widget class of a library or of the notebook may
        be changed by the widget (rule 4b); ipywidgets' own classes copy what they are given."""
        widget = callee_widget(self.scope, node.func)
        parts = dotted(node.func)
        if widget is None or parts is None:
            return
        if widget.kind != "library" and not (len(parts) == 1
                                             and parts[0] in self.scope.notebook_classes):
            return
        names: list[str] = []
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            inner = arg.value if isinstance(arg, ast.Starred) else arg
            if isinstance(inner, ast.Name) and self._mutable_data(inner.id) \
                    and inner.id not in names:
                names.append(inner.id)
        if names:
            self.emit(Register(tuple(names), self.line(node), parts[-1], handed=True))

    def _mutable_data(self, name: str) -> bool:
        """Whether global `name` may hold data a widget can change (not a widget, module,
        function, class or immutable literal)."""
        scope = self.scope
        if any(name in s for s in self.locals) or name in self.aliases:
            return False
        return not (name in scope.widgets or name in scope.functions
                    or name in scope.widget_classes or name in scope.constants
                    or name in scope.modules or name in scope.widget_modules
                    or name in scope.from_imports or name in scope.widget_functions
                    or name in BUILTIN_NAMES)

    def _show_data(self, names: list[str], line: int) -> None:
        """Showing data is reading it (rule 4b): a list a callback fills, shown, is read."""
        for name in names:
            name = self._canon(name)
            if name not in self.scope.widgets:
                self.emit(Read(name, line, None, shown=True))

    def display(self, node: ast.Call) -> None:
        for arg in node.args:
            inner = arg.value if isinstance(arg, ast.Starred) else arg
            walked = self._walked_collection(inner)
            if isinstance(inner, ast.Name) or walked is not None:
                names = literal_names(inner) if walked is None else [walked[0]]
                self.scope.shown.update(self._canon(n) for n in names)
                self._show_data(names, self.line(node))
                self.facts.shows_widgets = True
            else:
                if self.widget_value(inner) is not None:
                    self._show_children(inner)
                self.expr(inner)
        for keyword in node.keywords:
            self.expr(keyword.value)

    def widget_args(self, node: ast.Call, *, show: bool) -> None:
        """Arguments of a widget call: widget names in them are children, not reads."""
        self.facts.shows_widgets = True
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if show:
                self.scope.shown.update(self._canon(n) for n in held_names(arg))
            self.children(arg)

    def _show_children(self, node: ast.expr) -> None:
        """`display(VBox([a, b]))`: the widgets passed to the shown widget are shown too."""
        for call in evaluated_calls(node):
            for arg in [*call.args, *(k.value for k in call.keywords)]:
                self.scope.shown.update(self._canon(n) for n in held_names(arg))

    def _args(self, node: ast.Call, skip: ast.expr | None = None) -> None:
        for arg in node.args:
            if arg is not skip:
                self.expr(arg)
        for keyword in node.keywords:
            if keyword.value is not skip:
                self.expr(keyword.value)

    def _receiver(self, node: ast.expr) -> None:
        """The object a method is called on, when the call does not read it."""
        if root_name(node) is None:
            self.expr(node)
            return
        while isinstance(node, ast.Attribute | ast.Subscript):
            if isinstance(node, ast.Subscript):
                self.expr(node.slice)
            node = node.value

    def _ipython_line(self, node: ast.Call, kind: str, text: str) -> None:
        line = self.line(node)
        if is_pip_install(kind, text):
            text = f"{kind}{text}" if kind == "!" else f"{kind} {text}"
            self.facts.pip_lines.append((line, text))
        elif kind[1:] in BLOCK_MAGICS:
            names = tuple(w for w in text.split() if w.isidentifier())
            self.facts.markers.append(Marker(line, kind, names, tuple(map(self._kind, names))))
        elif kind[1:] in PYTHON_CELL_MAGICS:  # `%time x = f(y)` runs its argument as code
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError):
                return
            saved, self.offset = self.offset, line - 1
            try:
                self.block(tree.body)
            finally:
                self.offset = saved

    def _kind(self, name: str) -> str:
        """What a `%block` / `%blockrun` argument names (ipython_blocking accepts a Button, a
        value widget, or a function that says when to go on)."""
        widget = self.scope.widgets.get(name)
        if widget is not None:
            return "button" if widget.button else "widget"
        return "function" if name in self.scope.functions else "unknown"

    def _shows_bare(self, node: ast.expr) -> bool:
        """The cell's last bare expression: names in it are shown, not read."""
        names = literal_names(node)
        if not names or has_non_literal(node):
            return False
        for name in names:
            self.scope.shown.add(self._canon(name))
        self._show_data(names, self.line(node))
        self.facts.shows_widgets = True
        return True

    # -- callbacks ----------------------------------------------------------------------------

    def _register_expr(self, node: ast.expr, how: str, where: ast.AST) -> None:
        if isinstance(node, ast.Call) and dotted(node.func) in (["partial"],
                                                                ["functools", "partial"]):
            for arg in node.args[1:]:
                self.expr(arg)
            if node.args:
                self._register_expr(node.args[0], how, where)
            return
        if isinstance(node, ast.Lambda):
            self._register(NotebookFunction(node, False), how, where)
        elif isinstance(node, ast.Name) and node.id in self.scope.functions:
            self._register(self.scope.functions[node.id], how, where)
        elif not isinstance(node, ast.Attribute):
            self.expr(node)

    def _register(self, function: NotebookFunction, how: str, where: ast.AST) -> None:
        scope = self.scope
        names = tuple(n for n in callback_writes(function, scope.functions, set())
                      if n not in scope.modules and n not in scope.widget_modules)
        if names:  # `np.sort(x)` in a callback changes no module
            self.emit(Register(names, self.line(where), how))


def stdin_call(node: ast.AST) -> str | None:
    """`input()` or `getpass()` when `node` calls one (they read the kernel's stdin)."""
    if not isinstance(node, ast.Call):
        return None
    parts = dotted(node.func)
    if parts in (["input"], ["getpass"], ["getpass", "getpass"]):
        return f"{parts[-1]}()"
    return None


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)
