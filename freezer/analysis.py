"""Static analysis of notebook cells: what each cell binds, reads, shows and registers.

A :class:`NotebookAnalyzer` reads the code cells in notebook order (what one cell imports or
defines matters to the next) and turns each into :class:`CellFacts`: an ordered list of events
(:class:`Read`, :class:`Bind`, :class:`Register`) that the planner replays against its pending
names, plus what the cell does that cannot work in an app (`input()`, `%pip install`) and the
`%block` markers it holds. Cells are parsed with `ast` after IPython's input transformation, so
magics and `!cmd` lines parse; rules 1-3 of DESIGN §1 live here.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from freezer import libwidgets

WidgetKind = Literal["widget", "library"]

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
CALLBACK_FUNCTIONS = frozenset({"interact", "interact_manual", "interactive", "interactive_output"})
SHOWING_FUNCTIONS = frozenset({"interact", "interact_manual"})
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})
BLOCK_MAGICS = frozenset({"block", "blockrun"})
_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class WidgetValue:
    """What a bound value holds: widgets from ipywidgets/the notebook, or a library's."""

    kind: WidgetKind
    input: bool  # a person sets its state (else display-only: never pending)


@dataclass(frozen=True)
class Read:
    """Code that runs with the cell loads `name` (rule 3)."""

    name: str
    line: int
    widget: WidgetValue | None = None  # what `name` held at that point, if widgets
    via_call: bool = False  # in the body of a notebook function the cell calls


@dataclass(frozen=True)
class Bind:
    """The cell binds `name`; `widget` is None for a plain value (which ends pending, rule 4)."""

    name: str
    line: int
    widget: WidgetValue | None
    by_call: bool = False  # bound to the result of a call (a traced cell's candidates, rule 5b)


@dataclass(frozen=True)
class Register:
    """The cell registers a callback that writes these globals (rule 2)."""

    names: tuple[str, ...]
    line: int
    how: str  # "on_click", "observe", "interact", ...


Event = Read | Bind | Register


@dataclass(frozen=True)
class Marker:
    """A `%block` / `%blockrun` line (rule 5c)."""

    line: int
    magic: str
    names: tuple[str, ...]


@dataclass
class CellFacts:
    """Everything the planner needs to know about one code cell."""

    index: int
    source: str  # as it runs in the app: pip and marker lines commented out
    events: list[Event] = field(default_factory=list)
    syntax_error: tuple[int, str] | None = None
    too_deep: bool = False  # nested too deeply to analyse: its events are incomplete
    stdin: list[tuple[int, bool, str]] = field(default_factory=list)  # line, top level?, what
    pip_lines: list[tuple[int, str]] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    marker_only: bool = False
    code_after_marker: int | None = None  # first line of code after the last marker
    shows_widgets: bool = False  # constructs or shows widgets the analysis can see


@dataclass
class _Function:
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    returns_widget: bool
    writes: tuple[str, ...] | None = None  # computed on first use
    effects: _Effects | None = None  # computed on first call from top-level code


@dataclass(frozen=True)
class _Effects:
    """What calling a notebook function does to globals: its body runs with the calling cell."""

    reads: tuple[str, ...] = ()
    binds: tuple[tuple[str, WidgetValue | None], ...] = ()  # `global x; x = ...`
    shows: tuple[str, ...] = ()  # names it displays


@dataclass
class Scope:
    """What the notebook has imported, defined and bound so far (updated cell by cell)."""

    widget_modules: set[str] = field(default_factory=set)  # names of ipywidgets modules
    widget_classes: dict[str, WidgetValue] = field(default_factory=dict)
    widget_functions: dict[str, str] = field(default_factory=dict)  # local -> ipywidgets name
    modules: dict[str, str] = field(default_factory=dict)  # local name -> module path
    from_imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (module, attr)
    star_modules: list[str] = field(default_factory=list)  # `from lib import *`, other packages
    functions: dict[str, _Function] = field(default_factory=dict)
    library_widgets: frozenset[tuple[str, str]] = frozenset()
    widgets: dict[str, WidgetValue] = field(default_factory=dict)  # current widget names
    shown: set[str] = field(default_factory=set)  # names displayed directly
    contains: dict[str, set[str]] = field(default_factory=dict)  # container -> child names

    def shown_names(self) -> set[str]:
        """Names displayed directly or as children of displayed containers."""
        seen: set[str] = set()
        todo = list(self.shown)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.contains.get(name, ()))
        return seen


@dataclass(frozen=True)
class ParsedCell:
    """A code cell parsed as IPython runs it."""

    tree: ast.Module | None  # None: a syntax error, or a cell magic that is not Python
    offset: int = 0  # add to tree line numbers to get source line numbers
    error: tuple[int, str] | None = None  # (source line, message)


