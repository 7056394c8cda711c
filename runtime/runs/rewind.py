"""Going back: which part of a run's journal is still in force after the person went back.

A person can go back to a stage they finished (`docs/go-back.md`). The journal keeps everything:
a `rewound` event (:data:`runtime.protocol.REWOUND`, payload `stage`, `cut`, `from_stage`)
marks the point, and everything journaled from seq `cut` up to the marker is an earlier pass,
kept for the history but no longer in force. `cut` is the seq of the `stage_finished` report
of the Next that ended the stage; the click itself comes before it in the journal (it was saved
before the kernel saw it), so a replay sends that click too, and the kernel, configured with the
run's *holds* (the stages of the markers in force, in order), ignores it: the stage stays where
it waited for the person, and the actions after the marker are the next pass.

Everything here is pure: journal events in, events or numbers out. The passes of a run's
history (admin page, JSON export) are :mod:`runtime.store.history`.
"""

from __future__ import annotations

from collections.abc import Sequence

from runtime.protocol import REWOUND, RunnerEvent
from runtime.store.models import Event


def in_force(events: Sequence[Event]) -> list[Event]:
    """The events of the journal (by seq) still in force: each `rewound` marker drops what was
    journaled from its `cut` on, and stays itself (a replay needs it for the holds)."""
    kept: list[Event] = []
    for event in events:
        if event.kind == REWOUND:
            cut = _cut_of(event)
            kept = [e for e in kept if e.seq < cut]
        kept.append(event)
    return kept


def holds(events: Sequence[Event]) -> list[int]:
    """The stages where a replay of these events (in force, by seq) must ignore a Next: one per
    `rewound` marker, in order."""
    return [int(e.payload.get("stage", 0)) for e in events if e.kind == REWOUND]


def cut_for(events: Sequence[Event], stage: int) -> int | None:
    """The seq a go-back to `stage` cuts the journal at: the first `stage_finished` of `stage`
    after the stage last became ready (or failed) in these events in force; None when the stage
    has not been finished since (nothing to go back to).

    After a go-back to this very stage no new stage_ready is journaled (the replayed one is not
    stored again): the kernel waits at the stage again, and the first stage_finished after the
    marker is the Next of the new pass."""
    cut: int | None = None
    for event in events:
        if _stage_of(event) != stage:
            continue
        if event.kind in (RunnerEvent.STAGE_READY, RunnerEvent.STAGE_FAILED):
            cut = None
        elif event.kind == RunnerEvent.STAGE_FINISHED and cut is None:
            cut = event.seq
    return cut


def _cut_of(event: Event) -> int:
    cut = event.payload.get("cut") if isinstance(event.payload, dict) else None
    return cut if isinstance(cut, int) else event.seq


def _stage_of(event: Event) -> int | None:
    payload = event.payload
    stage = payload.get("stage") if isinstance(payload, dict) else None
    return stage if isinstance(stage, int) and not isinstance(stage, bool) else None
