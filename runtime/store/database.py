"""Underneath the store: the engine, SQLite's settings, the worker thread and the retry policy.

:class:`Database` owns a SQLAlchemy engine and the single worker thread that every transaction
runs on, so the event loop never waits on the database and SQLite sees one writer per process;
a transaction that finds the database locked is tried again with backoff.
:class:`runtime.store.store.Store` adds the transactions themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Self, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from runtime.errors import StoreClosedError, StoreError
from runtime.store import schema

log = logging.getLogger("runtime.store.store")  # one logger for the store and its database

T = TypeVar("T")


@dataclass
class StoreStats:
    """Counters for tests and benchmarks."""

    transactions: int = 0  # committed transactions
    lock_retries: int = 0  # attempts repeated because the database was locked or busy


def database_url(url: str | URL) -> URL:
    """Parse a database URL; plain `postgresql://` (or `postgres://`) means psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_retryable(exc: DBAPIError) -> bool:
    """Whether a failed transaction may succeed if simply tried again."""
    text = str(exc.orig).lower()
    if "database is locked" in text or "database table is locked" in text:
        return True  # SQLite: another connection holds the write lock beyond busy_timeout
    # PostgreSQL: serialization failure, deadlock detected
    return getattr(exc.orig, "sqlstate", None) in ("40001", "40P01")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class Database:
    """An engine and the thread that talks to it; open with :meth:`open`, end with :meth:`close`.

    `busy_timeout` (seconds, default 5) is how long SQLite itself waits for another
    connection's write lock; past it a transaction is retried with backoff until
    `lock_timeout` (seconds, default 30) has passed, then raises :class:`StoreError`.
    """

    def __init__(
        self, engine: Engine, *, busy_timeout: float = 5.0, lock_timeout: float = 30.0
    ) -> None:
        """Use :meth:`open`, which also checks the schema; this only wraps an engine."""
        self.engine = engine
        self.lock_timeout = lock_timeout
        self.stats = StoreStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="freezer-store")
        self._closed = False
        self._write = True  # read by the SQLite `begin` hook; only the worker thread sets it
        self._last_now = datetime.min.replace(tzinfo=timezone.utc)
        if engine.dialect.name == "sqlite":
            self._configure_sqlite(busy_timeout)

    @classmethod
    async def open(
        cls,
        url: str | URL,
        *,
        busy_timeout: float = 5.0,
        lock_timeout: float = 30.0,
        echo: bool = False,
        upgrade: bool = False,
    ) -> Self:
        """Connect to any SQLAlchemy URL; a database without tables is created at the newest
        schema revision, an older one is refused unless `upgrade` migrates it first
        (:mod:`runtime.store.schema`)."""
        parsed = database_url(url)
        if upgrade:
            await asyncio.to_thread(schema.upgrade_database, parsed, log.info)
        kwargs: dict[str, Any] = {"echo": echo}
        if parsed.get_backend_name() != "sqlite":
            kwargs["pool_pre_ping"] = True
        try:
            engine = create_engine(parsed, **kwargs)
        except ImportError as exc:
            hint = " (pip install 'freezer[postgresql]')" if "psycopg" in str(exc) else ""
            raise StoreError(
                f"cannot use database URL {parsed!r}: {one_line(exc)}{hint}"
            ) from exc
        except (SQLAlchemyError, ValueError) as exc:
            raise StoreError(f"cannot use database URL {parsed!r}: {one_line(exc)}") from exc
        database = cls(engine, busy_timeout=busy_timeout, lock_timeout=lock_timeout)
        try:
            where = schema.describe(parsed)
            await database._core_transaction(functools.partial(schema.ensure_schema, where=where))
        except BaseException:
            await database.close()
            raise
        return database

    def _configure_sqlite(self, busy_timeout: float) -> None:
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # The driver's own implicit transactions are off: the `begin` hook below says
            # BEGIN itself, so that a writing transaction takes the write lock up front.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                # WAL: readers never block the writer and the writer never blocks readers.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
                cursor.execute("PRAGMA foreign_keys=ON")
                # NORMAL under WAL syncs at checkpoints, not at every commit: a commit stays
                # atomic and the database consistent after a crash; only the last few commits
                # can be lost on power failure (not on a process crash). FULL costs an fsync
                # per commit, which caps the journal at a few hundred commits per second.
                cursor.execute("PRAGMA synchronous=NORMAL")
            finally:
                cursor.close()

        def on_begin(connection: Connection) -> None:
            # BEGIN IMMEDIATE waits (busy_timeout) for the write lock before reading; a
            # deferred transaction that reads and then writes would fail at once with
            # "database is locked" when another writer committed in between.
            connection.exec_driver_sql("BEGIN IMMEDIATE" if self._write else "BEGIN")

        event.listen(self.engine, "connect", on_connect)
        event.listen(self.engine, "begin", on_begin)

    async def close(self) -> None:
        """Finish the transactions already asked for, close the connections, stop the thread."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.engine.dispose)
        finally:
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # --- transactions ---------------------------------------------------------------------

    async def _transaction(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        """Run `work(session)` in one transaction on the worker thread, retrying when locked."""
        return await self._retrying(functools.partial(self._commit, work, write))

    async def _core_transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work(connection)` in one writing transaction without an ORM session (the
        journal's hot path: a session costs more than the insert), retrying when locked."""
        return await self._retrying(functools.partial(self._commit_core, work))

    async def _retrying(self, commit: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_timeout
        delay = 0.005
        while True:
            if self._closed:
                raise StoreClosedError()
            try:
                return await loop.run_in_executor(self._executor, commit)
            except RuntimeError as exc:
                if self._closed:  # the executor was shut down under us
                    raise StoreClosedError() from exc
                raise
            except DBAPIError as exc:
                if not is_retryable(exc):
                    raise StoreError(f"database error: {one_line(exc.orig or exc)}") from exc
                if loop.time() + delay > deadline:
                    raise StoreError(
                        f"the database stayed locked for {self.lock_timeout:g} s: "
                        f"{one_line(exc.orig or exc)}"
                    ) from exc
                self.stats.lock_retries += 1
                log.debug("database locked, retrying in %.3f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
            except SQLAlchemyError as exc:
                raise StoreError(f"database error: {one_line(exc)}") from exc
            except (TypeError, ValueError) as exc:
                # a value the database driver cannot store (e.g. not JSON-serialisable)
                raise StoreError(f"cannot store the value: {one_line(exc)}") from exc

    def _commit(self, work: Callable[[Session], T], write: bool) -> T:
        """Worker thread: one transaction, committed when `work` returns."""
        with self._counted(write):
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                return work(session)

    def _commit_core(self, work: Callable[[Connection], T]) -> T:
        """Worker thread: one writing transaction on a bare connection."""
        with self._counted(write=True), self.engine.begin() as connection:
            return work(connection)

    @contextlib.contextmanager
    def _counted(self, write: bool) -> Iterator[None]:
        """Worker thread: around one transaction; counts it, or forgets the caches it touched."""
        self._write = write
        try:
            yield
        except BaseException:
            self._rolled_back()
            raise
        self.stats.transactions += 1

    def _rolled_back(self) -> None:
        """Worker thread: a transaction failed; forget what was cached from inside it."""

    def _now(self) -> datetime:
        """Worker thread: the UTC time, strictly increasing within this store."""
        now = datetime.now(timezone.utc)
        if now <= self._last_now:
            now = self._last_now + timedelta(microseconds=1)
        self._last_now = now
        return now
