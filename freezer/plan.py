"""The stage plan: how a notebook splits into stages, and why.

:func:`plan_notebook` applies the splitting rules of DESIGN §1 to a notebook that is already read
and validated; the result is plain data (:class:`Plan`) that :func:`render_text` prints for
`freezer plan` and :func:`to_json` turns into the `freezer plan --json` document (both live in
:mod:`freezer.render` and are re-exported here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import nbformat

from freezer.analysis import NotebookAnalyzer
from freezer.cellchecks import cell_tags, check_facts, collected_names
from freezer.facts import Bind, CellFacts, Read
from freezer.libraries import LibraryWidgets, library_widgets
from freezer.parameters import read_parameters
from freezer.plandata import (
    Boundary,
    Diagnostic,
    Method,
    Plan,
    PlanCell,
    PlanStage,
    Severity,
    markdown_heading,
)
from freezer.render import render_text as render_text  # re-exported: callers import from here
from freezer.render import to_json as to_json
from freezer.syntax import ParsedCell, cell_source, parse_cell
from runtime.manifest import Parameter, Tag, WaitKind, WaitsOn

__all__ = [  # the plan's data lives in freezer.plandata; callers import it from here
    "Boundary", "Diagnostic", "Plan", "PlanCell", "PlanStage", "markdown_heading",
    "plan_notebook", "render_text", "to_json",
]

_METHODS: dict[WaitKind, Method] = {
    "widget": "static", "callback": "static", "library": "import", "traced": "trace",
    "marker": "magic", "tag": "tag",
}


def plan_notebook(
    nb: nbformat.NotebookNode,
    *,
    traced_cells: frozenset[int] = frozenset(),
    resolve_imports: bool = True,
    library_path: Sequence[str] = (),
    parsed: Mapping[int, ParsedCell] | None = None,
) -> Plan:
    """Split a read and validated notebook into stages (DESIGN §1, rules 1-7).

    `traced_cells`: indices of the cells that `freezer build --trace` saw showing widget views
    (rule 5b). `resolve_imports`: import the other packages the notebook builds objects from,
    in a subprocess, to find ipywidgets subclasses; `library_path` goes in front of that
    subprocess's `sys.path` (e.g. the notebook's directory). `parsed`: code cells the caller
    already parsed (by cell index; :func:`freezer.syntax.parse_code_cells`); the others are
    parsed here. Each code cell of the plan carries its tree (:attr:`PlanCell.parsed`), so the
    steps after planning parse nothing again.
    """
    return _Planner(nb, traced_cells).plan(resolve_imports, tuple(library_path), parsed or {})


@dataclass
class _Pending:
    kind: WaitKind
    cell: int
    how: str = ""  # how a callback was registered, or the widget class data was handed to
    handed: bool = False


@dataclass(frozen=True)
class _Marker:
    cell: int
    magic: str  # the last marker magic of the cell
    names: tuple[str, ...]
    gate: str | None  # the button of a `%blockrun NAME`


@dataclass
class _Stage:
    cells: list[PlanCell] = field(default_factory=list)
    ends_with: Boundary | None = None
    has_code: bool = False


class _Planner:
    """One pass over the cells in order: the stage being built and the names pending in it."""

    def __init__(self, nb: nbformat.NotebookNode, traced_cells: frozenset[int]) -> None:
        self.cells = list(nb.cells)
        self.traced = traced_cells
        self.diagnostics: list[Diagnostic] = []
        self.stages: list[_Stage] = [_Stage()]
        self.markdown: list[PlanCell] = []  # waiting for the next code cell (rule 7)
        self.pending: dict[str, _Pending] = {}
        self.carried: dict[str, _Pending] = {}  # pending at the last boundary (rule 4c)
        self.marker: _Marker | None = None
        self.bound_in: dict[str, int] = {}
        self.skipped: list[int] = []
        self.pip: list[tuple[int, str]] = []
        self.parameters: list[Parameter] = []
        self.parameters_cell: int | None = None
        self.warm_leading = True
        self.widget_reads: list[tuple[str, int, int, bool]] = []  # name, cell, line, same cell
        self.shown: set[str] = set()  # widget names the --trace run saw shown

    def note(self, code: str, severity: Severity, cell: int | None, line: int | None,
             message: str) -> None:
        self.diagnostics.append(Diagnostic(code, severity, cell, line, message))

    def plan(self, resolve_imports: bool, library_path: tuple[str, ...],
             given: Mapping[int, ParsedCell]) -> Plan:
        kept: dict[int, tuple[str, ...]] = {}
        parsed: dict[int, ParsedCell] = {}
        for index, cell in enumerate(self.cells):
            tags = cell_tags(index, cell.get("metadata"), self.note)
            if cell.cell_type not in ("code", "markdown") or Tag.SKIP in tags:
                self.skipped.append(index)
                continue
            kept[index] = tags
            if cell.cell_type == "code":
                parsed[index] = given.get(index) or parse_cell(cell_source(cell))
        library = (library_widgets(parsed.items(), library_path, self.note) if resolve_imports
                   else LibraryWidgets())
        analyzer = NotebookAnalyzer(library.widgets, library.custom)
        for index, tags in kept.items():
            cell = self.cells[index]
            if cell.cell_type == "markdown":
                self.markdown.append(_plan_cell(index, cell, cell_source(cell), tags))
            else:
                facts = analyzer.analyze(index, cell_source(cell), parsed[index])
                self.code_cell(index, tags, facts, parsed[index])
        self.stages[-1].cells.extend(self.markdown)
        analyzer.scope.shown.update(self.shown)
        self.check_widget_reads(analyzer.scope.shown_names())
        if not parsed:
            self.note("no-code-cells", "warning", None, None,
                      "the notebook has no code cells: the app only shows its text")
        return Plan(
            stages=tuple(_finish(n, stage) for n, stage in enumerate(self.stages)),
            diagnostics=tuple(sorted(self.diagnostics, key=_diagnostic_order)),
            parameters=tuple(self.parameters),
            pip_installs=tuple(self.pip),
            skipped_cells=tuple(self.skipped),
        )

    def code_cell(self, index: int, tags: tuple[str, ...], facts: CellFacts,
                  parsed: ParsedCell) -> None:
        check_facts(facts, self.note)
        self.pip.extend((index, text) for _, text in facts.pip_lines)
        if Tag.PARAMETERS in tags and Tag.WARM not in tags:
            self.read_parameters(index, parsed)
        if facts.marker_only:
            self.skipped.append(index)
            self.set_marker(index, facts)
            return
        stage = self.stages[-1]
        first = self.markdown[0].index if self.markdown else index
        boundary = self.boundary_before(index, first, tags, facts) if stage.has_code else None
        if boundary is not None:
            stage.ends_with = boundary
            stage = _Stage()
            self.stages.append(stage)
            self.carried = self.pending
            self.pending = {}
        self.marker = None
        stage.cells.extend(self.markdown)
        self.markdown = []
        stage.cells.append(_plan_cell(index, self.cells[index], facts.source, tags, facts.parsed))
        stage.has_code = True
        self.extend_boundary(index, facts)
        self.apply(index, facts)
        self.check_cell_tags(index, tags, facts)
        if facts.markers:
            self.set_marker(index, facts)

    def boundary_before(self, index: int, first: int, tags: tuple[str, ...],
                        facts: CellFacts) -> Boundary | None:
        """Rule 4 (pending names read), 5c (a marker before) and 6 (freeze:break / join)."""
        reads: list[WaitsOn] = []
        bound: set[str] = set()
        for event in facts.events:
            if isinstance(event, Bind):
                bound.add(event.name)
            elif isinstance(event, Read) and _counts(event, self.pending) \
                    and event.name not in bound and all(w.name != event.name for w in reads):
                pending = self.pending[event.name]
                reads.append(WaitsOn(event.name, pending.kind, pending.cell))
        what = ", ".join(_describe(w, self.pending[w.name]) for w in reads)
        if Tag.BREAK in tags:
            reason = f"cell {index + 1} is tagged freeze:break"
            return Boundary(first, tuple(reads), "tag", reason + (f"; it reads {what}" if reads
                                                                   else ""))
        if self.marker is not None:
            marker = self.marker
            waits = [WaitsOn(n, "marker", self.bound_in.get(n, marker.cell))
                     for n in marker.names]
            extra = [w for w in reads if w.name not in marker.names]
            waits += extra
            reason = f"cell {marker.cell + 1} has {' '.join([marker.magic, *marker.names])}"
            if marker.gate is not None:
                reason += f"; the run continues through button {marker.gate}"
            if extra:
                reason += f"; cell {index + 1} reads " + ", ".join(
                    _describe(w, self.pending[w.name]) for w in extra)
            return Boundary(first, tuple(waits), "magic", reason, marker.gate)
        if reads and Tag.JOIN not in tags:
            return Boundary(first, tuple(reads), _METHODS[reads[0].kind],
                            f"cell {index + 1} reads {what}")
        return None

    def extend_boundary(self, index: int, facts: CellFacts) -> None:
        """Rule 4c: the last boundary waits on every name pending there that any cell of this
        stage reads, not only those its first cell reads."""
        if not self.carried or len(self.stages) < 2:
            return
        previous = self.stages[-2]
        boundary = previous.ends_with
        if boundary is None:
            return
        named = {w.name for w in boundary.waits_on}
        added: list[tuple[WaitsOn, _Pending]] = []
        for event in facts.events:
            if isinstance(event, Bind):
                self.carried.pop(event.name, None)
            elif isinstance(event, Read) and event.name not in named \
                    and _counts(event, self.carried):
                pending = self.carried[event.name]
                named.add(event.name)
                added.append((WaitsOn(event.name, pending.kind, pending.cell), pending))
        if added:
            what = ", ".join(_describe(w, p) for w, p in added)
            previous.ends_with = replace(
                boundary, waits_on=boundary.waits_on + tuple(w for w, _ in added),
                reason=f"{boundary.reason}; cell {index + 1} reads {what}")

    def apply(self, index: int, facts: CellFacts) -> None:
        """Replay the cell's events on the pending names (rules 2, 4, 5, 5b)."""
        same_cell: set[str] = set()
        for event in facts.events:
            if isinstance(event, Read):
                pending = self.pending.get(event.name)
                here = pending is not None and pending.cell == index and pending.kind != "traced"
                # A helper called by the cell that sets the widgets up draws their first state:
                # no same-cell-read for reads inside it.
                here = here and not event.via_call
                if event.widget is not None and event.widget.input:
                    self.widget_reads.append((event.name, index, event.line, here))
                elif here and pending is not None and pending.kind == "callback" \
                        and event.name not in same_cell:
                    same_cell.add(event.name)
                    how = (f"handed to widget {pending.how} in this cell" if pending.handed
                           else "written by a callback registered in this cell")
                    self.note("same-cell-read", "warning", index, event.line,
                              f"{event.name} is {how} and read in it: the person cannot have "
                              "acted yet; move the read into a later cell")
            elif isinstance(event, Bind):
                self.bound_in[event.name] = index
                if event.widget is not None and event.widget.input:
                    self.pending[event.name] = _Pending(event.widget.kind, index)
                else:
                    self.pending.pop(event.name, None)
            else:
                for name in event.names:
                    self.pending[name] = _Pending("callback", index, event.how, event.handed)
        if index in self.traced:  # the trace saw this cell's widgets: whatever it holds is shown
            self.shown.update(e.name for e in facts.events if isinstance(e, Bind | Read)
                              and e.widget is not None)
        if index in self.traced and not facts.shows_widgets:
            # Widgets the analysis cannot see: the names the cell binds from calls hold them.
            names = [e.name for e in facts.events if isinstance(e, Bind) and e.by_call
                     and e.widget is None]
            for name in names:
                self.pending[name] = _Pending("traced", index)
            if not names:
                self.note("traced-nothing-bound", "warning", index, None,
                          "the --trace run saw this cell show widgets, but it binds no name to "
                          "wait on; if later cells use what the person does here, tag the next "
                          "cell freeze:break")

    def set_marker(self, index: int, facts: CellFacts) -> None:
        """Rule 5c: the stage ends after this cell; `%blockrun NAME` gates it on button NAME."""
        gate: str | None = None
        for marker in facts.markers:
            unknown = [n for n, k in zip(marker.names, marker.kinds, strict=True)
                       if k == "unknown"]
            if marker.magic == "%blockrun":
                if marker.names and marker.kinds[0] == "button":
                    gate = marker.names[0]
                else:
                    what = (f"{marker.names[0]} is not a button bound before it"
                            if marker.names else "it names no button")
                    self.note("blockrun-not-button", "warning", index, marker.line,
                              f"%blockrun continues through a button, but {what}; the app "
                              "stops here and goes on with Next")
            elif unknown:
                self.note("block-unknown-name", "warning", index, marker.line,
                          f"%block {unknown[0]}: no widget or function {unknown[0]} is bound "
                          "before it; the app stops here and goes on with Next")
        names = tuple(n for m in facts.markers for n in m.names)
        self.marker = _Marker(index, facts.markers[-1].magic, names, gate)

    def check_cell_tags(self, index: int, tags: tuple[str, ...], facts: CellFacts) -> None:
        if Tag.WARM in tags:
            if len(self.stages) > 1 or not self.warm_leading:
                self.note("warm-not-leading", "warning", index, None,
                          "only the freeze:warm cells at the very start of the first stage run "
                          "ahead in pool kernels; this one runs with its stage")
            declared = {p.name for p in self.parameters}
            for event in facts.events:
                if isinstance(event, Read) and event.name in declared:
                    self.note("warm-reads-parameter", "warning", index, event.line,
                              f"a freeze:warm cell runs before the person is known, so it sees "
                              f"the default of parameter {event.name}, never the run's value")
                    break
        else:
            self.warm_leading = False
        for name in collected_names(tags):
            if name not in self.bound_in:
                self.note("collect-unbound", "warning", index, None,
                          f"collect:{name}: no cell up to this one binds {name}")

    def read_parameters(self, index: int, parsed: ParsedCell) -> None:
        if self.parameters_cell is not None:
            self.note("parameters-repeated", "warning", index, None,
                      f"only the first cell tagged parameters (cell {self.parameters_cell + 1}) "
                      "declares per-run parameters")
            return
        self.parameters_cell = index
        self.parameters = read_parameters(
            parsed, lambda code, severity, line, message: self.note(
                code, severity, index, line, message))

    def check_widget_reads(self, shown: set[str]) -> None:
        reported: set[tuple[str, int | None]] = set()
        for name, cell, line, same_cell in self.widget_reads:
            if name not in shown:
                if (name, None) not in reported:
                    reported.add((name, None))
                    self.note("widget-never-shown", "warning", cell, line,
                              f"{name} is a widget that is read here but never displayed: the "
                              "person cannot change it; display it, or use a plain value")
            elif same_cell and (name, cell) not in reported:
                reported.add((name, cell))
                self.note("same-cell-read", "warning", cell, line,
                          f"{name} is created and read in the same cell: the person cannot have "
                          "changed it yet; move the read into a later cell")


