"""Keep each work-queue item's counts: answer_count, claim_count, free_places.

A claim used to count every item's answers and claims to find the open ones; now the counts are
columns of `queue_items`, kept by the store in the same transaction as the rows they count, and
a partial index on the items with a place left (`free_places > 0`) finds the next ones. The
counts are filled from the rows already there: `answer_count` the submitted answers (not
skips), `claim_count` every claim row (a lapsed one too, until a claim sweeps it),
`free_places` the queue's overlap less both.

Types are written out here, not imported from `runtime.store.models`: a migration stays what it was
when the models change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("answer_count", "claim_count", "free_places")
OPEN = "free_places > 0"

items = sa.table(
    "queue_items", sa.column("queue"), sa.column("key"), *(sa.column(c) for c in COUNTS)
)
answers = sa.table("queue_answers", sa.column("queue"), sa.column("key"),
                   sa.column("skipped", sa.Boolean()))
claims = sa.table("queue_claims", sa.column("queue"), sa.column("key"))
queues = sa.table("queues", sa.column("name"), sa.column("overlap"))


def of_item(table: sa.TableClause) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.queue == items.c.queue, table.c.key == items.c.key)


def upgrade() -> None:
    with op.batch_alter_table("queue_items") as batch:
        for name in COUNTS:
            batch.add_column(
                sa.Column(name, sa.Integer(), nullable=False, server_default="0")
            )
    submitted = (sa.select(sa.func.count()).select_from(answers)
                 .where(of_item(answers), answers.c.skipped.is_(sa.false())).scalar_subquery())
    held = sa.select(sa.func.count()).select_from(claims).where(of_item(claims)).scalar_subquery()
    op.execute(items.update().values(answer_count=submitted, claim_count=held))
    overlap = sa.select(queues.c.overlap).where(queues.c.name == items.c.queue).scalar_subquery()
    op.execute(items.update().values(
        free_places=overlap - items.c.answer_count - items.c.claim_count
    ))
    op.create_index("ix_queue_items_free", "queue_items", ["queue", "position"],
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))


def downgrade() -> None:
    op.drop_index("ix_queue_items_free", table_name="queue_items")
    with op.batch_alter_table("queue_items") as batch:
        for name in reversed(COUNTS):
            batch.drop_column(name)
