"""The work queue's transactions: registering items, atomic claims, leases, answers.

:class:`QueueTransactions` is a base of :class:`runtime.store.store.Store` (what the admin page
and the exports read of a queue is :mod:`runtime.store.queue_reports`); each method is one
transaction on the store's worker thread. Leases and counts are rows (`queue_claims`,
`queue_answers`, and each item's counts in `queue_items`, kept by :mod:`.queue_counts`), never
process memory, so every server process sharing the database sees the same queue.
`docs/work-queue.md` describes the rules; in short:

- an item is handed to at most `overlap` people at once (live claims plus answers) and never
  twice to the same person (a claim, an answer or a skip of theirs excludes it);
- a run's own unexpired claim is returned first;
- a claim lasts `lease` seconds unless renewed; a lapsed claim counts for nobody (the next
  claim on its queue deletes it);
- an answer (or skip) is taken only from the run holding a live claim on the item, or from
  the run that answered it before, whose answer it replaces; any other is refused;
- an item is done when it has `overlap` answers (skips are not answers) from different people.

Atomicity: on SQLite every writing transaction starts with `BEGIN IMMEDIATE` (one writer at a
time). On PostgreSQL a claim locks candidate item rows with `FOR UPDATE SKIP LOCKED` (found
through the partial index of items with a free place, in queue order, at most a batch), then
reads them again in a new statement, which (READ COMMITTED) sees every claim committed before
the lock was taken: two claimers never take the same place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    delete,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from runtime.errors import StoreError, UnknownRunError
from runtime.store import queue_counts
from runtime.store.database import Database
from runtime.store.models import (
    QueueAnswerRecord,
    QueueClaimRecord,
    QueueItemRecord,
    QueueRecord,
    RunRecord,
)

DEFAULT_LEASE = 600.0
"""Seconds a claim lasts unless renewed (10 minutes)."""
KEY_MAX = 255
INSERT_CHUNK = 500  # rows per INSERT: SQLite caps the parameters of one statement
ANALYZE_AFTER = 200
"""PostgreSQL: a queue that gains this many items at once has `queue_items` analyzed in the
same transaction. Until the planner knows the table's size (autovacuum may take a minute or
more) it plans a lookup of a batch's items by key as a scan of every item of the queue."""


class QueueError(StoreError):
    """A queue request the store cannot carry out (unknown queue, bad item, ...)."""


@dataclass(frozen=True)
class Answered:
    """What :meth:`QueueTransactions.queue_answer` did with each item, in the order given."""

    saved: list[Any]  # answered (or skipped): stored
    refused: list[Any]  # not this run's: no live claim of it, and no earlier answer of it


def item_key(item: Any) -> str:
    """The canonical JSON text of an item id; raises QueueError for anything but a scalar."""
    if isinstance(item, bool) or not isinstance(item, (str, int, float)):
        raise QueueError(
            f"queue item {item!r} is a {type(item).__name__}: items are ids "
            "(a string or a number)"
        )
    key = json.dumps(item)
    if len(key) > KEY_MAX:
        raise QueueError(f"queue item {key[:40]}… is longer than {KEY_MAX} characters")
    return key


def queue_row(session: Session, name: str) -> QueueRecord:
    """Worker thread: the queue called `name`, or :class:`QueueError`."""
    queue = session.get(QueueRecord, name)
    if queue is None:
        raise QueueError(f"there is no work queue named {name!r}")
    return queue


