"""The store: every database access of the runtime (SQLAlchemy 2.0, SQLite by default).

The API is async-only. Each method is one short transaction that runs on the store's own single
worker thread, so the event loop never waits on the database and SQLite sees one writer per
process. Rows come back as frozen dataclasses, never as live ORM objects. The tables are in
:mod:`runtime.models`; `docs/database.md` describes them and the export rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import bindparam, create_engine, event, func, select
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from runtime.errors import RunnerEventError, StoreClosedError, StoreError, UnknownRunError
from runtime.manifest import Manifest
from runtime.models import (
    AppRecord,
    Base,
    Event,
    EventRecord,
    NewEvent,
    Result,
    ResultRecord,
    Run,
    RunRecord,
    StageRecord,
    StageRow,
    User,
    UserRecord,
    UTCDateTime,
    export_row,
    hash_token,
    new_run_id,
    pack_buffers,
    to_event,
    to_result,
    to_run,
    to_stage,
    to_user,
    unpack_buffers,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

RUN_STATUSES = ("active", "finished", "failed", "diverged", "abandoned")
STAGE_STATUSES = ("running", "ready", "failed", "finished")
RUNNER_EVENTS = (
    "hello", "stage_started", "stage_ready", "stage_failed", "stage_finished", "collected",
    "finished",
)
_STAGE_STATUS_OF = {
    "stage_started": "running",
    "stage_ready": "ready",
    "stage_failed": "failed",
    "stage_finished": "finished",
}


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


# --- the store ------------------------------------------------------------------------------


class Store:
    """All database access of the runtime; open with :meth:`Store.open`, end with :meth:`close`.

    `busy_timeout` (seconds, default 5) is how long SQLite itself waits for another
    connection's write lock; past it the store retries the whole transaction with backoff
    until `lock_timeout` (seconds, default 30) has passed, then raises :class:`StoreError`.
    """

    def __init__(
        self, engine: Engine, *, busy_timeout: float = 5.0, lock_timeout: float = 30.0
    ) -> None:
        """Use :meth:`open`, which also creates the tables; this only wraps an engine."""
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
    ) -> Store:
        """Connect to any SQLAlchemy URL and create the tables that are missing."""
        parsed = database_url(url)
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
        store = cls(engine, busy_timeout=busy_timeout, lock_timeout=lock_timeout)
        try:
            await store._transaction(store._create_tables)
        except BaseException:
            await store.close()
            raise
        return store

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

    @staticmethod
    def _create_tables(session: Session) -> None:
        Base.metadata.create_all(session.connection())

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_timeout
        delay = 0.005
        while True:
            if self._closed:
                raise StoreClosedError()
            try:
                return await loop.run_in_executor(self._executor, self._commit, work, write)
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
        self._write = write
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            result = work(session)
        self.stats.transactions += 1
        return result

    def _now(self) -> datetime:
        """Worker thread: the UTC time, strictly increasing within this store."""
        now = datetime.now(timezone.utc)
        if now <= self._last_now:
            now = self._last_now + timedelta(microseconds=1)
        self._last_now = now
        return now

    # --- apps -----------------------------------------------------------------------------

    async def ensure_app(self, manifest: Manifest) -> None:
        """Store a manifest under its app_id unless it is there already."""
        if not manifest.app_id:
            raise StoreError("the manifest has no app_id; call Manifest.with_app_id() first")

        def work(session: Session) -> None:
            if session.get(AppRecord, manifest.app_id) is None:
                session.add(
                    AppRecord(
                        id=manifest.app_id, title=manifest.title, manifest=manifest.to_json(),
                        created_at=self._now(),
                    )
                )

        await self._transaction(work)

    async def get_manifest(self, app_id: str) -> Manifest | None:
        """The manifest a run was started with, or None for an unknown app_id."""

        def work(session: Session) -> dict[str, Any] | None:
            row = session.get(AppRecord, app_id)
            return None if row is None else row.manifest

        data = await self._transaction(work, write=False)
        return None if data is None else Manifest.from_json(data)

    # --- users ----------------------------------------------------------------------------

    async def get_or_create_user(self, name: str, is_admin: bool = False) -> User:
        """The user called `name`, created if new; `is_admin=True` also promotes an existing one.

        `is_admin=False` never demotes: a person signing in does not lose admin rights.
        """

        def work(session: Session) -> User:
            row = self._find_or_add_user(session, name, is_admin)
            if is_admin and not row.is_admin:
                row.is_admin = True
            return to_user(row)

        return await self._transaction(work)

    async def create_invite(self, name: str, token: str, is_admin: bool = False) -> User:
        """Create (or re-invite) the user `name` with a sign-in token; only its sha256 is kept."""
        if not token:
            raise StoreError("an invite token must not be empty")
        token_hash = hash_token(token)

        def work(session: Session) -> User:
            holder = session.scalars(
                select(UserRecord.name).where(UserRecord.token_hash == token_hash)
            ).one_or_none()
            if holder is not None and holder != name:
                raise StoreError("this token is already another user's invite; use a new one")
            row = self._find_or_add_user(session, name, is_admin)
            row.token_hash = token_hash
            row.is_admin = is_admin
            session.flush()
            return to_user(row)

        return await self._transaction(work)

    async def user_by_token(self, token: str) -> User | None:
        """The user whose invite token this is, or None."""
        token_hash = hash_token(token)

        def work(session: Session) -> User | None:
            query = select(UserRecord).where(UserRecord.token_hash == token_hash)
            row = session.scalars(query).one_or_none()
            return None if row is None else to_user(row)

        return await self._transaction(work, write=False)

    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""

        def work(session: Session) -> User | None:
            row = session.get(UserRecord, user_id)
            return None if row is None else to_user(row)

        return await self._transaction(work, write=False)

    async def get_user_by_name(self, name: str) -> User | None:
        """The user called `name`, or None (never creates one)."""

        def work(session: Session) -> User | None:
            row = self._user_named(session, name)
            return None if row is None else to_user(row)

        return await self._transaction(work, write=False)

    def _find_or_add_user(self, session: Session, name: str, is_admin: bool) -> UserRecord:
        """Worker thread: the user called `name`, added (and flushed) if new."""
        row = self._user_named(session, name)
        if row is not None:
            return row
        row = UserRecord(name=name, is_admin=is_admin, created_at=self._now())
        try:
            # another process (PostgreSQL) may add the same name meanwhile: then use theirs
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            found = self._user_named(session, name)
            if found is None:
                raise
            return found
        return row

    @staticmethod
    def _user_named(session: Session, name: str) -> UserRecord | None:
        return session.scalars(select(UserRecord).where(UserRecord.name == name)).one_or_none()

    # --- runs -----------------------------------------------------------------------------

    async def create_run(
        self, app_id: str, user_id: int, seed: int, params: dict[str, Any]
    ) -> Run:
        """Start a new active run at stage 0 for a stored app and user."""

        def work(session: Session) -> Run:
            user = session.get(UserRecord, user_id)
            if user is None:
                raise StoreError(f"no user {user_id} in the database")
            if session.get(AppRecord, app_id) is None:
                raise StoreError(f"no app {app_id} in the database; call ensure_app() first")
            now = self._now()
            row = RunRecord(
                id=new_run_id(), app_id=app_id, user_id=user_id, status="active", stage=0,
                seed=seed, params=dict(params), created_at=now, updated_at=now,
                finished_at=None,
            )
            session.add(row)
            session.flush()
            return to_run(row, user.name)

        return await self._transaction(work)

    async def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None."""

        def work(session: Session) -> Run | None:
            query = self._runs_query().where(RunRecord.id == run_id)
            found = session.execute(query).one_or_none()
            return None if found is None else to_run(found[0], found[1])

        return await self._transaction(work, write=False)

    async def runs_for_user(self, user_id: int, app_id: str | None = None) -> list[Run]:
        """A user's runs (of one app, or of every app), newest first."""

        def work(session: Session) -> list[Run]:
            query = self._runs_query().where(RunRecord.user_id == user_id)
            if app_id is not None:
                query = query.where(RunRecord.app_id == app_id)
            return [to_run(row, name) for row, name in session.execute(query)]

        return await self._transaction(work, write=False)

    async def list_runs(self, app_id: str | None = None) -> list[Run]:
        """Every run (of one app, or of every app), newest first."""

        def work(session: Session) -> list[Run]:
            query = self._runs_query()
            if app_id is not None:
                query = query.where(RunRecord.app_id == app_id)
            return [to_run(row, name) for row, name in session.execute(query)]

        return await self._transaction(work, write=False)

    @staticmethod
    def _runs_query() -> Any:  # Select's type parameters differ between SQLAlchemy 2.0 and 2.1
        """Runs with their user's name, newest first."""
        return (
            select(RunRecord, UserRecord.name)
            .join(UserRecord, RunRecord.user_id == UserRecord.id)
            .order_by(RunRecord.created_at.desc(), RunRecord.id)
        )

    async def set_run_status(self, run_id: str, status: str) -> None:
        """Set a run's status; `finished` also stamps finished_at (once)."""
        if status not in RUN_STATUSES:
            raise StoreError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")

        def work(session: Session) -> None:
            row = session.get(RunRecord, run_id)
            if row is None:
                raise UnknownRunError(run_id)
            now = self._now()
            row.status = status
            row.updated_at = now
            if status == "finished" and row.finished_at is None:
                row.finished_at = now

        await self._transaction(work)

    # --- events ---------------------------------------------------------------------------

    async def append_events(self, events: Sequence[NewEvent]) -> list[int]:
        """Append events in one transaction; returns their seqs (per run, in the given order)."""
        if not events:
            return []
        batch = list(events)

        def work(session: Session) -> list[int]:
            now = self._now()
            run_ids = {e.run_id for e in batch}
            next_seq = self._lock_runs_and_next_seqs(session, run_ids, now)
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
            session.connection().execute(_INSERT_EVENTS, rows)
            return seqs

        return await self._transaction(work)

    def _lock_runs_and_next_seqs(
        self, session: Session, run_ids: Collection[str], now: datetime
    ) -> dict[str, int]:
        """Worker thread: touch the runs (which locks their rows) and find each next seq."""
        connection = session.connection()
        ids = list(run_ids)
        touched = connection.execute(_TOUCH_RUNS, {"run_ids": ids, "now": now})
        if touched.rowcount != len(ids):
            known = set(session.scalars(select(RunRecord.id).where(RunRecord.id.in_(ids))))
            raise UnknownRunError(sorted(set(ids) - known)[0])
        return {
            run_id: (last or 0) + 1
            for run_id, last in connection.execute(_LAST_SEQS, {"run_ids": ids})
        }

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
        name = data.get("event")
        if not isinstance(name, str) or not name:
            raise RunnerEventError(run_id, str(name), "the message has no 'event' name")
        stage = data.get("stage")
        if (name in _STAGE_STATUS_OF or name == "collected") and (
            not isinstance(stage, int) or isinstance(stage, bool) or stage < 0
        ):
            raise RunnerEventError(run_id, name, f"'stage' must be an index, not {stage!r}")
        if name == "collected" and not isinstance(data.get("name"), str):
            raise RunnerEventError(run_id, name, "'name' must be the collected name")
        if name == "stage_finished" and not isinstance(data.get("snapshot", {}), dict):
            raise RunnerEventError(run_id, name, "'snapshot' must be an object")
        payload = dict(data)

        def work(session: Session) -> None:
            now = self._now()
            seq = self._lock_runs_and_next_seqs(session, [run_id], now)[run_id]
            session.add(
                EventRecord(
                    run_id=run_id, seq=seq, at=now, kind=name, ordinal=None, payload=payload,
                    buffers=b"",
                )
            )
            run = session.get(RunRecord, run_id)
            assert run is not None  # checked by _lock_runs_and_next_seqs
            if name in _STAGE_STATUS_OF:
                assert isinstance(stage, int)
                self._apply_stage_event(session, run, name, stage, payload, now)
            elif name == "collected":
                self._apply_collected(session, run_id, payload, now)
            elif name == "finished":
                run.status = "finished"
                if run.finished_at is None:
                    run.finished_at = now

        await self._transaction(work)

    @staticmethod
    def _apply_stage_event(
        session: Session, run: RunRecord, name: str, index: int, data: dict[str, Any],
        now: datetime,
    ) -> None:
        row = session.get(StageRecord, (run.id, index))
        if row is None:
            row = StageRecord(run_id=run.id, index=index, status="running")
            session.add(row)
        row.status = _STAGE_STATUS_OF[name]
        if name == "stage_started":
            # a re-run after a failure starts over
            row.started_at, row.finished_at = now, None
            row.error = row.traceback = None
        elif name == "stage_failed":
            row.error = str(data.get("error") or "")
            row.traceback = str(data.get("traceback") or "") or None
        elif name == "stage_finished":
            row.finished_at = now
            row.snapshot = dict(data.get("snapshot") or {})
        if row.started_at is None:
            row.started_at = now
        if name != "stage_finished":
            run.stage = index

    @staticmethod
    def _apply_collected(
        session: Session, run_id: str, data: dict[str, Any], now: datetime
    ) -> None:
        row = session.get(ResultRecord, (run_id, data["name"]))
        if row is None:
            session.add(
                ResultRecord(
                    run_id=run_id, name=data["name"], value=data.get("value"),
                    stage=data.get("stage"), at=now,
                )
            )
        else:
            row.value, row.stage, row.at = data.get("value"), data.get("stage"), now

    # --- stages and results ---------------------------------------------------------------

    async def stages(self, run_id: str) -> list[StageRow]:
        """The stages a run has reached, by index."""

        def work(session: Session) -> list[StageRow]:
            query = (
                select(StageRecord)
                .where(StageRecord.run_id == run_id)
                .order_by(StageRecord.index)
            )
            return [to_stage(row) for row in session.scalars(query)]

        return await self._transaction(work, write=False)

    async def results(self, run_id: str) -> list[Result]:
        """A run's collected values, by name."""

        def work(session: Session) -> list[Result]:
            query = (
                select(ResultRecord)
                .where(ResultRecord.run_id == run_id)
                .order_by(ResultRecord.name)
            )
            return [to_result(row) for row in session.scalars(query)]

        return await self._transaction(work, write=False)

    # --- export ---------------------------------------------------------------------------

    async def export_rows(self, app_id: str | None = None) -> list[dict[str, Any]]:
        """One JSON-serialisable dict per run (newest first), read in one transaction.

        The shape is described in `docs/database.md`.
        """

        def work(session: Session) -> list[dict[str, Any]]:
            runs_query = self._runs_query()
            stages_query = select(StageRecord).order_by(StageRecord.index)
            results_query = select(ResultRecord).order_by(ResultRecord.name)
            apps_query = select(AppRecord)
            if app_id is not None:
                runs_query = runs_query.where(RunRecord.app_id == app_id)
                of_app = select(RunRecord.id).where(RunRecord.app_id == app_id)
                stages_query = stages_query.where(StageRecord.run_id.in_(of_app))
                results_query = results_query.where(ResultRecord.run_id.in_(of_app))
                apps_query = apps_query.where(AppRecord.id == app_id)
            runs = [to_run(row, name) for row, name in session.execute(runs_query)]
            stage_counts = {
                app.id: len(app.manifest.get("stages", ())) for app in session.scalars(apps_query)
            }
            stages: dict[str, list[StageRow]] = {}
            for stage_row in session.scalars(stages_query):
                stages.setdefault(stage_row.run_id, []).append(to_stage(stage_row))
            results: dict[str, list[Result]] = {}
            for result_row in session.scalars(results_query):
                results.setdefault(result_row.run_id, []).append(to_result(result_row))
            return [
                export_row(
                    run, stage_counts.get(run.app_id, 0), stages.get(run.id, []),
                    results.get(run.id, []),
                )
                for run in runs
            ]

        return await self._transaction(work, write=False)


__all__ = [
    "RUN_STATUSES", "STAGE_STATUSES", "RUNNER_EVENTS", "Event", "NewEvent", "Result", "Run",
    "StageRow", "Store", "StoreStats", "User", "database_url", "export_row", "hash_token",
    "new_run_id", "pack_buffers", "unpack_buffers", "StoreError", "StoreClosedError",
    "UnknownRunError", "RunnerEventError",
]
