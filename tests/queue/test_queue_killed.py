"""The server is SIGKILLed while people claim and submit on a work queue, then restarted.

Five protocol-level people label batches of a queue (40 items, overlap 2, batches of 3) as
fast as the server acknowledges. Once enough submits are acknowledged the server and every
kernel get SIGKILL at once, mid-claim and mid-submit. A watcher thread reads the claims and
answers tables throughout. A new server on the same database replays each run:

- each replayed run shows the batch it had: the last batch its journal recorded, and the
  batches the person saw before the kill are the journal's first claims, in order;
- no acknowledged answer is lost (each is in the database with its value), none invented;
- no item ever had more than 2 live claims plus answers;
- then everyone labels on until the queue is done: every item has exactly 2 answers from
  2 different people.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import journal, restart, start_server, write_app
from tests.queue.labelers import label_batch, queue_stages, ready, run_id_of
from tests.queue.watch import ClaimWatcher, QueueTables
from tests.support.errors import ClientError
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import kill_hard
from tests.support.session import PageSession

pytestmark = pytest.mark.timeout(400)

PEOPLE = 5
ITEMS = 40
OVERLAP = 2
BATCH = 3
ACKED_BEFORE_KILL = 12  # acknowledged submits, all people together
ARGS = ("--pool-size", "2")


@dataclass
class Labeler:
    index: int
    person: Person
    rng: random.Random
    run_id: str = ""
    seen: list[list[Any]] = field(default_factory=list)  # each batch shown, acknowledged
    sent: list[dict[Any, int]] = field(default_factory=list)  # each submit sent
    acked: dict[Any, int] = field(default_factory=dict)  # answers acknowledged


async def label(lab: Labeler, page: PageSession, acked_total: list[int],
                watcher: ClaimWatcher | None) -> None:
    """Label batches until the server dies, or (after the restart) until the queue is done."""
    mine = lab.seen[-1]
    deadline = time.monotonic() + 300
    try:
        while watcher is None or not watcher.all_done.is_set():
            assert time.monotonic() < deadline, f"person {lab.index} still labelling"
            assert watcher is None or watcher.error is None, watcher.error
            if not mine:
                if watcher is None:
                    return
                await asyncio.sleep(0.2)  # others hold the rest: ask again
                mine = await label_batch(page, 0, [])
                continue
            skipped = [mine[0]] if lab.rng.random() < 0.15 else []
            value = lab.rng.randrange(10)
            answers = {item: value for item in mine if item not in skipped}
            lab.sent.append(answers)
            following = await label_batch(page, value, skipped)
            lab.acked.update(answers)
            lab.seen.append(following)
            acked_total[0] += 1
            mine = following
    except ClientError:
        return  # the server went away mid-click


def journaled_claims(app_dir: Path, run_id: str) -> list[list[Any]]:
    """The items of each `queue_claim` event of the run, in call order."""
    events = journal(app_dir, run_id, ("queue_claim",))
    return [e["payload"]["items"] for e in sorted(events, key=lambda e: e["payload"]["call"])]


async def test_sigkill_mid_claims_and_submits_loses_no_acknowledged_answer(
    tmp_path: Path,
) -> None:
    app_dir = write_app(tmp_path / "app", queue_stages("killed", ITEMS, BATCH, OVERLAP, 600))
    tables = QueueTables("killed", sqlite_file=app_dir / "freezer.db")
    watcher = ClaimWatcher(tables, OVERLAP, ITEMS)
    server = await asyncio.to_thread(start_server, app_dir, *ARGS)
    restarted = None
    labelers = [Labeler(i, Person(server.base_url), random.Random(i)) for i in range(PEOPLE)]
    try:
        pages: list[PageSession] = []
        for lab in labelers:  # one at a time: the first batches are known in advance
            page = await lab.person.open("")
            lab.run_id = run_id_of(page)
            lab.seen.append(await ready(page))
            pages.append(page)
        watcher.start()
        acked_total = [0]
        players = [asyncio.create_task(label(lab, page, acked_total, None))
                   for lab, page in zip(labelers, pages, strict=True)]
        await eventually(lambda: acked_total[0] >= ACKED_BEFORE_KILL, "acknowledged submits")
        kill_hard(server)
        await asyncio.gather(*players)
        for lab in labelers:
            for session in list(lab.person.sessions):
                await session.close()
        before_restart = {lab.run_id: dict(lab.acked) for lab in labelers}

        restarted = await restart(server, app_dir, *ARGS)
        replayed: list[PageSession] = []
        in_flight = 0
        for lab in labelers:
            page = await lab.person.open(f"run/{lab.run_id}")
            shown = await ready(page)
            claims = journaled_claims(app_dir, lab.run_id)
            # the batches seen before the kill are the journal's first claims, in order
            assert claims[: len(lab.seen)] == lab.seen, (lab.index, claims, lab.seen)
            # at most one more: a click that reached the journal, not its answer the person
            assert len(claims) - len(lab.seen) in (0, 1), (lab.index, claims, lab.seen)
            # the replayed run shows the batch it had (its journal's last)
            assert shown == claims[-1], (lab.index, shown, claims)
            if len(claims) > len(lab.seen):  # that click's answers count as sent and done
                lab.acked.update(lab.sent[-1])
                in_flight += 1
                lab.seen.append(shown)
            replayed.append(page)

        stored = answers_by_run(tables)
        for lab in labelers:  # no acknowledged answer lost, none invented
            assert before_restart[lab.run_id].items() <= stored.get(lab.run_id, {}).items()
            assert stored.get(lab.run_id, {}) == lab.acked, lab.index
        assert sum(len(a) for a in before_restart.values()) >= ACKED_BEFORE_KILL
        print(f"acknowledged before the kill: {sum(map(len, before_restart.values()))} answers; "
              f"clicks journaled but not acknowledged: {in_flight}")

        await asyncio.gather(*(label(lab, page, acked_total, watcher)
                               for lab, page in zip(labelers, replayed, strict=True)))
        watcher.check()
    finally:
        for lab in labelers:
            await lab.person.close()
        server.stop()
        if restarted is not None:
            restarted.stop()
        watcher.stop()

    assert watcher.violations == []
    stored = answers_by_run(tables)
    for lab in labelers:
        assert stored.get(lab.run_id, {}) == lab.acked, lab.index
    per_item: dict[str, list[int]] = {}
    for answer in tables.answers():  # the watcher has stopped
        if not answer.skipped:
            per_item.setdefault(answer.key, []).append(answer.user_id)
    assert sorted(per_item, key=int) == [str(i) for i in range(ITEMS)]
    assert all(len(users) == OVERLAP == len(set(users)) for users in per_item.values())


def answers_by_run(tables: QueueTables) -> dict[str, dict[Any, Any]]:
    """Run id -> {item: answer} of the stored (non-skip) answers (on a connection of its own:
    the watcher's is its thread's)."""
    reader = QueueTables(tables.queue, sqlite_file=tables.sqlite_file)
    stored: dict[str, dict[Any, Any]] = {}
    try:
        for answer in reader.answers():
            if not answer.skipped:
                stored.setdefault(answer.run_id, {})[int(answer.key)] = answer.answer
    finally:
        reader.close()
    return stored
