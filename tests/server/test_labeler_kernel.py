"""A clear end, in headless Chromium on a real Freezer server: a last stage with an input
waits for Finish; the run is finished when the person presses it, and a replay agrees."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from runtime.store.exporting import export_main
from tests.faults.harness import restart
from tests.server.conftest import screenshot, write_app
from tests.support.eventually import eventually_sync, run_async
from tests.support.processes import ServerProcess, kill_hard

TIMEOUT_MS = 60_000
COMMENT_STAGES = (
    (
        "Pick a number",
        "import ipywidgets as widgets\n"
        "number = widgets.IntSlider(value=5, min=0, max=100, description='number')\n"
        "number",
        ("number",),
    ),
    (
        "Comment",
        "print(f'you picked {number.value}')\n"
        "note = widgets.Textarea(description='note')\n"
        "note",
        (),
    ),
)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("finish") / "app", COMMENT_STAGES)


def db_value(app_dir: Path, sql: str, *args: object) -> object:
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        row = db.execute(sql, args).fetchone()
    return None if row is None else row[0]


def wait_db(app_dir: Path, expected: object, sql: str, *args: object) -> None:
    """Wait until the query's value is `expected`: the server stores a kernel's report a
    moment after the page shows it."""
    eventually_sync(
        lambda: db_value(app_dir, sql, *args) == expected,
        lambda: f"{sql} {args}: {db_value(app_dir, sql, *args)!r}, not {expected!r}",
        TIMEOUT_MS / 1000,
    )


def in_thread(func: Callable[[], object]) -> object:
    """Run `func` in a thread of its own (Playwright's sync driver owns this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(func).result()


def see_finished(page: Page) -> None:
    expect(page.get_by_text("Done: your work is saved.")).to_be_visible()
    expect(page.locator(".freezer-step")).to_have_count(2)
    expect(page.locator(".freezer-step-done")).to_have_count(2)
    expect(page.locator("button.freezer-next")).to_have_count(0)
    expect(page.locator("textarea")).to_be_disabled()


def test_the_run_is_finished_when_the_person_presses_finish(
    app_dir: Path, serve: Callable[..., ServerProcess], page: Page, tmp_path: Path
) -> None:
    server = serve(app_dir, "--pool-size", "1")
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.base_url)
    page.get_by_role("button", name="Start").click()  # starting a run is a POST
    expect(page).to_have_url(re.compile(r"/run/[\w-]+$"))
    run_id = page.url.rsplit("/", 1)[-1]
    page.locator("button.freezer-next", has_text="Next").click()

    expect(page.get_by_text("you picked 5")).to_be_visible()
    finish = page.get_by_role("button", name="Finish", exact=True)
    expect(finish).to_be_enabled()
    expect(page.get_by_text("Step 2 of 2: make your choices, then press Finish.")).to_be_visible()
    wait_db(app_dir, "ready", "SELECT status FROM stages WHERE run_id = ? AND `index` = 1", run_id)
    assert db_value(app_dir, "SELECT status FROM runs WHERE id = ?", run_id) == "active"
    expect(page.locator(".freezer-step-done")).to_have_count(1)  # the last one not yet

    page.locator("textarea").fill("looks right")
    page.locator("textarea").press("Tab")  # the value reaches the kernel on blur at the latest
    screenshot(page, "finish-before")
    finish.click()
    see_finished(page)
    screenshot(page, "finish-after")
    wait_db(app_dir, "finished", "SELECT status FROM runs WHERE id = ?", run_id)

    out = tmp_path / "runs.json"
    argv = [str(app_dir), "--format", "json", "-o", str(out)]
    assert in_thread(lambda: export_main(argv)) == 0
    [row] = json.loads(out.read_text(encoding="utf-8"))
    assert (row["status"], row["stage_1_status"]) == ("finished", "finished")
    assert row["snapshots"]["1"] == {"note": "looks right"}

    # The Finish click is in the journal: a fresh kernel replays the run to its end.
    kill_hard(server)
    again = run_async(restart(server, app_dir, "--pool-size", "1"))
    assert isinstance(again, ServerProcess)
    try:
        page.goto(f"{again.base_url}run/{run_id}")
        see_finished(page)
        expect(page.locator("textarea")).to_have_value("looks right")
        assert db_value(app_dir, "SELECT status FROM runs WHERE id = ?", run_id) == "finished"
    finally:
        again.stop()
