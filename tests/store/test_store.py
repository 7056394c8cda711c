"""The store API on a real database (SQLite file and PostgreSQL, see conftest.py)."""

from __future__ import annotations

import array
import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from runtime.errors import RunnerEventError, StoreClosedError, StoreError, UnknownRunError
from runtime.manifest import Manifest
from runtime.store.store import (
    NewEvent,
    Run,
    Store,
    User,
    database_url,
    hash_token,
    pack_buffers,
    unpack_buffers,
)

NewRun = Callable[..., Awaitable[Run]]


def sqlite_path(db_url: str) -> Path:
    return Path(db_url.removeprefix("sqlite:///"))


async def test_sqlite_connections_are_configured(store: Store, sqlite_only: None) -> None:
    def pragmas() -> dict[str, Any]:
        with store.engine.connect() as conn:
            return {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
            }

    found = await asyncio.to_thread(pragmas)
    assert found == {
        "journal_mode": "wal", "foreign_keys": 1, "synchronous": 1, "busy_timeout": 5000,
    }


def test_postgresql_urls_mean_psycopg() -> None:
    assert database_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert database_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert database_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert database_url("sqlite:///x.db").drivername == "sqlite"


async def test_unusable_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot use database URL"):
        await Store.open("nosuchdialect://x")


async def test_ensure_app_is_idempotent(
    store: Store, manifest_factory: Callable[..., Manifest]
) -> None:
    manifest = manifest_factory()
    await store.ensure_app(manifest)
    await store.ensure_app(manifest)
    assert await store.get_manifest(manifest.app_id) == manifest
    assert await store.get_manifest("0" * 64) is None
    with pytest.raises(StoreError, match="app_id"):
        await store.ensure_app(manifest_factory().__class__(**{**manifest.__dict__, "app_id": ""}))


async def test_users(store: Store) -> None:
    alice = await store.get_or_create_user("alice")
    assert alice.name == "alice" and not alice.is_admin and not alice.has_token
    assert alice.created_at.tzinfo == timezone.utc
    assert await store.get_or_create_user("alice") == alice
    promoted = await store.get_or_create_user("alice", is_admin=True)
    assert promoted.id == alice.id and promoted.is_admin
    # signing in as a normal user never demotes
    assert (await store.get_or_create_user("alice")).is_admin
    bob = await store.get_or_create_user("bob")
    assert bob.id != alice.id
    assert await store.get_user(bob.id) == bob
    assert await store.get_user(10_000) is None
    assert await store.get_user_by_name("bob") == bob
    assert await store.get_user_by_name("carol") is None


async def test_invite_tokens_are_stored_hashed(store: Store, db_url: str, is_sqlite: bool) -> None:
    token = "raw-invite-token-Zq8wX1"
    invited = await store.create_invite("carol", token, is_admin=True)
    assert invited.is_admin and invited.has_token
    assert await store.user_by_token(token) == invited
    assert await store.user_by_token("wrong") is None

    # a new invite replaces the old token
    await store.create_invite("carol", "second-token-Kk2")
    assert await store.user_by_token(token) is None
    again = await store.user_by_token("second-token-Kk2")
    assert again is not None and again.id == invited.id and not again.is_admin

    def dump_users() -> str:
        with store.engine.connect() as conn:
            return repr(conn.execute(text("SELECT * FROM users")).all())

    dumped = await asyncio.to_thread(dump_users)
    assert hash_token("second-token-Kk2") in dumped
    assert "second-token-Kk2" not in dumped and token not in dumped
    if is_sqlite:
        await store.close()
        path = sqlite_path(db_url)
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert files
        for file in files:
            assert token.encode() not in file.read_bytes(), file
            assert b"second-token-Kk2" not in file.read_bytes(), file
    with pytest.raises(StoreError):
        await store.create_invite("dave", "")


async def test_an_invite_token_belongs_to_one_user(store: Store) -> None:
    first = await store.create_invite("ivan", "shared-token")
    with pytest.raises(StoreError, match="already another user's invite"):
        await store.create_invite("judy", "shared-token")
    assert await store.get_user_by_name("judy") is None
    assert await store.user_by_token("shared-token") == first
    assert await store.create_invite("ivan", "shared-token") == first  # re-inviting is fine


