"""The analysis's data: what it reports about each cell, and what it carries from cell to cell.

:class:`CellFacts` holds one code cell's ordered events (:class:`Read`, :class:`Bind`,
:class:`Register`) that the planner replays against its pending names. :class:`Scope` is what the
notebook has imported, defined and bound so far: :class:`freezer.analysis.NotebookAnalyzer`
updates it cell by cell, :mod:`freezer.widgetnames` reads it to recognise widget constructions and
:mod:`freezer.calls` to follow calls into the functions the notebook defines.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from freezer.syntax import ParsedCell

WidgetKind = Literal["widget", "library"]


@dataclass(frozen=True)
class WidgetValue:
    """What a bound value holds: widgets from ipywidgets/the notebook, or a library's."""

    kind: WidgetKind
    input: bool  # a person sets its state (else display-only: never pending)
    button: bool = False  # an ipywidgets Button (what `%blockrun NAME` needs, rule 5c)


@dataclass(frozen=True)
class Read:
    """Code that runs with the cell loads `name` (rule 3)."""

    name: str
    line: int
    widget: WidgetValue | None = None  # what `name` held at that point, if widgets
    via_call: bool = False  # in the body of a notebook function the cell calls
    shown: bool = False  # shown (bare last expression, display()): a read of data (rule 4b)


@dataclass(frozen=True)
class Bind:
    """The cell binds `name`; `widget` is None for a plain value (which ends pending, rule 4)."""

    name: str
    line: int
    widget: WidgetValue | None
    by_call: bool = False  # bound to the result of a call (a traced cell's candidates, rule 5b)


@dataclass(frozen=True)
class Register:
    """The cell registers a callback that writes these globals (rule 2), or hands these
    globals to a widget that may change them (rule 4b: `Tagger(labels)`)."""

    names: tuple[str, ...]
    line: int
    how: str  # "on_click", "observe", "interact", ...; the widget class when handed over
    handed: bool = False  # data handed to a widget constructor, not a callback's writes


Event = Read | Bind | Register


@dataclass(frozen=True)
class Marker:
    """A `%block` / `%blockrun` line (rule 5c)."""

    line: int
    magic: str
    names: tuple[str, ...]
    kinds: tuple[str, ...] = ()  # per name: "button", "widget", "function" or "unknown"


@dataclass
class CellFacts:
    """Everything the planner needs to know about one code cell."""

    index: int
    source: str  # as it runs in the app: pip and marker lines commented out
    parsed: ParsedCell | None = None  # `source` parsed (the cell's tree, those lines dropped)
    events: list[Event] = field(default_factory=list)
    syntax_error: tuple[int, str] | None = None
    too_deep: bool = False  # nested too deeply to analyse: its events are incomplete
    stdin: list[tuple[int, bool, str]] = field(default_factory=list)  # line, top level?, what
    pip_lines: list[tuple[int, str]] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    marker_only: bool = False
    code_after_marker: int | None = None  # first line of code after the last marker
    shows_widgets: bool = False  # constructs or shows widgets the analysis can see
    undisableable: list[tuple[int, str]] = field(default_factory=list)
    """(line, class): custom widget classes with no `disabled` trait, defined or first built."""


@dataclass
class NotebookFunction:
    """A function (or lambda) the notebook defines; :mod:`freezer.calls` fills in the caches."""

    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    returns_widget: bool
    writes: tuple[str, ...] | None = None  # computed on first use
    effects: FunctionEffects | None = None  # computed on first call from top-level code


@dataclass(frozen=True)
class FunctionEffects:
    """What calling a notebook function does to globals: its body runs with the calling cell."""

    reads: tuple[str, ...] = ()
    binds: tuple[tuple[str, WidgetValue | None], ...] = ()  # `global x; x = ...`
    shows: tuple[str, ...] = ()  # names it displays


@dataclass
class Scope:
    """What the notebook has imported, defined and bound so far (updated cell by cell)."""

    widget_modules: set[str] = field(default_factory=set)  # names of ipywidgets modules
    widget_classes: dict[str, WidgetValue] = field(default_factory=dict)
    notebook_classes: set[str] = field(default_factory=set)  # widget classes it defines
    widget_functions: dict[str, str] = field(default_factory=dict)  # local -> ipywidgets name
    modules: dict[str, str] = field(default_factory=dict)  # local name -> module path
    from_imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (module, attr)
    star_modules: list[str] = field(default_factory=list)  # `from lib import *`, other packages
    functions: dict[str, NotebookFunction] = field(default_factory=dict)
    library_widgets: frozenset[tuple[str, str]] = frozenset()
    library_custom: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    """(module, qualname) -> has a `disabled` trait, for library custom widgets (anywidget)."""
    custom_classes: dict[str, bool] = field(default_factory=dict)  # the notebook's, likewise
    undisableable: set[str] = field(default_factory=set)  # custom classes already warned about
    widgets: dict[str, WidgetValue] = field(default_factory=dict)  # current widget names
    constants: set[str] = field(default_factory=set)  # names bound to immutable literals
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
