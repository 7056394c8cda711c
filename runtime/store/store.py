"""The store: every database access of the runtime (SQLAlchemy 2.0, SQLite by default).

The API is async-only. Each method is one short transaction that runs on the store's own single
worker thread (:class:`.database.Database`), so the event loop never waits on the database
and SQLite sees one writer per process. Rows come back as frozen dataclasses, never as live ORM
objects. The tables are in :mod:`runtime.store.models`; `docs/database.md` describes them and the
export rows.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtime.errors import RunnerEventError, StoreClosedError, StoreError, UnknownRunError
from runtime.manifest import Manifest
from runtime.store.database import StoreStats, database_url, one_line
from runtime.store.models import (
    AppRecord,
    Base,
    Event,
    EventRecord,
    NewEvent,
    Result,
    ResultRecord,
    Run,
    RunRecord,
    StageRecord,
    StageRow,
    User,
    UserRecord,
    UTCDateTime,
    export_row,
    hash_token,
    new_run_id,
    pack_buffers,
    to_event,
    to_result,
    to_run,
    to_stage,
    to_user,
    unpack_buffers,
)
from runtime.store.queue_store import QueueTransactions
from runtime.store.runner_events import RUNNER_EVENTS, apply_runner_event, check_runner_event

RUN_STATUSES = ("active", "finished", "failed", "diverged", "abandoned")
STAGE_STATUSES = ("running", "ready", "failed", "finished")
DIVERGED_EVENT = "diverged"
"""The journal event kind of a replay that stopped matching (payload: where and why)."""


# The journal's hot path, built once: statement construction costs more than SQLite's work.
_EVENTS = Base.metadata.tables["events"]
_RUNS = Base.metadata.tables["runs"]
_TOUCH_RUNS = (
    _RUNS.update()
    .where(_RUNS.c.id.in_(bindparam("run_ids", expanding=True)))
    .values(updated_at=bindparam("now", type_=UTCDateTime()))
)
# One max() per run as a correlated subquery: each is a single index lookup on (run_id, seq).
# (`... WHERE run_id IN (...) GROUP BY run_id` makes SQLite read every event of those runs.)
_LAST_SEQS = select(
    _RUNS.c.id,
    select(func.max(_EVENTS.c.seq)).where(_EVENTS.c.run_id == _RUNS.c.id).scalar_subquery(),
).where(_RUNS.c.id.in_(bindparam("run_ids", expanding=True)))
_INSERT_EVENTS = _EVENTS.insert()
TOUCH_INTERVAL = timedelta(seconds=1)
"""A run's `updated_at` lags its last journaled widget change by at most this much."""
_LONG_AGO = datetime.min.replace(tzinfo=timezone.utc)


