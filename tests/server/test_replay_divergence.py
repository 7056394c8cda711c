"""Replay never applies a person's actions to something else than what they saw.

Each case drives a real server: the person acts, the server is killed and restarted, and the
run is rebuilt by replaying its journal. A notebook whose items come from state outside the
journal (a counter file at an absolute path) shows another item on replay: the run is marked
diverged where it happened, the person is told, and nothing is applied or stored over what the
person did. A faithful notebook (seeded random numbers, memory addresses, timings, a printed
set of strings) replays without a false alarm, twice in a row.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.faults.harness import (
    act,
    click_next,
    has_slider,
    journal,
    restart,
    shows,
    slider,
    stage_started_counts,
    text,
)
from tests.server.conftest import SLIDER_STAGES, write_app
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, kill_hard, start_server

TIMEOUT = 60.0
ADMIN_TOKEN = "replay-admin-token"
SERVER_ARGS = ("--pool-size", "0", "--auth", "token", "--admin-token", ADMIN_TOKEN)


def counter_stages(counter: Path) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """Each kernel that runs stage 0 shows the next item: the counter file is outside the run."""
    return (
        (
            "Pick",
            "import ipywidgets as widgets\n"
            "from pathlib import Path\n"
            f"counter = Path({str(counter)!r})\n"
            "n = int(counter.read_text()) if counter.exists() else 0\n"
            "counter.write_text(str(n + 1))\n"
            "s = widgets.IntSlider(value=0, min=0, max=10, description=f'item {n}')\n"
            "s",
            ("s",),
        ),
        ("Label", "label = f'{s.description} {s.value}'\nprint(label)", ()),
        ("Done", "print('done')", ()),
    )


SEEDED_STAGES = (
    (
        "Pick",
        "import random, time, datetime\n"
        "import numpy as np\n"
        "import ipywidgets as widgets\n"
        "items = [random.randint(0, 10**6) for _ in range(3)]\n"
        "print('items', items, np.random.rand(2))\n"
        "print('made by', object(), 'tags', {'alpha', 'beta', 'gamma', 'delta', 'epsilon'})\n"
        "print(f'took {time.perf_counter() % 7:.4f} s at {datetime.datetime.now()}')\n"
        "pick = widgets.Dropdown(options=[str(i) for i in items], description=f'from {items[0]}')\n"
        "pick",
        ("pick",),
    ),
    (
        "Confirm",
        "print('picked', pick.value, np.random.randint(1000))\n"
        "ok = widgets.Checkbox(value=False, description=f'sure about {pick.value}?')\n"
        "ok",
        ("ok",),
    ),
    ("Done", "print('done', ok.value, random.random())", ()),
)


async def sign_in(person: Person) -> None:
    await person.fetch(f"login?token={ADMIN_TOKEN}", follow_redirects=False)


async def runner_events_stored(app_dir: Path, run_id: str, kind: str, stage: int) -> bool:
    """Whether the run's journal holds the runner's `kind` report for `stage`."""
    events = await asyncio.to_thread(journal, app_dir, run_id, (kind,))
    return any(e["payload"].get("stage") == stage for e in events)


def result(app_dir: Path, run_id: str, name: str) -> Any:
    with sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT value FROM results WHERE run_id = ? AND name = ?", (run_id, name)
        ).fetchone()
    return json.loads(str(row[0])) if row else None  # NUMERIC affinity: 42 comes back as int


def stage_rows(app_dir: Path, run_id: str) -> list[tuple[int, str]]:
    with sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            'SELECT "index", status FROM stages WHERE run_id = ? ORDER BY "index"', (run_id,)
        ).fetchall()
    return [(int(index), str(status)) for index, status in rows]


def run_status(app_dir: Path, run_id: str) -> str:
    with sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro", uri=True) as db:
        (status,) = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    return str(status)


async def test_an_item_from_outside_the_journal_marks_the_run_diverged(tmp_path: Path) -> None:
    counter = tmp_path / "outside" / "count.txt"
    counter.parent.mkdir()
    app = write_app(tmp_path / "app", counter_stages(counter), collect={1: ("label",)})
    server = await asyncio.to_thread(start_server, app, *SERVER_ARGS)
    restarted: ServerProcess | None = None
    try:
        async with Person(server.base_url) as person:
            await sign_in(person)
            page = await person.open("new")
            await page.wait_for(has_slider("item 0"), TIMEOUT, "the first item")
            await act(page, await page.set_value(slider(page, "item 0"), 6))
            await click_next(page)
            await page.wait_for(shows("item 0 6"), TIMEOUT, "the label of item 0")
            run_id = page.page.url.rsplit("/", 1)[-1]
            await eventually(lambda: runner_events_stored(app, run_id, "stage_ready", 1),
                             "stage 1 stored")
            assert result(app, run_id, "label") == "item 0 6"
            actions = await asyncio.to_thread(journal, app, run_id, ("comm_msg",))
            kill_hard(server)
            await page.close()

            restarted = await restart(server, app, *SERVER_ARGS)
            response = await person.fetch(f"run/{run_id}")
            body = response.body.decode()
            assert response.code == 409, body[:500]
            assert "Step 1 no longer shows what you saw" in body
            assert "not applied" in body

            # the person's result stays theirs: nothing of the replay was stored over it
            assert result(app, run_id, "label") == "item 0 6"
            assert run_status(app, run_id) == "diverged"
            events = await asyncio.to_thread(journal, app, run_id)
            assert [e for e in events if e["kind"] == "comm_msg"] == actions  # journal kept
            diverged = [e for e in events if e["kind"] == "diverged"]
            assert len(diverged) == 1
            where = diverged[0]["payload"]
            assert (where["stage"], where["event"]) == (0, "stage_ready")
            recorded = next(e for e in events if e["seq"] == where["seq"])
            assert recorded["kind"] == "stage_ready" and recorded["payload"]["stage"] == 0
            assert any("'item 0'" in line and "'item 1'" in line
                       for line in where["differences"]), where["differences"]
            # none of the replay's reports was stored: the stages are as the person left them
            assert stage_started_counts(app, run_id) == {0: 1, 1: 1}
            assert stage_rows(app, run_id) == [(0, "finished"), (1, "ready")]

            admin = await person.fetch("admin")
            html = admin.body.decode()
            assert admin.code == 200
            assert "Runs replay could not restore" in html
            assert "step 1 · Pick (journal event" in html
            assert "item 0" in html and "item 1" in html

            # a later visit tells the person the same
            again = await person.fetch(f"run/{run_id}")
            assert again.code == 409
            assert "Step 1 no longer shows what you saw" in again.body.decode()
        assert counter.read_text() == "2"  # the replay did run stage 0, and stopped there
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()


def callback_stages(counter: Path) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """The item is picked when the person moves the slider, from the counter file."""
    return (
        (
            "Pick",
            "import ipywidgets as widgets\n"
            "from pathlib import Path\n"
            f"counter = Path({str(counter)!r})\n"
            "s = widgets.IntSlider(value=0, min=0, max=10, description='item ?')\n"
            "def pick(change):\n"
            "    n = int(counter.read_text()) if counter.exists() else 0\n"
            "    counter.write_text(str(n + 1))\n"
            "    s.description = f'item {n}'\n"
            "s.observe(pick, 'value')\n"
            "s",
            ("s",),
        ),
        ("Label", "label = f'{s.description} {s.value}'\nprint(label)", ()),
        ("Done", "print('done')", ()),
    )


async def test_a_next_that_would_apply_to_another_item_stores_nothing(tmp_path: Path) -> None:
    counter = tmp_path / "outside" / "count.txt"
    counter.parent.mkdir()
    app = write_app(tmp_path / "app", callback_stages(counter), collect={1: ("label",)})
    server = await asyncio.to_thread(start_server, app, *SERVER_ARGS)
    try:
        async with Person(server.base_url) as person:
            await sign_in(person)
            page = await person.open("new")
            await page.wait_for(has_slider("item ?"), TIMEOUT, "the slider")
            await act(page, await page.set_value(slider(page, "item ?"), 6))
            await click_next(page)
            await page.wait_for(shows("item 0 6"), TIMEOUT, "the label of item 0")
            run_id = page.page.url.rsplit("/", 1)[-1]
            await eventually(lambda: runner_events_stored(app, run_id, "stage_ready", 1),
                             "stage 1 stored")
            await page.close()
            kill_hard(server)

            # stage 0 looks the same; the replayed slider move picks item 1, and the replayed
            # Next runs stage 1 on it in the kernel: none of that may reach the run's rows
            server = await restart(server, app, *SERVER_ARGS)
            response = await person.fetch(f"run/{run_id}")
            assert response.code == 409
            assert "Step 1 no longer shows what you saw" in response.body.decode()
            assert counter.read_text() == "2"
            assert result(app, run_id, "label") == "item 0 6"
            assert stage_started_counts(app, run_id) == {0: 1, 1: 1}
            assert stage_rows(app, run_id) == [(0, "finished"), (1, "ready")]
            events = await asyncio.to_thread(journal, app, run_id)
            where = next(e for e in events if e["kind"] == "diverged")["payload"]
            assert (where["stage"], where["event"]) == (0, "stage_finished")
            assert any("'item 0'" in line and "'item 1'" in line
                       for line in where["differences"]), where["differences"]
    finally:
        server.stop()


def forget_digests(app_dir: Path, run_id: str) -> int:
    """Make the run's journal look like one saved before digests existed; returns how many."""
    with sqlite3.connect(app_dir / "freezer.db") as db:
        cursor = db.execute(
            "UPDATE events SET payload = json_remove(payload, '$.digest') "
            "WHERE run_id = ? AND json_extract(payload, '$.digest') IS NOT NULL", (run_id,)
        )
        return cursor.rowcount


