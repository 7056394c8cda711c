"""The plan's data: stages, the boundaries between them and the diagnostics found on the way.

:func:`freezer.plan.plan_notebook` builds a :class:`Plan`; it is plain data that
:mod:`freezer.render` prints and :mod:`freezer.emit` turns into the app's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from freezer.syntax import CodeCell, ParsedCell, parse_cell
from runtime.manifest import Parameter, WaitsOn

Severity = Literal["warning", "error"]
Method = Literal["static", "import", "trace", "magic", "tag"]
"""How a boundary was found: static analysis, an imported library widget class, the --trace run,
an ipython_blocking marker magic, or a `freeze:break` tag."""


@dataclass(frozen=True)
class Diagnostic:
    """A warning or error about one place in the notebook."""

    code: str
    severity: Severity
    cell: int | None  # 0-based index into nb.cells (all cell types); shown 1-based
    line: int | None  # 1-based line within the cell source
    message: str

    def describe(self, source_name: str) -> str:
        """One line for people: `nb.ipynb: cell 4, line 2: warning same-cell-read: ...`."""
        where = source_name
        if self.cell is not None:
            where += f": cell {self.cell + 1}"
            if self.line is not None:
                where += f", line {self.line}"
        return f"{where}: {self.severity} {self.code}: {self.message}"


@dataclass(frozen=True)
class Boundary:
    """The point between two stages where the app waits for the person (Next)."""

    before_cell: int  # 0-based index of the first cell of the next stage
    waits_on: tuple[WaitsOn, ...]
    method: Method
    reason: str  # for people, 1-based: "cell 5 reads picker (widget, bound in cell 3)"
    gate: str | None = None  # `%blockrun NAME`: the run continues only through button NAME


@dataclass(frozen=True)
class PlanCell:
    """One cell of the app, as it runs there."""

    index: int  # 0-based index in the source notebook
    id: str  # the nbformat cell id, or "cell-<index>" when absent
    kind: Literal["code", "markdown"]
    source: str  # as it runs in the app: `%pip install` and `%block` lines commented out
    tags: tuple[str, ...]
    parsed: ParsedCell | None = field(default=None, compare=False, repr=False)
    """A code cell's `source` parsed, by the planner (later steps read this tree)."""


@dataclass(frozen=True)
class PlanStage:
    """Consecutive cells that run without waiting for a person."""

    index: int
    title: str  # the first markdown heading of the stage, else "Step N" (1-based)
    cells: tuple[PlanCell, ...]
    ends_with: Boundary | None  # None for the last stage
    collect: tuple[str, ...]  # names from the collect:NAME tags of the stage's cells
    warm: bool  # the stage has code cells and every one is tagged freeze:warm


@dataclass(frozen=True)
class Plan:
    """How a notebook splits into stages, with everything found on the way."""

    stages: tuple[PlanStage, ...]
    diagnostics: tuple[Diagnostic, ...]
    parameters: tuple[Parameter, ...]
    pip_installs: tuple[tuple[int, str], ...]  # (cell index, the %pip line)
    skipped_cells: tuple[int, ...]  # freeze:skip, raw cells, %block marker cells

    @property
    def has_errors(self) -> bool:
        """Whether any diagnostic is an error (the app must not be built)."""
        return any(d.severity == "error" for d in self.diagnostics)

    def code_cells(self) -> list[CodeCell]:
        """(index, source, parsed) of every code cell the app runs, in order."""
        return [(cell.index, cell.source, cell.parsed or parse_cell(cell.source))
                for stage in self.stages for cell in stage.cells if cell.kind == "code"]


def markdown_heading(text: str) -> str | None:
    """The first heading of a Markdown text (ATX `# Title` or setext `Title` / `===`)."""
    fenced = False
    previous = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            fenced = not fenced
            previous = ""
            continue
        if fenced:
            continue
        if line.startswith("#"):
            hashes = len(line) - len(line.lstrip("#"))
            rest = line[hashes:]
            if hashes <= 6 and (not rest or rest[0] in " \t"):
                title = _plain(rest.strip().rstrip("#").strip())
                if title:
                    return title
        if previous and line and set(line) <= {"="} | {"-"} and len(set(line)) == 1 \
                and not previous.startswith(("-", "*", ">")):
            return _plain(previous)
        previous = line
    return None


def _plain(title: str) -> str:
    for mark in ("**", "__", "`"):
        title = title.replace(mark, "")
    return title.strip()
