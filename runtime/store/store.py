"""The store: every database access of the runtime (SQLAlchemy 2.0, SQLite by default).

The API is async-only. Each method is one short transaction that runs on the store's own single
worker thread (:class:`.database.Database`), so the event loop never waits on the database
and SQLite sees one writer per process. Rows come back as frozen dataclasses, never as live ORM
objects. The tables are in :mod:`runtime.store.models`; `docs/database.md` describes them and the
export rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtime.errors import RunnerEventError, StoreClosedError, StoreError, UnknownRunError
from runtime.manifest import Manifest
from runtime.store.database import StoreStats, database_url, one_line
from runtime.store.history import run_histories
from runtime.store.journal_store import JournalTransactions
from runtime.store.models import (
    AppRecord,
    Event,
    NewEvent,
    Result,
    ResultRecord,
    Run,
    RunRecord,
    StageRecord,
    StageRow,
    User,
    UserRecord,
    export_row,
    hash_token,
    new_run_id,
    pack_buffers,
    to_result,
    to_run,
    to_stage,
    to_user,
    unpack_buffers,
)
from runtime.store.queue_reports import QueueReports
from runtime.store.queue_store import QueueTransactions
from runtime.store.runner_events import RUNNER_EVENTS

RUN_STATUSES = ("active", "finished", "failed", "diverged", "abandoned")
STAGE_STATUSES = ("running", "ready", "failed", "finished")


class Store(JournalTransactions, QueueTransactions, QueueReports):
    """All database access of the runtime; open with :meth:`Store.open`, end with :meth:`close`.

    Connections, the worker thread and the retry policy (`busy_timeout`, `lock_timeout`) are
    :class:`runtime.store.database.Database`'s; every method here is one transaction. The
    journal's transactions are :class:`.journal_store.JournalTransactions`, the work queue's
    :class:`.queue_store.QueueTransactions` and :class:`.queue_reports.QueueReports`.
    """

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
            else:
                # A write even when the app is known: a database the server cannot write to
                # (read-only file, volume or connection) fails here, at startup.
                session.execute(
                    update(AppRecord).where(AppRecord.id == manifest.app_id)
                    .values(title=AppRecord.title)
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
            if status == "abandoned":  # start over: the run's work-queue claims end
                self._release_claims(session, run_id)

        await self._transaction(work)

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
            rows = [
                export_row(
                    run, stage_counts.get(run.app_id, 0), stages.get(run.id, []),
                    results.get(run.id, []),
                )
                for run in runs
            ]
            histories = run_histories(session, [run.id for run in runs])
            for row in rows:  # a run that went back: its passes (the rows are the final one's)
                history = histories.get(row["run_id"])
                if history:
                    row["passes"], row["history"] = len(history), history
            return rows

        return await self._transaction(work, write=False)


__all__ = [
    "RUN_STATUSES", "STAGE_STATUSES", "RUNNER_EVENTS", "Event", "NewEvent", "Result", "Run",
    "StageRow", "Store", "StoreStats", "User", "database_url", "export_row", "hash_token",
    "new_run_id", "pack_buffers", "unpack_buffers", "StoreError", "StoreClosedError",
    "UnknownRunError", "RunnerEventError", "one_line",
]