async def test_an_old_journal_without_digests_replays_as_before(tmp_path: Path) -> None:
    counter = tmp_path / "outside" / "count.txt"
    counter.parent.mkdir()
    app = write_app(tmp_path / "app", counter_stages(counter), collect={1: ("label",)})
    server = await asyncio.to_thread(start_server, app, *SERVER_ARGS)
    try:
        async with Person(server.base_url) as person:
            await sign_in(person)
            page = await person.open("new")
            await page.wait_for(has_slider("item 0"), TIMEOUT, "the first item")
            await act(page, await page.set_value(slider(page, "item 0"), 4))
            run_path = page.page.url
            run_id = run_path.rsplit("/", 1)[-1]
            await eventually(lambda: runner_events_stored(app, run_id, "stage_ready", 0),
                             "stage 0 stored")
            await page.close()
            kill_hard(server)
            assert forget_digests(app, run_id) == 1
            # nothing to compare with: the replay goes ahead as it always did
            server = await restart(server, app, *SERVER_ARGS)
            again = await person.open(run_path)
            assert again.value(slider(again, "item 1")) == 4
            assert run_status(app, run_id) == "active"
    finally:
        server.stop()


async def replay_after_kill(
    server: ServerProcess, app: Path, person: Person, run_path: str, needle: str
) -> tuple[ServerProcess, Any]:
    kill_hard(server)
    restarted = await restart(server, app, *SERVER_ARGS)
    page = await person.open(run_path)
    await page.wait_for(shows(needle), TIMEOUT, f"{needle!r} after replay")
    return restarted, page


