"""The database refuses writes while a person works: they are told, nothing unsaved reaches the
kernel, and once the database accepts writes again the person continues; the file stays sound.

The fault is injected into the real SQLite file from outside the server, through a second
connection: a trigger that aborts every insert into `events` (what a full disk or a read-only
volume looks like to the server: the write fails at once). Waiting out SQLite's lock instead
costs the store's 30 s `lock_timeout` per attempt, which `freezer serve` does not expose.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import (
    THREE_STAGES,
    TIMEOUT,
    act,
    click_next,
    has_slider,
    journal,
    shows,
    slider,
    write_app,
)
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_server
from tests.support.session import PageSession

SAVE_FAILED = "could not save your last change"


@contextlib.contextmanager
def writes_refused(db_path: Path) -> Iterator[None]:
    """Make the server's database refuse new journal events until the block ends."""
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as db:
        db.execute("CREATE TRIGGER refuse_events BEFORE INSERT ON events "
                   "BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END")
        db.commit()
        try:
            yield
        finally:
            db.execute("DROP TRIGGER refuse_events")
            db.commit()


def told_not_saved(page: PageSession) -> bool:
    return any(SAVE_FAILED in str(o.get("text", "")) for o in page.stray_outputs)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("refuses") / "app", THREE_STAGES,
                     collect={2: ("total",)})


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[ServerProcess]:
    process = start_server(app_dir, "--pool-size", "0")
    try:
        yield process
    finally:
        process.stop()


async def test_unsaved_changes_are_not_applied_and_work_continues_after(
    server: ServerProcess, app_dir: Path
) -> None:
    db_path = app_dir / "freezer.db"
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        page = await person.open("new")
        await page.wait_for(has_slider("number"), TIMEOUT)
        run_id = page.page.url.rsplit("/", 1)[-1]
        number = slider(page, "number")
        await act(page, await page.set_value(number, 11))

        with writes_refused(db_path):
            await page.set_value(number, 99)
            await page.wait_for(told_not_saved, TIMEOUT, "the 'not saved' message")
            button = page.find(_model_name="ButtonModel", description="Next", disabled=False)
            page.stray_outputs.clear()
            await page.click(button)
            await page.wait_for(told_not_saved, TIMEOUT, "the 'not saved' message for Next")
            # the kernel never saw either: a fresh view of the run shows the saved value
            view = await person.open(f"run/{run_id}")
            assert view.value(slider(view, "number")) == 11
            assert not has_slider("offset")(view)
            await view.close()

        # the database accepts writes again: the person reloads, as told, and continues
        await page.close()
        again = await person.open(f"run/{run_id}")
        assert again.value(slider(again, "number")) == 11
        await act(again, await again.set_value(slider(again, "number"), 12))
        await click_next(again)
        await again.wait_for(has_slider("offset"), TIMEOUT)
        await act(again, await again.set_value(slider(again, "offset"), 3))
        await click_next(again)
        await again.wait_for(shows("total=15"), TIMEOUT)

    values = [e["payload"].get("state", {}).get("value")
              for e in journal(app_dir, run_id, ("comm_msg",))]
    assert 99 not in values
    assert values == [11, 12, None, 3, None]
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def test_a_locked_database_holds_changes_back_until_it_is_free(
    server: ServerProcess, app_dir: Path
) -> None:
    """A second connection holds SQLite's write lock: the change waits (not applied unsaved),
    then is saved and applied once the lock is gone (within the store's 30 s lock_timeout)."""
    db_path = app_dir / "freezer.db"
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        page = await person.open("new")
        await page.wait_for(has_slider("number"), TIMEOUT)
        run_id = page.page.url.rsplit("/", 1)[-1]
        number = slider(page, "number")
        with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as locker:
            locker.execute("BEGIN EXCLUSIVE")
            pending = await page.set_value(number, 42)
            held, _ = await asyncio.wait({asyncio.ensure_future(act(page, pending))},
                                         timeout=1.0)
            assert not held, "the change reached the kernel while it could not be saved"
            locker.rollback()
        await act(page, pending)  # saved, then applied
        assert not told_not_saved(page)
        await click_next(page)
        await page.wait_for(has_slider("offset"), TIMEOUT)
    values = [e["payload"].get("state", {}).get("value")
              for e in journal(app_dir, run_id, ("comm_msg",))]
    assert values == [42, None]
