"""Schema versions (runtime.store.schema and its migrations), on a SQLite file and on PostgreSQL.

- The first revision is exactly the schema Freezer made before it had migrations.
- The migrations and the models agree: an `alembic check`-style autogenerate comparison of
  `runtime.store.models` with a database migrated from empty to the head revision finds nothing, so
  a model change without its migration fails here.
- A database from before schema versions keeps every row through an upgrade; a new database is
  created at head and stamped; older or newer ones are refused, changing nothing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, text

from runtime.store import schema
from runtime.store.database import database_url
from runtime.store.models import Base
from runtime.store.store import NewEvent, Store
from tests.store import pre_alembic_schema

pytestmark = pytest.mark.timeout(120)


def connect(url: str) -> Any:
    """A plain engine (no store settings) on the test database."""
    return create_engine(database_url(url))


def create_pre_alembic(url: str) -> None:
    """The tables exactly as Freezer created them before schema versions; no alembic_version."""
    engine = connect(url)
    ddl = pre_alembic_schema.SQLITE if engine.dialect.name == "sqlite" else (
        pre_alembic_schema.POSTGRESQL
    )
    with engine.begin() as connection:
        for statement in ddl:
            connection.exec_driver_sql(statement)
    engine.dispose()


def migrate_from_empty(url: str, revision: str = "head") -> None:
    """Run the migration scripts themselves (not create_all) on an empty database."""
    engine = schema.migration_engine(database_url(url))
    with engine.begin() as connection:
        command.upgrade(schema.alembic_config(connection), revision)
    engine.dispose()


def models_diff(url: str) -> list[Any]:
    """What autogenerate would put in a new migration: the models against the database."""
    engine = connect(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return list(diff)


def described(connection: Connection) -> dict[str, Any]:
    """Every Freezer table's columns, keys and indexes, in comparable form."""
    found = inspect(connection)
    tables: dict[str, Any] = {}
    for name in sorted(set(found.get_table_names()) - {"alembic_version"}):
        tables[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(name)
            ],
            "pk": found.get_pk_constraint(name)["constrained_columns"],
            "fks": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"],
                 tuple(fk["referred_columns"]), (fk.get("options") or {}).get("ondelete"))
                for fk in found.get_foreign_keys(name)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in found.get_indexes(name)
            ),
            "uniques": sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(name)),
        }
    return tables


def describe_url(url: str) -> dict[str, Any]:
    engine = connect(url)
    with engine.connect() as connection:
        result = described(connection)
    engine.dispose()
    return result


def version_rows(url: str) -> list[str]:
    engine = connect(url)
    with engine.connect() as connection:
        result: list[str] = []
        if inspect(connection).has_table("alembic_version"):
            query = text("SELECT version_num FROM alembic_version")
            result = list(connection.execute(query).scalars())
    engine.dispose()
    return result


