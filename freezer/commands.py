"""`freezer build` and `freezer plan`.

Both read the notebook, optionally trace it, and plan it; `build` then writes the app directory.
Every problem the user can fix is a :class:`FreezeError`: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from freezer.emit import check_target, emit_app
from freezer.errors import FreezeError, PlanError
from freezer.includes import (
    CodeCell,
    Include,
    changed_paths,
    missing_includes,
    path_states,
    resolve_includes,
)
from freezer.notebook import SourceNotebook, read_notebook
from freezer.plan import Plan, plan_notebook, render_text, to_json
from freezer.requirements import Requirements, find_requirements, pip_specs
from freezer.syntax import parse_cell
from runtime.manifest import Manifest

EXIT_USAGE = 2
MAX_ERROR_LINES = 10
APP_SUFFIX = "_app"
DEFAULT_TRACE_TIMEOUT = 60.0

BUILD_DESCRIPTION = """\
Compile an interactive notebook into an app directory that `freezer serve` serves to many
people, each with their own run. The notebook is split into stages at the points where it
waits for a person (a widget whose value a later cell reads); see `freezer plan`.
"""

BUILD_EPILOG = """\
The app directory holds app.json (the stages), app.ipynb (servable by plain `voila` too),
requirements.txt (what the notebook imports, pinned from this environment) and files/ (the
--include paths). Rebuilding over an existing app keeps its database (freezer.db*).