async def test_two_stores_creating_one_user_agree(db_url: str) -> None:
    # two server processes signing in the same new names at once
    first, second = await Store.open(db_url), await Store.open(db_url)
    try:
        for i in range(20):
            name = f"person-{i}"
            a, b = await asyncio.gather(
                first.get_or_create_user(name), second.get_or_create_user(name)
            )
            assert a.id == b.id and a.name == b.name == name
    finally:
        await first.close()
        await second.close()


async def test_create_and_get_run(store: Store, app: Manifest, user: User) -> None:
    run = await store.create_run(app.app_id, user.id, 1234, {"shard": 3})
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}", run.id)
    assert (run.app_id, run.user_id, run.user_name) == (app.app_id, user.id, "alice")
    assert (run.status, run.stage, run.seed, run.params) == ("active", 0, 1234, {"shard": 3})
    assert run.created_at == run.updated_at and run.finished_at is None
    assert run.created_at.tzinfo == timezone.utc
    assert await store.get_run(run.id) == run
    assert await store.get_run("no-such-run") is None
    with pytest.raises(StoreError, match="no user"):
        await store.create_run(app.app_id, 10_000, 1, {})
    with pytest.raises(StoreError, match="no app"):
        await store.create_run("f" * 64, user.id, 1, {})


async def test_run_lists_are_newest_first(
    store: Store, app: Manifest, user: User, manifest_factory: Callable[..., Manifest]
) -> None:
    other_app = manifest_factory(title="Other", stages=1)
    await store.ensure_app(other_app)
    bob = await store.get_or_create_user("bob")
    first = await store.create_run(app.app_id, user.id, 1, {})
    second = await store.create_run(app.app_id, user.id, 2, {})
    elsewhere = await store.create_run(other_app.app_id, user.id, 3, {})
    bobs = await store.create_run(app.app_id, bob.id, 4, {})

    assert [r.id for r in await store.runs_for_user(user.id)] == [
        elsewhere.id, second.id, first.id,
    ]
    assert [r.id for r in await store.runs_for_user(user.id, app.app_id)] == [second.id, first.id]
    assert [r.id for r in await store.list_runs()] == [
        bobs.id, elsewhere.id, second.id, first.id,
    ]
    assert [r.id for r in await store.list_runs(app.app_id)] == [bobs.id, second.id, first.id]
    assert await store.runs_for_user(10_000) == []


async def test_set_run_status(store: Store, new_run: NewRun) -> None:
    run = await new_run()
    await store.set_run_status(run.id, "diverged")
    diverged = await store.get_run(run.id)
    assert diverged is not None and diverged.status == "diverged"
    assert diverged.updated_at > run.updated_at and diverged.finished_at is None
    await store.set_run_status(run.id, "finished")
    finished = await store.get_run(run.id)
    assert finished is not None and finished.finished_at is not None
    with pytest.raises(StoreError, match="not one of"):
        await store.set_run_status(run.id, "paused")
    with pytest.raises(UnknownRunError):
        await store.set_run_status("no-such-run", "active")


async def test_append_events_numbers_each_run(store: Store, new_run: NewRun) -> None:
    a, b = await new_run(), await new_run()
    blob = pack_buffers([b"\x00\x01", b"", b"xyz"])
    seqs = await store.append_events(
        [
            NewEvent(a.id, "comm_msg", 0, {"method": "update", "state": {"value": 1}}),
            NewEvent(b.id, "comm_msg", 2, {"method": "custom"}, blob),
            NewEvent(a.id, "comm_msg", 0, {"method": "update", "state": {"value": 2}}),
        ]
    )
    assert seqs == [1, 1, 2]
    assert await store.append_events([NewEvent(a.id, "comm_msg", 1, {"n": 3})]) == [3]
    assert await store.append_events([]) == []

    events = await store.events(a.id)
    assert [(e.seq, e.ordinal, e.payload) for e in events] == [
        (1, 0, {"method": "update", "state": {"value": 1}}),
        (2, 0, {"method": "update", "state": {"value": 2}}),
        (3, 1, {"n": 3}),
    ]
    assert all(e.run_id == a.id and e.kind == "comm_msg" and e.buffers == b"" for e in events)
    assert [e.seq for e in await store.events(a.id, after=1)] == [2, 3]
    (b_event,) = await store.events(b.id)
    assert unpack_buffers(b_event.buffers) == [b"\x00\x01", b"", b"xyz"]
    assert unpack_buffers(b"") == []
    touched = await store.get_run(a.id)
    assert touched is not None and touched.updated_at > a.updated_at