async def test_a_faithful_replay_is_not_marked_diverged(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", SLIDER_STAGES)
    server = await asyncio.to_thread(start_server, app, *SERVER_ARGS)
    try:
        async with Person(server.base_url) as person:
            await sign_in(person)
            page = await person.open("new")
            await page.wait_for(has_slider("number"), TIMEOUT)
            await act(page, await page.set_value(slider(page, "number"), 21))
            run_path = page.page.url
            run_id = run_path.rsplit("/", 1)[-1]
            await eventually(lambda: runner_events_stored(app, run_id, "stage_ready", 0),
                             "stage 0 stored")
            await page.close()
            server, again = await replay_after_kill(server, app, person, run_path, "")
            assert again.value(slider(again, "number")) == 21
            await click_next(again)
            await again.wait_for(shows("doubled=42"), TIMEOUT, "doubled=42")
            await eventually(lambda: result(app, run_id, "doubled") == 42, "the result")
            await eventually(lambda: runner_events_stored(app, run_id, "stage_ready", 1),
                             "stage 1 stored")
            assert run_status(app, run_id) in ("active", "finished")
            # the replay compared its reports with the journal's and wrote none of them again
            ready = await asyncio.to_thread(journal, app, run_id, ("stage_ready",))
            assert [e["payload"]["stage"] for e in ready] == [0, 1]
            assert stage_started_counts(app, run_id) == {0: 1, 1: 1}
    finally:
        server.stop()


async def test_seeded_random_numbers_addresses_timings_and_sets_replay_twice(
    tmp_path: Path,
) -> None:
    app = write_app(tmp_path / "app", SEEDED_STAGES)
    server = await asyncio.to_thread(start_server, app, *SERVER_ARGS)
    try:
        async with Person(server.base_url) as person:
            await sign_in(person)
            page = await person.open("new")
            await page.wait_for(shows("items"), TIMEOUT)
            dropdown = page.find(_model_name="DropdownModel")
            await act(page, await page.set_state(dropdown, {"index": 2}))
            await click_next(page)
            await page.wait_for(shows("picked"), TIMEOUT)
            picked = next(line for line in text_lines(page) if line.startswith("picked"))
            run_path = page.page.url
            run_id = run_path.rsplit("/", 1)[-1]
            await eventually(lambda: runner_events_stored(app, run_id, "stage_ready", 1),
                             "stage 1 stored")
            await page.close()

            server, again = await replay_after_kill(server, app, person, run_path, picked)
            box = again.find(_model_name="CheckboxModel")
            await act(again, await again.set_value(box, True))
            await eventually(lambda: runner_events_stored(app, run_id, "stage_ready", 1),
                             "the replay's reports stored")
            await again.close()

            # the second replay compares with the person's own reports, not the first copy
            server, third = await replay_after_kill(server, app, person, run_path, picked)
            assert third.value(third.find(_model_name="CheckboxModel")) is True
            await click_next(third)
            await third.wait_for(shows("done True"), TIMEOUT, "the last stage")
            await eventually(lambda: run_status(app, run_id) == "finished", "run finished")
            events = await asyncio.to_thread(journal, app, run_id)
            assert not [e for e in events if e["kind"] == "diverged"]
            # both replays matched the person's own reports and wrote none of them again
            ready = [e["payload"]["stage"] for e in events if e["kind"] == "stage_ready"]
            assert ready == [0, 1, 2]
            assert stage_started_counts(app, run_id) == {0: 1, 1: 1, 2: 1}
    finally:
        server.stop()


def text_lines(page: Any) -> list[str]:
    return str(text(page)).splitlines()
