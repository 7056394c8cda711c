"""The stage plan: how a notebook splits into stages, and why.

:func:`plan_notebook` applies the splitting rules of DESIGN §1 to a notebook that is already read
and validated; the result is plain data (:class:`Plan`) that :func:`render_text` prints for
`freezer plan` and :func:`to_json` turns into the `freezer plan --json` document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import nbformat

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


@dataclass(frozen=True)
class PlanCell:
    """One cell of the app, as it runs there."""

    index: int  # 0-based index in the source notebook
    id: str  # the nbformat cell id, or "cell-<index>" when absent
    kind: Literal["code", "markdown"]
    source: str  # as it runs in the app: `%pip install` and `%block` lines commented out
    tags: tuple[str, ...]


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


def plan_notebook(
    nb: nbformat.NotebookNode,
    *,
    traced_cells: frozenset[int] = frozenset(),
    resolve_imports: bool = True,
) -> Plan:
    """Split a read and validated notebook into stages (first version: tags only)."""
    cells: list[PlanCell] = []
    skipped: list[int] = []
    breaks: list[int] = []
    for index, cell in enumerate(nb.cells):
        tags = tuple(str(t) for t in cell.get("metadata", {}).get("tags", []))
        if cell.cell_type not in ("code", "markdown") or "freeze:skip" in tags:
            skipped.append(index)
            continue
        if "freeze:break" in tags and cells:
            breaks.append(len(cells))
        kind: Literal["code", "markdown"] = "code" if cell.cell_type == "code" else "markdown"
        cells.append(PlanCell(index, str(cell.get("id") or f"cell-{index}"), kind,
                              str(cell.source), tags))
    bounds = [0, *breaks, len(cells)]
    stages: list[PlanStage] = []
    for n in range(len(bounds) - 1):
        part = tuple(cells[bounds[n]:bounds[n + 1]])
        end = None
        if n + 2 < len(bounds):
            first = cells[bounds[n + 1]].index
            end = Boundary(first, (), "tag", f"cell {first + 1} is tagged freeze:break")
        stages.append(PlanStage(n, f"Step {n + 1}", part, end, (), False))
    if not stages:
        stages.append(PlanStage(0, "Step 1", (), None, (), False))
    return Plan(tuple(stages), (), (), (), tuple(skipped))


def render_text(plan: Plan, source_name: str) -> str:
    """What `freezer plan` prints."""
    lines = [f"{source_name}: {len(plan.stages)} stages"]
    for stage in plan.stages:
        lines.append(f"Stage {stage.index + 1}: {stage.title}")
        for cell in stage.cells:
            lines.append(f"  cell {cell.index + 1}  {cell.kind}")
        if stage.ends_with is not None:
            lines.append(f"  -- Next: {stage.ends_with.reason}")
    lines.extend(d.describe(source_name) for d in plan.diagnostics)
    return "\n".join(lines) + "\n"


def to_json(plan: Plan, source_name: str) -> dict[str, Any]:
    """What `freezer plan --json` prints."""
    return {
        "source": source_name,
        "stages": [
            {
                "index": s.index,
                "title": s.title,
                "cells": [
                    {"index": c.index, "id": c.id, "kind": c.kind, "tags": list(c.tags),
                     "source": c.source}
                    for c in s.cells
                ],
                "ends_with": None if s.ends_with is None else {
                    "before_cell": s.ends_with.before_cell,
                    "method": s.ends_with.method,
                    "reason": s.ends_with.reason,
                    "waits_on": [
                        {"name": w.name, "kind": w.kind, "bound_in_cell": w.bound_in_cell}
                        for w in s.ends_with.waits_on
                    ],
                },
                "collect": list(s.collect),
                "warm": s.warm,
            }
            for s in plan.stages
        ],
        "diagnostics": [
            {"code": d.code, "severity": d.severity, "cell": d.cell, "line": d.line,
             "message": d.message}
            for d in plan.diagnostics
        ],
        "parameters": [{"name": p.name, "default": p.default, "type": p.type}
                       for p in plan.parameters],
        "pip_installs": [{"cell": c, "line": line} for c, line in plan.pip_installs],
        "skipped_cells": list(plan.skipped_cells),
        "has_errors": plan.has_errors,
    }
