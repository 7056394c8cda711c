"""Databases and app directories made by older Freezers are upgraded, served, and their runs go on.

The fixtures in `tests/store/fixtures/` were made by the real code of older commits (see
`fixtures/make_old_databases.py`): that commit's `freezer build` built a three-stage notebook,
its `freezer serve --auth name` served it, and a person started a run, set `number` to 12 and
pressed Next, on the app's SQLite file and on a PostgreSQL schema (kept as a dump).

- `pre-versions`: from before the schema was versioned (no `alembic_version`). Today's server
  refuses it in one line; after `freezer db upgrade` it is at the newest revision and serves.
- `revision-0001`: the last Freezer at schema revision 0001, before the work queue's tables
  (0002); refused the same way, upgraded with `freezer db upgrade`.
- `layout`: from before the runtime became packages (revision 0002, before the queue items'
  counts of 0003); refused the same way, served with `freezer serve --upgrade-db`.

Every way the app directory is served as that `freezer build` wrote it (its `app.ipynb` starts
with `from runtime import runner`), and the same person, signed in again by name, finishes the
run they started there: offset 3, Next, `total=15`. The journal the old server wrote is kept
event for event and the new events follow it; results, snapshots and status are right.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from runtime.store import schema
from runtime.store.database import database_url
from runtime.store.models import Event, EventRecord, to_event
from runtime.store.store import Store
from tests.faults.harness import act, click_next, has_slider, shows, slider, text
from tests.store.test_schema import create_pre_alembic, describe_url, models_diff, version_rows
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import free_port, start_server

pytestmark = pytest.mark.timeout(300)
FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA_PLACEHOLDER = "__SCHEMA__"
TIMEOUT = 60.0
OLD_EVENTS = 8  # hello; stage 0 started, ready; number = 12; Next; 0 finished; 1 started, ready


def freezer(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run today's `freezer` command line to its end."""
    return subprocess.run(
        [sys.executable, "-m", "freezer", *args], cwd=cwd, capture_output=True, text=True,
        timeout=60, check=False,
    )


def restore(fixture: Path, db_url: str) -> str:
    """The fixture's database for the test, as the old server left it: its SQLite file copied
    to where `db_url` points, or its PostgreSQL dump loaded into the test's own schema."""
    if db_url.startswith("sqlite:///"):
        shutil.copyfile(fixture / "app" / "freezer.db", db_url.removeprefix("sqlite:///"))
        return "sqlite"
    import psycopg

    from tests.store.conftest import PG_SERVER

    found = re.search(r"search_path%3D(\w+)", db_url)
    assert found, db_url
    dump = (fixture / "postgresql.sql").read_text().replace(SCHEMA_PLACEHOLDER, found[1])
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(dump.encode())  # many statements, no parameters: one simple query
    return "postgresql"


async def read_run(db_url: str, run_id: str) -> tuple[list[Event], dict[str, Any]]:
    """A run's journal and its export row, read with today's store."""
    store = await Store.open(db_url)
    try:
        rows = [row for row in await store.export_rows() if row["run_id"] == run_id]
        return await store.events(run_id), rows[0]
    finally:
        await store.close()


async def is_finished(store: Store, run_id: str) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status == "finished"


def journal_as_stored(events: list[Event]) -> list[tuple[int, str, Any]]:
    return [(e.seq, e.kind, e.payload) for e in events]


async def finish_the_run(base_url: str, person_name: str, run_path: str) -> None:
    """The person signs in again and opens their run: stage 2 as they left it, with stage 1's
    choice; offset 3, Next, and the last stage shows the total. Then they start a new run."""
    async with Person(base_url) as person:
        await person.login(name=person_name, follow_redirects=False)
        page = await person.open(run_path.lstrip("/"))
        await page.wait_for(has_slider("offset"), TIMEOUT, "stage 2's slider")
        await page.wait_for(shows("number is 12"), TIMEOUT, "stage 2's output")
        assert page.value(slider(page, "number")) == 12
        assert "total=" not in text(page)
        await act(page, await page.set_value(slider(page, "offset"), 3))
        await click_next(page)
        await page.wait_for(shows("total=15"), TIMEOUT, "total=15")
        # a new run executes the old app.ipynb itself (`from runtime import runner`): a run
        # that goes on is rebuilt by the server's own code instead
        fresh = await person.open("new")
        await fresh.wait_for(has_slider("number"), TIMEOUT, "a new run's first stage")
        assert fresh.value(slider(fresh, "number")) == 5


REVISIONS = {"pre-versions": [], "revision-0001": ["0001"], "layout": ["0002"]}
"""Each fixture's `alembic_version` rows, as its Freezer left them."""
REFUSED = {
    "pre-versions": "was made before Freezer versioned its schema (revision 0001, not recorded)",
    **{name: f"is at schema revision {revision}, older than this Freezer "
             f"({schema.head_revision()})"
       for name, revision in (("revision-0001", "0001"), ("layout", "0002"))},
}
"""What today's `freezer serve` says of a fixture older than its schema (every one is now)."""
REPLAYED = {
    "pre-versions": [("stage_started", 0), ("stage_ready", 0), ("stage_finished", 0),
                     ("stage_started", 1), ("stage_ready", 1)],
    "revision-0001": [],
    "layout": [],
}
"""What the replay in today's kernel stores of each fixture's journal (see the test)."""

CASES = [
    ("pre-versions", "freezer db upgrade"),
    ("revision-0001", "freezer db upgrade"),
    ("layout", "serve --upgrade-db"),
]
"""Each fixture once, each way of upgrading at least once on each database (a database from
before versions served with `--upgrade-db` is `test_schema_serve`'s)."""


