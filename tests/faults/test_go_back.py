"""Going back to an earlier stage, at the protocol level: the Back request, a refusal while a
stage runs, going back twice then reloading, and a server SIGKILLed after a go-back.

Stage 0 claims two items of a work queue and the last stage submits the total for them, so each
test also shows what a go-back does to the run's claim (kept) and answers (replaced). Stage 1 of
the app waits for a gate file named by the number the person picked, so a test can
hold it "running" exactly as long as it needs (the gates of the other numbers are opened first).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from tests.faults.harness import (
    TIMEOUT,
    act,
    click_next,
    gated_stages,
    has_slider,
    journal,
    restart,
    shows,
    slider,
    text,
    write_app,
)
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, kill_hard, start_server
from tests.support.session import PageSession


@pytest.fixture(scope="module")
def gates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gates")


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory, gates: Path) -> Path:
    return write_app(tmp_path_factory.mktemp("back") / "app", gated_stages(gates, queue=True),
                     collect={2: ("total",)})


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[ServerProcess]:
    process = start_server(app_dir, "--pool-size", "1")
    try:
        yield process
    finally:
        process.stop()


def stepper(page: PageSession) -> str:
    """The stepper's HTML."""
    for model_id in page.find_all(_model_name="HTMLModel"):
        value = str(page.value(model_id))
        if "freezer-stepper" in value:
            return value
    raise AssertionError("the page shows no stepper")


def current_stage(page: PageSession) -> int:
    found = re.search(r'aria-current="step" data-stage="(\d+)"', stepper(page))
    assert found is not None, stepper(page)
    return int(found.group(1))


async def go_back(person: Person, page: PageSession, stage: int) -> HTTPResponse:
    """What the Back dialog's form posts (its XSRF token is the run page's); a refusal is
    checked by the caller, anything else must have led to the run page."""
    assert page.page.xsrf
    answer = await person.fetch(f"back/{run_of(page)}", method="POST",
                              form={"_xsrf": page.page.xsrf, "stage": str(stage)})
    assert answer.code in (200, 409), answer.code
    return answer


async def went_back(person: Person, page: PageSession, stage: int) -> None:
    answer = await go_back(person, page, stage)
    assert answer.code == 200 and answer.effective_url.endswith(f"/run/{run_of(page)}"), (
        answer.body)


def run_of(page: PageSession) -> str:
    return page.page.url.rstrip("/").rsplit("/", 1)[-1]


async def reach_result(
    person: Person, gates: Path, app_dir: Path, number: int, offset: int
) -> PageSession:
    """A new run through every stage: `number`, Next, `offset`, Next; the total shown, and the
    server told (the page shows the last stage a moment before the server hears it is done)."""
    (gates / str(number)).touch()
    page = await person.open("new")
    await page.wait_for(has_slider("number"), TIMEOUT)
    await act(page, await page.set_value(slider(page, "number"), number))
    await click_next(page)
    await page.wait_for(has_slider("offset"), TIMEOUT, "stage 1 to finish")
    await act(page, await page.set_value(slider(page, "offset"), offset))
    await click_next(page)
    await page.wait_for(shows(f"total={number + offset}"), TIMEOUT)
    await eventually(lambda: journal(app_dir, run_of(page), ("finished",)), "the run's end")
    return page


async def reopen(person: Person, page: PageSession) -> PageSession:
    await page.close()
    return await person.open(f"run/{run_of(page)}")


def rows(app_dir: Path, run_id: str) -> dict[str, Any]:
    """The run's row, stage rows and results straight from the SQLite file."""
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        run = db.execute("SELECT stage, status FROM runs WHERE id = ?", (run_id,)).fetchone()
        stages = dict(db.execute('SELECT "index", status FROM stages WHERE run_id = ?',
                                 (run_id,)).fetchall())
        results = dict(db.execute("SELECT name, value FROM results WHERE run_id = ?",
                                  (run_id,)).fetchall())
    return {"stage": run[0], "status": run[1], "stages": stages, "results": results}


def queue_answers(app_dir: Path, run_id: str) -> list[tuple[str, Any]]:
    """The run's answers in the work queue `totals` (item key, answer)."""
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        return db.execute("SELECT key, answer FROM queue_answers WHERE queue = 'totals' "
                          "AND run_id = ? ORDER BY key", (run_id,)).fetchall()


def claimed(page: PageSession) -> str:
    found = re.search(r"claimed \[\d+, \d+\]", text(page))
    assert found is not None, text(page)
    return found.group(0)


