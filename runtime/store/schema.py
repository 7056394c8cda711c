"""The store's schema versions (Alembic): which revision a database is at, and upgrading it.

The migrations are in `runtime/store/migrations/` (`versions/0001_initial.py` is the schema Freezer
created before it had migrations). Alembic runs programmatically, on a connection this module
opens, inside one transaction: an upgrade that fails leaves the database as it was.

- :func:`ensure_schema` (every `Store.open`): a database without Freezer's tables is created at
  the head revision and stamped; one at the head revision is used as it is; any other stops
  with :class:`SchemaBehindError` or :class:`SchemaAheadError`. Nothing is ever dropped.
- :func:`upgrade_database` (`freezer db upgrade`, `freezer serve --upgrade-db`) migrates to the
  head revision. A database made before schema versions (Freezer's tables, no
  `alembic_version`) is stamped as the first revision first.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from runtime.errors import StoreError
from runtime.store.models import Base

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
"""The revision of a database made before schema versions (its tables, no `alembic_version`)."""

Progress = Callable[[str], None]


class SchemaError(StoreError):
    """The database's schema revision is not the one this Freezer uses; one line."""


class SchemaBehindError(SchemaError):
    """The database is at an older revision than the code: `freezer db upgrade` migrates it."""

    def __init__(self, where: str, current: str, head: str, stamped: bool) -> None:
        self.where, self.current, self.head, self.stamped = where, current, head, stamped
        if stamped:
            text = f"is at schema revision {current}, older than this Freezer ({head})"
        else:
            text = (f"was made before Freezer versioned its schema (revision {current}, not "
                    f"recorded); this Freezer is at {head}")
        super().__init__(f"the database at {where} {text}")


class SchemaAheadError(SchemaError):
    """The database was migrated by a newer Freezer: this code does not know its revision."""

    def __init__(self, where: str, current: str, head: str) -> None:
        self.where, self.current, self.head = where, current, head
        super().__init__(
            f"the database at {where} is at schema revision {current}, which this Freezer "
            f"(schema {head}) does not know: it was upgraded by a newer Freezer; serve it "
            "with that version"
        )


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: `current` is None when it has no Freezer tables yet."""

    current: str | None
    head: str
    stamped: bool  # has an `alembic_version` row
    known: bool  # `current` is a revision of this code (or None)

    @property
    def at_head(self) -> bool:
        return self.stamped and self.current == self.head


def alembic_config(
    connection: Connection | None = None, progress: Progress | None = None
) -> Config:
    """An Alembic configuration for the store's migrations, without any `alembic.ini`."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    if progress is not None:
        config.attributes["on_version_apply"] = functools.partial(_report_step, progress)
    return config


def _report_step(progress: Progress, *_args: Any, step: Any, **_kwargs: Any) -> None:
    arrow = "->" if step.is_upgrade else "<-"
    old = ", ".join(step.source_revision_ids) or "empty"
    new = ", ".join(step.destination_revision_ids) or "empty"
    doc = (step.up_revision.doc or "").strip().splitlines()
    progress(f"{old} {arrow} {new}: {doc[0] if doc else 'migrated'}")


@functools.cache
def scripts() -> ScriptDirectory:
    """The migration scripts (read once per process)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The revision this code's models are at."""
    head = scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise SchemaError(f"{SCRIPT_LOCATION}: no migrations")
    return head


def is_known(revision: str) -> bool:
    """Whether `revision` is one of this code's migrations."""
    try:
        return scripts().get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for unknown or ambiguous ids
        return False


def read_state(connection: Connection) -> SchemaState:
    """The schema revision of the database `connection` is on; reads only."""
    head = head_revision()
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None:
        return SchemaState(current, head, stamped=True, known=is_known(current))
    names = set(inspect(connection).get_table_names())
    if names & set(Base.metadata.tables):
        return SchemaState(FIRST_REVISION, head, stamped=False, known=True)
    return SchemaState(None, head, stamped=False, known=True)


