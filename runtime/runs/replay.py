"""Rebuilding a run in a fresh kernel from its journal, before the person's page renders.

A run's kernel can be gone (culled, crashed, the server restarted) while its journal is not.
:func:`replay_run` brings a fresh, configured kernel to where the person left off:

1. show the app headless (the bootstrap cell's code) and wait until stage 0 is ready or failed;
2. re-send the journal's browser widget messages in order, each to the widget with the same
   creation ordinal in the new kernel, pipelined: without waiting for the kernel to handle
   each (at most :data:`WINDOW` at once), and waiting for all sent to be handled only where
   the journal recorded a stage report since the last action (a Next click's stage must be
   over and compared first) or an action names a widget not created yet. Next clicks re-run
   the later stages on their own.

No browser is attached meanwhile, so the listener acts as the front-end of the notebook's own
`Output` widgets (see :mod:`runtime.runs.listener`).

Replay must never apply a person's actions to something else than what they saw. Two checks
stop it with :class:`RunDivergedError`: an event whose widget does not exist in the new kernel,
and a stage whose digest (:mod:`runtime.kernel.digest`: the waited-on widgets' states and the output
text, recorded with each `stage_ready`, `stage_failed` and `stage_finished`) differs from the
one the journal recorded at the same point (:class:`DigestCheck`). What the replayed kernel
reports again is not stored again, and from the first mismatch on nothing it reports is, so no
stage's results are overwritten.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.errors import RuntimeAppError
from runtime.kernel.digest import differences
from runtime.protocol import DIGESTED, REWOUND, SHOW_CODE, RunnerEvent
from runtime.store.store import unpack_buffers

if TYPE_CHECKING:
    from runtime.runs.listener import KernelListener
    from runtime.store.store import Event

REPLAYED_KINDS = ("comm_msg", REWOUND, *sorted(DIGESTED))
"""The journal's event kinds replay reads: the person's actions, the digests to compare, and
where the person went back (replay is given the events still in force:
:func:`runtime.runs.rewind.in_force`)."""
WINDOW = 64
"""At most this many replayed actions are sent and not yet handled by the kernel."""

ACTIONS_NOT_APPLIED = "Your actions are kept; start over to continue."
WIDGETS_CHANGED = (
    "The app no longer builds the same widgets, so your saved actions could not be applied "
    "again. " + ACTIONS_NOT_APPLIED
)


def changed_sentence(stage: int | None) -> str:
    """What the person is told when a step no longer shows what they acted on."""
    step = f"Step {stage + 1}" if stage is not None else "A step"
    return (
        f"{step} no longer shows what you saw when you worked on it (the app depends on "
        "something outside your saved actions, such as a file that changed), so your saved "
        "actions were not applied to it again. " + ACTIONS_NOT_APPLIED
    )


@dataclass(frozen=True)
class Divergence:
    """Where a replay stopped matching the journal, and what the person is told."""

    seq: int  # the journal event: the recorded stage report, or the action with no widget
    event: str  # its kind: stage_ready, stage_failed, stage_finished, comm_msg
    stage: int | None
    differences: list[str] = field(default_factory=list)  # `expected ..., found ...` lines
    sentence: str = WIDGETS_CHANGED

    def to_json(self) -> dict[str, Any]:
        """The payload of the run's `diverged` journal event."""
        return asdict(self)


class RunDivergedError(RuntimeAppError):
    """The replayed kernel does not rebuild what the person acted on; nothing was applied."""

    def __init__(self, run_id: str, divergence: Divergence) -> None:
        where = f"event {divergence.seq} ({divergence.event}"
        where += f", stage {divergence.stage})" if divergence.stage is not None else ")"
        super().__init__(
            f"run {run_id}: replay diverged at {where}: " + "; ".join(divergence.differences)
            + " (the notebook's code does not rebuild the same state from the journal)"
        )
        self.run_id = run_id
        self.divergence = divergence


def needs_replay(events: Sequence[Event]) -> bool:
    """Whether the journal holds any action of the person (else the page just runs stage 0)."""
    return any(event.kind == "comm_msg" for event in events)


