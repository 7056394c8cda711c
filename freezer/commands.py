"""`freezer build` and `freezer plan`: the command lines over :mod:`freezer.freeze`.

`build` calls :func:`freezer.freeze_notebook` and prints a summary of the app and the warnings;
`plan` runs its steps up to the plan's check and prints the plan. Every problem the user can
fix is a :class:`FreezeError`: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from freezer.errors import FreezeError, PlanError
from freezer.freeze import (
    DEFAULT_TRACE_TIMEOUT,
    BuildReport,
    StrPath,
    check_plan,
    freeze_notebook,
    plan_source,
    trace_source,
)
from freezer.notebook import read_notebook
from freezer.plan import Plan, render_text, to_json
from freezer.syntax import parse_code_cells
from runtime.manifest import Manifest

EXIT_USAGE = 2
APP_SUFFIX = "_app"

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
    def build() -> int:
        args = build_parser().parse_args(argv)
        return build_and_report(
            args.notebook, args.output, include=args.include, title=args.title, force=args.force,
            trace=args.trace, trace_timeout=args.trace_timeout,
        )

    return run_command(build)


def plan_main(argv: list[str]) -> int:
    """`freezer plan NOTEBOOK [--json] [--trace]`: print the plan; 0, or 2 on an error."""
    return run_command(lambda: _plan(plan_parser().parse_args(argv)))


def run_command(command: Callable[[], int]) -> int:
    """Run a command; a :class:`FreezeError` is printed as one line and is exit status 2."""
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


def default_output(notebook: StrPath) -> Path:
    """`labeling.ipynb` -> `labeling_app`, beside the notebook."""
    path = Path(notebook)
    stem = path.stem if path.suffix == ".ipynb" else path.name
    return path.parent / f"{stem}{APP_SUFFIX}"


def build_and_report(
    notebook: StrPath, out: StrPath | None = None, *, include: Sequence[StrPath] = (),
    title: str | None = None, force: bool = False, trace: bool = False,
    trace_timeout: float = DEFAULT_TRACE_TIMEOUT,
) -> int:
    """Build as `freezer build` does: :func:`freeze_notebook` (`out` defaults to
    :func:`default_output`), then the summary on stdout and the warnings on stderr; 0.
    Raises what :func:`freeze_notebook` raises."""
    target = Path(out) if out else default_output(notebook)
    report = BuildReport()
    manifest = freeze_notebook(notebook, target, include=include, title=title, force=force,
                               trace=trace, trace_timeout=trace_timeout, report=report)
    assert report.plan is not None
    print(summary(manifest, report.plan, target))
    for warning in report.warnings:
        print(warning, file=sys.stderr)
    return 0


def _plan(args: argparse.Namespace) -> int:
    source = read_notebook(args.notebook)
    cells = parse_code_cells(source.nb.cells)
    traced = trace_source(source, args.trace_timeout) if args.trace else frozenset()
    plan = plan_source(source, cells, traced)
    for warning in source.warnings:
        print(warning, file=sys.stderr)
    if args.json:
        print(json.dumps(to_json(plan, str(source.path)), indent=1, ensure_ascii=False))
    else:
        print(render_text(plan, str(source.path)), end="")
    check_plan(plan, source)
    return 0


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