def lock_schema(connection: Connection) -> None:
    """On PostgreSQL, serialise creating and upgrading the schema between processes (until the
    transaction ends). SQLite's `BEGIN IMMEDIATE` already does."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema()))"))


def create_at_head(connection: Connection) -> None:
    """Create every table of a database that has none and stamp it at the head revision."""
    Base.metadata.create_all(connection)
    command.stamp(alembic_config(connection), "head")


def ensure_schema(connection: Connection, where: str) -> SchemaState:
    """Inside a writing transaction: create a new database at head, accept one at head, or
    raise :class:`SchemaBehindError` / :class:`SchemaAheadError` (changing nothing)."""
    lock_schema(connection)
    state = read_state(connection)
    if state.current is None:
        create_at_head(connection)
        return SchemaState(state.head, state.head, stamped=True, known=True)
    if not state.known:
        raise SchemaAheadError(where, state.current, state.head)
    if not state.at_head:
        raise SchemaBehindError(where, state.current, state.head, state.stamped)
    return state


def migrate(connection: Connection, where: str, progress: Progress) -> SchemaState:
    """Inside a writing transaction: bring the database to the head revision."""
    lock_schema(connection)
    state = read_state(connection)
    if state.current is None:
        create_at_head(connection)
        progress(f"created the tables at schema revision {state.head}")
    elif not state.known:
        raise SchemaAheadError(where, state.current, state.head)
    elif state.at_head:
        progress(f"already at schema revision {state.head} (the newest)")
    else:
        if not state.stamped:
            command.stamp(alembic_config(connection), FIRST_REVISION)
            progress(f"made before schema versions: recorded as revision {FIRST_REVISION}")
        command.upgrade(alembic_config(connection, progress), "head")
        check_foreign_keys(connection)
        progress(f"now at schema revision {state.head}")
    return SchemaState(state.head, state.head, stamped=True, known=True)


def check_foreign_keys(connection: Connection) -> None:
    """SQLite migrates with foreign keys off (see :func:`migration_engine`): refuse to commit a
    migration that left a row pointing at nothing."""
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise SchemaError(f"the migration left {len(broken)} rows without their parent "
                              f"(first in table {broken[0][0]}); nothing was changed")


def migration_engine(url: URL) -> Engine:
    """An engine for migrating: on SQLite one transaction with `BEGIN IMMEDIATE` and foreign
    keys off, since a batch migration copies a table and drops the old one, which with foreign
    keys on would delete (cascade) the rows that point at it."""
    engine = create_database_engine(url)
    if engine.dialect.name == "sqlite":

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA busy_timeout=30000")
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")

        def on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", on_begin)
    return engine


def create_database_engine(url: URL) -> Engine:
    """An engine for `url`, or a one-line :class:`StoreError` (unknown driver, missing
    psycopg, malformed URL)."""
    try:
        return create_engine(url)
    except (ImportError, SQLAlchemyError, ValueError) as exc:
        missing = isinstance(exc, ImportError) and "psycopg" in str(exc)
        hint = " (pip install 'freezer[postgresql]')" if missing else ""
        cause = first_line(exc)
        raise StoreError(f"cannot use database URL {describe(url)}: {cause}{hint}") from exc


def describe(url: URL) -> str:
    """The database as the messages name it: a SQLite file's path, else the URL without its
    password."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return str(url.database)
    return url.render_as_string(hide_password=True)


def upgrade_database(url: URL, progress: Progress = lambda line: None) -> SchemaState:
    """Migrate the database at `url` to the head revision (creating it when it has no tables);
    a :class:`SchemaError` or :class:`StoreError` (one line) when it cannot."""
    engine = migration_engine(url)
    try:
        with engine.begin() as connection:
            return migrate(connection, describe(url), progress)
    except SQLAlchemyError as exc:
        where = describe(url)
        raise StoreError(f"cannot upgrade the database at {where}: {first_line(exc)}") from exc
    finally:
        engine.dispose()


def database_state(url: URL) -> SchemaState:
    """The revision of the database at `url` (reads only; creates nothing)."""
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            return read_state(connection)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the database at {describe(url)}: {first_line(exc)}") from exc
    finally:
        engine.dispose()


def upgrade_advice(app: str, db: str | None, command: str = "") -> str:
    """What to run to migrate this app's database: `run 'freezer db upgrade APP'...`."""
    words = ["freezer", "db", "upgrade", app]
    if db:
        words += ["--db", without_password(db)]
    advice = "run '" + " ".join(map(double_quoted, words)) + "'"
    return f"{advice} (or {command})" if command else advice


def without_password(db: str) -> str:
    """A database URL as given, its password (if any) replaced by `***`."""
    try:
        url = make_url(db)
    except ArgumentError:
        return db
    return db if url.password is None else url.render_as_string(hide_password=True)


def double_quoted(word: str) -> str:
    """A shell word, in double quotes when it needs quoting (the advice is in single quotes)."""
    if word and shlex.quote(word) == word:
        return word
    escaped = "".join("\\" + c if c in '"$`\\' else c for c in word)
    return f'"{escaped}"'


def first_line(exc: BaseException) -> str:
    """The first line of a driver error (they run to many lines)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
