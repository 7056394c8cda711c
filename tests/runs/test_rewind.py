"""Which journal events are in force after going back, where a go-back cuts, the holds a
replay needs, and the passes of a run's history (pure functions, no kernel)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from runtime.runs.rewind import cut_for, holds, in_force
from runtime.store.history import passes
from runtime.store.models import Event

AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


def journal(*entries: tuple[str, dict[str, Any]]) -> list[Event]:
    return [Event("r", seq, AT, kind, None, payload, b"")
            for seq, (kind, payload) in enumerate(entries, start=1)]


def stage(kind: str, index: int, **more: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"stage": index, **more}


CLICK = ("comm_msg", {"method": "custom"})
THROUGH_TWO = journal(
    stage("stage_ready", 0),                                  # 1
    ("comm_msg", {"value": 7}),                               # 2
    CLICK,                                                    # 3: Next on stage 0
    stage("stage_finished", 0, snapshot={"number": 7}),       # 4
    stage("stage_started", 1),                                # 5
    stage("stage_ready", 1),                                  # 6
    CLICK,                                                    # 7
    stage("stage_finished", 1, snapshot={"offset": 3}),       # 8
    stage("stage_started", 2),                                # 9
    stage("collected", 2, name="total", value=10),            # 10
    stage("stage_ready", 2),                                  # 11
)


def test_a_go_back_cuts_at_the_stage_finished_and_keeps_its_marker() -> None:
    assert cut_for(THROUGH_TWO, 0) == 4
    assert cut_for(THROUGH_TWO, 1) == 8
    assert cut_for(THROUGH_TWO, 2) is None  # the current stage: nothing to go back to
    back = [*THROUGH_TWO, Event("r", 12, AT, "rewound", None,
                                {"stage": 0, "cut": 4, "from_stage": 2}, b"")]
    kept = in_force(back)
    assert [e.seq for e in kept] == [1, 2, 3, 12]  # the click on Next stays: the hold eats it
    assert holds(kept) == [0] and cut_for(kept, 0) is None


def test_going_back_to_the_same_stage_twice_cuts_at_the_new_pass() -> None:
    first = [*THROUGH_TWO[:8], Event("r", 9, AT, "rewound", None, {"stage": 1, "cut": 8}, b"")]
    again = [*first, Event("r", 10, AT, "comm_msg", None, {"method": "custom"}, b""),
             Event("r", 11, AT, "stage_finished", None, {"stage": 1, "snapshot": {}}, b""),
             Event("r", 12, AT, "stage_started", None, {"stage": 2}, b"")]
    assert cut_for(in_force(again), 1) == 11
    twice = [*again, Event("r", 13, AT, "rewound", None, {"stage": 1, "cut": 11}, b"")]
    assert holds(in_force(twice)) == [1, 1]
    further = [*twice, Event("r", 14, AT, "rewound", None, {"stage": 0, "cut": 4}, b"")]
    assert [e.seq for e in in_force(further)] == [1, 2, 3, 14]
    assert holds(in_force(further)) == [0]


def test_the_passes_of_a_run_that_went_back() -> None:
    back = [*THROUGH_TWO, Event("r", 12, AT, "rewound", None,
                                {"stage": 0, "cut": 4, "from_stage": 2}, b""),
            Event("r", 13, AT, "stage_finished", None, {"stage": 0, "snapshot": {"number": 8}},
                  b"")]
    first, second = (one.to_json() for one in passes(back))
    assert first["snapshots"] == {"0": {"number": 7}, "1": {"offset": 3}}
    assert first["results"] == {"total": 10} and first["reached"] == 2
    assert first["went_back"] == {"stage": 0, "from_stage": 2, "at": AT.isoformat()}
    assert second["back_to"] == 0 and second["snapshots"] == {"0": {"number": 8}}
    assert second["went_back"] is None
