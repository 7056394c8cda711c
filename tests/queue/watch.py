"""Reading a queue's tables straight from the database, and watching its live claims.

:class:`QueueTables` reads `queue_claims` and `queue_answers` in one consistent snapshot, on a
connection of its own (sqlite3 or psycopg, not the server's store). :class:`ClaimWatcher`
polls it on a thread while a test runs and records every instant an item had more than
`overlap` live claims (or live claims plus answers), so the overlap is checked throughout,
not only at the end.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.queue.labelers import json_value, utc


@dataclass(frozen=True)
class Claim:
    key: str
    user_id: int
    run_id: str
    expires_at: datetime


@dataclass(frozen=True)
class Answer:
    key: str
    user_id: int
    run_id: str
    skipped: bool
    answer: Any
    at: datetime


class QueueTables:
    """One queue's claims and answers from a SQLite file or a PostgreSQL schema."""

    def __init__(self, queue: str, *, sqlite_file: Path | None = None,
                 postgres: str | None = None, schema: str | None = None) -> None:
        self.queue = queue
        self.sqlite_file = sqlite_file
        self.postgres, self.schema = postgres, schema
        self._connection: Any = None
        # One connection, read from the watcher's thread and the test's: one snapshot at a
        # time (two transactions at once on one psycopg connection break each other).
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        if self._connection is None:
            if self.sqlite_file is not None:
                self._connection = sqlite3.connect(
                    f"file:{self.sqlite_file}?mode=ro", uri=True, timeout=30,
                    isolation_level=None, check_same_thread=False,
                )
            else:
                import psycopg

                assert self.postgres is not None and self.schema is not None
                self._connection = psycopg.connect(
                    self.postgres, options=f"-csearch_path={self.schema}", autocommit=True,
                )
        return self._connection

    def snapshot(self) -> tuple[list[Claim], list[Answer], datetime, datetime]:
        """Every claim and answer of the queue as of one instant, and the UTC times taken just
        before and just after reading (the instant is between them)."""
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> tuple[list[Claim], list[Answer], datetime, datetime]:
        db = self._connect()
        before = datetime.now(timezone.utc)
        claims_sql = ("SELECT key, user_id, run_id, expires_at FROM queue_claims "
                      "WHERE queue = {p}")
        answers_sql = ("SELECT key, user_id, run_id, skipped, answer, at FROM queue_answers "
                       "WHERE queue = {p}")
        if self.sqlite_file is not None:
            db.execute("BEGIN")  # a WAL read transaction: both SELECTs see one snapshot
            try:
                claims = db.execute(claims_sql.format(p="?"), (self.queue,)).fetchall()
                answers = db.execute(answers_sql.format(p="?"), (self.queue,)).fetchall()
            finally:
                db.execute("COMMIT")
        else:
            with db.transaction():
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                claims = db.execute(claims_sql.format(p="%s"), (self.queue,)).fetchall()
                answers = db.execute(answers_sql.format(p="%s"), (self.queue,)).fetchall()
        after = datetime.now(timezone.utc)
        return (
            [Claim(k, int(u), r, utc(e)) for k, u, r, e in claims],
            [Answer(k, int(u), r, bool(s), json_value(a), utc(t))
             for k, u, r, s, a, t in answers],
            before, after,
        )

    def answers(self) -> list[Answer]:
        return self.snapshot()[1]

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


@dataclass
class ClaimWatcher:
    """Polls the tables on a thread; records overlap violations and what it saw."""

    tables: QueueTables
    overlap: int
    items: int
    polls: int = 0
    most_live: int = 0  # the most live claims on one item seen at one instant
    violations: list[str] = field(default_factory=list)
    seen_claims: dict[tuple[str, str], datetime] = field(default_factory=dict)
    """(run id, item key) -> the latest expiry seen of that claim."""
    all_done: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="claim watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        self.tables.close()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.check()
                self._stop.wait(0.01)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def check(self) -> None:
        """One poll: count each item's live claims and answers at one instant."""
        claims, answers, _before, after = self.tables.snapshot()
        self.polls += 1
        live: dict[str, int] = {}
        for claim in claims:
            self.seen_claims[(claim.run_id, claim.key)] = max(
                claim.expires_at, self.seen_claims.get((claim.run_id, claim.key), claim.expires_at)
            )
            # surely live at the snapshot: it still is after the read
            if claim.expires_at > after:
                live[claim.key] = live.get(claim.key, 0) + 1
        answered: dict[str, int] = {}
        for answer in answers:
            if not answer.skipped:
                answered[answer.key] = answered.get(answer.key, 0) + 1
        if live:
            self.most_live = max(self.most_live, *live.values())
        for key in set(live) | set(answered):
            held = live.get(key, 0) + answered.get(key, 0)
            if live.get(key, 0) > self.overlap or held > self.overlap:
                self.violations.append(
                    f"item {key}: {live.get(key, 0)} live claims and {answered.get(key, 0)} "
                    f"answers at {after.isoformat()}"
                )
        if len(answered) == self.items and all(n >= self.overlap for n in answered.values()):
            self.all_done.set()
