"""A notebook using `runtime.kernel.work.WorkQueue` on a real server (protocol-level people).

Two people get disjoint batches (overlap 1); after a SIGKILL of the server and its kernels, a
new server replays a person's run to the same batch (the claim's answer comes from the run's
journal, nothing is claimed again), and their answers reach the database. A lease is renewed
while the page is connected; once it lapsed, another person gets the item, and the first
person's late submit is refused in their own stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.faults.harness import (
    TIMEOUT,
    act,
    click_next,
    has_slider,
    journal,
    restart,
    shows,
    slider,
    write_app,
)
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import kill_hard, start_server
from tests.support.session import PageSession

pytestmark = pytest.mark.timeout(300)

QUEUE_STAGES = (
    (
        "Claim",
        "import ipywidgets as widgets\n"
        "from runtime.kernel import WorkQueue\n"
        "queue = WorkQueue('faces', items=list(range(10)), batch=3, overlap=1)\n"
        "mine = queue.claim()\n"
        "print(f'batch={mine} saved={queue.saved}')\n"
        "label = widgets.IntSlider(value=1, min=0, max=9, description='label')\n"
        "label",
        ("label",),
    ),
    (
        "Submit",
        "queue.submit({item: label.value for item in mine})\n"
        "print(f'submitted {len(mine)} as {label.value}')",
        (),
    ),
)


def answers(app_dir: Path) -> list[tuple[str, str, object]]:
    """(item key, run id, answer) of every stored answer, from the SQLite file itself."""
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        rows = db.execute("SELECT key, run_id, answer FROM queue_answers ORDER BY key")
        return [  # SQLite's JSON column gives numbers back as numbers
            (key, run, json.loads(answer) if isinstance(answer, str) else answer)
            for key, run, answer in rows.fetchall()
        ]


def run_id_of(page: PageSession) -> str:
    return urlsplit(page.page.url).path.rstrip("/").rsplit("/", 1)[-1]


async def test_two_people_get_disjoint_batches_and_a_replay_gets_the_same_one(
    tmp_path: Path,
) -> None:
    app_dir = write_app(tmp_path / "app", QUEUE_STAGES)
    args = ("--pool-size", "0")
    server = await asyncio.to_thread(start_server, app_dir, *args)
    try:
        async with Person(server.base_url) as ada, Person(server.base_url) as bob:
            ada_page = await ada.open("")
            await ada_page.wait_for(shows("batch=[0, 1, 2] saved=True"), TIMEOUT, "ada's batch")
            bob_page = await bob.open("")
            await bob_page.wait_for(shows("batch=[3, 4, 5] saved=True"), TIMEOUT, "bob's batch")
            ada_path = urlsplit(ada_page.page.url).path.lstrip("/")
            ada_run = run_id_of(ada_page)
            cookies = ada.cookies.as_dict()
        kill_hard(server)
        server = await restart(server, app_dir, *args)
        async with Person(server.base_url, cookies=cookies) as ada:
            page = await ada.open(ada_path)  # the run's kernel is gone: replayed
            await page.wait_for(shows("batch=[0, 1, 2] saved=True"), TIMEOUT, "the same batch")
            await page.wait_for(has_slider("label"), TIMEOUT)
            await act(page, await page.set_value(slider(page, "label"), 4))
            await click_next(page)
            await page.wait_for(shows("submitted 3 as 4"), TIMEOUT, "the submit")
        claims = journal(app_dir, ada_run, ("queue_claim",))
        assert [e["payload"]["items"] for e in claims] == [[0, 1, 2]]  # claimed once
        assert answers(app_dir) == [("0", ada_run, 4), ("1", ada_run, 4), ("2", ada_run, 4)]
        async with Person(server.base_url) as cy:  # bob's lease still holds 3, 4, 5
            page = await cy.open("")
            await page.wait_for(shows("batch=[6, 7, 8] saved=True"), TIMEOUT, "cy's batch")
    finally:
        server.stop()


SHORT_LEASE_STAGES = (
    (
        "Claim",
        "import ipywidgets as widgets\n"
        "from runtime.kernel import WorkQueue, WorkQueueError\n"
        "queue = WorkQueue('short', items=[1, 2], batch=1, overlap=1, lease=0.5)\n"
        "mine = queue.claim()\n"
        "print(f'batch={mine}')\n"
        "label = widgets.IntSlider(value=1, description='label')\n"
        "label",
        ("label",),
    ),
    (
        "Submit",
        "try:\n"
        "    queue.submit({item: label.value for item in mine})\n"
        "    print(f'saved {mine}')\n"
        "except WorkQueueError as error:\n"
        "    print(f'refused {error.refused}: {error}')",
        (),
    ),
)


def expires_at(app_dir: Path, key: str) -> datetime:
    """When the claim of item `key` ends, from the SQLite file (naive UTC there)."""
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        row = db.execute("SELECT expires_at FROM queue_claims WHERE key = ?", (key,)).fetchone()
    if row is None:
        return datetime.min.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(row[0]).replace(tzinfo=timezone.utc)


async def test_a_lease_is_renewed_while_the_page_is_connected_and_lapses_after(
    tmp_path: Path,
) -> None:
    app_dir = write_app(tmp_path / "app", SHORT_LEASE_STAGES)
    server = await asyncio.to_thread(start_server, app_dir, "--pool-size", "0")
    try:
        async with Person(server.base_url) as ada:
            page = await ada.open("")
            await page.wait_for(shows("batch=[1]"), TIMEOUT, "ada's batch")
            ada_path = urlsplit(page.page.url).path.lstrip("/")
            cookies = ada.cookies.as_dict()
            first = expires_at(app_dir, "1")
            # renewed past two of its leases while ada's page is connected
            await eventually(lambda: expires_at(app_dir, "1") > first + timedelta(seconds=1),
                             "the lease to be renewed")
        # ada's page is gone: nobody renews, the lease lapses, the item goes back
        await eventually(lambda: expires_at(app_dir, "1") < datetime.now(timezone.utc),
                         "the lease to lapse")
        async with Person(server.base_url) as bob:
            page = await bob.open("")
            await page.wait_for(shows("batch=[1]"), TIMEOUT, "bob gets the lapsed item")
            bob_run = run_id_of(page)
            await act(page, await page.set_value(slider(page, "label"), 7))
            await click_next(page)
            await page.wait_for(shows("saved [1]"), TIMEOUT, "bob's submit")
        # ada comes back to the batch she still sees: her late submit is refused, in her stage
        async with Person(server.base_url, cookies=cookies) as ada:
            page = await ada.open(ada_path)
            await page.wait_for(has_slider("label"), TIMEOUT)
            await click_next(page)
            await page.wait_for(shows("refused [1]: work queue 'short': answers for item 1 "
                                      "not saved: that item is no longer this run's"),
                                TIMEOUT, "ada's submit refused")
        assert answers(app_dir) == [("1", bob_run, 7)]  # the item's one answer: bob's
    finally:
        server.stop()