async def test_going_back_twice_then_reloading_shows_the_earlier_stage(
    server: ServerProcess, app_dir: Path, gates: Path
) -> None:
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        page = await reach_result(person, gates, app_dir, 7, 3)
        run_id = run_of(page)
        items = claimed(page)
        assert 'aria-label="Back to: Pick a number"' in stepper(page)
        assert 'aria-label="Back to: Slow step"' in stepper(page)
        await eventually(lambda: rows(app_dir, run_id)["results"], "the collected total")

        await went_back(person, page, 1)
        page = await reopen(person, page)
        assert current_stage(page) == 1
        offset = slider(page, "offset")
        assert page.value(offset) == 3 and page.widgets[offset]["disabled"] is False
        assert "passed gate 7" in text(page) and "total=" not in text(page)
        assert rows(app_dir, run_id) == {"stage": 1, "status": "active",
                                         "stages": {0: "finished", 1: "ready"}, "results": {}}

        await went_back(person, page, 0)  # again, right away, further back
        page = await reopen(person, page)
        for _ in range(2):  # and once more after a reload
            assert current_stage(page) == 0
            assert claimed(page) == items  # the run keeps its work-queue claim
            assert not has_slider("offset")(page) and "passed gate" not in text(page)
            number = slider(page, "number")
            assert page.value(number) == 7 and page.widgets[number]["disabled"] is False
            assert 'aria-label="Back to:' not in stepper(page)
            page = await reopen(person, page)

        (gates / "8").touch()
        await act(page, await page.set_value(slider(page, "number"), 8))
        await click_next(page)
        await page.wait_for(shows("passed gate 8"), TIMEOUT)
        await act(page, await page.set_value(slider(page, "offset"), 4))
        await click_next(page)
        await page.wait_for(shows("total=12"), TIMEOUT)
    await eventually(lambda: rows(app_dir, run_id)["results"] == {"total": 12},
                     lambda: f"the new pass's total: {rows(app_dir, run_id)}", 5)
    rewound = journal(app_dir, run_id, ("rewound",))
    assert [(e["payload"]["stage"], e["payload"]["from_stage"]) for e in rewound] == [
        (1, 2), (0, 1)]
    # the new pass's answers for the same items replaced the first pass's; the journal has both
    keys = re.findall(r"\d+", items)
    await eventually(lambda: queue_answers(app_dir, run_id) == [(k, 12) for k in sorted(keys)],
                     lambda: f"the new answers: {queue_answers(app_dir, run_id)}", 5)
    submits = journal(app_dir, run_id, ("queue_submit",))
    assert [[answer for _, answer in e["payload"]["answers"]] for e in submits] == [
        [10, 10], [12, 12]]


async def test_going_back_while_a_stage_runs_is_refused(
    server: ServerProcess, app_dir: Path, gates: Path
) -> None:
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        page = await reach_result(person, gates, app_dir, 20, 1)
        await went_back(person, page, 0)
        page = await reopen(person, page)
        await act(page, await page.set_value(slider(page, "number"), 21))
        await page.click(page.find(_model_name="ButtonModel", description="Next",
                                   disabled=False))
        await eventually(lambda: (gates / "21.started").exists(), "stage 1 to start")
        refused = await go_back(person, page, 0)
        assert refused.code == 409
        assert b"A step is running right now" in refused.body
        assert journal(app_dir, run_of(page), ("rewound",))[1:] == []
        (gates / "21").touch()
        await page.wait_for(shows("passed gate 21"), TIMEOUT, "the running stage to finish")
        assert current_stage(page) == 1
        await eventually(lambda: len([e for e in journal(app_dir, run_of(page), ("stage_ready",))
                                      if e["payload"]["stage"] == 1]) == 2,
                         "the server to hear stage 1 is ready again")
        nothing = await go_back(person, page, 1)  # the current stage: not finished yet
        assert nothing.code == 409 and b"nothing to go back to" in nothing.body


async def test_a_server_killed_after_going_back_replays_the_final_pass(
    server: ServerProcess, app_dir: Path, gates: Path
) -> None:
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        page = await reach_result(person, gates, app_dir, 30, 2)
        run_id = run_of(page)
        await went_back(person, page, 1)
        page = await reopen(person, page)
        await act(page, await page.set_value(slider(page, "offset"), 9))
        await click_next(page)
        await page.wait_for(shows("total=39"), TIMEOUT)
        await eventually(lambda: journal(app_dir, run_id, ("finished",))[1:],
                         "the new pass's end")
        await page.close()
        await asyncio.to_thread(kill_hard, server)
        again = await restart(server, app_dir, "--pool-size", "1")  # same port: same person
        try:
            replayed = await person.open(f"run/{run_id}")  # closed with the person
            await replayed.wait_for(shows("total=39"), TIMEOUT, "the replayed final pass")
            assert replayed.value(slider(replayed, "offset")) == 9
            assert replayed.value(slider(replayed, "number")) == 30
            assert current_stage(replayed) == 2
            assert "total=32" not in text(replayed)
            assert rows(app_dir, run_id)["results"] == {"total": 39}
            assert [answer for _, answer in queue_answers(app_dir, run_id)] == [39, 39]
            assert len(journal(app_dir, run_id, ("queue_submit",))) == 2  # not stored again
            assert rows(app_dir, run_id)["status"] == "finished"
        finally:
            again.stop()