def test_buffers_pack_memoryviews_by_bytes() -> None:
    floats = memoryview(array.array("d", [0.5, 1.5]))  # 2 items, 16 bytes
    blob = pack_buffers([floats, bytearray(b"ab")])
    assert unpack_buffers(blob) == [floats.tobytes(), b"ab"]


async def test_events_filter_by_kind(store: Store, new_run: NewRun) -> None:
    run = await new_run()
    await store.append_events([NewEvent(run.id, "comm_msg", 0, {"i": 1})])
    await store.record_runner_event(run.id, {"event": "stage_started", "stage": 0})
    await store.append_events([NewEvent(run.id, "comm_msg", 0, {"i": 2})])
    assert [e.seq for e in await store.events(run.id, kinds=["comm_msg"])] == [1, 3]
    assert [e.kind for e in await store.events(run.id, kinds={"stage_started"})] == [
        "stage_started"
    ]


async def test_append_to_unknown_run_writes_nothing(store: Store, new_run: NewRun) -> None:
    run = await new_run()
    with pytest.raises(UnknownRunError, match="no-such-run"):
        await store.append_events(
            [NewEvent(run.id, "comm_msg", 0, {}), NewEvent("no-such-run", "comm_msg", 0, {})]
        )
    assert await store.events(run.id) == []


async def test_unserialisable_payload_writes_nothing(store: Store, new_run: NewRun) -> None:
    run = await new_run()
    with pytest.raises(StoreError):
        await store.append_events(
            [NewEvent(run.id, "comm_msg", 0, {"ok": 1}), NewEvent(run.id, "comm_msg", 0, object())]
        )
    assert await store.events(run.id) == []
    assert await store.append_events([NewEvent(run.id, "comm_msg", 0, {})]) == [1]


async def test_concurrent_appends_from_many_runs(store: Store, new_run: NewRun) -> None:
    runs = [await new_run() for _ in range(12)]

    async def person(run: Run) -> list[int]:
        seqs = []
        for i in range(15):
            (seq,) = await store.append_events([NewEvent(run.id, "comm_msg", 0, {"i": i})])
            seqs.append(seq)
        return seqs

    all_seqs = await asyncio.gather(*(person(run) for run in runs))
    assert all(seqs == list(range(1, 16)) for seqs in all_seqs)
    for run in runs:
        assert [e.payload["i"] for e in await store.events(run.id)] == list(range(15))


async def test_runner_events_drive_run_and_stage_state(store: Store, new_run: NewRun) -> None:
    run = await new_run()

    async def send(**data: Any) -> tuple[Run, dict[int, Any]]:
        await store.record_runner_event(run.id, data)
        current = await store.get_run(run.id)
        assert current is not None
        return current, {s.index: s for s in await store.stages(run.id)}

    current, stages = await send(event="hello", run_id=run.id, stages=3)
    assert current.status == "active" and stages == {}

    current, stages = await send(event="stage_started", stage=0)
    assert stages[0].status == "running" and stages[0].started_at is not None
    assert current.stage == 0

    current, stages = await send(event="stage_ready", stage=0)
    assert stages[0].status == "ready" and stages[0].finished_at is None

    current, stages = await send(event="stage_finished", stage=0, snapshot={"w0": [1, "a"]})
    assert stages[0].status == "finished" and stages[0].snapshot == {"w0": [1, "a"]}
    assert stages[0].finished_at is not None

    current, stages = await send(event="stage_started", stage=1)
    assert current.stage == 1 and stages[1].status == "running"

    current, stages = await send(
        event="stage_failed", stage=1, error="ZeroDivisionError: division by zero",
        traceback="Traceback (most recent call last):\n  ...",
    )
    assert stages[1].status == "failed"
    assert stages[1].error == "ZeroDivisionError: division by zero"
    assert stages[1].traceback is not None and stages[1].traceback.startswith("Traceback")
    assert current.status == "active"  # Next re-runs a failed stage

    failed_started = stages[1].started_at
    current, stages = await send(event="stage_started", stage=1)
    assert stages[1].status == "running" and stages[1].error is None
    assert stages[1].started_at is not None and failed_started is not None
    assert stages[1].started_at > failed_started

    await send(event="stage_ready", stage=1)
    await send(event="stage_finished", stage=1, snapshot={"w1": 0.5})
    await send(event="stage_started", stage=2)
    current, stages = await send(event="stage_ready", stage=2)
    assert current.status == "active" and current.finished_at is None
    current, stages = await send(event="finished")
    assert current.status == "finished" and current.finished_at is not None
    assert current.stage == 2
    assert [s.status for s in stages.values()] == ["finished", "finished", "ready"]

    kinds = [e.kind for e in await store.events(run.id)]
    assert kinds == [
        "hello", "stage_started", "stage_ready", "stage_finished", "stage_started",
        "stage_failed", "stage_started", "stage_ready", "stage_finished", "stage_started",
        "stage_ready", "finished",
    ]
    (hello,) = await store.events(run.id, kinds=["hello"])
    assert hello.payload == {"event": "hello", "run_id": run.id, "stages": 3}
    assert hello.ordinal is None


