"""A run's history when it went back: its passes, what each finished and collected, where it
went back (the `rewound` events, :mod:`runtime.runs.rewind`). Read by the JSON export and the
admin page; the export's snapshots and results are those of the final pass (the rows), and the
earlier passes are here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runtime.protocol import REWOUND, RunnerEvent
from runtime.store.models import Event, EventRecord, to_event

HISTORY_KINDS = (REWOUND, RunnerEvent.STAGE_STARTED.value, RunnerEvent.STAGE_FINISHED.value,
                 RunnerEvent.COLLECTED.value)


@dataclass
class Pass:
    """One pass through the run: from its start (or a go-back) to the next go-back (or now)."""

    number: int  # 1-based
    started_at: datetime | None
    from_stage: int | None  # the stage this pass went back to (None: the first pass)
    snapshots: dict[str, Any] = field(default_factory=dict)  # stage index (str) -> snapshot
    results: dict[str, Any] = field(default_factory=dict)
    reached: int = 0  # the furthest stage it started
    went_back: dict[str, Any] | None = None  # where it ended by going back: stage, from, at

    def to_json(self) -> dict[str, Any]:
        """The pass in the JSON export and the admin's history."""
        return {
            "pass": self.number,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "back_to": self.from_stage, "reached": self.reached,
            "snapshots": self.snapshots, "results": self.results, "went_back": self.went_back,
        }


def passes(events: Sequence[Event]) -> list[Pass]:
    """The run's passes from its whole journal (every kind, by seq): what each pass finished,
    collected and reached, and where it went back. One pass for a run that never went back."""
    found = [Pass(1, events[0].at if events else None, None)]
    for event in events:
        current = found[-1]
        stage = _stage_of(event)
        if event.kind == REWOUND:
            payload = event.payload if isinstance(event.payload, dict) else {}
            current.went_back = {"stage": payload.get("stage"),
                                 "from_stage": payload.get("from_stage"),
                                 "at": event.at.isoformat()}
            found.append(Pass(len(found) + 1, event.at, payload.get("stage")))
        elif event.kind == RunnerEvent.STAGE_STARTED and stage is not None:
            current.reached = max(current.reached, stage)
        elif event.kind == RunnerEvent.STAGE_FINISHED and stage is not None:
            current.snapshots[str(stage)] = event.payload.get("snapshot") or {}
        elif event.kind == RunnerEvent.COLLECTED and isinstance(event.payload, dict):
            current.results[str(event.payload.get("name"))] = event.payload.get("value")
    return found


def run_histories(session: Session, run_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Inside a transaction: the passes (as JSON) of each of these runs that went back."""
    went_back: list[str] = []
    for start in range(0, len(run_ids), 500):
        chunk = list(run_ids[start:start + 500])
        went_back.extend(session.scalars(
            select(EventRecord.run_id).where(EventRecord.run_id.in_(chunk),
                                             EventRecord.kind == REWOUND).distinct()))
    histories: dict[str, list[dict[str, Any]]] = {}
    for run_id in went_back:
        query = select(EventRecord).where(
            EventRecord.run_id == run_id, EventRecord.kind.in_(HISTORY_KINDS)
        ).order_by(EventRecord.seq)
        events = [to_event(row) for row in session.scalars(query)]
        histories[run_id] = [one.to_json() for one in passes(events)]
    return histories


def _stage_of(event: Event) -> int | None:
    payload = event.payload
    stage = payload.get("stage") if isinstance(payload, dict) else None
    return stage if isinstance(stage, int) and not isinstance(stage, bool) else None
