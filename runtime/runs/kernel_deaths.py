"""A run's kernel deaths, counted per stage: a stage that ends its kernel every time it runs
(`os._exit`, a crash in a C extension, the out-of-memory killer) fails the run after a few
tries instead of having every reload start another kernel that dies the same way.

The run service (:mod:`runtime.runs.service`) reports each death of a run's kernel with the stage
that was running (:func:`running_stage`); a stage that is ready or failed again clears its
count. At the limit the run is marked failed, and its page says so in a plain sentence. The
count lives in memory: a restarted server gives the stage the same tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runtime.errors import RuntimeAppError
from runtime.protocol import SETTLED, RunnerEvent

if TYPE_CHECKING:
    from runtime.runs.runner_outbox import RunnerEventOutbox
    from runtime.store.store import Store

SETTLING_EVENTS = SETTLED | {RunnerEvent.STAGE_FINISHED}


class RunFailedError(RuntimeAppError):
    """The run's stage ended its kernel too many times in a row; the run is marked failed."""

    def __init__(self, run_id: str, stage: int, deaths: int) -> None:
        super().__init__(
            f"run {run_id}: the kernel died {deaths} times in a row while stage {stage} ran"
        )
        self.run_id = run_id
        self.stage = stage
        self.deaths = deaths


def running_stage(runner_events: Sequence[dict[str, Any]]) -> int | None:
    """The stage a kernel was running by its runner's reports (None: none was running).

    A kernel bound to a run (`hello`) that reported no stage at all was about to run stage 0:
    a stage that ends its process at once can take its own `stage_started` with it.
    """
    for event in reversed(runner_events):
        name = event.get("event")
        if name == RunnerEvent.STAGE_STARTED:
            stage = event.get("stage")
            return stage if isinstance(stage, int) else None
        if name in SETTLING_EVENTS:
            return None
        if name == RunnerEvent.HELLO:
            return 0
    return None


def death_error(deaths: int) -> str:
    """The stage error stored for a run failed by kernel deaths (the admin page shows it)."""
    return (
        f"the app's kernel stopped {deaths} times in a row while this step ran (the step ends "
        "its process: os._exit, a crash, or too little memory)"
    )


class StageDeaths:
    """Consecutive kernel deaths per run in the same stage, and failing the run at the limit."""

    def __init__(
        self, limit: int, store: Store, outbox: RunnerEventOutbox, log: logging.Logger
    ) -> None:
        self.limit = limit
        self.store = store
        self.outbox = outbox
        self.log = log
        self._deaths: dict[str, tuple[int, int]] = {}  # run id -> (stage, deaths in a row)

    def died(
        self, run_id: str, runner_events: Sequence[dict[str, Any]]
    ) -> RunFailedError | None:
        """Count a death of the run's kernel against the stage its reports say it ran; the
        error to fail the run with when that stage has now reached the limit."""
        stage = running_stage(runner_events)
        if stage is None:
            return None  # idle: killed from outside, not by a stage
        previous, count = self._deaths.get(run_id, (stage, 0))
        count = count + 1 if previous == stage else 1
        self._deaths[run_id] = (stage, count)
        self.log.warning("run %s: its kernel died in stage %d (%d in a row)", run_id, stage,
                         count)
        if 0 < self.limit <= count:
            return RunFailedError(run_id, stage, count)
        return None

    def on_runner_event(self, run_id: str, data: dict[str, Any]) -> None:
        """A stage that is ready or failed again (or a later one) starts its count over."""
        if data.get("event") not in SETTLED:
            return
        stage = data.get("stage")
        recorded = self._deaths.get(run_id)
        if recorded is not None and (not isinstance(stage, int) or recorded[0] <= stage):
            del self._deaths[run_id]

    async def fail_run(self, failure: RunFailedError) -> None:
        """Mark the run failed, its stage failed with :func:`death_error` (the admin page
        shows both)."""
        run_id = failure.run_id
        self.log.error("%s; the run is marked failed", failure)
        await self.outbox.submit(run_id, {
            "event": RunnerEvent.STAGE_FAILED.value, "stage": failure.stage,
            "error": death_error(failure.deaths), "traceback": "",
        })
        try:
            await self.store.set_run_status(run_id, "failed")
        except Exception:
            self.log.exception("run %s: could not mark the run failed", run_id)
