"""A real `freezer serve` on a database from before schema versions, on SQLite and PostgreSQL.

The database has the tables exactly as Freezer created them before it had migrations (the
frozen statements of `pre_alembic_schema`) and a run a person started on a real server. Serving
it stops with one line naming the command to run; after `freezer db upgrade` (or with
`--upgrade-db`) it serves, and the person's run continues where it was.

Today's server refuses a database at an older revision, so the person's run is made on a real
server with a database of its own (SQLite), and its rows are copied with plain SQL into the
tables of the old database: the rows a real server wrote, in tables exactly as they were then.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy import text as sql

from runtime.store import schema
from runtime.store.database import database_url
from runtime.store.models import Base
from tests.faults.harness import act, click_next, has_slider, shows, slider, text
from tests.server.conftest import write_app
from tests.store.test_schema import (
    create_pre_alembic,
    models_diff,
    set_version,
    version_rows,
)
from tests.support.person import Person
from tests.support.processes import ServerProcess, free_port, start_server

pytestmark = pytest.mark.timeout(300)
TIMEOUT = 60.0

STAGES = (
    (
        "Pick a number",
        "import ipywidgets as widgets\n"
        "number = widgets.IntSlider(value=5, min=0, max=100, description='number')\n"
        "number",
        ("number",),
    ),
    (
        "Pick an offset",
        "offset = widgets.IntSlider(value=0, min=0, max=10, description='offset')\n"
        "print(f'number is {number.value}')\n"
        "offset",
        ("offset",),
    ),
    ("Result", "total = number.value + offset.value\nprint(f'total={total}')", ()),
)


def freezer(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the `freezer` command line to its end."""
    return subprocess.run(
        [sys.executable, "-m", "freezer", *args], cwd=cwd, capture_output=True, text=True,
        timeout=60, check=False,
    )


FIRST_REVISION_TABLES = ("apps", "users", "runs", "events", "stages", "results")


def copy_first_revision_rows(source: str, target: str) -> None:
    """Every row of the first revision's tables, from one database into another's."""
    reading, writing = create_engine(database_url(source)), create_engine(database_url(target))
    with reading.connect() as src, writing.begin() as dst:
        for name in FIRST_REVISION_TABLES:
            table = Base.metadata.tables[name]
            rows = [dict(row._mapping) for row in src.execute(select(table))]
            if rows:
                dst.execute(table.insert(), rows)
        if writing.dialect.name == "postgresql":  # the ids were given, not drawn
            dst.execute(sql("SELECT setval(pg_get_serial_sequence('users', 'id'), "
                             "(SELECT MAX(id) FROM users))"))
    reading.dispose()
    writing.dispose()


async def start_a_run(app_dir: Path, db_url: str) -> tuple[str, dict[str, str]]:
    """A person on a real server picks 12, goes on, picks 3; returns the run's page path and
    the person's cookies (their identity)."""
    server = await asyncio.to_thread(start_server, app_dir, "--db", db_url, "--pool-size", "0")
    try:
        async with Person(server.base_url) as person:
            page = await person.open("")
            await page.wait_for(has_slider("number"), TIMEOUT)
            await act(page, await page.set_value(slider(page, "number"), 12))
            await click_next(page)
            await page.wait_for(has_slider("offset"), TIMEOUT)
            await act(page, await page.set_value(slider(page, "offset"), 3))
            await page.wait_for(shows("number is 12"), TIMEOUT, "stage 1 output")
            # the next server listens on another port
            return urlsplit(page.page.url).path.lstrip("/"), person.cookies.as_dict()
    finally:
        server.stop()


UPGRADES = [("sqlite", "serve --upgrade-db"), ("postgresql", "freezer db upgrade")]
"""Each way of upgrading on one database: the other pairs are the old-database tests' (the
fixtures an older Freezer made, in `test_old_databases`), which take both ways on both."""


@pytest.mark.parametrize(("db_url", "how"), UPGRADES, indirect=["db_url"],
                         ids=[f"{db}-{how}" for db, how in UPGRADES])