class QueueTransactions(Database):
    """The work queue's transactions (a base of :class:`runtime.store.store.Store`)."""

    async def queue_open(
        self, name: str, items: Sequence[Any], batch: int, overlap: int,
        lease: float = DEFAULT_LEASE,
    ) -> int:
        """Create the queue if new and add the items it does not have (never removes one).

        `batch`, `overlap` and `lease` (seconds) are the latest opener's. Returns the number
        of items added.
        """
        if not name or len(name) > KEY_MAX:
            raise QueueError(f"a queue name must be 1 to {KEY_MAX} characters, not {name!r}")
        if batch < 1 or overlap < 1 or not lease > 0:
            raise QueueError(f"queue {name!r}: batch and overlap must be at least 1 and the "
                             "lease more than 0 s")
        keyed: dict[str, Any] = {}
        for item in items:
            keyed.setdefault(item_key(item), item)

        def work(session: Session) -> int:
            now = self._now()
            self._insert_ignoring_duplicates(
                session, QueueRecord,
                [{"name": name, "batch": batch, "overlap": overlap, "lease": lease,
                  "created_at": now}],
            )
            session.execute(
                update(QueueRecord).where(QueueRecord.name == name)
                .values(batch=batch, overlap=overlap, lease=lease)
            )
            # a new overlap: every item's free places follow (none change when it is the same)
            places = overlap - QueueItemRecord.answer_count - QueueItemRecord.claim_count
            session.execute(
                update(QueueItemRecord)
                .where(QueueItemRecord.queue == name, QueueItemRecord.free_places != places)
                .values(free_places=places).execution_options(synchronize_session=False)
            )
            known = set(session.scalars(select(QueueItemRecord.key).where(
                QueueItemRecord.queue == name
            )))
            start = session.scalar(select(func.coalesce(func.max(QueueItemRecord.position), -1))
                                   .where(QueueItemRecord.queue == name))
            new = [(k, v) for k, v in keyed.items() if k not in known]
            rows = [
                {"queue": name, "key": k, "position": int(start or 0) + 1 + i, "item": v,
                 "added_at": now, "answer_count": 0, "claim_count": 0, "free_places": overlap}
                for i, (k, v) in enumerate(new)
            ]
            for chunk in range(0, len(rows), INSERT_CHUNK):
                self._insert_ignoring_duplicates(
                    session, QueueItemRecord, rows[chunk : chunk + INSERT_CHUNK]
                )
            if len(rows) >= ANALYZE_AFTER and session.get_bind().dialect.name == "postgresql":
                session.execute(text("ANALYZE queue_items"))
            return len(rows)

        return await self._transaction(work)

    async def queue_claim(
        self, name: str, run_id: str, lease: float | None = None
    ) -> list[Any]:
        """This run's batch: its own live claims (renewed), else at most `batch` new ones.

        A claim lasts `lease` seconds (default: the queue's).
        """

        def work(session: Session) -> list[Any]:
            queue = queue_row(session, name)
            run = session.get(RunRecord, run_id)
            if run is None:
                raise UnknownRunError(run_id)
            now = self._now()
            expires = now + timedelta(seconds=queue.lease if lease is None else lease)
            queue_counts.sweep(session, name, now)
            own = self._run_claims(session, name, run_id, now)
            if own:
                self._renew(session, name, run_id, now, expires)
                return own
            claimed: list[tuple[int, str, Any]] = []  # position, key, item
            # SQLite: one writer at a time, so nothing changes between two statements
            serialized = session.get_bind().dialect.name == "sqlite"
            considered: set[str] = set()
            while len(claimed) < queue.batch:
                want = queue.batch - len(claimed)
                candidates = {key: (position, item) for key, position, item in session.execute(
                    queue_counts.open_items(name, run.user_id)
                    .where(QueueItemRecord.key.not_in(considered) if considered else true())
                    .order_by(QueueItemRecord.position).limit(want)
                    .with_for_update(skip_locked=True)
                )}
                considered.update(candidates)
                fresh = sorted(candidates)
                if fresh and not serialized:
                    # looked at again now that the rows are locked (a new statement, a new
                    # snapshot): what another claimer committed meanwhile is seen
                    fresh = sorted(session.scalars(
                        queue_counts.open_items(name, run.user_id, QueueItemRecord.key)
                        .where(QueueItemRecord.key.in_(candidates))
                    ))
                if fresh:
                    session.execute(insert(QueueClaimRecord), [
                        {"queue": name, "key": key, "user_id": run.user_id, "run_id": run_id,
                         "claimed_at": now, "expires_at": expires} for key in fresh
                    ])
                    queue_counts.count(session, name, fresh, claims=1)
                    claimed.extend((candidates[key][0], key, candidates[key][1]) for key in fresh)
                if len(fresh) == len(candidates) < want:
                    break  # nothing more is open for this person now
            return [item for _, _, item in sorted(claimed)]

        return await self._transaction(work)

    async def queue_answer(
        self, name: str, run_id: str, answers: Sequence[tuple[Any, Any]], *, skipped: bool = False
    ) -> Answered:
        """Record this run's answers (or skips) as (item, answer) pairs; end their claims.

        An item's answer is taken only from the run that holds a live claim on it, or that
        answered (or skipped) it before: then it replaces that earlier one. A run whose claim
        lapsed is refused for that item (someone else may have it now); the others are saved.
        """
        keyed = {item_key(item): (item, answer) for item, answer in answers}

        def work(session: Session) -> Answered:
            queue_row(session, name)
            run = session.get(RunRecord, run_id)
            if run is None:
                raise UnknownRunError(run_id)
            keys = sorted(keyed)
            known = set(session.scalars(select(QueueItemRecord.key).where(
                QueueItemRecord.queue == name, QueueItemRecord.key.in_(keys)
            )))
            unknown = [k for k in keyed if k not in known]
            if unknown:
                raise QueueError(f"queue {name!r} has no item {unknown[0]}")
            now = self._now()
            held = set(session.scalars(
                select(QueueClaimRecord.key).where(
                    QueueClaimRecord.queue == name, QueueClaimRecord.user_id == run.user_id,
                    QueueClaimRecord.run_id == run_id, QueueClaimRecord.key.in_(keys),
                    QueueClaimRecord.expires_at > now,
                ).with_for_update()
            ))
            rows = {row.key: row for row in session.scalars(
                select(QueueAnswerRecord).where(
                    QueueAnswerRecord.queue == name, QueueAnswerRecord.user_id == run.user_id,
                    QueueAnswerRecord.key.in_(keys),
                ).with_for_update()
            )}
            saved: list[str] = []
            refused: list[Any] = []
            changes: dict[tuple[int, int], list[str]] = {}  # (answers, claims) delta -> keys
            for key, (item, answer) in keyed.items():
                row = rows.get(key)
                if key not in held and (row is None or row.run_id != run_id):
                    refused.append(item)
                    continue
                change = (int(not skipped) - int(row is not None and not row.skipped),
                          -1 if key in held else 0)
                if sum(change) > 0:  # a skip turned into an answer: it needs a free place
                    queue_counts.sweep(session, name, now, [key])
                    if not queue_counts.take_place(session, name, key, *change):
                        refused.append(item)  # full now
                        continue
                if sum(change) <= 0:
                    changes.setdefault(change, []).append(key)
                if row is None:
                    row = QueueAnswerRecord(queue=name, key=key, user_id=run.user_id)
                    session.add(row)
                row.run_id, row.skipped, row.at = run_id, skipped, now
                row.answer = None if skipped else answer
                saved.append(key)
            ended = sorted(held.intersection(saved))
            if ended:
                session.execute(delete(QueueClaimRecord).where(
                    QueueClaimRecord.queue == name, QueueClaimRecord.run_id == run_id,
                    QueueClaimRecord.key.in_(ended),
                ))
            for delta, changed in sorted(changes.items()):
                queue_counts.count(session, name, changed, *delta)
            return Answered([keyed[key][0] for key in saved], refused)

        return await self._transaction(work)

    async def queue_renew(self, run_ids: Sequence[str]) -> int:
        """Extend the live claims of these runs (pages still connected) by their queue's lease;
        returns how many claims were renewed."""

        def work(session: Session) -> int:
            now = self._now()
            renewed = 0
            for name, lease in session.execute(select(QueueRecord.name, QueueRecord.lease)):
                result = session.execute(
                    update(QueueClaimRecord)
                    .where(QueueClaimRecord.queue == name,
                           QueueClaimRecord.run_id.in_(list(run_ids)),
                           QueueClaimRecord.expires_at > now)
                    .values(expires_at=now + timedelta(seconds=lease))
                )
                renewed += int(getattr(result, "rowcount", 0) or 0)
            return renewed

        return await self._transaction(work)

    async def queue_release(self, run_id: str) -> None:
        """End every claim of a run (start over): its items go back to the queue."""

        await self._transaction(lambda session: self._release_claims(session, run_id))

    # --- worker thread helpers ------------------------------------------------------------

    @staticmethod
    def _release_claims(session: Session, run_id: str) -> None:
        queue_counts.release(session, run_id)

    @staticmethod
    def _run_claims(session: Session, name: str, run_id: str, now: datetime) -> list[Any]:
        """The items of this run's live claims, in queue order.

        Two statements, not a join: whatever the planner knows of the tables, the first reads
        only the queue's claims and the second only these items (by key).
        """
        keys = list(session.scalars(select(QueueClaimRecord.key).where(
            QueueClaimRecord.run_id == run_id, QueueClaimRecord.queue == name,
            QueueClaimRecord.expires_at > now,
        )))
        if not keys:
            return []
        return list(session.scalars(
            select(QueueItemRecord.item)
            .where(QueueItemRecord.queue == name, QueueItemRecord.key.in_(keys))
            .order_by(QueueItemRecord.position)
        ))

    @staticmethod
    def _renew(
        session: Session, name: str, run_id: str, now: datetime, expires: datetime
    ) -> None:
        session.execute(
            update(QueueClaimRecord)
            .where(QueueClaimRecord.queue == name, QueueClaimRecord.run_id == run_id,
                   QueueClaimRecord.expires_at > now)
            .values(expires_at=expires)
        )

    @staticmethod
    def _insert_ignoring_duplicates(
        session: Session, record: Any, rows: list[dict[str, Any]]
    ) -> None:
        """Insert rows; one another process inserted meanwhile (same key) is left as it is."""
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            session.execute(postgresql.insert(record).values(rows).on_conflict_do_nothing())
        elif dialect == "sqlite":
            session.execute(sqlite.insert(record).values(rows).on_conflict_do_nothing())
        else:
            session.execute(record.__table__.insert(), rows)
