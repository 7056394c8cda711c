"""What can stop the run service from giving a person their run's page, as domain errors.

The web layer maps each to one HTTP answer, in one place
(:func:`runtime.web.handlers.outcome_page`): :class:`RunMissingError` 404,
:class:`RunUnrestorableError` and :class:`RunStoppedError` 409, :class:`KernelsBusyError` 503
with `Retry-After`; any other :class:`runtime.errors.RuntimeAppError` (a kernel that could not
be started) 500.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.errors import RuntimeAppError

if TYPE_CHECKING:
    from runtime.runs.kernel_deaths import RunFailedError
    from runtime.runs.replay import RunDivergedError

BUSY_RETRY_AFTER = 5
"""Seconds a person's page waits before asking again for a kernel when every one is in use."""


class KernelsBusyError(RuntimeAppError):
    """Every kernel slot is taken by a run someone is using; try again in a few seconds."""

    def __init__(self, max_kernels: int) -> None:
        super().__init__(
            f"all {max_kernels} kernels are in use by people with the app open; "
            "raise --max-kernels or wait"
        )
        self.retry_after = BUSY_RETRY_AFTER


class RunMissingError(RuntimeAppError):
    """There is no such run of the person asking (or no such file of it)."""


class RunStoppedError(RuntimeAppError):
    """The run was marked failed: a stage ended its kernel every time it ran."""

    def __init__(self, run_id: str, failure: RunFailedError | None = None) -> None:
        super().__init__(str(failure) if failure else f"run {run_id} has failed")
        self.failure = failure  # set when it failed just now, on this page's replay


class RunUnrestorableError(RuntimeAppError):
    """The run's journal no longer rebuilds its state (replay diverged); `sentence` says why."""

    def __init__(self, run_id: str, sentence: str, divergence: RunDivergedError | None = None):
        super().__init__(f"run {run_id} cannot be restored: {sentence}")
        self.sentence = sentence
        self.divergence = divergence  # set when it diverged just now, on this page's replay
