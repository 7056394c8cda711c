"""Add the work queue: queues, queue_items, queue_claims, queue_answers.

Types are written out here, not imported from `runtime.store.models`: a migration stays what it was
when the models change. Only new tables: no existing row is touched.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "queues",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("overlap", sa.Integer(), nullable=False),
        sa.Column("lease", sa.Float(), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "queue_items",
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item", json(), nullable=False),
        sa.Column("added_at", utc(), nullable=False),
        sa.ForeignKeyConstraint(["queue"], ["queues.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("queue", "key"),
    )
    op.create_table(
        "queue_claims",
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("claimed_at", utc(), nullable=False),
        sa.Column("expires_at", utc(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("queue", "key", "user_id"),
    )
    op.create_index("ix_queue_claims_run", "queue_claims", ["run_id"])
    op.create_table(
        "queue_answers",
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("answer", json(), nullable=True),
        sa.Column("at", utc(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("queue", "key", "user_id"),
    )


def downgrade() -> None:
    op.drop_index("ix_queue_claims_run", table_name="queue_claims")
    for table in ("queue_answers", "queue_claims", "queue_items", "queues"):
        op.drop_table(table)
