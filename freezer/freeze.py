"""The compiler as one procedure: :func:`freeze_notebook` turns a notebook into an app directory.

Read the notebook, parse its code cells (once: every later step reads these trees), optionally
trace it in a throw-away kernel, plan its stages, check the plan, find its requirements, and
emit the app. `freezer build` and `freezer preview` call it; `freezer plan` runs the same steps
up to the check. Every problem the author can fix is a :class:`freezer.errors.FreezeError`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from freezer.emit import check_target, emit_app
from freezer.errors import FreezeWarning, PlanError
from freezer.includes import (
    Include,
    changed_paths,
    missing_includes,
    path_states,
    resolve_includes,
)
from freezer.notebook import SourceNotebook, read_notebook
from freezer.plan import Plan, plan_notebook
from freezer.requirements import Requirements, find_requirements, pip_specs
from freezer.syntax import CodeCell, parse_code_cells
from runtime.manifest import Manifest

DEFAULT_TRACE_TIMEOUT = 60.0
"""Seconds each cell may run under `trace=True` (0: no limit)."""
MAX_ERROR_LINES = 10
"""At most this many error diagnostics are reported when a plan has errors."""

StrPath = str | os.PathLike[str]


@dataclass
class BuildReport:
    """What a build found on its way, for its caller to show: :func:`freeze_notebook` fills it."""

    plan: Plan | None = None
    warnings: list[str] = field(default_factory=list)
    """One line each: `nb.ipynb: cell 3, line 2: warning CODE: what to do`."""


def freeze_notebook(
    path: StrPath,
    out: StrPath,
    *,
    include: Sequence[StrPath] = (),
    trace: bool = False,
    trace_timeout: float = DEFAULT_TRACE_TIMEOUT,
    title: str | None = None,
    force: bool = False,
    progress: TextIO | None = None,
    report: BuildReport | None = None,
) -> Manifest:
    """Compile the notebook at `path` into the app directory `out`; return its manifest.

    `include`: files and directories beside or below the notebook that it reads by relative
    path, copied under `files/`. `trace`: run the notebook once in a throw-away kernel, in its
    directory, to find cells that show widgets the code does not name (its code really runs;
    `trace_timeout` seconds per cell, 0 for no limit; one line per cell on `progress`, default
    stderr). `title`: the app's title (default: the notebook's). `force`: replace `out` even
    when it is not a Freezer app. An existing app at `out` is replaced, keeping its database.

    The warnings found on the way (diagnostics of the plan, imports that could not be pinned,
    data files not included) go into `report` when given, else are issued as
    :class:`FreezeWarning`. Raises :class:`freezer.errors.FreezeError` (one line naming the
    file, cell and line) when the notebook, an option or `out` is not usable, and
    :class:`freezer.errors.PlanError` when the plan has errors; nothing is written then.
    """
    source = read_notebook(path)
    cells = parse_code_cells(source.nb.cells)
    # Options that cannot work are reported before the (possibly slow) trace.
    includes = resolve_includes(include, source.directory)
    check_target(Path(out).absolute(), source, force=force)
    # What the trace run creates or changes beside the notebook, the notebook writes itself.
    before = path_states(cells, source.directory) if trace else {}
    traced = trace_source(source, trace_timeout, progress) if trace else frozenset()
    plan = plan_source(source, cells, traced)
    check_plan(plan, source)
    app_cells = plan.code_cells()
    requirements = notebook_requirements(source, plan, app_cells, includes)
    found = [
        *source.warnings,
        *(d.describe(str(source.path)) for d in plan.diagnostics if d.severity == "warning"),
        *requirements.warnings,
        *missing_includes(app_cells, source.directory, includes, where=str(source.path),
                          written=changed_paths(before)),
    ]
    manifest = emit_app(source, plan, out, title=title, include=include, force=force,
                        requirements=requirements)
    if report is None:
        for line in found:
            warnings.warn(line, FreezeWarning, stacklevel=2)
    else:
        report.plan = plan
        report.warnings.extend(found)
    return manifest


def trace_source(source: SourceNotebook, cell_timeout: float,
                 progress: TextIO | None = None) -> frozenset[int]:
    """Indices of the cells a run of the notebook saw showing widgets (see :mod:`freezer.trace`)."""
    from freezer.trace import trace_notebook  # starts a kernel: only loaded when asked for

    return trace_notebook(
        source.nb, cell_timeout=cell_timeout, cwd=source.directory, progress=progress,
        where=str(source.path), kernel_name=source.kernel_name,
    )


def plan_source(source: SourceNotebook, cells: Sequence[CodeCell],
                traced: frozenset[int] = frozenset()) -> Plan:
    """The plan of a read notebook whose code `cells` are parsed."""
    # Widget libraries beside the notebook (`from mywidgets import Tagger`) import from there.
    return plan_notebook(source.nb, traced_cells=traced, library_path=[str(source.directory)],
                         parsed={index: tree for index, _, tree in cells})


def check_plan(plan: Plan, source: SourceNotebook) -> None:
    """Raise :class:`PlanError` with the first error diagnostics when the plan has any."""
    errors = [d.describe(str(source.path)) for d in plan.diagnostics if d.severity == "error"]
    if not errors:
        return
    lines = errors[:MAX_ERROR_LINES]
    if len(errors) > MAX_ERROR_LINES:
        lines.append(f"{source.path}: {len(errors) - MAX_ERROR_LINES} more errors")
    raise PlanError(lines)


def notebook_requirements(source: SourceNotebook, plan: Plan, cells: Sequence[CodeCell],
                          includes: Sequence[Include] = ()) -> Requirements:
    """requirements.txt of the app: imports of the cells the app runs, and `%pip` installs."""
    specs = [spec for _, line in plan.pip_installs for spec in pip_specs(line)]
    return find_requirements(
        cells, where=str(source.path), directory=source.directory, pip_installs=specs,
        includes=includes,
    )