@pytest.mark.parametrize(("name", "how"), CASES, ids=[f"{n}, {h}" for n, h in CASES])
async def test_a_run_started_by_an_older_freezer_goes_on_after_the_upgrade(
    db_url: str, tmp_path: Path, name: str, how: str
) -> None:
    fixture = FIXTURES / name
    made = json.loads((fixture / "runs.json").read_text())
    app_dir = tmp_path / "app"
    shutil.copytree(fixture / "app", app_dir)
    assert "from runtime import runner" in (app_dir / "app.ipynb").read_text()  # as built then
    kind = restore(fixture, db_url)
    person, run_path = made[kind]["person"], made[kind]["run_path"]
    run_id = run_path.rsplit("/", 1)[-1]
    before = version_rows(db_url)
    old_journal = journal_as_stored(read_journal_as_left(db_url, run_id))
    assert len(old_journal) == OLD_EVENTS, old_journal

    assert before == REVISIONS[name]
    extra: tuple[str, ...] = ()
    if name in REFUSED:
        refused = freezer(
            "serve", str(app_dir), "--db", db_url, "--no-browser", "--pool-size", "0",
            "--port", str(free_port()), cwd=tmp_path,
        )
        assert refused.returncode == 2, refused.stderr
        last = refused.stderr.strip().splitlines()[-1]
        assert REFUSED[name] in last, last
        assert f"run 'freezer db upgrade {app_dir} --db " in last, last
        if how == "freezer db upgrade":
            upgraded = freezer("db", "upgrade", str(app_dir), "--db", db_url, cwd=tmp_path)
            assert upgraded.returncode == 0, upgraded.stderr
            assert upgraded.stdout.splitlines()[-1] == (
                f"  now at schema revision {schema.head_revision()}"
            )
            assert version_rows(db_url) == [schema.head_revision()]
        else:
            extra = ("--upgrade-db",)
    else:
        assert before == [schema.head_revision()]  # nothing to upgrade
        current = freezer("db", "current", str(app_dir), "--db", db_url, cwd=tmp_path)
        assert current.returncode == 0, current.stderr
        assert "(the newest; this Freezer's)" in current.stdout

    server = await asyncio.to_thread(
        start_server, app_dir, "--db", db_url, "--auth", "name", "--pool-size", "0", *extra
    )
    try:
        await finish_the_run(server.base_url, person, run_path)
        store = await Store.open(db_url)
        try:  # the last stage's report reaches the database after its output the page
            await eventually(lambda: is_finished(store, run_id), "the run finished")
        finally:
            await store.close()
    finally:
        server.stop()

    assert version_rows(db_url) == [schema.head_revision()]
    assert models_diff(db_url) == []
    events, row = await read_run(db_url, run_id)
    journal = journal_as_stored(events)
    assert journal[:OLD_EVENTS] == old_journal  # the old server's events, kept as they were
    assert [seq for seq, _, _ in journal] == list(range(1, len(journal) + 1))
    added = journal[OLD_EVENTS:]
    # Today's kernel rebuilds the run from its journal. The layout-era journal has stage digests:
    # the replay compares its reports with them and stores none. The older one has none: the
    # replay stores what it reports, as Freezer always did (runtime.runs.replay). Then come the
    # person's offset and Next, and the last stage, which collects the total.
    replayed = REPLAYED[name]
    assert [kind for _, kind, _ in added] == [
        "hello", *[kind for kind, _ in replayed], "comm_msg", "comm_msg", "stage_finished",
        "stage_started", "collected", "stage_ready", "finished",
    ], added
    for (_, _, payload), (kind, stage) in zip(added[1:], replayed, strict=False):
        assert (payload["event"], payload["stage"]) == (kind, stage)
        assert kind != "stage_finished" or payload["snapshot"] == {"number": 12}
    person_part = [payload for _, _, payload in added[1 + len(replayed):]]
    assert person_part[0] == {"method": "update", "state": {"value": 3}, "buffer_paths": []}
    assert person_part[1] == {"method": "custom", "content": {"event": "click"}}
    assert person_part[2]["snapshot"] == {"offset": 3}
    assert person_part[4] == {"event": "collected", "stage": 2, "name": "total", "value": 15}
    assert row["user"] == person
    assert row["status"] == "finished", row
    assert row["results"] == {"total": 15}
    assert row["snapshots"] == {"0": {"number": 12}, "1": {"offset": 3}}
    assert [row[f"stage_{i}_status"] for i in range(3)] == ["finished", "finished", "ready"]


def read_journal_as_left(db_url: str, run_id: str) -> list[Event]:
    """A run's journal before any upgrade (today's store would refuse an old database)."""
    engine = create_engine(database_url(db_url))
    try:
        with Session(engine) as session:
            query = select(EventRecord).where(EventRecord.run_id == run_id)
            return [to_event(row) for row in session.scalars(query.order_by(EventRecord.seq))]
    finally:
        engine.dispose()


def test_the_frozen_pre_version_statements_are_what_the_old_freezer_made(
    db_url: str, tmp_path: Path
) -> None:
    # tests/store/pre_alembic_schema.py was written down by hand: the old code's own database
    # has exactly its tables, columns, keys and indexes
    restore(FIXTURES / "pre-versions", db_url)
    made_by_old_code = describe_url(db_url)
    fresh = f"sqlite:///{tmp_path / 'frozen.db'}" if db_url.startswith("sqlite") else None
    if fresh is None:  # PostgreSQL: the same schema, emptied, then the frozen statements
        engine = create_engine(database_url(db_url))
        with engine.begin() as connection:
            for table in ("results", "stages", "events", "runs", "users", "apps"):
                connection.execute(sql(f"DROP TABLE {table}"))
        engine.dispose()
        fresh = db_url
    create_pre_alembic(fresh)
    assert describe_url(fresh) == made_by_old_code
