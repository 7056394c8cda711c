"""Going back to an earlier stage: the run service's operation behind the stepper's Back.

:func:`go_back` rebuilds a person's run as it was when stage k waited for them: the run's
kernel is shut down, a `rewound` event is journaled (with the run's rows set to stage k), and a
fresh kernel replays the journal still in force (:mod:`.rewind`), which ends just before the
Next that ended stage k, held there. The person's page then loads that kernel: stage k's
widgets editable again, the later stages not run. Nothing is deleted from the journal.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from runtime.errors import RuntimeAppError
from runtime.runs.outcomes import RunMissingError
from runtime.runs.replay import REPLAYED_KINDS
from runtime.runs.rewind import cut_for, in_force

if TYPE_CHECKING:
    from runtime.runs.live import LiveKernel
    from runtime.runs.service import RunService

STAGE_RUNNING = (
    "A step is running right now; you can go back once it is done and the page waits for you."
)
SETTLE_GRACE = 0.5
"""Seconds a go-back waits for a running stage to end before it is refused."""
NOT_FINISHED = "You have not finished that step yet, so there is nothing to go back to."
NOT_ACTIVE = "This run was stopped or started over, so it cannot go back."


class GoBackRefusedError(RuntimeAppError):
    """The run cannot go back now; `sentence` tells the person why."""

    def __init__(self, run_id: str, sentence: str) -> None:
        super().__init__(f"run {run_id} cannot go back: {sentence}")
        self.sentence = sentence


async def go_back(runs: RunService, run_id: str, user_id: int | None, stage: int) -> LiveKernel:
    """Take the person's run back to `stage` (0-based) and return its rebuilt kernel, ready.

    Raises :class:`RunMissingError` for a run that is not theirs, :class:`GoBackRefusedError`
    while a stage runs, for a stage not finished, or a run that is not active or finished; and
    whatever :meth:`RunService.open_page` raises for the rebuild."""
    run = await runs.store.get_run(run_id)
    if run is None or run.user_id != user_id:
        raise RunMissingError(f"no run {run_id} of user {user_id}")
    if run.status not in ("active", "finished"):
        raise GoBackRefusedError(run.id, NOT_ACTIVE)
    stopping: asyncio.Future[None] | None = None
    try:
        async with runs.run_lock(run.id):
            live = runs.kernels.by_run.get(run.id)
            if live is not None and live.listener.stage_running:
                await _settled(live, run.id)
            events = in_force(await runs.store.events(run.id, kinds=REPLAYED_KINDS))
            cut = cut_for(events, stage) if stage >= 0 else None
            if cut is None:
                raise GoBackRefusedError(run.id, NOT_FINISHED)
            if live is not None:
                # Nothing the old page sends may land after the marker: its kernel is retired
                # (its pages' messages are no longer journaled) and forgotten, then whatever
                # the page sent before is committed. Its process ends while the fresh kernel
                # replays (a go-back of a short run answers in about half the time).
                live.retired = True
                runs.kernels.forget(live.kernel_id)
                stopping = asyncio.ensure_future(runs.processes.shut_down(live.kernel_id))
            await runs.journal.flush()
            seq = await runs.store.record_rewind(
                run.id, {"stage": stage, "cut": cut, "from_stage": run.stage})
            runs.log.info("run %s: went back to stage %d from stage %d (journal cut at %d, "
                          "marker %d; user %s)", run.id, stage, run.stage, cut, seq,
                          run.user_name)
        started = time.monotonic()
        rebuilt = await runs.open_page(run.id, user_id)  # a divergence is recorded there
        runs.log.info("run %s: rebuilt at stage %d in %.0f ms", run.id, stage,
                      (time.monotonic() - started) * 1000)
        return rebuilt
    finally:
        if stopping is not None:
            await _stopped(runs, stopping)


async def _settled(live: LiveKernel, run_id: str) -> None:
    """Return once the kernel runs no stage, within :data:`SETTLE_GRACE`; else refuse. The page
    offers Back only when no stage runs, a moment before this server hears the stage is over."""
    listener = live.listener
    try:
        await listener.wait_until(lambda: not listener.stage_running, SETTLE_GRACE)
    except RuntimeAppError:
        raise GoBackRefusedError(run_id, STAGE_RUNNING) from None


async def _stopped(runs: RunService, stopping: asyncio.Future[None]) -> None:
    try:
        await stopping
    except Exception:
        runs.log.exception("the kernel a run went back from did not shut down cleanly")