async def test_bad_runner_events_change_nothing(store: Store, new_run: NewRun) -> None:
    run = await new_run()
    for data in (
        {"stage": 0},
        {"event": "stage_started"},
        {"event": "stage_ready", "stage": "0"},
        {"event": "collected", "stage": 0, "value": 1},
        {"event": "stage_finished", "stage": 0, "snapshot": [1]},
    ):
        with pytest.raises(RunnerEventError):
            await store.record_runner_event(run.id, data)
    with pytest.raises(UnknownRunError):
        await store.record_runner_event("no-such-run", {"event": "finished"})
    assert await store.events(run.id) == []
    assert await store.stages(run.id) == []

    # an event this store does not know is journaled and otherwise ignored
    await store.record_runner_event(run.id, {"event": "progress", "percent": 40})
    assert [e.kind for e in await store.events(run.id)] == ["progress"]
    same = await store.get_run(run.id)
    assert same is not None and (same.status, same.stage) == ("active", 0)


async def test_collected_results_are_upserted(store: Store, new_run: NewRun) -> None:
    run = await new_run()
    await store.record_runner_event(
        run.id, {"event": "collected", "stage": 1, "name": "threshold", "value": 0.4}
    )
    await store.record_runner_event(
        run.id, {"event": "collected", "stage": 1, "name": "labels", "value": {"a": [1, 2]}}
    )
    await store.record_runner_event(
        run.id, {"event": "collected", "stage": 2, "name": "threshold", "value": 0.7}
    )
    results = await store.results(run.id)
    assert [(r.name, r.value, r.stage) for r in results] == [
        ("labels", {"a": [1, 2]}, 1),
        ("threshold", 0.7, 2),
    ]
    assert len(await store.events(run.id, kinds=["collected"])) == 3


async def test_export_rows(
    store: Store, app: Manifest, user: User, manifest_factory: Callable[..., Manifest]
) -> None:
    other_app = manifest_factory(title="Other", stages=1)
    await store.ensure_app(other_app)
    bob = await store.get_or_create_user("bob")
    done = await store.create_run(app.app_id, user.id, 1, {"shard": 2})
    for data in (
        {"event": "stage_started", "stage": 0},
        {"event": "stage_ready", "stage": 0},
        {"event": "stage_finished", "stage": 0, "snapshot": {"w0": "cat"}},
        {"event": "stage_started", "stage": 1},
        {"event": "collected", "stage": 1, "name": "threshold", "value": 0.25},
        {"event": "stage_ready", "stage": 1},
        {"event": "finished"},
    ):
        await store.record_runner_event(done.id, data)
    fresh = await store.create_run(app.app_id, bob.id, 2, {})
    elsewhere = await store.create_run(other_app.app_id, bob.id, 3, {})

    rows = await store.export_rows()
    assert [r["run_id"] for r in rows] == [elsewhere.id, fresh.id, done.id]
    row = rows[2]
    finished = await store.get_run(done.id)
    assert finished is not None and finished.finished_at is not None
    assert row == {
        "run_id": done.id,
        "app_id": app.app_id,
        "user": "alice",
        "status": "finished",
        "stage": 1,
        "stages": 3,
        "created_at": done.created_at.isoformat(),
        "updated_at": finished.updated_at.isoformat(),
        "finished_at": finished.finished_at.isoformat(),
        "params": {"shard": 2},
        "snapshots": {"0": {"w0": "cat"}},
        "results": {"threshold": 0.25},
        "stage_0_status": "finished",
        "stage_1_status": "ready",
        "stage_2_status": None,
    }
    assert rows[1]["user"] == "bob" and rows[1]["stage_0_status"] is None
    assert rows[1]["results"] == {} and rows[1]["finished_at"] is None
    assert rows[0]["stages"] == 1 and "stage_1_status" not in rows[0]
    assert [r["run_id"] for r in await store.export_rows(app.app_id)] == [fresh.id, done.id]
    assert await store.export_rows("f" * 64) == []


