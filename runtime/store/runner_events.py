"""How a runner's `freezer.run` messages change a run's rows: its stage, status and results.

:meth:`.store.Store.record_runner_event` checks a message with :func:`check_runner_event`
before its transaction, journals it, and applies it with :func:`apply_runner_event` in the same
transaction. The messages are described in `docs/internals.md` (kernel <-> server protocol).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from runtime.errors import RunnerEventError
from runtime.protocol import STAGE_STATUS_OF, RunnerEvent
from runtime.store.models import ResultRecord, RunRecord, StageRecord

RUNNER_EVENTS = tuple(event.value for event in RunnerEvent)


def check_runner_event(run_id: str, data: dict[str, Any]) -> str:
    """The message's event name, once its fields are known to be usable; else RunnerEventError.

    An event name this module does not know passes: it is journaled and otherwise ignored.
    """
    name = data.get("event")
    if not isinstance(name, str) or not name:
        raise RunnerEventError(run_id, str(name), "the message has no 'event' name")
    stage = data.get("stage")
    if (name in STAGE_STATUS_OF or name == RunnerEvent.COLLECTED) and (
        not isinstance(stage, int) or isinstance(stage, bool) or stage < 0
    ):
        raise RunnerEventError(run_id, name, f"'stage' must be an index, not {stage!r}")
    if name == RunnerEvent.COLLECTED and not isinstance(data.get("name"), str):
        raise RunnerEventError(run_id, name, "'name' must be the collected name")
    if name == RunnerEvent.STAGE_FINISHED and not isinstance(data.get("snapshot", {}), dict):
        raise RunnerEventError(run_id, name, "'snapshot' must be an object")
    return name


def apply_runner_event(
    session: Session, run: RunRecord, name: str, data: dict[str, Any], now: datetime
) -> None:
    """Worker thread: update the run, its stages and results for a checked message."""
    if name in STAGE_STATUS_OF:
        stage = data.get("stage")
        assert isinstance(stage, int)
        _apply_stage_event(session, run, name, stage, data, now)
    elif name == RunnerEvent.COLLECTED:
        _apply_collected(session, run.id, data, now)
    elif name == RunnerEvent.FINISHED:
        run.status = "finished"
        if run.finished_at is None:
            run.finished_at = now


def _apply_stage_event(
    session: Session, run: RunRecord, name: str, index: int, data: dict[str, Any],
    now: datetime,
) -> None:
    row = session.get(StageRecord, (run.id, index))
    if row is None:
        row = StageRecord(run_id=run.id, index=index, status="running")
        session.add(row)
    row.status = STAGE_STATUS_OF[name]
    if name == RunnerEvent.STAGE_STARTED:
        # a re-run after a failure starts over
        row.started_at, row.finished_at = now, None
        row.error = row.traceback = None
    elif name == RunnerEvent.STAGE_FAILED:
        row.error = str(data.get("error") or "")
        row.traceback = str(data.get("traceback") or "") or None
    elif name == RunnerEvent.STAGE_FINISHED:
        row.finished_at = now
        row.snapshot = dict(data.get("snapshot") or {})
    if row.started_at is None:
        row.started_at = now
    if name != RunnerEvent.STAGE_FINISHED:
        run.stage = index


def _apply_collected(session: Session, run_id: str, data: dict[str, Any], now: datetime) -> None:
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
