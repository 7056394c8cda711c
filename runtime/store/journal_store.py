"""The journal's transactions: each run's events in order, and what runner events change.

:class:`JournalTransactions` is a base of :class:`runtime.store.store.Store`. A run's journal
(the `events` table) grows one row per widget change all day, so appending is the store's hot
path: each run's next seq is cached per store and checked by the unique (run_id, seq) key, and a
run's `updated_at` is touched at most once per :data:`TOUCH_INTERVAL`. Runner events
(`freezer.run`) and divergences are journaled together with the run, stage and result rows they
change, in one transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtime.errors import StoreError, UnknownRunError
from runtime.protocol import REWOUND
from runtime.store.database import Database
from runtime.store.models import (
    Base,
    Event,
    EventRecord,
    NewEvent,
    ResultRecord,
    RunRecord,
    StageRecord,
    UTCDateTime,
    to_event,
)
from runtime.store.runner_events import apply_runner_event, check_runner_event

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


class JournalTransactions(Database):
    """Appending to and reading runs' journals (a base of :class:`runtime.store.store.Store`)."""

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

    async def record_rewind(self, run_id: str, details: dict[str, Any]) -> int:
        """Journal a go-back (a `rewound` event, `details` with `stage`, `cut`, `from_stage`)
        and set the run's rows to that stage waiting for the person, together: the stage
        `ready` (its snapshot gone until Next gives a new one), the later stages' rows and the
        results they collected gone (the journal keeps them). Returns the event's seq."""
        stage = int(details["stage"])

        def work(session: Session) -> int:
            run, _ = self._journal_one(session, run_id, REWOUND, dict(details))
            run.stage, run.status, run.finished_at = stage, "active", None
            session.execute(delete(StageRecord).where(
                StageRecord.run_id == run_id, StageRecord.index > stage))
            session.execute(delete(ResultRecord).where(
                ResultRecord.run_id == run_id, ResultRecord.stage > stage))
            row = session.get(StageRecord, (run_id, stage))
            if row is not None:
                row.status, row.finished_at, row.snapshot = "ready", None, None
            return self._next_seq[run_id] - 1

        return await self._transaction(work)

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