async def test_reopened_store_sees_everything(db_url: str, is_sqlite: bool) -> None:
    from runtime.manifest import Cell, Stage

    manifest = Manifest(
        title="t", source_name="n.ipynb", source_sha256="1" * 64, freezer_version="0.1.0",
        created="2026-01-01T00:00:00+00:00", kernel_name="python3", kernel_language="python",
        stages=(Stage(index=0, title="Step 1", cells=(Cell("c", "code", "x = 1"),)),),
    ).with_app_id()
    first = await Store.open(db_url)
    try:
        await first.ensure_app(manifest)
        user = await first.create_invite("erin", "tok-erin")
        run = await first.create_run(manifest.app_id, user.id, 9, {"k": "v"})
        await first.append_events([NewEvent(run.id, "comm_msg", 4, {"x": 1}, b"\x01")])
        await first.record_runner_event(
            run.id, {"event": "collected", "stage": 0, "name": "n", "value": [1]}
        )
        await first.record_runner_event(run.id, {"event": "finished"})
        before = (
            await first.get_run(run.id), await first.events(run.id), await first.stages(run.id),
            await first.results(run.id), await first.export_rows(),
        )
    finally:
        await first.close()

    second = await Store.open(db_url)
    try:
        assert await second.get_manifest(manifest.app_id) == manifest
        assert await second.user_by_token("tok-erin") == user
        after = (
            await second.get_run(run.id), await second.events(run.id),
            await second.stages(run.id), await second.results(run.id),
            await second.export_rows(),
        )
        assert after == before
        # numbering continues where the first store stopped
        assert await second.append_events([NewEvent(run.id, "comm_msg", 4, {})]) == [4]
    finally:
        await second.close()
    if is_sqlite:
        with sqlite3.connect(sqlite_path(db_url)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_closed_store_refuses_work(db_url: str) -> None:
    store = await Store.open(db_url)
    await store.close()
    await store.close()  # closing twice is harmless
    assert store.closed
    with pytest.raises(StoreClosedError):
        await store.get_or_create_user("late")


async def test_locked_sqlite_is_retried_until_released(
    db_url: str, sqlite_only: None, manifest_factory: Callable[..., Manifest],
    wait_until: Callable[..., Awaitable[None]],
) -> None:
    # a short busy_timeout so that the store's own retry loop is what waits
    store = await Store.open(db_url, busy_timeout=0.01)
    try:
        manifest = manifest_factory()
        await store.ensure_app(manifest)
        user = await store.get_or_create_user("frank")
        run = await store.create_run(manifest.app_id, user.id, 1, {})

        other = sqlite3.connect(sqlite_path(db_url), isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # holds the write lock
            other.execute("UPDATE users SET name = 'frank' WHERE name = 'frank'")
            append = asyncio.create_task(
                store.append_events([NewEvent(run.id, "comm_msg", 0, {"held": True})])
            )
            await wait_until(lambda: store.stats.lock_retries >= 3)
            assert not append.done()
            # readers are not blocked by the writer under WAL
            assert await store.get_run(run.id) is not None
            other.execute("COMMIT")
        finally:
            other.close()
        assert await asyncio.wait_for(append, 30) == [1]
        assert [e.payload for e in await store.events(run.id)] == [{"held": True}]
    finally:
        await store.close()


async def test_lock_held_too_long_is_a_store_error(
    db_url: str, sqlite_only: None, wait_until: Callable[..., Awaitable[None]]
) -> None:
    store = await Store.open(db_url, busy_timeout=0.01, lock_timeout=0.2)
    other = sqlite3.connect(sqlite_path(db_url), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="stayed locked"):
            await store.get_or_create_user("gina")
        assert store.stats.lock_retries > 0
        other.execute("ROLLBACK")
        assert (await store.get_or_create_user("gina")).name == "gina"
    finally:
        other.close()
        await store.close()


@pytest.fixture
async def two_stores(
    db_url: str, manifest_factory: Callable[..., Manifest]
) -> AsyncIterator[tuple[Store, Store, Run]]:
    """Two stores on one database (two server processes) and a run both can append to."""
    first, second = await Store.open(db_url), await Store.open(db_url)
    try:
        manifest = manifest_factory()
        await first.ensure_app(manifest)
        user = await first.get_or_create_user("kim")
        yield first, second, await first.create_run(manifest.app_id, user.id, 1, {})
    finally:
        await first.close()
        await second.close()


async def test_two_stores_appending_to_one_run_never_collide(
    two_stores: tuple[Store, Store, Run],
) -> None:
    first, second, run = two_stores
    batches = await asyncio.gather(
        *(
            store.append_events([NewEvent(run.id, "comm_msg", 0, {"i": i})] * 3)
            for i in range(15)
            for store in (first, second)
        )
    )
    assert sorted(seq for seqs in batches for seq in seqs) == list(range(1, 91))
    assert all(seqs == list(range(seqs[0], seqs[0] + 3)) for seqs in batches)
    assert [e.seq for e in await second.events(run.id)] == list(range(1, 91))


async def test_a_seq_taken_by_another_store_is_looked_up_again(
    two_stores: tuple[Store, Store, Run],
) -> None:
    # The first store remembers each run's next seq; another server appending meanwhile makes
    # that stale, and the append must then find the run's real last seq instead of failing.
    first, second, run = two_stores
    assert await first.append_events([NewEvent(run.id, "comm_msg", 0, {"n": 1})]) == [1]
    assert await second.append_events([NewEvent(run.id, "comm_msg", 0, {"n": 2})] * 2) == [2, 3]
    assert await first.append_events([NewEvent(run.id, "comm_msg", 0, {"n": 3})]) == [4]
    await first.record_runner_event(run.id, {"event": "progress", "percent": 10})
    assert await first.append_events([NewEvent(run.id, "comm_msg", 0, {"n": 4})]) == [6]
    events = await second.events(run.id)
    assert [(e.seq, e.kind) for e in events] == [
        (1, "comm_msg"), (2, "comm_msg"), (3, "comm_msg"), (4, "comm_msg"),
        (5, "progress"), (6, "comm_msg"),
    ]


async def test_appending_to_a_run_deleted_meanwhile_names_the_run(
    store: Store, new_run: NewRun
) -> None:
    run = await new_run()
    await store.append_events([NewEvent(run.id, "comm_msg", 0, {"n": 1})])
    with store.engine.begin() as connection:  # another process removes the run
        connection.exec_driver_sql("DELETE FROM events")
        connection.exec_driver_sql("DELETE FROM stages")
        connection.exec_driver_sql("DELETE FROM results")
        connection.exec_driver_sql("DELETE FROM runs")
    with pytest.raises(UnknownRunError, match=run.id):
        await store.append_events([NewEvent(run.id, "comm_msg", 0, {"n": 2})])


async def test_next_seq_does_not_read_the_whole_journal(
    store: Store, new_run: NewRun, db_url: str, sqlite_only: None
) -> None:
    # A run's journal grows all day: finding its next seq must cost the same for 10 events as
    # for 2,000. Measured in SQLite virtual machine steps, which do not depend on the clock.
    from runtime.store.journal_store import _LAST_SEQS

    short, long = await new_run(), await new_run()
    await store.append_events([NewEvent(short.id, "comm_msg", 0, {})] * 10)
    for _ in range(4):
        await store.append_events([NewEvent(long.id, "comm_msg", 0, {})] * 500)

    def vm_steps(run_id: str) -> int:
        with store.engine.connect() as conn:
            statement = _LAST_SEQS.params(run_ids=[run_id])
            sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        with sqlite3.connect(sqlite_path(db_url)) as raw:
            raw.set_progress_handler(count, 1)
            ((found_id, last),) = raw.execute(sql).fetchall()
        assert found_id == run_id and last in (10, 2000)
        return steps

    assert await asyncio.to_thread(vm_steps, long.id) < 2 * await asyncio.to_thread(
        vm_steps, short.id
    )