def parse_cell(source: str) -> ParsedCell:
    """Parse a cell as IPython runs it.

    Plain Python is parsed as is (IPython leaves it unchanged); anything else goes through
    IPython's own transformation first. A Python cell magic (`%%time`) is parsed from its body,
    with line offset 1; other cell magics (`%%bash`, `%%html`) have no tree and no error.
    """
    first, _, body = source.partition("\n")
    offset = 0
    if first.startswith("%%"):
        words = first[2:].split(maxsplit=1)
        if not words or words[0] not in PYTHON_CELL_MAGICS:
            return ParsedCell(None)
        source, offset = body, 1
    if not _looks_like_ipython(source):
        try:
            return ParsedCell(ast.parse(source), offset)
        except (SyntaxError, ValueError):
            pass
        except (RecursionError, MemoryError):
            return ParsedCell(None, offset, (1 + offset, "too deeply nested for Python to parse"))
    try:
        return ParsedCell(ast.parse(transform_cell(source)), offset)
    except SyntaxError as exc:
        return ParsedCell(None, offset, ((exc.lineno or 1) + offset, exc.msg or "invalid syntax"))
    except Exception as exc:  # IPython's transformer can fail on odd input; report, not crash
        return ParsedCell(None, offset, (1 + offset, str(exc) or type(exc).__name__))


def _looks_like_ipython(source: str) -> bool:
    """A quick guess that saves a failed `ast.parse`; a wrong guess only costs time."""
    for line in source.split("\n"):
        text = line.lstrip()
        if text[:1] in ("%", "!") or text.endswith("?") or "!" in text and "=" in text \
                and text.split("=", 1)[1].lstrip().startswith("!"):
            return True
    return False


_transformer = None


def transform_cell(source: str) -> str:
    """IPython's transformation of a cell into plain Python (`%magic` -> `get_ipython()...`)."""
    global _transformer
    if _transformer is None:
        from IPython.core.inputtransformer2 import TransformerManager

        _transformer = TransformerManager()  # type: ignore[no-untyped-call]
    text: str = _transformer.transform_cell(source)
    return text


def dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything but a chain of names."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def root_name(node: ast.expr) -> str | None:
    """The name at the bottom of `a.b[c].d`."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def ipython_call(node: ast.Call) -> tuple[str, str] | None:
    """`get_ipython().run_line_magic('pip', 'install x')` -> ("%pip", "install x")."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)):
        return None
    inner = func.value.func
    if not (isinstance(inner, ast.Name) and inner.id == "get_ipython"):
        return None
    args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if func.attr == "run_line_magic" and len(args) >= 2:
        return "%" + args[0], args[1]
    if func.attr in ("system", "getoutput") and args:
        return "!", args[0]
    return None


def is_pip_install(kind: str, text: str) -> bool:
    """Whether a magic or shell line installs packages."""
    words = text.split()
    if kind in ("%pip", "%conda", "%mamba"):
        return bool(words) and words[0] == "install"
    for n, word in enumerate(words[:4]):
        if word in ("pip", "pip3", "conda", "mamba") or word.endswith(("/pip", "/pip3")):
            return words[n + 1:n + 2] == ["install"]
    return False


