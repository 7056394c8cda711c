"""The database tables of the store (SQLAlchemy 2.0 typed ORM).

Only :mod:`runtime.store` uses these classes; everything else gets frozen dataclasses.
Every timestamp is UTC: aware datetimes in Python, stored naive-UTC where the database has no
time zone type (SQLite).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back as an aware UTC datetime."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes UTC-aware times")
        value = value.astimezone(timezone.utc)
        # SQLite has no time zone type: keep naive UTC there, aware everywhere else.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def json_column() -> JSON:
    """A JSON column where Python None is SQL NULL (not the JSON text `null`)."""
    return JSON(none_as_null=True)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""

    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: json_column()}


class AppRecord(Base):
    """One frozen version of a notebook (keyed by the manifest's app_id)."""

    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    manifest: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class UserRecord(Base):
    """A person known to the server."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    # sha256 hex of the invite token; the token itself is never stored
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class RunRecord(Base):
    """One user's pass through an app's pipeline."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_user_created", "user_id", "created_at"),
        Index("ix_runs_app_created", "app_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int] = mapped_column(BigInteger)
    params: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class EventRecord(Base):
    """One journal entry: a browser message or a runner report, numbered per run."""

    __tablename__ = "events"

    # the primary key is the unique (run_id, seq) that guards the per-run numbering
    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    ordinal: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[Any] = mapped_column(json_column())
    buffers: Mapped[bytes] = mapped_column(LargeBinary, default=b"")


class StageRecord(Base):
    """The state of one stage of one run."""

    __tablename__ = "stages"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    snapshot: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)


class ResultRecord(Base):
    """A `collect:NAME` value of a run (the latest one wins)."""

    __tablename__ = "results"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(json_column())
    stage: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime]
