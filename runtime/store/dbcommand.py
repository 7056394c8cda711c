"""`freezer db upgrade APP` and `freezer db current APP`: the schema revision of an app's database.

Both take the app directory (its `app.json` is checked) and `--db URL` (default: the SQLite
file `APP/freezer.db` that `freezer serve APP` uses). Errors are one line on standard error
with exit status 2; see :mod:`runtime.store.schema` for what the revisions are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy.exc import ArgumentError

from runtime.errors import RuntimeAppError
from runtime.store import schema
from runtime.store.database import database_url
from runtime.store.exporting import check_app_dir, check_sqlite_exists, default_db_url

DB_HELP = "SQLAlchemy database URL (default: sqlite:///APP/freezer.db)"


def parser_for(action: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"freezer db {action}", description=description)
    parser.add_argument("app", help="the app directory (made by `freezer build`)")
    parser.add_argument("--db", help=DB_HELP)
    return parser


def upgrade(argv: Sequence[str]) -> int:
    """`freezer db upgrade APP [--db URL]`: migrate the database to this Freezer's revision."""
    args = parser_for(
        "upgrade",
        "Migrate an app's database to the schema revision of this Freezer (a new database is "
        "created at it). Nothing is dropped; a failed upgrade changes nothing.",
    ).parse_args(argv)
    url = database_url(args.db or default_db_url(check_app_dir(args.app)))
    print(f"freezer db upgrade: {schema.describe(url)}", flush=True)
    schema.upgrade_database(url, lambda line: print(f"  {line}", flush=True))
    return 0


def current(argv: Sequence[str]) -> int:
    """`freezer db current APP [--db URL]`: which revision the database is at."""
    args = parser_for(
        "current", "Say which schema revision an app's database is at, and whether it is behind."
    ).parse_args(argv)
    app_dir = check_app_dir(args.app)
    url_text = args.db or default_db_url(app_dir)
    check_sqlite_exists(url_text)
    url = database_url(url_text)
    state = schema.database_state(url)
    where = schema.describe(url)
    if state.current is None:
        print(f"{where}: no Freezer tables yet; `freezer serve` creates them at revision "
              f"{state.head}")
    elif not state.known:
        raise schema.SchemaAheadError(where, state.current, state.head)
    elif state.at_head:
        print(f"{where}: schema revision {state.current} (the newest; this Freezer's)")
    else:
        what = "" if state.stamped else ", not recorded (made before schema versions)"
        print(f"{where}: schema revision {state.current}{what}; behind this Freezer "
              f"({state.head}): {schema.upgrade_advice(args.app, args.db)}")
    return 0


ACTIONS = {
    "upgrade": (upgrade, "Migrate the database to this Freezer's schema revision."),
    "current": (current, "Say which schema revision the database is at."),
}


def usage() -> str:
    lines = [f"  {name:8} {text}" for name, (_, text) in ACTIONS.items()]
    return "usage: freezer db {upgrade,current} APP [--db URL]\n\nactions:\n" + "\n".join(lines)


def db_main(argv: list[str]) -> int:
    """`freezer db ACTION APP [--db URL]`; returns the exit status."""
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    action = ACTIONS.get(argv[0])
    if action is None:
        print(f"freezer db: unknown action {argv[0]!r}; one of: {', '.join(ACTIONS)}",
              file=sys.stderr)
        return 2
    try:
        return action[0](argv[1:])
    except SystemExit as exc:  # argparse: --help, or a bad option
        return exc.code if isinstance(exc.code, int) else 2
    except (RuntimeAppError, ArgumentError, ValueError) as exc:
        print(f"freezer db {argv[0]}: {exc}", file=sys.stderr)
        return 2
