"""Kernel <-> server: the runner's comm, the events it reports, and the code the server runs.

The runner (:mod:`runtime.kernel.runner`) opens one comm with target :data:`COMM_TARGET` and
sends each report as `{"event": RunnerEvent, ...fields}`; the server's listener
(:mod:`runtime.runs.listener`) receives them, the store turns them into rows
(:mod:`runtime.store.runner_events`), and the browser never sees this comm. A work queue's
request travels on the same comm as :data:`QUEUE_REQUEST` and is answered, not stored as a report.

This is the one place these names are spelled; everything else imports them.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, TypedDict

from runtime.manifest import BOOTSTRAP_SOURCE

COMM_TARGET = "freezer.run"
"""The runner's comm to the server."""

WIDGET_TARGET = "jupyter.widget"
WIDGET_CONTROL_TARGET = "jupyter.widget.control"


class RunnerEvent(str, Enum):
    """What the runner reports, in the order a stage goes through them."""

    HELLO = "hello"  # the runner's comm is open: run id, number of stages
    STAGE_STARTED = "stage_started"
    STAGE_READY = "stage_ready"  # the stage's cells ran; its widgets wait for the person
    STAGE_FAILED = "stage_failed"  # a cell raised: error, traceback
    STAGE_FINISHED = "stage_finished"  # Next was pressed: snapshot of what the stage waited on
    COLLECTED = "collected"  # a value the notebook collected: name, value
    FINISHED = "finished"  # the last stage is done

    def __str__(self) -> str:
        return self.value


QUEUE_REQUEST = "queue_request"
"""A work queue's request on the runner's comm (:mod:`runtime.kernel.work`); the server's answer
carries `reply`, the request's id."""

REWOUND = "rewound"
"""The journal event that marks a go-back (payload: `stage` gone back to, `cut`: the seq from
which the earlier pass is out of force, `from_stage`); written by the server, not the runner
(:mod:`runtime.runs.rewind`). The runner is told the stages to hold at through `configure`."""

SETTLED = frozenset({RunnerEvent.STAGE_READY, RunnerEvent.STAGE_FAILED, RunnerEvent.FINISHED})
"""After one of these the kernel waits for the person."""

DIGESTED = frozenset(
    {RunnerEvent.STAGE_READY, RunnerEvent.STAGE_FAILED, RunnerEvent.STAGE_FINISHED}
)
"""Reports that carry a digest of the stage (:mod:`runtime.kernel.digest`)."""

STAGE_STATUS_OF: dict[str, str] = {
    RunnerEvent.STAGE_STARTED: "running",
    RunnerEvent.STAGE_READY: "ready",
    RunnerEvent.STAGE_FAILED: "failed",
    RunnerEvent.STAGE_FINISHED: "finished",
}
"""The stage status each stage report sets."""


class StageReport(TypedDict, total=False):
    """The fields of a report; `event` and, for stage reports, `stage` are always there."""

    event: str
    stage: int
    snapshot: dict[str, Any]  # stage_finished
    error: str  # stage_failed
    traceback: str  # stage_failed
    name: str  # collected
    value: Any  # collected
    digest: str  # stage_ready, stage_failed, stage_finished
    run_id: str  # hello
    stages: int  # hello


APP_DIR_ENV = "FREEZER_APP_DIR"
"""The environment variable naming the app directory a kernel serves (set by the server)."""
RUN_DIR_ENV = "FREEZER_RUN_DIR"
"""The environment variable naming the kernel's own working directory (runtime.runs.runfiles)."""

RUNNER_MODULE = "runtime.kernel.runner"

SHOW_CODE = BOOTSTRAP_SOURCE + "\n"
"""What replay runs to build the app in a fresh kernel (the bootstrap cell's code)."""

PREPARE_CODE = (
    f"from {RUNNER_MODULE.rsplit('.', 1)[0]} import runner as _freezer_runner\n"
    "_freezer_runner.prepare()\n"
)
"""What a fresh kernel runs before it is bound to a run: the leading warm cells."""


def lifeline_code(server_pid: int) -> str:
    """Code that makes a kernel die with the server (:mod:`runtime.runs.lifeline`)."""
    return (
        "from runtime.runs import lifeline as _freezer_lifeline\n"
        f"_freezer_lifeline.die_with_parent({int(server_pid)})\n"
    )


def configure_code(arguments: dict[str, Any]) -> str:
    """The code that binds a kernel to a run; the values travel as JSON, never as code."""
    literal = json.dumps(json.dumps(arguments))
    return (
        "import json as _freezer_json\n"
        f"from {RUNNER_MODULE.rsplit('.', 1)[0]} import runner as _freezer_runner\n"
        f"_freezer_runner.configure(**_freezer_json.loads({literal}))\n"
    )