exit status: 0 built; 2 the notebook, an option or the output directory is not usable
(one line on stderr says which and how to fix it).
"""

PLAN_DESCRIPTION = """\
Print how a notebook splits into stages, which cells each stage runs, and for every boundary
the cell and name that caused it. Writes nothing.
"""

PLAN_EPILOG = """\
exit status: 0 the notebook can be built; 2 it cannot (the errors are on stderr).
"""


def build_parser() -> argparse.ArgumentParser:
    """Options of `freezer build`."""
    parser = argparse.ArgumentParser(
        prog="freezer build",
        description=BUILD_DESCRIPTION,
        epilog=BUILD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the source .ipynb (nbformat 4)")
    parser.add_argument(
        "-o", "--output", metavar="DIR",
        help=f"app directory to write (default: NOTEBOOK's name without .ipynb plus "
        f"'{APP_SUFFIX}', beside the notebook)",
    )
    parser.add_argument(
        "--title", metavar="T",
        help="app title (default: the notebook's metadata title, else its first heading, "
        "else its file name)",
    )
    parser.add_argument(
        "--include", metavar="PATH", action="append", default=[],
        help="a file or directory the notebook reads by relative path; copied under files/ "
        "keeping its path relative to the notebook's directory (repeatable)",
    )
    parser.add_argument(
        "--force", action="store_true",
        help="replace DIR even when it exists and is not a Freezer app",
    )
    _add_trace_options(parser)
    return parser


def plan_parser() -> argparse.ArgumentParser:
    """Options of `freezer plan`."""
    parser = argparse.ArgumentParser(
        prog="freezer plan",
        description=PLAN_DESCRIPTION,
        epilog=PLAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the source .ipynb (nbformat 4)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    _add_trace_options(parser)
    return parser


def _add_trace_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trace", action="store_true",
        help="run the notebook once in a throw-away kernel, in the notebook's directory, to "
        "find cells that show widgets the code does not name (e.g. a library function that "
        "displays them); the notebook's code really runs, files it writes are written",
    )
    parser.add_argument(
        "--trace-timeout", metavar="S", type=float, default=DEFAULT_TRACE_TIMEOUT,
        help=f"seconds each cell may run under --trace (default {DEFAULT_TRACE_TIMEOUT:g}; "
        "0: no limit)",
    )


def build_main(argv: list[str]) -> int:
    """`freezer build NOTEBOOK [-o DIR] ...`: write the app directory; 0, or 2 on an error."""
    return _run(lambda: _build(build_parser().parse_args(argv)))


def plan_main(argv: list[str]) -> int:
    """`freezer plan NOTEBOOK [--json] [--trace]`: print the plan; 0, or 2 on an error."""
    return _run(lambda: _plan(plan_parser().parse_args(argv)))


def _run(command: Callable[[], int]) -> int:
    try:
        return command()
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except PlanError as exc:
        for line in exc.lines:
            print(f"freezer: {line}", file=sys.stderr)
        return EXIT_USAGE
    except FreezeError as exc:
        print(f"freezer: {exc.message}", file=sys.stderr)
        return EXIT_USAGE


def default_output(source: SourceNotebook) -> Path:
    """`labeling.ipynb` -> `labeling_app`, beside the notebook."""
    return source.path.parent / f"{source.stem}{APP_SUFFIX}"


def _build(args: argparse.Namespace) -> int:
    source = read_notebook(args.notebook)
    out = Path(args.output) if args.output else default_output(source)
    where = str(source.path)
    # Options that cannot work are reported before the (possibly slow) trace.
    includes = resolve_includes(args.include, source.directory)
    check_target(out.absolute(), source, force=args.force)
    # What the --trace run creates or changes beside the notebook, the notebook writes itself.
    parsed = notebook_cells(source)  # each cell parsed once for the whole build
    before = path_states(parsed, source.directory) if args.trace else {}
    plan = _make_plan(source, args, parsed)
    raise_errors(plan, source)
    cells = code_cells(plan, parsed)
    requirements = notebook_requirements(source, plan, cells, includes)
    warnings = [
        *source.warnings,
        *(d.describe(where) for d in plan.diagnostics if d.severity == "warning"),
        *requirements.warnings,
        *missing_includes(cells, source.directory, includes, where=where,
                          written=changed_paths(before)),
    ]
    manifest = emit_app(
        source, plan, out, title=args.title, include=args.include, force=args.force,
        requirements=requirements,
    )
    print(summary(manifest, plan, out))
    for warning in warnings:
        print(warning, file=sys.stderr)
    return 0


def _plan(args: argparse.Namespace) -> int:
    source = read_notebook(args.notebook)
    plan = _make_plan(source, args)
    for warning in source.warnings:
        print(warning, file=sys.stderr)
    if args.json:
        print(json.dumps(to_json(plan, str(source.path)), indent=1, ensure_ascii=False))
    else:
        print(render_text(plan, str(source.path)), end="")
    raise_errors(plan, source)
    return 0


def _make_plan(source: SourceNotebook, args: argparse.Namespace,
               parsed: Sequence[CodeCell] = ()) -> Plan:
    traced: frozenset[int] = frozenset()
    if args.trace:
        from freezer.trace import trace_notebook

        traced = trace_notebook(
            source.nb, cell_timeout=args.trace_timeout, cwd=source.directory,
            where=str(source.path), kernel_name=source.kernel_name,
        )
    # Widget libraries beside the notebook (`from mywidgets import Tagger`) import from there.
    return plan_notebook(source.nb, traced_cells=traced, library_path=[str(source.directory)],
                         parsed={index: tree for index, _, tree in parsed})


def raise_errors(plan: Plan, source: SourceNotebook) -> None:
    """Raise :class:`PlanError` with the first error diagnostics when the plan has any."""
    errors = [d.describe(str(source.path)) for d in plan.diagnostics if d.severity == "error"]
    if not errors:
        return
    lines = errors[:MAX_ERROR_LINES]
    if len(errors) > MAX_ERROR_LINES:
        lines.append(f"{source.path}: {len(errors) - MAX_ERROR_LINES} more errors")
    raise PlanError(lines)


def code_cells(plan: Plan, parsed: Sequence[CodeCell] = ()) -> list[CodeCell]:
    """(index, source, parsed) of every code cell the app runs; a cell whose source the app
    runs unchanged keeps its tree from `parsed` (the source notebook's cells)."""
    known = {(index, text): tree for index, text, tree in parsed}
    return [
        (cell.index, cell.source, known.get((cell.index, cell.source)) or parse_cell(cell.source))
        for stage in plan.stages for cell in stage.cells if cell.kind == "code"
    ]


def notebook_cells(source: SourceNotebook) -> list[CodeCell]:
    """(index, source, parsed) of every code cell of the source notebook."""
    cells = []
    for index, cell in enumerate(source.nb.cells):
        if cell.cell_type == "code":
            text = "".join(cell.source) if isinstance(cell.source, list) else str(cell.source)
            cells.append((index, text, parse_cell(text)))
    return cells


def notebook_requirements(source: SourceNotebook, plan: Plan, cells: Sequence[CodeCell],
                          includes: Sequence[Include] = ()) -> Requirements:
    """requirements.txt of the app: imports of the cells the app runs, and `%pip` installs."""
    specs = [spec for _, line in plan.pip_installs for spec in pip_specs(line)]
    return find_requirements(
        cells, where=str(source.path), directory=source.directory, pip_installs=specs,
        includes=includes,
    )


def summary(manifest: Manifest, plan: Plan, out: Path) -> str:
    """What `freezer build` prints: each stage, its cell count and what it waits on."""
    count = len(manifest.stages)
    lines = [
        f"Built {out} from {manifest.source_name}: {count} stage{'s' if count != 1 else ''}, "
        f"app {manifest.app_id[:12]}"
    ]
    for stage in plan.stages:
        code = sum(1 for c in stage.cells if c.kind == "code")
        line = f"  {stage.index + 1}. {stage.title} ({code} code cell{'s' if code != 1 else ''})"
        if stage.ends_with is not None:
            line += f"; Next when: {stage.ends_with.reason}"
        lines.append(line)
    lines.append(f"Serve it: freezer serve {out}")
    return "\n".join(lines)
