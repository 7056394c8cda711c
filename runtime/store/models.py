"""The store's data: the database tables (SQLAlchemy 2.0 typed ORM) and the rows it returns.

The `*Record` classes are the tables; only :mod:`runtime.store.store` touches them. Everything else
gets the frozen dataclasses below them (`Run`, `Event`, ...), which :mod:`runtime.store.store`
re-exports. Every timestamp is UTC: aware datetimes in Python, stored naive-UTC where the
database has no time zone type (SQLite).
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    text,
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


class QueueRecord(Base):
    """A work queue of an app (`runtime.kernel.work.WorkQueue`), named by the notebook."""

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    batch: Mapped[int] = mapped_column(Integer)
    overlap: Mapped[int] = mapped_column(Integer)
    lease: Mapped[float] = mapped_column(Float)  # seconds a claim lasts unless renewed
    created_at: Mapped[datetime]


FREE = "free_places > 0"  # the items a claim may hand out: the partial index's condition


class QueueItemRecord(Base):
    """One item of a queue: a JSON scalar, keyed by its canonical JSON text; its counts are
    kept with the rows they count (:mod:`runtime.store.queue_counts`)."""

    __tablename__ = "queue_items"
    __table_args__ = (Index("ix_queue_items_free", "queue", "position",
                            postgresql_where=text(FREE), sqlite_where=text(FREE)),)

    queue: Mapped[str] = mapped_column(
        ForeignKey("queues.name", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)  # the order items are handed out in
    item: Mapped[Any] = mapped_column(json_column())
    added_at: Mapped[datetime]
    answer_count: Mapped[int] = mapped_column(Integer, server_default="0")  # submitted, not skips
    claim_count: Mapped[int] = mapped_column(Integer, server_default="0")  # its queue_claims rows
    free_places: Mapped[int] = mapped_column(Integer, server_default="0")  # overlap less both


class QueueClaimRecord(Base):
    """A live or lapsed lease of one item to one person's run (ended claims are deleted)."""

    __tablename__ = "queue_claims"
    __table_args__ = (Index("ix_queue_claims_run", "run_id"),)

    queue: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    claimed_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class QueueAnswerRecord(Base):
    """One person's answer to (or skip of) one item; at most one per person and item."""

    __tablename__ = "queue_answers"

    queue: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))  # kept after the run is deleted
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    answer: Mapped[Any | None] = mapped_column(json_column(), nullable=True)
    at: Mapped[datetime]


# --- rows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    """An event to append to a run's journal (its seq is assigned by the store)."""

    run_id: str
    kind: str  # "comm_msg" for a browser widget message; a runner event name otherwise
    ordinal: int | None  # creation ordinal of the target widget; None when not a widget
    payload: Any  # JSON value: the message's `content.data` for a widget message
    buffers: bytes = b""  # binary buffers, packed with pack_buffers()


@dataclass(frozen=True)
class Event:
    """One journal entry, numbered per run from 1."""

    run_id: str
    seq: int
    at: datetime
    kind: str
    ordinal: int | None
    payload: Any
    buffers: bytes


@dataclass(frozen=True)
class User:
    """A person known to the server."""

    id: int
    name: str
    is_admin: bool
    created_at: datetime
    has_token: bool = False


@dataclass(frozen=True)
class Run:
    """One user's pass through an app's pipeline."""

    id: str
    app_id: str
    user_id: int
    user_name: str
    status: str
    stage: int
    seed: int
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class StageRow:
    """The state of one stage of a run."""

    run_id: str
    index: int
    status: str  # running | ready | failed | finished
    started_at: datetime | None
    finished_at: datetime | None
    snapshot: dict[str, Any] | None
    error: str | None
    traceback: str | None


@dataclass(frozen=True)
class Result:
    """A `collect:NAME` value of a run."""

    run_id: str
    name: str
    value: Any
    stage: int | None
    at: datetime


# --- helpers --------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """The sha256 hex digest under which an invite token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_run_id() -> str:
    """A fresh url-safe random run id (96 bits)."""
    return secrets.token_urlsafe(12)


def pack_buffers(buffers: Sequence[bytes | bytearray | memoryview]) -> bytes:
    """Several binary buffers as one blob for `NewEvent.buffers` (length-prefixed)."""
    # bytes() first: len() of a memoryview counts items, not bytes
    return b"".join(struct.pack(">I", len(data)) + data for data in map(bytes, buffers))


def unpack_buffers(blob: bytes) -> list[bytes]:
    """The buffers that :func:`pack_buffers` packed."""
    buffers, offset = [], 0
    while offset < len(blob):
        (size,) = struct.unpack_from(">I", blob, offset)
        offset += 4
        if offset + size > len(blob):
            raise ValueError("malformed buffers blob: a buffer runs past its end")
        buffers.append(bytes(blob[offset : offset + size]))
        offset += size
    return buffers


def iso(value: datetime | None) -> str | None:
    """A UTC timestamp as ISO 8601 text; None stays None."""
    return value.isoformat() if value is not None else None


def to_user(row: UserRecord) -> User:
    """The frozen row of a `users` record."""
    return User(row.id, row.name, row.is_admin, row.created_at, row.token_hash is not None)


def to_run(row: RunRecord, user_name: str) -> Run:
    """The frozen row of a `runs` record, with its user's name."""
    return Run(
        id=row.id, app_id=row.app_id, user_id=row.user_id, user_name=user_name,
        status=row.status, stage=row.stage, seed=row.seed, params=dict(row.params or {}),
        created_at=row.created_at, updated_at=row.updated_at, finished_at=row.finished_at,
    )


def to_event(row: EventRecord) -> Event:
    """The frozen row of an `events` record."""
    return Event(row.run_id, row.seq, row.at, row.kind, row.ordinal, row.payload, row.buffers)


def to_stage(row: StageRecord) -> StageRow:
    """The frozen row of a `stages` record."""
    return StageRow(
        row.run_id, row.index, row.status, row.started_at, row.finished_at, row.snapshot,
        row.error, row.traceback,
    )


def to_result(row: ResultRecord) -> Result:
    """The frozen row of a `results` record."""
    return Result(row.run_id, row.name, row.value, row.stage, row.at)


def export_row(
    run: Run, stage_count: int, stages: Sequence[StageRow], results: Sequence[Result]
) -> dict[str, Any]:
    """The export row of one run (see `docs/database.md`)."""
    row: dict[str, Any] = {
        "run_id": run.id,
        "app_id": run.app_id,
        "user": run.user_name,
        "status": run.status,
        "stage": run.stage,
        "stages": stage_count,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "finished_at": iso(run.finished_at),
        "params": dict(run.params),
        "snapshots": {str(s.index): dict(s.snapshot) for s in stages if s.snapshot},
        "results": {r.name: r.value for r in results},
    }
    by_index = {s.index: s for s in stages}
    for index in range(max([stage_count, *(s.index + 1 for s in stages)])):
        stage = by_index.get(index)
        row[f"stage_{index}_status"] = stage.status if stage is not None else None
    return row