async def test_a_database_from_before_versions_is_upgraded_and_its_run_continues(
    db_url: str, tmp_path: Path, how: str
) -> None:
    app_dir = write_app(tmp_path / "app", STAGES)
    made_by_server = f"sqlite:///{tmp_path / 'made-by-server.db'}"
    run_path, cookies = await start_a_run(app_dir, made_by_server)
    create_pre_alembic(db_url)  # as Freezer left it before schema versions
    copy_first_revision_rows(made_by_server, db_url)

    refused = freezer(
        "serve", str(app_dir), "--db", db_url, "--no-browser", "--pool-size", "0",
        "--port", str(free_port()), cwd=tmp_path,
    )
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("freezer serve: the database at ")
    assert "was made before Freezer versioned its schema (revision 0001, not recorded)" in last
    advice = schema.upgrade_advice(str(app_dir), db_url, "serve with --upgrade-db")
    assert advice.startswith(f"run 'freezer db upgrade {app_dir} --db ")
    assert last.endswith(f"; {advice}"), last
    for command in ("runs", "export"):
        listed = freezer(command, str(app_dir), "--db", db_url, cwd=tmp_path)
        assert listed.returncode == 2, listed.stderr
        assert listed.stderr.splitlines() == [
            f"freezer {command}: {last.split(': ', 1)[1].split('; run ')[0]}; "
            + schema.upgrade_advice(str(app_dir), db_url)
        ]
    assert version_rows(db_url) == []

    current = freezer("db", "current", str(app_dir), "--db", db_url, cwd=tmp_path)
    assert current.returncode == 0, current.stderr
    assert "schema revision 0001, not recorded" in current.stdout
    assert "behind this Freezer" in current.stdout

    extra: tuple[str, ...] = ()
    if how == "freezer db upgrade":
        upgraded = freezer("db", "upgrade", str(app_dir), "--db", db_url, cwd=tmp_path)
        assert upgraded.returncode == 0, upgraded.stderr
        assert upgraded.stdout.splitlines()[1:] == [
            "  made before schema versions: recorded as revision 0001",
            "  0001 -> 0002: Add the work queue: queues, queue_items, queue_claims, "
            "queue_answers.",
            "  0002 -> 0003: Keep each work-queue item's counts: answer_count, claim_count, "
            "free_places.",
            f"  now at schema revision {schema.head_revision()}",
        ]
    else:
        extra = ("--upgrade-db",)
    server = await asyncio.to_thread(
        start_server, app_dir, "--db", db_url, "--pool-size", "0", *extra
    )
    try:
        await continue_the_run(server, run_path, cookies)
    finally:
        server.stop()
    assert version_rows(db_url) == [schema.head_revision()]
    assert models_diff(db_url) == []
    current = freezer("db", "current", str(app_dir), "--db", db_url, cwd=tmp_path)
    assert "(the newest; this Freezer's)" in current.stdout


async def continue_the_run(
    server: ServerProcess, run_path: str, cookies: dict[str, str]
) -> None:
    """The person reloads the run page: stage 1 as they left it; Next finishes the run."""
    async with Person(server.base_url, cookies=cookies) as person:
        page = await person.open(run_path)
        await page.wait_for(shows("number is 12"), TIMEOUT, "stage 1 output")
        assert page.value(slider(page, "number")) == 12
        assert page.value(slider(page, "offset")) == 3
        assert "total=" not in text(page)
        await click_next(page)
        await page.wait_for(shows("total=15"), TIMEOUT, "total=15")


def test_a_database_newer_than_this_freezer_is_refused(db_url: str, tmp_path: Path) -> None:
    app_dir = write_app(tmp_path / "app", STAGES)
    upgraded = freezer("db", "upgrade", str(app_dir), "--db", db_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.splitlines()[1:] == [
        f"  created the tables at schema revision {schema.head_revision()}"
    ]
    set_version(db_url, "ffff0000")
    serve = ("serve", "--no-browser", "--pool-size", "0", "--port", str(free_port()))
    for args in (serve, ("db", "upgrade"), ("db", "current"), ("runs",)):
        done = freezer(*command_line(args, app_dir, db_url), cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert "is at schema revision ffff0000, which this Freezer" in last, (args, last)
        assert "upgraded by a newer Freezer" in last
    assert version_rows(db_url) == ["ffff0000"]


def command_line(args: tuple[str, ...], app_dir: Path, db_url: str) -> list[str]:
    """`freezer CMD [ACTION] APP --db URL [options]`."""
    if args[0] == "db":
        return [*args, str(app_dir), "--db", db_url]
    return [args[0], str(app_dir), "--db", db_url, *args[1:]]


def test_db_commands_say_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path / "app", STAGES)
    cases = {
        ("db", "upgrade", str(tmp_path / "nowhere")): "no such directory",
        ("db", "current", str(app_dir)): "no database here",
        ("db", "upgrade", str(app_dir), "--db", "postgresql://nobody@127.0.0.1:1/x"):
            "cannot upgrade the database at postgresql+psycopg://nobody@127.0.0.1:1/x: ",
        ("db", "current", str(app_dir), "--db", "nosuchdriver://x"): "cannot use database URL",
        ("db", "downgrade", str(app_dir)): "unknown action 'downgrade'",
    }
    for args, needle in cases.items():
        done = freezer(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, done.stderr)
