"""Rebuilding a run in a fresh kernel from its journal, before the person's page renders.

A run's kernel can be gone (culled, crashed, the server restarted) while its journal is not.
:func:`replay_run` brings a fresh, configured kernel to where the person left off:

1. show the app headless (the bootstrap cell's code) and wait until stage 0 is ready or failed;
2. re-send the journal's browser widget messages in order, each to the widget with the same
   creation ordinal in the new kernel, waiting for the kernel to go idle (and for any stage a
   Next click started to end) after each. Next clicks re-run the later stages on their own.

No browser is attached meanwhile, so the listener acts as the front-end of the notebook's own
`Output` widgets (see :mod:`runtime.listener`). An event whose widget does not exist in the new
kernel means the notebook did not rebuild the same widgets: :class:`RunDivergedError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runtime.errors import RuntimeAppError
from runtime.store import unpack_buffers

if TYPE_CHECKING:
    from runtime.listener import KernelListener
    from runtime.store import Event

BOOTSTRAP_CODE = "from runtime import runner\nrunner.show()\n"


class RunDivergedError(RuntimeAppError):
    """The journal names a widget the replayed kernel never created."""

    def __init__(self, run_id: str, seq: int, ordinal: int | None) -> None:
        super().__init__(
            f"run {run_id}: event {seq} is for widget #{ordinal}, which the notebook did not "
            "create again; its code does not rebuild the same widgets (not deterministic)"
        )
        self.run_id = run_id
        self.seq = seq
        self.ordinal = ordinal


async def replay_run(
    listener: KernelListener, run_id: str, events: Sequence[Event], timeout: float
) -> int:
    """Replay `events` (the run's `comm_msg` journal, by seq) into a freshly configured kernel.

    `timeout` bounds each wait (stage 0, each event). Returns the number of events replayed.
    """
    listener.output_frontend = True
    try:
        since = len(listener.runner_events)
        await listener.execute(BOOTSTRAP_CODE, timeout)
        await listener.wait_for(is_stage_zero_settled, timeout, since)
        for event in events:
            await replay_event(listener, run_id, event, timeout)
        return len(events)
    finally:
        listener.output_frontend = False


def is_stage_zero_settled(data: dict[str, Any]) -> bool:
    """Whether a runner event says stage 0 is ready or failed."""
    return data.get("event") in ("stage_ready", "stage_failed") and data.get("stage") == 0


async def replay_event(
    listener: KernelListener, run_id: str, event: Event, timeout: float
) -> None:
    """Send one journaled widget message and wait until its effects are over."""
    ordinal = event.ordinal
    if ordinal is None:
        raise RunDivergedError(run_id, event.seq, ordinal)
    # a stage started by an earlier Next may still be creating its widgets
    await listener.wait_until(
        lambda: listener.comm_of(ordinal) is not None or not listener.stage_running, timeout
    )
    comm_id = listener.comm_of(ordinal)
    if comm_id is None:
        raise RunDivergedError(run_id, event.seq, ordinal)
    msg_id = listener.send_comm_msg(comm_id, event.payload, unpack_buffers(event.buffers))
    await listener.wait_idle(msg_id, timeout)
    await listener.wait_until(lambda: not listener.stage_running, timeout)
