"""Twenty people on one work queue of a real server, on SQLite and on PostgreSQL.

200 items, overlap 2, batches of 5, a 3 s lease. Each person (a protocol-level client: HTTP,
kernel websocket, widget messages) labels batch after batch through the app's widgets,
sometimes skipping an item; four of them leave mid-batch (their page closes, nobody renews
their lease). A watcher thread reads the claims and answers tables on its own connection
every few milliseconds while this runs and records any instant an item had more than 2 live
claims, or more live claims plus answers than 2.

Afterwards: every item has exactly 2 answers from 2 different people, each person's stored
answers are exactly those the server acknowledged to them, and each item a leaver held was
finished by others, at least one of them after the leaver's lease lapsed.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import act, slider, start_server, write_app
from tests.queue.labelers import label_batch, queue_stages, ready, run_id_of
from tests.queue.watch import ClaimWatcher, QueueTables
from tests.store.conftest import PG_SERVER, PG_UNREACHABLE, postgres_answers
from tests.support.person import Person
from tests.support.session import PageSession

pytestmark = pytest.mark.timeout(600)

PEOPLE = 20
ITEMS = 200
OVERLAP = 2
BATCH = 5
LEASE = 3.0
LEAVERS = {3, 8, 13, 18}  # leave mid-batch, after labelling one batch
SKIP_CHANCE = 0.15
OPENING_AT_ONCE = 4  # pages opened (kernels started) at the same time
DEADLINE = 420.0  # seconds for the whole labelling


@dataclass
class Labeler:
    index: int
    person: Person
    page: PageSession | None = None
    run_id: str = ""
    acked: dict[Any, int] = field(default_factory=dict)  # item -> the answer acknowledged
    skipped: set[Any] = field(default_factory=set)
    held_when_leaving: list[Any] = field(default_factory=list)
    batches: int = 0


@dataclass
class Database:
    args: tuple[str, ...]
    tables: QueueTables


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The server's database: the app's SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield Database((), QueueTables("load", sqlite_file=tmp_path / "app" / "freezer.db"))
        return
    if not postgres_answers():
        pytest.skip(PG_UNREACHABLE)
    import psycopg

    schema = f"queue_load_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = f"{PG_SERVER}?options=-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
        yield Database(("--db", url), QueueTables("load", postgres=PG_SERVER, schema=schema))
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def label(labeler: Labeler, first: list[Any], watcher: ClaimWatcher) -> None:
    """Label batches until every item is done (or, for a leaver, leave mid-batch)."""
    page = labeler.page
    assert page is not None
    rng = random.Random(labeler.index)
    mine = first
    deadline = time.monotonic() + DEADLINE
    while not watcher.all_done.is_set():
        assert time.monotonic() < deadline, f"person {labeler.index} still labelling"
        assert watcher.error is None, watcher.error
        if not mine:  # the rest is held by others' leases, or done: ask again
            await asyncio.sleep(0.2)
            mine = await label_batch(page, 0, [])
            continue
        if labeler.index in LEAVERS and labeler.batches == 1:
            # mid-batch: the slider is moved, then the page closes for good
            await act(page, await page.set_value(slider(page, "label"), 9))
            labeler.held_when_leaving = list(mine)
            await page.close()
            return
        skipped = [mine[0]] if rng.random() < SKIP_CHANCE else []
        value = rng.randrange(10)
        following = await label_batch(page, value, skipped)
        labeler.skipped.update(skipped)
        labeler.acked.update({item: value for item in mine if item not in skipped})
        labeler.batches += 1
        mine = following


async def open_page(labeler: Labeler, gate: asyncio.Semaphore) -> list[Any]:
    async with gate:
        labeler.page = await labeler.person.open("")
        labeler.run_id = run_id_of(labeler.page)
        return await ready(labeler.page)


async def test_twenty_people_share_a_queue_within_its_overlap(
    tmp_path: Path, database: Database
) -> None:
    app_dir = write_app(tmp_path / "app", queue_stages("load", ITEMS, BATCH, OVERLAP, LEASE))
    server = await asyncio.to_thread(start_server, app_dir, "--pool-size", "2", *database.args)
    labelers = [Labeler(i, Person(server.base_url)) for i in range(PEOPLE)]
    watcher = ClaimWatcher(database.tables, OVERLAP, ITEMS)
    try:
        watcher.start()
        gate = asyncio.Semaphore(OPENING_AT_ONCE)
        firsts = await asyncio.gather(*(open_page(lab, gate) for lab in labelers))
        await asyncio.gather(*(label(lab, first, watcher)
                               for lab, first in zip(labelers, firsts, strict=True)))
        watcher.check()
    finally:
        for lab in labelers:
            await lab.person.close()
        server.stop()
        watcher.stop()

    assert watcher.violations == []
    assert watcher.polls >= 20 and watcher.most_live == OVERLAP  # it watched real overlap

    answers = database.tables.answers()
    given = [a for a in answers if not a.skipped]
    by_item: dict[str, list[int]] = {}
    for answer in given:
        by_item.setdefault(answer.key, []).append(answer.user_id)
    assert sorted(by_item) == sorted(str(i) for i in range(ITEMS))
    assert all(len(users) == OVERLAP == len(set(users)) for users in by_item.values())
    assert sum(a.skipped for a in answers) > 0  # people did skip

    # each person's stored answers are exactly the ones acknowledged to them
    run_of = {lab.run_id: lab for lab in labelers}
    stored: dict[str, dict[Any, Any]] = {}
    for answer in given:
        stored.setdefault(answer.run_id, {})[int(answer.key)] = answer.answer
    for lab in labelers:
        assert stored.get(lab.run_id, {}) == lab.acked, lab.index
    assert set(stored) <= set(run_of)

    # the leavers' items were finished by others, after their lease lapsed
    leavers = [lab for lab in labelers if lab.index in LEAVERS]
    assert all(lab.held_when_leaving for lab in leavers)
    for lab in leavers:
        for item in lab.held_when_leaving:
            key = str(item)
            lapsed = watcher.seen_claims[(lab.run_id, key)]
            finishers = [a for a in given if a.key == key]
            assert lab.run_id not in {a.run_id for a in finishers}
            assert any(a.at >= lapsed for a in finishers), (item, lapsed, finishers)
    print(f"{PEOPLE} people, {len(given)} answers, {sum(a.skipped for a in answers)} skips, "
          f"{sum(len(lab.held_when_leaving) for lab in leavers)} items left by "
          f"{len(leavers)} people, {watcher.polls} polls of the claims")
