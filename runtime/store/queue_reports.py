"""What the admin page and the exports read of a work queue: its counts and its answers.

:class:`QueueReports` is a base of :class:`runtime.store.store.Store`; each method is one
reading transaction. The rows it reads are the ones :mod:`runtime.store.queue_store`'s
transactions write: an item is done when it has the queue's `overlap` answers (skips are not
answers), claimed while someone's claim on it is live, and waiting otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from runtime.store.database import Database
from runtime.store.models import (
    QueueAnswerRecord,
    QueueClaimRecord,
    QueueItemRecord,
    QueueRecord,
    UserRecord,
)
from runtime.store.queue_store import queue_row


@dataclass(frozen=True)
class QueueAnswer:
    """One row of a queue's answers, as exported."""

    item: Any
    user: str
    run_id: str
    answer: Any
    skipped: bool
    at: datetime


@dataclass(frozen=True)
class QueueCounts:
    """What the admin sees of a queue: items done / claimed / waiting, and per labeler."""

    name: str
    batch: int
    overlap: int
    items: int
    done: int
    claimed: int  # not done, with at least one live claim
    waiting: int  # neither done nor claimed
    labelers: dict[str, dict[str, int]] = field(default_factory=dict)  # answers, skips, claimed


class QueueReports(Database):
    """A queue's counts and answers (a base of :class:`runtime.store.store.Store`)."""

    async def queue_names(self) -> list[str]:
        """Every queue in the database, by name."""

        def work(session: Session) -> list[str]:
            return list(session.scalars(select(QueueRecord.name).order_by(QueueRecord.name)))

        return await self._transaction(work, write=False)

    async def queue_counts(self, name: str) -> QueueCounts:
        """Items done / claimed / waiting and each labeler's answers, skips and live claims."""

        def work(session: Session) -> QueueCounts:
            queue = queue_row(session, name)
            now = self._now()
            answers = self._answer_counts(name)
            live = select(QueueClaimRecord.key).where(
                QueueClaimRecord.queue == name, QueueClaimRecord.expires_at > now
            )
            total = session.scalar(select(func.count()).select_from(QueueItemRecord).where(
                QueueItemRecord.queue == name)) or 0
            done_keys = set(session.scalars(
                select(answers.c.key).where(answers.c.n >= queue.overlap)
            ))
            claimed_keys = set(session.scalars(live)) - done_keys
            labelers: dict[str, dict[str, int]] = {}
            rows = session.execute(
                select(UserRecord.name, QueueAnswerRecord.skipped, func.count())
                .select_from(QueueAnswerRecord)
                .join(UserRecord, UserRecord.id == QueueAnswerRecord.user_id)
                .where(QueueAnswerRecord.queue == name)
                .group_by(UserRecord.name, QueueAnswerRecord.skipped)
            )
            for user, skipped, count in rows:
                entry = labelers.setdefault(user, {"answers": 0, "skips": 0, "claimed": 0})
                entry["skips" if skipped else "answers"] += int(count)
            claims = session.execute(
                select(UserRecord.name, func.count())
                .select_from(QueueClaimRecord)
                .join(UserRecord, UserRecord.id == QueueClaimRecord.user_id)
                .where(QueueClaimRecord.queue == name, QueueClaimRecord.expires_at > now)
                .group_by(UserRecord.name)
            )
            for user, count in claims:
                entry = labelers.setdefault(user, {"answers": 0, "skips": 0, "claimed": 0})
                entry["claimed"] += int(count)
            return QueueCounts(
                name, queue.batch, queue.overlap, int(total), len(done_keys), len(claimed_keys),
                int(total) - len(done_keys) - len(claimed_keys), dict(sorted(labelers.items())),
            )

        return await self._transaction(work, write=False)

    async def queue_answers(self, name: str) -> list[QueueAnswer]:
        """Every answer and skip of a queue, by item position then time."""

        def work(session: Session) -> list[QueueAnswer]:
            queue_row(session, name)
            rows = session.execute(
                select(QueueItemRecord.item, UserRecord.name, QueueAnswerRecord)
                .select_from(QueueAnswerRecord)
                .join(QueueItemRecord, and_(QueueItemRecord.queue == QueueAnswerRecord.queue,
                                            QueueItemRecord.key == QueueAnswerRecord.key))
                .join(UserRecord, UserRecord.id == QueueAnswerRecord.user_id)
                .where(QueueAnswerRecord.queue == name)
                .order_by(QueueItemRecord.position, QueueAnswerRecord.at)
            )
            return [
                QueueAnswer(item, user, a.run_id, a.answer, a.skipped, a.at)
                for item, user, a in rows
            ]

        return await self._transaction(work, write=False)

    @staticmethod
    def _answer_counts(name: str) -> Any:
        """A subquery: per item key, the number of (non-skip) answers."""
        return (
            select(QueueAnswerRecord.key, func.count().label("n"))
            .where(QueueAnswerRecord.queue == name, QueueAnswerRecord.skipped.is_(False))
            .group_by(QueueAnswerRecord.key).subquery()
        )