class DigestCheck:
    """Compares the stage digests a replayed kernel reports with the journal's, in order.

    Used as the listener's `runner_event_filter`. While the replay is within what the journal
    recorded, the kernel's reports are copies of recorded ones: they are not stored again (so
    the run's stages and results never go back to an earlier state while the replay catches
    up), and each digest is compared with its recorded twin. From the first mismatch on,
    nothing is stored: the run's rows stay as the person left them. Reports beyond the recorded
    ones (the kernel went further than the journal knew, e.g. a Next the server journaled but
    died before the stage ran) are stored as they come. A journal without digests (saved before
    digests existed) is not compared, and its replay stores what it reports, as it always did.
    """

    def __init__(self, run_id: str, recorded: Sequence[Event]) -> None:
        self.run_id = run_id
        self.expected = [event for event in recorded if has_digest(event)]
        self.position = 0
        self.divergence: Divergence | None = None

    def filter(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The runner report to store now that the kernel sent `data` (None: nothing)."""
        if self.divergence is not None:
            return None
        if self.position >= len(self.expected):
            return data
        if data.get("event") not in DIGESTED:
            return None  # a copy of a recorded report (stage_started, collected, ...)
        recorded = self.expected[self.position]
        self.position += 1
        lines = self._compare(recorded, data)
        if lines:
            self.diverge_at(recorded, lines)
        return None

    def finish(self) -> None:
        """The replay sent every action: a recorded report it did not reproduce is a divergence
        (the rebuilt app did not get as far as the person had)."""
        if self.divergence is None and self.position < len(self.expected):
            recorded = self.expected[self.position]
            stage = recorded.payload.get("stage")
            self.diverge_at(recorded, [f"expected {describe(recorded.kind, stage)}, found none"])

    def diverge_at(self, recorded: Event, lines: list[str]) -> None:
        """The run diverged at the recorded report `recorded`, as `lines` say."""
        stage = recorded.payload.get("stage")
        first = stage if isinstance(stage, int) else None
        self.diverge(Divergence(recorded.seq, recorded.kind, first, lines, changed_sentence(first)))

    def diverge(self, divergence: Divergence) -> None:
        """Stop storing what the kernel reports: the run diverged here (first call wins)."""
        if self.divergence is None:
            self.divergence = divergence

    def raise_if_diverged(self) -> None:
        """Raise :class:`RunDivergedError` once a mismatch was found."""
        if self.divergence is not None:
            raise RunDivergedError(self.run_id, self.divergence)

    @staticmethod
    def _compare(recorded: Event, data: dict[str, Any]) -> list[str]:
        stage, recorded_stage = data.get("stage"), recorded.payload.get("stage")
        if (recorded.kind, recorded_stage) != (data.get("event"), stage):
            return [
                f"expected {describe(recorded.kind, recorded_stage)}, "
                f"found {describe(str(data.get('event')), stage)}"
            ]
        digest = data.get("digest")
        return differences(recorded.payload["digest"], digest if isinstance(digest, dict) else {})


def has_digest(event: Event) -> bool:
    """Whether a journal event is a stage report with a digest."""
    payload = event.payload
    return (
        event.kind in DIGESTED and isinstance(payload, dict)
        and isinstance(payload.get("digest"), dict)
    )


def describe(kind: str, stage: Any) -> str:
    """`step 2 ready` for a stage report."""
    what: dict[str, str] = {RunnerEvent.STAGE_READY: "ready", RunnerEvent.STAGE_FAILED: "failed",
            RunnerEvent.STAGE_FINISHED: "finished (Next)"}
    number = stage + 1 if isinstance(stage, int) else stage
    return f"step {number} {what.get(kind, kind)}"


async def replay_run(
    listener: KernelListener, run_id: str, events: Sequence[Event], timeout: float
) -> int:
    """Replay the run's journal (`events`, by seq, of :data:`REPLAYED_KINDS`) into a freshly
    configured kernel; raise :class:`RunDivergedError` where it stops matching.

    `timeout` bounds each wait (stage 0, each action to be handled). Returns the number of
    actions replayed.
    """
    check = DigestCheck(run_id, events)
    in_flight = InFlight(listener, timeout)
    listener.output_frontend = True
    listener.runner_event_filter = check.filter
    try:
        since = len(listener.runner_events)
        await listener.execute(SHOW_CODE, timeout)
        await listener.wait_for(is_stage_zero_settled, timeout, since)
        check.raise_if_diverged()
        actions = await send_actions(listener, check, in_flight, events)
        check.raise_if_diverged()
        await in_flight.settle()
        check.raise_if_diverged()
        check.finish()
        check.raise_if_diverged()
        listener.log.info(
            "run %s: replayed %d actions, at most %d in flight, settled %d times",
            run_id, actions, in_flight.most, in_flight.settles,
        )
    finally:
        listener.output_frontend = False
        # After a divergence (or a failure) the filter stays: nothing this kernel reports
        # until it is shut down is stored over the run's rows.
    listener.runner_event_filter = None
    return actions


def is_stage_zero_settled(data: dict[str, Any]) -> bool:
    """Whether a runner event says stage 0 is ready or failed."""
    ready = (RunnerEvent.STAGE_READY, RunnerEvent.STAGE_FAILED)
    return data.get("event") in ready and data.get("stage") == 0


async def send_actions(
    listener: KernelListener, check: DigestCheck, in_flight: InFlight, events: Sequence[Event]
) -> int:
    """Send the journal's actions in order, waiting only where the next one needs it.

    The kernel handles one channel's messages in order, a Next click's stage included, so an
    action is sent without waiting for the earlier ones. The replay settles (every action sent
    is handled and no stage runs) only before an action that follows a recorded stage report
    in the journal (a Next click's stage must be over and its digest compared first: from a
    mismatch on, no later action is sent) and before an action for a widget this kernel has
    not created yet (a callback may create it); if it is still missing then, the run diverged
    there and nothing more is sent. Returns the number of actions sent.
    """
    report_before = False
    sent = 0
    for event in events:
        if event.kind in DIGESTED:
            report_before = True
            continue
        if event.kind != "comm_msg":
            continue
        ordinal = event.ordinal
        if report_before or ordinal is None or listener.comm_of(ordinal) is None:
            await in_flight.settle()
            report_before = False
        check.raise_if_diverged()
        comm_id = listener.comm_of(ordinal) if ordinal is not None else None
        if comm_id is None:
            check.diverge(Divergence(
                event.seq, event.kind, None,
                [f"the action is for widget #{ordinal}, which the app did not create again"],
            ))
            break  # the caller raises: nothing after it is sent
        await in_flight.make_room()
        in_flight.send(comm_id, event)
        sent += 1
    return sent


class InFlight:
    """The replayed actions sent to the kernel and not yet handled, oldest first.

    At most `window` are queued at once, so the kernel's socket buffer and the futures kept
    stay bounded whatever the journal's size. Each wait is bounded by `timeout`: a kernel that
    dies mid-replay ends in :class:`runtime.runs.listener.KernelGoneError` (its listener stopped)
    or :class:`runtime.runs.listener.KernelTimeoutError`, never a hang.
    """

    def __init__(self, listener: KernelListener, timeout: float, window: int = WINDOW) -> None:
        self.listener = listener
        self.timeout = timeout
        self.window = window
        self.pending: deque[asyncio.Future[None]] = deque()
        self.most = 0  # the most actions in flight at once
        self.settles = 0  # how many times the replay waited for all of them

    def send(self, comm_id: str, event: Event) -> None:
        """Send the journaled widget message `event` to the widget `comm_id`."""
        msg_id = self.listener.send_comm_msg(comm_id, event.payload, unpack_buffers(event.buffers))
        self.pending.append(self.listener.expect_idle(msg_id))  # before any await
        self.most = max(self.most, len(self.pending))

    async def make_room(self) -> None:
        """Return once fewer than `window` actions are in flight."""
        while len(self.pending) >= self.window:
            await self._handled_oldest()

    async def settle(self) -> None:
        """Return once every action sent is handled and no stage runs."""
        self.settles += 1
        while self.pending:
            await self._handled_oldest()
        listener = self.listener
        await listener.wait_until(lambda: not listener.stage_running, self.timeout)

    async def _handled_oldest(self) -> None:
        await self.listener.wait_future(self.pending[0], self.timeout)
        self.pending.popleft()