def _plan_cell(index: int, cell: nbformat.NotebookNode, source: str, tags: tuple[str, ...],
               parsed: ParsedCell | None = None) -> PlanCell:
    kind: Literal["code", "markdown"] = "code" if cell.cell_type == "code" else "markdown"
    return PlanCell(index, str(cell.get("id") or f"cell-{index}"), kind, source, tags, parsed)


def _counts(event: Read, pending: dict[str, _Pending]) -> bool:
    """Whether a read of a pending name counts: showing one is a read of data a person
    changes (callback-written or handed to a widget), not of a widget (rules 3, 4b)."""
    found = pending.get(event.name)
    return found is not None and (not event.shown or found.kind == "callback")


def _describe(wait: WaitsOn, pending: _Pending) -> str:
    """`picker (widget, bound in cell 3)`, `labels (handed to widget Tagger in cell 2)`."""
    where = wait.bound_in_cell + 1
    if pending.handed:
        return f"{wait.name} (handed to widget {pending.how} in cell {where})"
    if wait.kind == "callback":
        how = f"{pending.how} " if pending.how else ""
        return f"{wait.name} (callback, {how}registered in cell {where})"
    return f"{wait.name} ({wait.kind}, bound in cell {where})"


def _diagnostic_order(d: Diagnostic) -> tuple[int, int]:
    return (-1 if d.cell is None else d.cell, d.line or 0)


def _finish(index: int, stage: _Stage) -> PlanStage:
    code = [c for c in stage.cells if c.kind == "code"]
    title = next((t for c in stage.cells if c.kind == "markdown"
                  for t in [markdown_heading(c.source)] if t), f"Step {index + 1}")
    collect = tuple(name for c in code for name in collected_names(c.tags))
    warm = bool(code) and all(Tag.WARM in c.tags for c in code)
    return PlanStage(index, title, tuple(stage.cells), stage.ends_with, collect, warm)
