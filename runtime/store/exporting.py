"""Export the runs of an app: `freezer export`, `freezer runs`, and the rows behind `/admin`.

The rows are :meth:`runtime.store.store.Store.export_rows`, one dict per run; their shape and
how they become CSV and JSON text are :mod:`runtime.store.export_format`'s. This module reads
them (with each declared parameter's default filled in for the CSV) and holds the two commands.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from runtime import manifest as manifest_mod
from runtime.errors import RuntimeAppError
from runtime.manifest import DATABASE_NAME, RESERVED_PARAMETERS
from runtime.runs.runfiles import RunFiles, prune, run_files_root
from runtime.store.export_format import rows_to_csv, rows_to_json, stage_position
from runtime.store.queue_export import queue_rows, queue_rows_to_csv
from runtime.store.queue_store import QueueError
from runtime.store.schema import SchemaBehindError, SchemaError, upgrade_advice
from runtime.store.store import Store

RowReader = Callable[[Store], Awaitable[list[dict[str, Any]]]]


class ExportError(RuntimeAppError):
    """The app directory or the database cannot be exported; the message is one line."""


# --- the command line -----------------------------------------------------------------------


def default_db_url(app_dir: Path) -> str:
    """The database an app directory is served with when `--db` is not given."""
    return f"sqlite:///{app_dir / DATABASE_NAME}"


def check_app_dir(app: str) -> Path:
    """The app directory, or :class:`ExportError` when it is not a Freezer app."""
    app_dir = Path(app)
    if not app_dir.is_dir():
        raise ExportError(f"{app}: no such directory; give the app directory `freezer build` made")
    try:
        manifest_mod.load(app_dir)
    except manifest_mod.ManifestError as exc:
        raise ExportError(str(exc)) from None
    return app_dir


def check_sqlite_exists(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist (opening it would create an empty one)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + ":memory:"):
        path = Path(url[len(prefix):].split("?", 1)[0])
        if not path.is_file():
            raise ExportError(f"{path}: no database here; has the app been served? (or give --db)")


async def load_rows(
    db_url: str, app: str = "APP", db: str | None = None, read: RowReader | None = None
) -> list[dict[str, Any]]:
    """Open the store, read every run's export row (or what `read` reads), close the store."""
    try:
        store = await Store.open(db_url)
    except SchemaBehindError as exc:
        raise ExportError(f"{exc}; {upgrade_advice(app, db)}") from None
    except SchemaError as exc:
        raise ExportError(str(exc)) from None
    except Exception as exc:  # any driver or URL error is one line for the person
        raise ExportError(f"cannot open database {db_url}: {one_line(exc)}") from None
    try:
        return await (store.export_rows() if read is None else read(store))
    except QueueError as exc:
        raise ExportError(str(exc)) from None
    finally:
        await store.close()


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (driver errors run to many lines)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def with_default_params(
    rows: list[dict[str, Any]], defaults: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows with every declared parameter in `params`: the run's own value, else the
    default of the app version it ran (`defaults`: app_id -> {name: default})."""
    filled = []
    for row in rows:
        params = {**defaults.get(row["app_id"], {}), **(row.get("params") or {})}
        filled.append({**row, "params": params})
    return filled


async def parameter_defaults(store: Store, app_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The declared parameters' defaults of each app version."""
    defaults: dict[str, dict[str, Any]] = {}
    for app_id in dict.fromkeys(app_ids):
        manifest = await store.get_manifest(app_id)
        if manifest is not None:
            defaults[app_id] = {p.name: p.default for p in manifest.parameters
                                if p.name not in RESERVED_PARAMETERS}
    return defaults


async def rows_with_default_params(store: Store) -> list[dict[str, Any]]:
    """Every run's export row with each declared parameter filled in (the app version's default
    where the run's start link set none): the rows of a CSV export, whose columns a spreadsheet
    reads as each run's settings. The JSON export keeps `params` as stored."""
    rows = await store.export_rows()
    return with_default_params(rows, await parameter_defaults(store, (r["app_id"] for r in rows)))


def rows_for_command(
    app: str, db: str | None, read: RowReader | None = None
) -> list[dict[str, Any]]:
    """Check the app directory and database, then read the export rows."""
    app_dir = check_app_dir(app)
    db_url = db or default_db_url(app_dir)
    check_sqlite_exists(db_url)
    return asyncio.run(load_rows(db_url, app, db, read))


def run_files_of(app: str, db: str | None, configured: str | None) -> RunFiles:
    """The run directories of an app, where `freezer serve` with the same options keeps them."""
    app_dir = Path(app)
    root = run_files_root(app_dir, db or default_db_url(app_dir), configured or "")
    return RunFiles(root, app_dir / manifest_mod.FILES_DIR)


def export_files(run_files: RunFiles, rows: Sequence[dict[str, Any]], destination: Path) -> int:
    """Copy the directory of every exported run to `destination/<run_id>/`; how many had one."""
    if destination.exists() and not destination.is_dir():
        raise ExportError(f"{destination}: not a directory; --files takes a directory")
    try:
        destination.mkdir(parents=True, exist_ok=True)
        return run_files.export([row["run_id"] for row in rows], destination)
    except OSError as exc:
        raise ExportError(f"{destination}: cannot copy the run files: {exc}") from None


async def prune_run_files(db_url: str, run_files: RunFiles) -> list[str]:
    """Remove the files of abandoned runs and of runs the database does not know."""
    store = await Store.open(db_url)
    try:
        return await prune(store, run_files, None)
    finally:
        await store.close()


RUN_FILES_HELP = "where the runs' working directories are (default: runs/ beside the database)"


def export_main(argv: list[str]) -> int:
    """`freezer export APP [--db URL] [--format csv|json] [-o FILE] [--files DIR]
    [--queue NAME]`."""
    parser = argparse.ArgumentParser(
        prog="freezer export", description="Export every run of an app, one row per run."
    )
    parser.add_argument("app", help="the app directory (made by `freezer build`)")
    parser.add_argument("--db", help="SQLAlchemy database URL (default: sqlite:///APP/freezer.db)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv", help="default: csv")
    parser.add_argument("-o", "--output", help="write to this file instead of standard output")
    parser.add_argument("--files", metavar="DIR",
                        help="also copy each run's working directory to DIR/<run_id>/")
    parser.add_argument("--run-files-dir", help=RUN_FILES_HELP)
    parser.add_argument("--queue", metavar="NAME", help="export the answers of work queue NAME "
                        "instead: one row per (item, person, answer, time)")
    args = parser.parse_args(argv)
    try:
        if args.queue and args.files:
            raise ExportError("--files copies runs' files; it does not go with --queue")
        if args.queue:
            rows = rows_for_command(args.app, args.db, lambda s: queue_rows(s, args.queue))
            text = queue_rows_to_csv(rows) if args.format == "csv" else rows_to_json(rows)
        else:
            csv_wanted = args.format == "csv"
            rows = rows_for_command(args.app, args.db,
                                    rows_with_default_params if csv_wanted else None)
            text = rows_to_csv(rows) if csv_wanted else rows_to_json(rows)
        if args.output:
            write_text(Path(args.output), text)
        else:
            sys.stdout.write(text)
        if args.files:
            run_files = run_files_of(args.app, args.db, args.run_files_dir)
            copied = export_files(run_files, rows, Path(args.files))
            print(f"copied the files of {copied} runs to {args.files}", file=sys.stderr)
    except ExportError as exc:
        print(f"freezer export: {exc}", file=sys.stderr)
        return 2
    return 0


def write_text(path: Path, text: str) -> None:
    """Write the export file; an unwritable path is an :class:`ExportError`."""
    try:
        # newline="" keeps the CSV's own \r\n line ends
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write: {exc.strerror}") from None


def format_runs(rows: Sequence[dict[str, Any]], out: IO[str]) -> None:
    """One aligned line per run: id, user, status, stage/total, last activity."""
    lines = [
        (
            row["run_id"],
            printable(row["user"]),
            row["status"],
            stage_position(row),
            short_time(row["updated_at"] or row["created_at"]),
        )
        for row in rows
    ]
    widths = [max((len(line[i]) for line in lines), default=0) for i in range(4)]
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        out.write("  ".join([*cells, line[4]]) + "\n")


def short_time(value: str | None) -> str:
    """An ISO timestamp to the second, `2026-11-23 12:41:07Z`."""
    return value[:19].replace("T", " ") + "Z" if value else ""


def printable(text: str) -> str:
    """Text safe to print to a terminal: control characters (escape sequences) become `?`."""
    return "".join(c if c.isprintable() else "?" for c in text)


def runs_main(argv: list[str]) -> int:
    """`freezer runs APP [--db URL] [--prune]`."""
    parser = argparse.ArgumentParser(
        prog="freezer runs",
        description="List the runs of an app: id, user, status, stage/total, last activity.",
    )
    parser.add_argument("app", help="the app directory (made by `freezer build`)")
    parser.add_argument("--db", help="SQLAlchemy database URL (default: sqlite:///APP/freezer.db)")
    parser.add_argument("--prune", action="store_true",
                        help="delete the working directories of abandoned runs (started over) "
                        "and of runs the database does not know")
    parser.add_argument("--run-files-dir", help=RUN_FILES_HELP)
    args = parser.parse_args(argv)
    try:
        rows = rows_for_command(args.app, args.db)
        if args.prune:
            run_files = run_files_of(args.app, args.db, args.run_files_dir)
            db_url = args.db or default_db_url(Path(args.app))
            removed = asyncio.run(prune_run_files(db_url, run_files))
            print(f"removed the files of {len(removed)} runs from {run_files.root}")
            return 0
    except ExportError as exc:
        print(f"freezer runs: {exc}", file=sys.stderr)
        return 2
    format_runs(rows, sys.stdout)
    return 0