class NotebookAnalyzer:
    """Analyses the code cells of one notebook, in order."""

    def __init__(self, library_widgets: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.scope = Scope(library_widgets=library_widgets)

    def analyze(self, index: int, source: str, parsed: ParsedCell | None = None) -> CellFacts:
        """Facts about code cell `index`; updates the scope for the cells after it."""
        facts = CellFacts(index=index, source=source)
        parsed = parsed or parse_cell(source)
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
        facts.source = _comment_out(source, {ln for ln, _ in facts.pip_lines}
                                    | {m.line for m in facts.markers})
        if facts.markers:
            marker_lines = {m.line for m in facts.markers}
            stmts = [s for s in tree.body if s.lineno + offset not in marker_lines]
            facts.marker_only = not stmts
            last = max(marker_lines)
            after = [s.lineno + offset for s in stmts if s.lineno + offset > last]
            facts.code_after_marker = after[0] if after else None
        return facts


def _comment_out(source: str, lines: set[int]) -> str:
    if not lines:
        return source
    out = source.split("\n")
    for ln in sorted(lines):
        if 0 < ln <= len(out):
            text = out[ln - 1]
            body = text.lstrip()
            indent = text[: len(text) - len(body)]
            out[ln - 1] = f"{indent}# {body}" if not indent else f"{indent}pass  # {body}"
    return "\n".join(out)


class _CellWalker:
    """Walks the top-level code of one cell in execution order, emitting events."""

    def __init__(self, scope: Scope, facts: CellFacts, offset: int) -> None:
        self.scope = scope
        self.facts = facts
        self.offset = offset
        self.locals: list[set[str]] = []  # comprehension variables, innermost last
        self.aliases: dict[str, str] = {}  # loop variable -> the widget collection it walks
        self.deferred: list[ast.AST] = []  # function, lambda and class bodies: they run later

    # -- statements ---------------------------------------------------------------------------

    def walk(self, tree: ast.Module) -> None:
        body = tree.body
        for n, stmt in enumerate(body):
            if n == len(body) - 1 and isinstance(stmt, ast.Expr) and self._shows_bare(stmt.value):
                continue
            self.stmt(stmt)
        if "input" not in self.facts.source and "getpass" not in self.facts.source:
            return
        seen = {ln for ln, _, _ in self.facts.stdin}
        for node in self.deferred:
            for sub in ast.walk(node):  # runs later, if at all: a warning, not an error
                what = _stdin_call(sub)
                if what is not None and self.line(sub) not in seen:
                    seen.add(self.line(sub))
                    self.facts.stdin.append((self.line(sub), False, what))

    def line(self, node: ast.AST) -> int:
        return getattr(node, "lineno", 1) + self.offset

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

    def emit(self, event: Event) -> None:
        self.facts.events.append(event)
        if isinstance(event, Bind):
            if event.widget is not None:
                self.scope.widgets[event.name] = event.widget
                self.facts.shows_widgets = True
            else:
                self.scope.widgets.pop(event.name, None)
                self.aliases.pop(event.name, None)

    def import_(self, node: ast.Import | ast.ImportFrom) -> None:
        scope = self.scope
        for alias in node.names:
            if isinstance(node, ast.Import):
                local = alias.asname or alias.name.split(".")[0]
                target = alias.name if alias.asname else alias.name.split(".")[0]
                if target in libwidgets.WIDGET_MODULES:
                    scope.widget_modules.add(local)
                else:
                    scope.modules[local] = target
                self.emit(Bind(local, self.line(node), None))
                continue
            module = node.module or ""
            if node.level:
                module = "." * node.level + module
            if alias.name == "*":
                if module in libwidgets.WIDGET_MODULES:
                    for name in libwidgets.WIDGET_CLASSES:
                        scope.widget_classes[name] = _ipywidget(name)
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
                    scope.widget_classes[local] = _ipywidget(alias.name)
                elif alias.name in libwidgets.WIDGET_FUNCTIONS:
                    scope.widget_functions[local] = alias.name
            else:
                scope.from_imports[local] = (module, alias.name)
            self.emit(Bind(local, self.line(node), None))

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.expr(default)
        self.deferred.append(node)
        info = _Function(node, _returns_widget(node, self))
        self.scope.functions[node.name] = info
        for decorator in node.decorator_list:
            call = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = self._widget_function(call)
            if name is None and isinstance(call, ast.Attribute) and call.attr == "options":
                name = self._widget_function(call.value)
            if name in CALLBACK_FUNCTIONS:
                self._register(info, name, decorator)
                if isinstance(decorator, ast.Call):
                    self.widget_args(decorator, show=True)
            else:
                self.expr(decorator)
        self.emit(Bind(node.name, self.line(node), None))

    def class_(self, node: ast.ClassDef) -> None:
        self.deferred.append(node)
        widget_base = False
        for base in node.bases:
            self.expr(base)
            widget_base = widget_base or self.callee_widget(base) is not None
        for decorator in node.decorator_list:
            self.expr(decorator)
        self.emit(Bind(node.name, self.line(node), None))
        if widget_base:
            self.scope.widget_classes[node.name] = WidgetValue("widget", True)
        else:
            self.scope.widget_classes.pop(node.name, None)

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
            for name in _target_names(node.target, walked[1]):
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
                by_call = value.func.id not in _BUILTINS
            self.emit(Bind(target.id, self.line(node), widget, by_call))
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
                names.update(_target_names(gen.target, None))
            else:
                aliased = _target_names(gen.target, walked[1])
                for name in aliased:
                    self.aliases[name] = walked[0]
                names.update(set(_target_names(gen.target, None)) - set(aliased))
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

    def call(self, node: ast.Call) -> None:
        self._call(node)
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.scope.functions \
                and not any(func.id in s for s in self.locals):
            self._run_function(self.scope.functions[func.id], node)

    def _run_function(self, function: _Function, node: ast.Call) -> None:
        """A notebook function called from top-level code: its body runs now (rule 3)."""
        effects = _effects(function, self, set())
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
        what = _stdin_call(node)
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
        function = self._widget_function(func)
        if function is not None or self.callee_widget(func) is not None:
            name = function or (parts[-1] if parts else "")
            if name in CALLBACK_FUNCTIONS and node.args:
                self._register_expr(node.args[0], name, node)
            self.widget_args(node, show=function in SHOWING_FUNCTIONS)
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

    def display(self, node: ast.Call) -> None:
        for arg in node.args:
            inner = arg.value if isinstance(arg, ast.Starred) else arg
            walked = self._walked_collection(inner)
            if isinstance(inner, ast.Name) or walked is not None:
                names = _literal_names(inner) if walked is None else [walked[0]]
                self.scope.shown.update(self._canon(n) for n in names)
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
                self.scope.shown.update(self._canon(n) for n in _literal_names(arg))
            self.children(arg)

    def _show_children(self, node: ast.expr) -> None:
        """`display(VBox([a, b]))`: the widgets passed to the shown widget are shown too."""
        for call in _calls(node):
            for arg in [*call.args, *(k.value for k in call.keywords)]:
                self.scope.shown.update(self._canon(n) for n in _literal_names(arg))

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
            self.facts.markers.append(Marker(line, kind, names))
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

    # -- widget values ------------------------------------------------------------------------

    def callee_widget(self, func: ast.expr) -> WidgetValue | None:
        """The widget a call of `func` constructs, if it is a widget class or factory."""
        scope = self.scope
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
                return _ipywidget(rest[-1])
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

    def _widget_function(self, func: ast.expr) -> str | None:
        parts = dotted(func)
        if parts is None:
            return None
        if len(parts) == 1:
            return self.scope.widget_functions.get(parts[0])
        if parts[0] in self.scope.widget_modules and parts[1:-1] in ([], ["widgets"]) \
                and parts[-1] in libwidgets.WIDGET_FUNCTIONS:
            return parts[-1]
        return None

    def widget_value(self, node: ast.expr | None) -> WidgetValue | None:
        """Whether evaluating `node` makes widgets (rule 1), and of which kind."""
        if node is None:
            return None
        if isinstance(node, ast.Name):
            return self.scope.widgets.get(self._canon(node.id))
        if isinstance(node, ast.Starred):
            return self.widget_value(node.value)
        found: list[WidgetValue] = []
        for call in _calls(node):
            widget = self.callee_widget(call.func)
            if widget is None and self._widget_function(call.func) in ("interact",
                                                                         "interact_manual"):
                widget = WidgetValue("widget", True)  # a named interact result (rule 5)
            if widget is not None:
                found.append(widget)
        if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
            elements = node.values if isinstance(node, ast.Dict) else node.elts
            found.extend(w for e in elements if e is not None
                         for w in [self.widget_value(e)] if w is not None)
        if not found:
            return None
        kind: WidgetKind = "library" if any(w.kind == "library" for w in found) else "widget"
        return WidgetValue(kind, any(w.input for w in found))

    def _contain(self, container: str, value: ast.expr) -> None:
        if isinstance(value, ast.Name):  # `x = picker`: one widget, two names
            self.scope.contains.setdefault(self._canon(value.id), set()).add(container)
        children = self.scope.contains.setdefault(container, set())
        children.update(self._canon(n) for n in _literal_names(value))
        for call in _calls(value):
            for arg in [*call.args, *(k.value for k in call.keywords)]:
                children.update(self._canon(n) for n in _literal_names(arg))

    def _walked_collection(self, node: ast.expr) -> tuple[str, bool] | None:
        """`coll`, `coll.values()`, `coll.items()` over a widget collection: (name, items?)."""
        items = False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("values", "items") and not node.args:
            items = node.func.attr == "items"
            node = node.func.value
        if isinstance(node, ast.Name) and self._canon(node.id) in self.scope.widgets:
            return self._canon(node.id), items
        return None

    def _canon(self, name: str) -> str:
        return self.aliases.get(name, name)

    def _shows_bare(self, node: ast.expr) -> bool:
        """The cell's last bare expression: names in it are shown, not read."""
        names = _literal_names(node)
        if not names or _has_non_literal(node):
            return False
        for name in names:
            self.scope.shown.add(self._canon(name))
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
            self._register(_Function(node, False), how, where)
        elif isinstance(node, ast.Name) and node.id in self.scope.functions:
            self._register(self.scope.functions[node.id], how, where)
        elif not isinstance(node, ast.Attribute):
            self.expr(node)

    def _register(self, function: _Function, how: str, where: ast.AST) -> None:
        names = _writes(function, self.scope, set())
        if names:
            self.emit(Register(names, self.line(where), how))


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
        elif not rest and head not in _BUILTINS:
            found.update((module, head) for module in stars)
    found = {(m, q) for m, q in found if libwidgets.is_resolvable(m)}
    return found, where


def _ipywidget(name: str) -> WidgetValue:
    return WidgetValue("widget", name in libwidgets.INPUT_CLASSES)


def _stdin_call(node: ast.AST) -> str | None:
    """`input()` or `getpass()` when `node` calls one (they read the kernel's stdin)."""
    if not isinstance(node, ast.Call):
        return None
    parts = dotted(node.func)
    if parts in (["input"], ["getpass"], ["getpass", "getpass"]):
        return f"{parts[-1]}()"
    return None


def _pairwise(target: ast.Tuple | ast.List, value: ast.Tuple | ast.List) -> bool:
    """`a, b = x, y`: each target takes the value beside it."""
    starred = any(isinstance(e, ast.Starred) for e in [*target.elts, *value.elts])
    return not starred and len(target.elts) == len(value.elts)


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _calls(node: ast.expr) -> Iterator[ast.Call]:
    """Calls evaluated with `node` (not inside lambdas)."""
    todo: list[ast.AST] = [node]
    while todo:
        current = todo.pop()
        if isinstance(current, ast.Lambda):
            continue
        if isinstance(current, ast.Call):
            yield current
        todo.extend(ast.iter_child_nodes(current))


def _literal_names(node: ast.expr) -> list[str]:
    """Names in `x`, `*x`, `[a, b]`, `(a, 'value')`, `{k: a}`, nested."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Starred):
        return _literal_names(node.value)
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [n for e in node.elts for n in _literal_names(e)]
    if isinstance(node, ast.Dict):
        return [n for e in node.values for n in _literal_names(e)]
    return []


def _has_non_literal(node: ast.expr) -> bool:
    """Whether a literal collection holds anything but names and constants."""
    if isinstance(node, ast.Name | ast.Constant):
        return False
    if isinstance(node, ast.Starred):
        return _has_non_literal(node.value)
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return any(_has_non_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return any(k is not None and _has_non_literal(k) for k in node.keys) or any(
            _has_non_literal(v) for v in node.values)
    return True


def _target_names(target: ast.expr, items: bool | None) -> list[str]:
    """Names a loop target binds; with items=True only the value of a `k, v` pair."""
    if items and isinstance(target, ast.Tuple) and len(target.elts) == 2:
        return _target_names(target.elts[1], None)
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for e in target.elts for n in _target_names(e, None)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value, None)
    return []


def _returns_widget(node: ast.FunctionDef | ast.AsyncFunctionDef, walker: _CellWalker) -> bool:
    """A widget factory: the function returns a widget it constructs (rule 1)."""
    made: set[str] = set()
    returns: list[ast.expr] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assign) and walker.widget_value(sub.value) is not None:
            made.update(n for t in sub.targets for n in _target_names(t, None))
        elif isinstance(sub, ast.Return) and sub.value is not None:
            returns.append(sub.value)
    for value in returns:
        if isinstance(value, ast.Name) and value.id in made:
            return True
        if not isinstance(value, ast.Name) and walker.widget_value(value) is not None:
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


def _effects(function: _Function, walker: _CellWalker, seen: set[int]) -> _Effects:
    """Globals a function's body reads, binds and shows, following the notebook functions it
    calls; nested function and class bodies are left out (they run later, if at all)."""
    if function.effects is not None:
        return function.effects
    if id(function) in seen:
        return _Effects()
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
            widget = widget or walker.widget_value(value)
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
                shows.update(n for a in sub.args for n in _literal_names(a))
            callee = walker.scope.functions.get(sub.func.id) if isinstance(
                sub.func, ast.Name) and sub.func.id not in local else None
            if callee is not None:
                inner = _effects(callee, walker, seen)
                reads.extend(n for n in inner.reads if n not in reads)
                binds.extend(inner.binds)
                shows.update(inner.shows)
        todo.extend(reversed(list(ast.iter_child_nodes(sub))))
    shows.update(g for name in list(shows) for g in published.get(name, ()))
    function.effects = _Effects(tuple(reads), tuple(binds), tuple(sorted(shows)))
    return function.effects


def _writes(function: _Function, scope: Scope, seen: set[int]) -> tuple[str, ...]:
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
                    and sub.func.id in scope.functions and sub.func.id not in local:
                for name in _writes(scope.functions[sub.func.id], scope, seen):
                    add(name)
    function.writes = tuple(writes)
    return function.writes
