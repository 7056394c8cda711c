"""The runner's reports to the server, on its comm (:data:`runtime.protocol.COMM_TARGET`).

The comm opens when the kernel is bound to a run (`configure()`) and starts with a `hello`;
then each stage reports as it goes (:class:`runtime.protocol.RunnerEvent`). The reports that
settle or end a stage carry a digest of what the person saw (:mod:`.digest`), and the values
the notebook collects (`collect:NAME` tags) go as `collected` reports. A kernel that is not
bound to a run (plain Voila or JupyterLab) has no comm, and reports nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from runtime import manifest as mf
from runtime.kernel.digest import stage_digest
from runtime.kernel.outputs import OutputSink
from runtime.kernel.values import json_value
from runtime.protocol import COMM_TARGET, DIGESTED, RunnerEvent

log = logging.getLogger("freezer.runner")


class Reports:
    """The comm of a kernel bound to a run, and what the runner sends on it."""

    def __init__(self, shell: Any, app: mf.Manifest, sinks: Sequence[OutputSink]) -> None:
        self.shell = shell
        self.manifest = app
        self.sinks = sinks  # one per stage: the outputs a digest covers
        self.comm: Any = None

    def open(self, run_id: str) -> None:
        """Open the comm (again, if configure() is called again) and say hello."""
        from comm import create_comm

        if self.comm is not None:
            self.comm.close()
        self.comm = create_comm(target_name=COMM_TARGET, data={})
        self.send(RunnerEvent.HELLO, run_id=run_id, stages=len(self.manifest.stages))

    def send(self, event: RunnerEvent, **data: Any) -> None:
        """Report `event`; a stage report gets its stage's digest, for replay to compare."""
        if self.comm is None:
            return
        if event in DIGESTED:
            names = [w.name for w in self.manifest.stages[data["stage"]].waits_on]
            outputs = self.sinks[data["stage"]].outputs
            data["digest"] = stage_digest(self.shell.user_ns, names, outputs)
        self.comm.send({"event": str(event), **data})

    def collect(self, index: int, name: str) -> None:
        """Report the value of the global `name` after (a cell of) stage `index`."""
        if name not in self.shell.user_ns:
            log.warning("collect:%s: no global named %s after stage %d", name, name, index)
            return
        value = json_value(self.shell.user_ns[name])
        self.send(RunnerEvent.COLLECTED, stage=index, name=name, value=value)