class Store(QueueTransactions):
    """All database access of the runtime; open with :meth:`Store.open`, end with :meth:`close`.

    Connections, the worker thread and the retry policy (`busy_timeout`, `lock_timeout`) are
    :class:`runtime.store.database.Database`'s; every method here is one transaction.
    """

    def __init__(self, engine: Engine, **kwargs: Any) -> None:
        super().__init__(engine, **kwargs)
        # Worker thread only. The next seq of each run this store has appended to, and when it
        # last set the run's `updated_at`: a run's journal grows one event per widget change,
        # and looking up max(seq) and touching the run for each cost more than the insert.
        # A seq taken meanwhile by another server fails the insert on the unique (run_id, seq)
        # key; the append is then retried the slow way (see :meth:`append_events`).
        self._next_seq: dict[str, int] = {}
        self._touched_at: dict[str, datetime] = {}
        # SQLite has one writer at a time (BEGIN IMMEDIATE), so a cached seq is either right
        # or fails the insert. Elsewhere concurrent transactions interleave: each append must
        # lock its runs' rows (the touch), or a store that looked up max(seq) under the lock
        # could collide with another appending from its cache without it.
        self._lock_each_append = engine.dialect.name != "sqlite"

    def _rolled_back(self) -> None:
        self._next_seq.clear()
        self._touched_at.clear()

    # --- apps -----------------------------------------------------------------------------

    async def ensure_app(self, manifest: Manifest) -> None:
        """Store a manifest under its app_id unless it is there already."""
        if not manifest.app_id:
            raise StoreError("the manifest has no app_id; call Manifest.with_app_id() first")

        def work(session: Session) -> None:
            if session.get(AppRecord, manifest.app_id) is None:
                session.add(
                    AppRecord(
                        id=manifest.app_id, title=manifest.title, manifest=manifest.to_json(),
                        created_at=self._now(),
                    )
                )
            else:
                # A write even when the app is known: a database the server cannot write to
                # (read-only file, volume or connection) fails here, at startup.
                session.execute(
                    update(AppRecord).where(AppRecord.id == manifest.app_id)
                    .values(title=AppRecord.title)
                )

        await self._transaction(work)

    async def get_manifest(self, app_id: str) -> Manifest | None:
        """The manifest a run was started with, or None for an unknown app_id."""

        def work(session: Session) -> dict[str, Any] | None:
            row = session.get(AppRecord, app_id)
            return None if row is None else row.manifest

        data = await self._transaction(work, write=False)
        return None if data is None else Manifest.from_json(data)

    # --- users ----------------------------------------------------------------------------

    async def get_or_create_user(self, name: str, is_admin: bool = False) -> User:
        """The user called `name`, created if new; `is_admin=True` also promotes an existing one.

        `is_admin=False` never demotes: a person signing in does not lose admin rights.
        """

        def work(session: Session) -> User:
            row = self._find_or_add_user(session, name, is_admin)
            if is_admin and not row.is_admin:
                row.is_admin = True
            return to_user(row)

        return await self._transaction(work)

    async def create_invite(self, name: str, token: str, is_admin: bool = False) -> User:
        """Create (or re-invite) the user `name` with a sign-in token; only its sha256 is kept."""
        if not token:
            raise StoreError("an invite token must not be empty")
        token_hash = hash_token(token)

        def work(session: Session) -> User:
            holder = session.scalars(
                select(UserRecord.name).where(UserRecord.token_hash == token_hash)
            ).one_or_none()
            if holder is not None and holder != name:
                raise StoreError("this token is already another user's invite; use a new one")
            row = self._find_or_add_user(session, name, is_admin)
            row.token_hash = token_hash
            row.is_admin = is_admin
            session.flush()
            return to_user(row)

        return await self._transaction(work)

    async def user_by_token(self, token: str) -> User | None:
        """The user whose invite token this is, or None."""
        token_hash = hash_token(token)

        def work(session: Session) -> User | None:
            query = select(UserRecord).where(UserRecord.token_hash == token_hash)
            row = session.scalars(query).one_or_none()
            return None if row is None else to_user(row)

        return await self._transaction(work, write=False)

    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""

        def work(session: Session) -> User | None:
            row = session.get(UserRecord, user_id)
            return None if row is None else to_user(row)

        return await self._transaction(work, write=False)

    async def get_user_by_name(self, name: str) -> User | None:
        """The user called `name`, or None (never creates one)."""

        def work(session: Session) -> User | None:
            row = self._user_named(session, name)
            return None if row is None else to_user(row)

        return await self._transaction(work, write=False)

    def _find_or_add_user(self, session: Session, name: str, is_admin: bool) -> UserRecord:
        """Worker thread: the user called `name`, added (and flushed) if new."""
        row = self._user_named(session, name)
        if row is not None:
            return row
        row = UserRecord(name=name, is_admin=is_admin, created_at=self._now())
        try:
            # another process (PostgreSQL) may add the same name meanwhile: then use theirs
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            found = self._user_named(session, name)
            if found is None:
                raise
            return found
        return row

    @staticmethod
    def _user_named(session: Session, name: str) -> UserRecord | None:
        return session.scalars(select(UserRecord).where(UserRecord.name == name)).one_or_none()

    # --- runs -----------------------------------------------------------------------------

    async def create_run(
        self, app_id: str, user_id: int, seed: int, params: dict[str, Any]
    ) -> Run:
        """Start a new active run at stage 0 for a stored app and user."""

        def work(session: Session) -> Run:
            user = session.get(UserRecord, user_id)
            if user is None:
                raise StoreError(f"no user {user_id} in the database")
            if session.get(AppRecord, app_id) is None:
                raise StoreError(f"no app {app_id} in the database; call ensure_app() first")
            now = self._now()
            row = RunRecord(
                id=new_run_id(), app_id=app_id, user_id=user_id, status="active", stage=0,
                seed=seed, params=dict(params), created_at=now, updated_at=now,
                finished_at=None,
            )
            session.add(row)
            session.flush()
            return to_run(row, user.name)

        return await self._transaction(work)

    async def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None."""

        def work(session: Session) -> Run | None:
            query = self._runs_query().where(RunRecord.id == run_id)
            found = session.execute(query).one_or_none()
            return None if found is None else to_run(found[0], found[1])

        return await self._transaction(work, write=False)

    async def runs_for_user(self, user_id: int, app_id: str | None = None) -> list[Run]:
        """A user's runs (of one app, or of every app), newest first."""

        def work(session: Session) -> list[Run]:
            query = self._runs_query().where(RunRecord.user_id == user_id)
            if app_id is not None:
                query = query.where(RunRecord.app_id == app_id)
            return [to_run(row, name) for row, name in session.execute(query)]

        return await self._transaction(work, write=False)

    async def list_runs(self, app_id: str | None = None) -> list[Run]:
        """Every run (of one app, or of every app), newest first."""

        def work(session: Session) -> list[Run]:
            query = self._runs_query()
            if app_id is not None:
                query = query.where(RunRecord.app_id == app_id)
            return [to_run(row, name) for row, name in session.execute(query)]

        return await self._transaction(work, write=False)

    @staticmethod
    def _runs_query() -> Any:  # Select's type parameters differ between SQLAlchemy 2.0 and 2.1
        """Runs with their user's name, newest first."""
        return (
            select(RunRecord, UserRecord.name)
            .join(UserRecord, RunRecord.user_id == UserRecord.id)
            .order_by(RunRecord.created_at.desc(), RunRecord.id)
        )

    async def set_run_status(self, run_id: str, status: str) -> None:
        """Set a run's status; `finished` also stamps finished_at (once)."""
        if status not in RUN_STATUSES:
            raise StoreError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")

        def work(session: Session) -> None:
            row = session.get(RunRecord, run_id)
            if row is None:
                raise UnknownRunError(run_id)
            now = self._now()
            row.status = status
            row.updated_at = now
            if status == "finished" and row.finished_at is None:
                row.finished_at = now
            if status == "abandoned":  # start over: the run's work-queue claims end
                self._release_claims(session, run_id)

        await self._transaction(work)

    # --- events ---------------------------------------------------------------------------

    async def append_events(self, events: Sequence[NewEvent]) -> list[int]:
        """Append events in one transaction; returns their seqs (per run, in the given order)."""
        if not events:
            return []
        batch = list(events)

        def work(connection: Connection, use_cache: bool) -> list[int]:
            now = self._now()
            run_ids = {e.run_id for e in batch}
            next_seq = self._cached_next_seqs(connection, run_ids, now) if use_cache else None
            if next_seq is None:
                next_seq = self._lock_runs_and_next_seqs(connection, run_ids, now)
            seqs, rows = [], []
            for e in batch:
                seq = next_seq[e.run_id]
                next_seq[e.run_id] = seq + 1
                seqs.append(seq)
                rows.append(
                    {
                        "run_id": e.run_id, "seq": seq, "at": now, "kind": e.kind,
                        "ordinal": e.ordinal, "payload": e.payload, "buffers": bytes(e.buffers),
                    }
                )
            # one executemany, without the unit of work's per-object cost
            connection.execute(_INSERT_EVENTS, rows)
            self._next_seq.update(next_seq)  # forgotten again if the commit fails
            return seqs

        try:
            return await self._core_transaction(functools.partial(work, use_cache=True))
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        # A cached seq was taken (another server appended to the run), or the run is gone:
        # this attempt locks the runs and looks their last seqs up.
        return await self._core_transaction(functools.partial(work, use_cache=False))

    def _cached_next_seqs(
        self, connection: Connection, run_ids: Collection[str], now: datetime
    ) -> dict[str, int] | None:
        """Worker thread: each run's next seq from the cache (None unless all are cached),
        touching the runs whose `updated_at` is older than TOUCH_INTERVAL."""
        try:
            next_seq = {run_id: self._next_seq[run_id] for run_id in run_ids}
        except KeyError:
            return None
        if self._lock_each_append:
            stale = list(run_ids)
        else:
            stale = [
                r for r in run_ids if now - self._touched_at.get(r, _LONG_AGO) >= TOUCH_INTERVAL
            ]
        if stale:
            connection.execute(_TOUCH_RUNS, {"run_ids": stale, "now": now})
            self._touched_at.update(dict.fromkeys(stale, now))
        return next_seq

    def _lock_runs_and_next_seqs(
        self, connection: Connection, run_ids: Collection[str], now: datetime
    ) -> dict[str, int]:
        """Worker thread: touch the runs (which locks their rows) and find each next seq."""
        ids = list(run_ids)
        touched = connection.execute(_TOUCH_RUNS, {"run_ids": ids, "now": now})
        if touched.rowcount != len(ids):
            known = set(connection.scalars(select(_RUNS.c.id).where(_RUNS.c.id.in_(ids))))
            raise UnknownRunError(sorted(set(ids) - known)[0])
        self._touched_at.update(dict.fromkeys(ids, now))
        return {
            run_id: (last or 0) + 1
            for run_id, last in connection.execute(_LAST_SEQS, {"run_ids": ids})
        }

    def _journal_one(
        self, session: Session, run_id: str, kind: str, payload: dict[str, Any]
    ) -> tuple[RunRecord, datetime]:
        """Inside `session`'s transaction: lock the run, append one event of `kind` at the next
        seq, and return the run's row and the event's time (for what the caller updates)."""
        now = self._now()
        seq = self._lock_runs_and_next_seqs(session.connection(), [run_id], now)[run_id]
        self._next_seq[run_id] = seq + 1
        session.add(
            EventRecord(run_id=run_id, seq=seq, at=now, kind=kind, ordinal=None, payload=payload,
                        buffers=b"")
        )
        run = session.get(RunRecord, run_id)
        assert run is not None  # checked by _lock_runs_and_next_seqs
        return run, now

    async def events(
        self, run_id: str, kinds: Collection[str] | None = None, after: int = 0
    ) -> list[Event]:
        """A run's journal by seq: every event, or those of the given kinds, after seq `after`."""
        kind_list = None if kinds is None else list(kinds)

        def work(session: Session) -> list[Event]:
            query = select(EventRecord).where(
                EventRecord.run_id == run_id, EventRecord.seq > after
            )
            if kind_list is not None:
                query = query.where(EventRecord.kind.in_(kind_list))
            return [to_event(row) for row in session.scalars(query.order_by(EventRecord.seq))]

        return await self._transaction(work, write=False)

    async def record_runner_event(self, run_id: str, data: dict[str, Any]) -> None:
        """Store one `freezer.run` message and apply it to the run, its stages and results.

        One transaction: the `events` row (kind = `data["event"]`, payload = `data`) and the
        updates of `runs`, `stages` and `results` commit together or not at all. An event name
        this store does not know is journaled and otherwise ignored.
        """
        name = check_runner_event(run_id, data)
        payload = dict(data)

        def work(session: Session) -> None:
            run, now = self._journal_one(session, run_id, name, payload)
            apply_runner_event(session, run, name, payload, now)

        await self._transaction(work)

    async def record_divergence(self, run_id: str, details: dict[str, Any]) -> None:
        """Mark a run `diverged` and journal where and why (a `diverged` event), together.

        The journal is kept: the divergence is one more event at its end.
        """

        def work(session: Session) -> None:
            run, _ = self._journal_one(session, run_id, DIVERGED_EVENT, dict(details))
            run.status = "diverged"

        await self._transaction(work)

    async def divergences(self, run_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        """The last recorded divergence (`diverged` event payload) of each of these runs."""
        ids = list(run_ids)

        def work(session: Session) -> dict[str, dict[str, Any]]:
            found: dict[str, dict[str, Any]] = {}
            for start in range(0, len(ids), 500):
                query = (
                    select(EventRecord)
                    .where(EventRecord.run_id.in_(ids[start : start + 500]),
                           EventRecord.kind == DIVERGED_EVENT)
                    .order_by(EventRecord.seq)
                )
                for row in session.scalars(query):
                    if isinstance(row.payload, dict):
                        found[row.run_id] = dict(row.payload)
            return found

        if not ids:
            return {}
        return await self._transaction(work, write=False)

    # --- stages and results ---------------------------------------------------------------

    async def stages(self, run_id: str) -> list[StageRow]:
        """The stages a run has reached, by index."""

        def work(session: Session) -> list[StageRow]:
            query = (
                select(StageRecord)
                .where(StageRecord.run_id == run_id)
                .order_by(StageRecord.index)
            )
            return [to_stage(row) for row in session.scalars(query)]

        return await self._transaction(work, write=False)

    async def results(self, run_id: str) -> list[Result]:
        """A run's collected values, by name."""

        def work(session: Session) -> list[Result]:
            query = (
                select(ResultRecord)
                .where(ResultRecord.run_id == run_id)
                .order_by(ResultRecord.name)
            )
            return [to_result(row) for row in session.scalars(query)]

        return await self._transaction(work, write=False)

    # --- export ---------------------------------------------------------------------------

    async def export_rows(self, app_id: str | None = None) -> list[dict[str, Any]]:
        """One JSON-serialisable dict per run (newest first), read in one transaction.

        The shape is described in `docs/database.md`.
        """

        def work(session: Session) -> list[dict[str, Any]]:
            runs_query = self._runs_query()
            stages_query = select(StageRecord).order_by(StageRecord.index)
            results_query = select(ResultRecord).order_by(ResultRecord.name)
            apps_query = select(AppRecord)
            if app_id is not None:
                runs_query = runs_query.where(RunRecord.app_id == app_id)
                of_app = select(RunRecord.id).where(RunRecord.app_id == app_id)
                stages_query = stages_query.where(StageRecord.run_id.in_(of_app))
                results_query = results_query.where(ResultRecord.run_id.in_(of_app))
                apps_query = apps_query.where(AppRecord.id == app_id)
            runs = [to_run(row, name) for row, name in session.execute(runs_query)]
            stage_counts = {
                app.id: len(app.manifest.get("stages", ())) for app in session.scalars(apps_query)
            }
            stages: dict[str, list[StageRow]] = {}
            for stage_row in session.scalars(stages_query):
                stages.setdefault(stage_row.run_id, []).append(to_stage(stage_row))
            results: dict[str, list[Result]] = {}
            for result_row in session.scalars(results_query):
                results.setdefault(result_row.run_id, []).append(to_result(result_row))
            return [
                export_row(
                    run, stage_counts.get(run.app_id, 0), stages.get(run.id, []),
                    results.get(run.id, []),
                )
                for run in runs
            ]

        return await self._transaction(work, write=False)


__all__ = [
    "RUN_STATUSES", "STAGE_STATUSES", "RUNNER_EVENTS", "Event", "NewEvent", "Result", "Run",
    "StageRow", "Store", "StoreStats", "User", "database_url", "export_row", "hash_token",
    "new_run_id", "pack_buffers", "unpack_buffers", "StoreError", "StoreClosedError",
    "UnknownRunError", "RunnerEventError", "one_line",
]