def drop_version_table(url: str) -> None:
    engine = connect(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()


def set_version(url: str, revision: str) -> None:
    engine = connect(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_the_first_revision_is_the_schema_made_before_versions(db_url: str) -> None:
    migrate_from_empty(db_url, schema.FIRST_REVISION)
    migrated = describe_url(db_url)
    # the same database kind, empty again, built from the frozen statements of the old code
    engine = connect(db_url)
    with engine.begin() as connection:
        for table in ("alembic_version", "results", "stages", "events", "runs", "users", "apps"):
            connection.exec_driver_sql(f"DROP TABLE {table}")
    engine.dispose()
    create_pre_alembic(db_url)
    assert describe_url(db_url) == migrated
    assert set(migrated) == {"apps", "users", "runs", "events", "stages", "results"}


def test_the_migrations_match_the_models(db_url: str) -> None:
    migrate_from_empty(db_url)
    assert version_rows(db_url) == [schema.head_revision()]
    assert models_diff(db_url) == []


async def test_a_new_database_is_created_at_head_and_stamped(db_url: str) -> None:
    store = await Store.open(db_url)
    await store.close()
    assert version_rows(db_url) == [schema.head_revision()]
    assert models_diff(db_url) == []
    store = await Store.open(db_url)  # and opens again as it is
    await store.close()


async def fill(url: str) -> str:
    """A run with an event, a stage and a result, written through the store."""
    from tests.store.conftest import make_manifest

    store = await Store.open(url)
    try:
        manifest = make_manifest()
        await store.ensure_app(manifest)
        user = await store.get_or_create_user("ada")
        run = await store.create_run(manifest.app_id, user.id, 7, {"k": 1})
        await store.append_events([NewEvent(run.id, "comm_msg", 3, {"method": "update"})])
        await store.record_runner_event(run.id, {"event": "stage_started", "stage": 0})
        await store.record_runner_event(
            run.id, {"event": "collected", "name": "threshold", "value": 0.5, "stage": 0}
        )
        return run.id
    finally:
        await store.close()


def fill_first_revision(url: str) -> str:
    """The rows `fill` writes, inserted with SQL into tables at the first revision (today's
    store refuses a database at an older revision than its own)."""
    from tests.store.conftest import make_manifest

    manifest = make_manifest()
    at = "2026-01-01 00:00:00"
    engine = connect(url)
    with engine.begin() as connection:
        rows: list[tuple[str, dict[str, Any]]] = [
            ("INSERT INTO apps VALUES (:id, :title, :manifest, :at)",
             {"id": manifest.app_id, "title": manifest.title,
              "manifest": json.dumps(manifest.to_json())}),
            ("INSERT INTO users (name, token_hash, is_admin, created_at) "
             "VALUES ('ada', NULL, false, :at)", {}),
            ("INSERT INTO runs VALUES ('run1', :app, (SELECT id FROM users WHERE name = 'ada'), "
             "'active', 0, 7, :params, :at, :at, NULL)",
             {"app": manifest.app_id, "params": json.dumps({"k": 1})}),
            ("INSERT INTO events VALUES ('run1', 1, :at, 'comm_msg', 3, :payload, :empty)",
             {"payload": json.dumps({"method": "update"}), "empty": b""}),
            ("INSERT INTO events VALUES ('run1', 2, :at, 'stage_started', NULL, :payload, "
             ":empty)", {"payload": json.dumps({"event": "stage_started", "stage": 0}),
                         "empty": b""}),
            ("INSERT INTO stages VALUES ('run1', 0, 'running', :at, NULL, NULL, NULL, NULL)", {}),
            ("INSERT INTO results VALUES ('run1', 'threshold', :value, 0, :at)",
             {"value": json.dumps(0.5)}),
        ]
        for statement, values in rows:
            connection.execute(text(statement), {"at": at, **values})
    engine.dispose()
    return "run1"


async def test_a_database_from_before_versions_is_refused_then_upgraded_keeping_its_rows(
    db_url: str,
) -> None:
    create_pre_alembic(db_url)
    run_id = fill_first_revision(db_url)  # rows as the store wrote them then
    with pytest.raises(schema.SchemaBehindError, match="before Freezer versioned its schema"):
        await Store.open(db_url)
    assert version_rows(db_url) == []  # refusing changed nothing

    lines: list[str] = []
    state = schema.upgrade_database(database_url(db_url), lines.append)
    assert state.at_head
    assert lines[0] == f"made before schema versions: recorded as revision {schema.FIRST_REVISION}"
    assert lines[-1] == f"now at schema revision {schema.head_revision()}"
    assert version_rows(db_url) == [schema.head_revision()]
    assert models_diff(db_url) == []

    store = await Store.open(db_url)
    try:
        run = await store.get_run(run_id)
        assert run is not None and run.params == {"k": 1}
        assert [e.payload for e in await store.events(run_id)][0] == {"method": "update"}
        assert [s.status for s in await store.stages(run_id)] == ["running"]
        assert [(r.name, r.value) for r in await store.results(run_id)] == [("threshold", 0.5)]
        # the tables of the later revisions work on the upgraded database
        await store.queue_open("faces", ["a", "b"], batch=1, overlap=1)
        assert await store.queue_claim("faces", run_id) == ["a"]
    finally:
        await store.close()
    again: list[str] = []
    schema.upgrade_database(database_url(db_url), again.append)
    assert again == [f"already at schema revision {schema.head_revision()} (the newest)"]


def command_stamp(url: str, revision: str) -> None:
    engine = connect(url)
    with engine.begin() as connection:
        command.stamp(schema.alembic_config(connection), revision)
    engine.dispose()


async def test_an_older_revision_is_refused_and_a_newer_one_too(db_url: str) -> None:
    store = await Store.open(db_url)
    await store.close()
    set_version(db_url, "ffff0000")
    with pytest.raises(schema.SchemaAheadError, match="schema revision ffff0000, which this "
                       "Freezer .* does not know: it was upgraded by a newer Freezer"):
        await Store.open(db_url)
    with pytest.raises(schema.SchemaAheadError):
        schema.upgrade_database(database_url(db_url))
    assert version_rows(db_url) == ["ffff0000"]


def test_a_failed_upgrade_changes_nothing(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    create_pre_alembic(db_url)

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise schema.SchemaError("migration failed")

    monkeypatch.setattr(schema.command, "upgrade", broken)
    with pytest.raises(schema.SchemaError, match="migration failed"):
        schema.upgrade_database(database_url(db_url))
    assert version_rows(db_url) == []  # the stamp was rolled back with it


LATER = "9001"
LATER_REVISION = '''"""Widen runs.status and add runs.note.

On SQLite the type change copies the table (batch mode) and drops the old one.
"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch.alter_column("status", type_=sa.String(32), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("status", type_=sa.String(16), existing_nullable=False)
        batch.drop_column("note")
'''


@pytest.fixture
def later_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Call it to make this Freezer's migrations end at a revision 9001 that rebuilds `runs`."""

    def install() -> None:
        location = tmp_path / "migrations"
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(schema.SCRIPT_LOCATION, location, ignore=ignore)
        later = LATER_REVISION.replace("{head}", schema.head_revision())
        (location / "versions" / "9001_widen_status.py").write_text(later)
        monkeypatch.setattr(schema, "SCRIPT_LOCATION", location)
        schema.scripts.cache_clear()

    try:
        yield install
    finally:
        schema.scripts.cache_clear()


async def count_rows(url: str, run_id: str) -> tuple[int, int, int]:
    store = await Store.open(url)
    try:
        events, stages = await store.events(run_id), await store.stages(run_id)
        return len(events), len(stages), len(await store.results(run_id))
    finally:
        await store.close()


async def test_a_later_migration_keeps_every_row_of_a_rebuilt_table(
    db_url: str, later_revision: Any
) -> None:
    run_id = await fill(db_url)
    counts = await count_rows(db_url, run_id)
    assert counts == (3, 1, 1)
    head = schema.head_revision()
    later_revision()
    with pytest.raises(schema.SchemaBehindError, match=f"is at schema revision {head}, older "
                       rf"than this Freezer \({LATER}\)"):
        await Store.open(db_url)
    lines: list[str] = []
    schema.upgrade_database(database_url(db_url), lines.append)
    assert lines == [
        f"{head} -> {LATER}: Widen runs.status and add runs.note.",
        f"now at schema revision {LATER}",
    ]
    assert version_rows(db_url) == [LATER]
    # the rows that point at the rebuilt runs table are all there (with foreign keys on,
    # SQLite would have deleted them with the old table)
    assert await count_rows(db_url, run_id) == counts
    engine = connect(db_url)
    with engine.connect() as connection:
        columns = {c["name"]: c for c in inspect(connection).get_columns("runs")}
    engine.dispose()
    assert "note" in columns and "32" in str(columns["status"]["type"])


async def test_servers_starting_together_on_a_new_database_create_it_once(db_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(db_url) for _ in range(6)))
    for store in stores:
        await store.close()
    assert version_rows(db_url) == [schema.head_revision()]
    assert models_diff(db_url) == []


async def test_a_database_at_the_first_revision_gains_the_work_queue_keeping_its_rows(
    db_url: str,
) -> None:
    migrate_from_empty(db_url, schema.FIRST_REVISION)
    run_id = fill_first_revision(db_url)
    lines: list[str] = []
    schema.upgrade_database(database_url(db_url), lines.append)
    assert lines[0] == "0001 -> 0002: Add the work queue: queues, queue_items, queue_claims, " \
        "queue_answers."
    assert models_diff(db_url) == []
    store = await Store.open(db_url)
    try:
        assert [e.seq for e in await store.events(run_id)] == [1, 2]
        await store.queue_open("faces", [1, 2], batch=2, overlap=1)
        assert await store.queue_claim("faces", run_id) == [1, 2]
    finally:
        await store.close()
