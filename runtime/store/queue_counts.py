"""Each work-queue item's counts, kept in the transaction that changes the rows they count.

`queue_items` has, per item, `answer_count` (submitted answers, not skips), `claim_count` (its
`queue_claims` rows: live ones, and lapsed ones until a sweep deletes them) and `free_places`
(the queue's overlap less both: how many more people it may be handed to). Every function
here runs on the store's worker thread inside one of
:class:`runtime.store.queue_store.QueueTransactions`' transactions, and whatever inserts or
deletes a claim or an answer row changes the counts in that same transaction, so they are never
behind the rows. A claim then finds the open items through the partial index
`ix_queue_items_free` (`free_places > 0`, in queue order) and stops after a batch, instead of
counting every item's answers and claims.

Locks (PostgreSQL): lapsed claims are taken with `FOR UPDATE SKIP LOCKED`, so two sweeps
never delete (and count) the same claim; counts change by relative `UPDATE`s, which wait for
the item's row lock and apply to its newest version.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, literal_column, select, tuple_, update
from sqlalchemy.orm import Session

from runtime.store.models import QueueAnswerRecord, QueueClaimRecord, QueueItemRecord


def count(
    session: Session, name: str, keys: Sequence[str], answers: int = 0, claims: int = 0
) -> None:
    """Add to these items' counts (and take as much from their free places)."""
    if not keys or not (answers or claims):
        return
    session.execute(
        update(QueueItemRecord)
        .where(QueueItemRecord.queue == name, QueueItemRecord.key.in_(sorted(keys)))
        .values(answer_count=QueueItemRecord.answer_count + answers,
                claim_count=QueueItemRecord.claim_count + claims,
                free_places=QueueItemRecord.free_places - answers - claims)
        .execution_options(synchronize_session=False)
    )


def take_place(session: Session, name: str, key: str, answers: int, claims: int) -> bool:
    """Count a change that needs free places (a skip its run turns into an answer) if the
    item still has them; whether it had."""
    result = session.execute(
        update(QueueItemRecord)
        .where(QueueItemRecord.queue == name, QueueItemRecord.key == key,
               QueueItemRecord.free_places >= answers + claims)
        .values(answer_count=QueueItemRecord.answer_count + answers,
                claim_count=QueueItemRecord.claim_count + claims,
                free_places=QueueItemRecord.free_places - answers - claims)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def sweep(session: Session, name: str, now: datetime, keys: Sequence[str] | None = None) -> None:
    """Delete the queue's lapsed claims (of these items only, when `keys` is given) and give
    their places back. A lapsed claim another transaction has locked is its to sweep."""
    query = select(QueueClaimRecord.key, QueueClaimRecord.user_id).where(
        QueueClaimRecord.queue == name, QueueClaimRecord.expires_at <= now
    )
    if keys is not None:
        query = query.where(QueueClaimRecord.key.in_(keys))
    lapsed = [(key, user) for key, user in session.execute(
        query.order_by(QueueClaimRecord.key).with_for_update(skip_locked=True)
    )]
    if not lapsed:
        return
    session.execute(delete(QueueClaimRecord).where(
        QueueClaimRecord.queue == name,
        tuple_(QueueClaimRecord.key, QueueClaimRecord.user_id).in_(lapsed),
    ))
    per_item = Counter(key for key, _ in lapsed)
    for times in sorted(set(per_item.values())):
        count(session, name, [key for key, n in per_item.items() if n == times], claims=-times)


def release(session: Session, run_id: str) -> None:
    """End every claim of a run, in every queue, giving their places back."""
    ended = session.execute(
        select(QueueClaimRecord.queue, QueueClaimRecord.key)
        .where(QueueClaimRecord.run_id == run_id)
        .order_by(QueueClaimRecord.queue, QueueClaimRecord.key).with_for_update()
    ).all()
    if not ended:
        return
    session.execute(delete(QueueClaimRecord).where(QueueClaimRecord.run_id == run_id))
    per_queue: dict[str, list[str]] = {}
    for name, key in ended:
        per_queue.setdefault(name, []).append(key)
    for name, keys in per_queue.items():
        count(session, name, keys, claims=-1)


def open_items(name: str, user_id: int, *columns: Any) -> Any:
    """A query of the items this person may claim now (key, position, item; or `columns`): a
    free place left, and neither claimed nor answered (or skipped) by them yet."""
    theirs = [
        select(record.key).where(record.queue == name, record.key == QueueItemRecord.key,
                                 record.user_id == user_id).exists()
        for record in (QueueClaimRecord, QueueAnswerRecord)
    ]
    shown = columns or (QueueItemRecord.key, QueueItemRecord.position, QueueItemRecord.item)
    return select(*shown).where(
        QueueItemRecord.queue == name,
        # a literal, not a parameter: the partial index on `free_places > 0` applies
        QueueItemRecord.free_places > literal_column("0"),
        *(~mine for mine in theirs),
    )
