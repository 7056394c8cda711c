"""The write-ahead journal: group commit, order, failures (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection

from runtime.errors import JournalError, RuntimeAppError
from runtime.manifest import Manifest
from runtime.runs.journal import Journal
from runtime.store.store import NewEvent, Run, Store

NewRun = Callable[..., Awaitable[Run]]
WaitUntil = Callable[..., Awaitable[None]]


class GatedStore(Store):
    """A store whose `append_events` waits at a gate, to hold a commit in flight."""

    gate: asyncio.Event
    calls: list[int]

    async def append_events(self, events: Sequence[NewEvent]) -> list[int]:
        self.calls.append(len(events))
        await self.gate.wait()
        return await super().append_events(events)


@pytest.fixture
async def gated(
    db_url: str, manifest_factory: Callable[..., Manifest]
) -> AsyncIterator[GatedStore]:
    store = await GatedStore.open(db_url)
    store.gate, store.calls = asyncio.Event(), []
    store.gate.set()
    await store.ensure_app(manifest_factory())
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def commits(store: Store) -> Iterator[list[int]]:
    """Counts the transactions the database commits (SQLAlchemy's own commit event)."""
    counted: list[int] = []

    def on_commit(_conn: Connection) -> None:
        counted.append(1)

    event.listen(store.engine, "commit", on_commit)
    yield counted
    event.remove(store.engine, "commit", on_commit)


async def gated_run(store: GatedStore, name: str = "alice") -> Run:
    (app_id,) = [r for r in await store_apps(store)]
    user = await store.get_or_create_user(name)
    return await store.create_run(app_id, user.id, 1, {})


async def store_apps(store: Store) -> list[str]:
    from sqlalchemy import text

    def read() -> list[str]:
        with store.engine.connect() as conn:
            return [row[0] for row in conn.execute(text("SELECT id FROM apps"))]

    return await asyncio.to_thread(read)


def msg(run: Run, i: int) -> NewEvent:
    return NewEvent(run.id, "comm_msg", 0, {"i": i})


async def test_append_returns_the_committed_seq(store: Store, new_run: NewRun) -> None:
    run = await new_run()
    journal = Journal(store)
    try:
        assert await journal.append(msg(run, 0)) == 1
        # resolved only after the commit: a fresh store sees it at once
        assert [e.payload for e in await store.events(run.id)] == [{"i": 0}]
        assert await journal.append(msg(run, 1)) == 2
    finally:
        await journal.close()
    assert journal.stats.batches == 2 and journal.stats.events == 2


async def test_appends_during_a_commit_go_into_the_next_one(
    gated: GatedStore, wait_until: WaitUntil
) -> None:
    run = await gated_run(gated)
    journal = Journal(gated)
    try:
        gated.gate.clear()
        first = asyncio.create_task(journal.append(msg(run, 0)))
        await wait_until(lambda: gated.calls == [1])  # the first commit is in flight
        rest = [asyncio.create_task(journal.append(msg(run, i))) for i in range(1, 51)]
        await wait_until(lambda: journal.queued == 50)
        gated.gate.set()
        seqs = await asyncio.gather(first, *rest)
    finally:
        await journal.close()
    assert seqs == list(range(1, 52))
    assert gated.calls == [1, 50]
    assert (journal.stats.batches, journal.stats.largest_batch) == (2, 50)
    assert [e.payload["i"] for e in await gated.events(run.id)] == list(range(51))


async def test_group_commit_counts_transactions(
    store: Store, new_run: NewRun, commits: list[int]
) -> None:
    runs = [await new_run() for _ in range(10)]
    journal = Journal(store, max_batch=40)
    commits.clear()
    try:
        # 100 appends arrive together: 100 events, at most ceil(100 / 40) transactions
        seqs = await asyncio.gather(
            *(journal.append(msg(run, i)) for i in range(10) for run in runs)
        )
    finally:
        await journal.close()
    assert len(commits) == journal.stats.batches == 3
    assert journal.stats.largest_batch == 40
    assert sorted(seqs) == sorted(list(range(1, 11)) * 10)


async def test_order_is_kept_per_run_under_concurrency(store: Store, new_run: NewRun) -> None:
    runs = [await new_run() for _ in range(25)]
    journal = Journal(store, max_batch=64)

    async def person(run: Run) -> list[int]:
        # each person waits for their previous message, as the websocket does
        return [await journal.append(msg(run, i)) for i in range(20)]

    async def burst(run: Run) -> list[int]:
        # and a burst of messages that do not wait for each other
        return list(await asyncio.gather(*(journal.append(msg(run, i)) for i in range(20, 30))))

    try:
        sequential = await asyncio.gather(*(person(run) for run in runs))
        bursts = await asyncio.gather(*(burst(run) for run in runs))
    finally:
        await journal.close()
    assert all(seqs == list(range(1, 21)) for seqs in sequential)
    assert all(seqs == list(range(21, 31)) for seqs in bursts)
    for run in runs:
        events = await store.events(run.id)
        assert [e.payload["i"] for e in events] == list(range(30))
        assert [e.seq for e in events] == list(range(1, 31))
    assert journal.stats.batches < 25 * 30  # commits were shared


async def test_failed_commit_is_a_journal_error_and_writes_nothing(
    store: Store, new_run: NewRun, db_url: str, is_sqlite: bool
) -> None:
    run = await new_run()
    journal = Journal(store)

    # the database refuses writes (read-only) while three appends wait for one commit
    def read_only(conn: Connection) -> None:
        conn.exec_driver_sql(
            "PRAGMA query_only = ON" if is_sqlite else "SET TRANSACTION READ ONLY"
        )

    event.listen(store.engine, "begin", read_only)
    try:
        outcomes = await asyncio.gather(
            *(journal.append(msg(run, i)) for i in range(3)), return_exceptions=True
        )
    finally:
        event.remove(store.engine, "begin", read_only)
        if is_sqlite:
            await asyncio.to_thread(clear_query_only, store)
    assert all(isinstance(o, JournalError) for o in outcomes), outcomes
    error = outcomes[0]
    assert isinstance(error, RuntimeAppError) and error.run_id == run.id
    assert "not saved" in str(error)
    assert journal.stats.failed == 3
    assert await store.events(run.id) == []

    # the journal keeps working once the database accepts writes again
    assert await journal.append(msg(run, 3)) == 1
    await journal.close()
    if is_sqlite:
        with sqlite3.connect(Path(db_url.removeprefix("sqlite:///"))) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def clear_query_only(store: Store) -> None:
    raw = store.engine.raw_connection()  # no transaction: BEGIN IMMEDIATE would be refused
    try:
        raw.cursor().execute("PRAGMA query_only = OFF")
    finally:
        raw.close()


async def test_a_bad_event_fails_only_its_own_run(gated: GatedStore, wait_until: WaitUntil) -> None:
    good, bad = await gated_run(gated, "good"), await gated_run(gated, "bad")
    journal = Journal(gated)
    try:
        gated.gate.clear()
        tasks = [
            asyncio.create_task(journal.append(e))
            for e in (
                msg(good, 0), msg(bad, 0), msg(good, 1),
                NewEvent(bad.id, "comm_msg", 0, {"bytes": b"not JSON"}), msg(good, 2),
            )
        ]
        await wait_until(lambda: len(gated.calls) == 1)
        gated.gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await journal.close()
    assert gated.calls == [5, 3, 2]  # the batch, then each run on its own
    assert outcomes[0::2] == [1, 2, 3]
    assert all(isinstance(o, JournalError) and o.run_id == bad.id for o in outcomes[1::2])
    assert await gated.events(bad.id) == []  # all or nothing per run
    assert [e.payload["i"] for e in await gated.events(good.id)] == [0, 1, 2]


async def test_closed_store_is_a_journal_error(
    db_url: str, manifest_factory: Callable[..., Manifest]
) -> None:
    store = await Store.open(db_url)
    manifest = manifest_factory()
    await store.ensure_app(manifest)
    user = await store.get_or_create_user("hana")
    run = await store.create_run(manifest.app_id, user.id, 1, {})
    journal = Journal(store)
    await store.close()
    try:
        with pytest.raises(JournalError, match="store is closed"):
            await journal.append(msg(run, 0))
    finally:
        await journal.close()


async def test_close_commits_what_is_queued_and_stops_the_writer(
    store: Store, new_run: NewRun
) -> None:
    run = await new_run()
    journal = Journal(store)
    await journal.flush()  # nothing to wait for
    pending = [asyncio.create_task(journal.append(msg(run, i))) for i in range(5)]
    await asyncio.sleep(0)  # let the appends enqueue
    await journal.close()
    assert journal.closed and journal._writer is None
    assert [t.result() for t in pending] == [1, 2, 3, 4, 5]
    with pytest.raises(JournalError, match="closed"):
        await journal.append(msg(run, 5))
    await journal.close()  # closing twice is harmless
    writers = [t for t in asyncio.all_tasks() if t.get_name() == "freezer-journal"]
    assert writers == []


async def test_flush_waits_for_everything_appended(store: Store, new_run: NewRun) -> None:
    run = await new_run()
    journal = Journal(store, max_batch=7)
    try:
        tasks = [asyncio.create_task(journal.append(msg(run, i))) for i in range(30)]
        await asyncio.sleep(0)
        await journal.flush()
        assert all(t.done() for t in tasks)
        assert len(await store.events(run.id)) == 30
    finally:
        await journal.close()


async def test_cancelled_append_is_not_written(gated: GatedStore, wait_until: WaitUntil) -> None:
    run = await gated_run(gated)
    journal = Journal(gated)
    try:
        gated.gate.clear()
        first = asyncio.create_task(journal.append(msg(run, 0)))
        await wait_until(lambda: gated.calls == [1])
        dropped = asyncio.create_task(journal.append(msg(run, 1)))
        kept = asyncio.create_task(journal.append(msg(run, 2)))
        await wait_until(lambda: journal.queued == 2)
        dropped.cancel()
        gated.gate.set()
        assert await first == 1 and await kept == 2
    finally:
        await journal.close()
    assert dropped.cancelled()
    assert [e.payload["i"] for e in await gated.events(run.id)] == [0, 2]


async def test_max_batch_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError):
        Journal(store, max_batch=0)
