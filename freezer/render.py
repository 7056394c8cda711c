"""Printing a stage plan: the text `freezer plan` shows and the `freezer plan --json` document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from freezer.plandata import Plan


def render_text(plan: Plan, source_name: str) -> str:
    """What `freezer plan` prints: each stage and its cells, why it ends, then diagnostics."""
    cells = sum(len(s.cells) for s in plan.stages)
    errors = sum(d.severity == "error" for d in plan.diagnostics)
    warnings = len(plan.diagnostics) - errors
    lines = [
        f"{source_name}: {_count(len(plan.stages), 'stage')}, {_count(cells, 'cell')} in the app"
        f" ({len(plan.skipped_cells)} left out), {_count(warnings, 'warning')}, "
        f"{_count(errors, 'error')}",
    ]
    for stage in plan.stages:
        lines.append("")
        lines.append(f"Stage {stage.index + 1}: {stage.title}" + ("  (warm)" if stage.warm else ""))
        for cell in stage.cells:
            first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
            if len(first) > 60:
                first = first[:57] + "..."
            tags = f"  [{', '.join(cell.tags)}]" if cell.tags else ""
            lines.append(f"  cell {cell.index + 1:<3} {cell.kind:<8}  {first}{tags}".rstrip())
        if stage.collect:
            lines.append(f"  collects: {', '.join(stage.collect)}")
        if stage.ends_with is not None:
            lines.append(f"  -- Next: {stage.ends_with.reason}")
    if plan.parameters:
        lines.append("")
        lines.append("Parameters: " + ", ".join(
            f"{p.name} = {p.default!r} ({p.type})" for p in plan.parameters))
    if plan.pip_installs:
        lines.append("")
        lines.append("Commented out in the app: " + "; ".join(
            f"cell {cell + 1}: {line}" for cell, line in plan.pip_installs))
    if plan.skipped_cells:
        lines.append("")
        lines.append("Left out: cells " + ", ".join(str(c + 1) for c in plan.skipped_cells))
    if plan.diagnostics:
        lines.append("")
        lines.extend(d.describe(source_name) for d in plan.diagnostics)
    return "\n".join(lines) + "\n"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


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
                    "gate": s.ends_with.gate,
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
