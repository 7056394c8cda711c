"""Running a stage's cells in the kernel: what each one shows, and where the stage stops.

Code cells run through the kernel's own shell (`run_cell`, as Jupyter runs them), their outputs
captured into the stage's output area (:mod:`.capture`); a cell tagged `remove-cell`,
`hide-output` or `remove-output` runs without showing them, and a markdown cell tagged
`remove-cell` is not shown. The leading cells of stage 0 that the manifest says run ahead
(:meth:`runtime.manifest.Stage.warm_leading`) run before the person is known
(:meth:`StageCells.run_ahead`); the stage then shows their outputs instead of running them
again. After a cell tagged `collect:NAME` the value of NAME is reported, and the stage's other
collected names after its last cell. The first cell that raises, or an interrupt, stops the
stage with a :class:`.failure.Failure`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runtime import manifest as mf
from runtime.kernel.capture import Capture, CellError
from runtime.kernel.failure import Failure, cell_failure, interrupt_failure
from runtime.kernel.interrupt import Interruption
from runtime.kernel.outputs import Output, OutputSink
from runtime.kernel.parameters import PARAMETERS_TAG
from runtime.kernel.reports import Reports
from runtime.kernel.stepper import markdown_output

HIDE_OUTPUT_TAGS = frozenset({"remove-cell", "hide-output", "remove-output"})
HIDE_MARKDOWN_TAGS = frozenset({"remove-cell"})
COLLECT_PREFIX = mf.COLLECT_PREFIX


class StageCells:
    """Runs the cells of the app's stages in one kernel."""

    def __init__(
        self,
        shell: Any,
        app: mf.Manifest,
        capture: Capture,
        interruption: Interruption,
        reports: Reports,
        after_parameters: Callable[[], Failure | None],
    ) -> None:
        """`after_parameters()` is called when the `parameters` cell ran; a failure it returns
        stops the stage (the run's values could not be set)."""
        self.shell = shell
        self.manifest = app
        self.capture = capture
        self.interruption = interruption
        self.reports = reports
        self.after_parameters = after_parameters

    def run_ahead(self) -> dict[int, list[Output]]:
        """Run stage 0's warm leading code cells; their outputs, by position in the stage.

        The first that fails and those after it are left to the stage, which runs them again
        and reports the failure properly.
        """
        ran: dict[int, list[Output]] = {}
        for pos, cell in enumerate(self.manifest.stages[0].warm_leading()):
            if cell.kind == "markdown":
                continue
            sink = OutputSink()
            if self.run_code_cell(cell, sink) is not None:
                break
            ran[pos] = sink.outputs
        return ran

    def run(
        self, index: int, sink: OutputSink, ran: Mapping[int, list[Output]], timeout: float
    ) -> Failure | None:
        """Run stage `index` into `sink`; `ran` holds the outputs of its cells that ran ahead,
        `timeout` the seconds it may take (0: no limit)."""
        stage = self.manifest.stages[index]
        collected: set[str] = set()
        interruption = self.interruption
        with interruption.stage(timeout):
            for pos, cell in enumerate(stage.cells):
                if interruption.interrupted:
                    return interrupt_failure(None, interruption.stopped_by_timeout())
                if cell.kind == "markdown":
                    if not HIDE_MARKDOWN_TAGS & set(cell.tags):
                        sink.add(markdown_output(cell.source))
                    continue
                if pos in ran:
                    sink.extend(ran[pos])
                    continue
                failure = self.run_code_cell(cell, sink)
                if failure is not None:
                    return failure
                for tag in cell.tags:
                    if tag.startswith(COLLECT_PREFIX):
                        self.reports.collect(index, tag[len(COLLECT_PREFIX) :])
                        collected.add(tag[len(COLLECT_PREFIX) :])
            if interruption.interrupted:
                return interrupt_failure(None, interruption.stopped_by_timeout())
        for name in stage.collect:
            if name not in collected:
                self.reports.collect(index, name)
        return None

    def run_code_cell(self, cell: mf.Cell, sink: OutputSink) -> Failure | None:
        """Run one code cell, its outputs into `sink` (unless its tags hide them)."""
        target = None if HIDE_OUTPUT_TAGS & set(cell.tags) else sink
        with self.capture.cell(cell.source, target):
            with self.interruption.cell():
                result = self.shell.run_cell(cell.source, store_history=False, silent=False)
            cell_error = self.capture.error
        if result.success:
            if cell_error is not None and target is not None:
                # The cell caught an exception and showed it (as `interact` does).
                for output in self.capture.error_outputs(cell_error):
                    target.add(output)
            if PARAMETERS_TAG in cell.tags:
                return self.after_parameters()
            return None
        exc = result.error_before_exec or result.error_in_exec
        if isinstance(exc, KeyboardInterrupt):
            return interrupt_failure(cell_error, self.interruption.stopped_by_timeout())
        if cell_error is None:
            name = type(exc).__name__ if exc is not None else "Error"
            cell_error = CellError(name, str(exc), [f"{name}: {exc}"])
        return cell_failure(cell_error)
