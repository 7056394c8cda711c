"""The kernel side of a frozen app: runs the stages in order and reports them to the server.

The bootstrap cell of `app.ipynb` calls :func:`show`. A Freezer server first calls
:func:`prepare` (pool kernels, before the person is known) and :func:`configure` (binds the
kernel to a run and opens the runner's comm); under plain Voila or JupyterLab neither is
called and the app runs unsaved. See `docs/internals.md` for the protocol and `docs/runner.md`
for what the person sees.

The :class:`Runner` is the state machine of the stages (new, running, ready, failed,
finished) and the hand-over between them (:mod:`.boundary`); it leaves running the cells to
:mod:`.cells`, stopping them to :mod:`.interrupt`, the run's binding to :mod:`.parameters`,
the reports to :mod:`.reports` and the button the person presses to :mod:`.offer`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, cast

from runtime import manifest as mf
from runtime.errors import RuntimeAppError
from runtime.kernel.boundary import Boundary
from runtime.kernel.capture import Capture
from runtime.kernel.cells import StageCells
from runtime.kernel.failure import NEEDS_INPUT, Failure, failure_outputs, runner_failure
from runtime.kernel.finish import DONE_SAVED, DONE_UNSAVED, input_names, live_inputs
from runtime.kernel.gate import Gate, find_gate
from runtime.kernel.interrupt import Interruption, after_current_request
from runtime.kernel.offer import Offer
from runtime.kernel.outputs import Output, OutputSink
from runtime.kernel.parameters import RunConfig, seed, set_parameters
from runtime.kernel.reports import Reports
from runtime.kernel.requirements import Requirements, after_each_message
from runtime.kernel.stepper import AppView, disable_widgets, markdown_output
from runtime.protocol import APP_DIR_ENV, RUN_DIR_ENV, RunnerEvent

log = logging.getLogger("freezer.runner")


class RunnerError(RuntimeAppError):
    """The runner was used in a way it cannot work (no kernel, configured too late, ...)."""


class Runner:
    """One app in one kernel: the stages, their outputs, and the run they belong to."""

    def __init__(self, shell: Any, app: mf.Manifest, app_dir: Path) -> None:
        self.shell = shell
        self.manifest = app
        self.app_dir = app_dir
        self.capture = Capture(shell)
        self.sinks = [OutputSink() for _ in app.stages]
        self.config: RunConfig | None = None
        self.reports = Reports(shell, app, self.sinks)
        self.interruption = Interruption()
        self.cells = StageCells(
            shell, app, self.capture, self.interruption, self.reports, self._parameters_cell_ran
        )
        self.view: AppView | None = None
        self.offer = Offer()
        self.current = -1  # index of the stage that runs or ran last
        self.state = "new"  # new | running | ready | failed | finished
        self.warm_outputs: dict[int, list[Output]] = {}  # stage-0 cells run by prepare()
        self.boundary: Boundary | None = None  # what the ready (or retried) hand-over waits on
        self.requirements = Requirements(self._update_next)  # what `require()` asks of it
        self.requirements.install()
        after_each_message(shell, self.requirements.refresh)
        self._finish_inputs: list[Any] = []  # the live inputs of a last stage awaiting Finish
        self._prepared = False
        self._shown = False
        self._parameters_ran = False
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()  # the first stage, scheduled by show()
        self._holds: list[int] = []  # see configure(): the go-backs a replay goes through

    # --- the three calls of the protocol ------------------------------------------------

    def prepare(self) -> None:
        """Run the leading cells of stage 0 the manifest marks warm (once); build the view."""
        if self._prepared:
            return
        self._prepared = True
        # What the first stage needs anyway, loaded before the person arrives (pool kernels).
        import ipywidgets  # noqa: F401

        markdown_output("")
        try:
            import numpy  # noqa: F401  (seeded before stage 0)
        except ImportError:
            pass
        self.warm_outputs = self.cells.run_ahead()
        # Built here rather than in show(): a pool kernel has it ready before the person comes.
        titles = [stage.title for stage in self.manifest.stages]
        self.view = self.offer.view = AppView(titles, self._on_next, saved=self.config is not None)
        for sink, widget in zip(self.sinks, self.view.outputs, strict=True):
            self.capture.register(sink, widget)
            sink.attach(widget)

    def configure(self, config: RunConfig) -> None:
        """Bind the kernel to a run; open the runner's comm and say hello."""
        if self.state != "new" and (self.config is None or self.config.run_id != config.run_id):
            raise RunnerError(
                "configure() must be called before show() runs the first stage "
                "(a kernel serves one run; start a new kernel for another run)"
            )
        self.config = config
        self._holds = list(config.holds)
        self.capture.show_tracebacks = config.show_tracebacks
        if self.view is not None:
            self.view.set_saved(True)
        self.reports.open(config.run_id)
        if self._parameters_ran and self.state == "new":
            failure = self._set_parameters()  # the parameters cell was a warm cell
            if failure is not None:
                raise RunnerError(failure.error)

    def show(self) -> None:
        """Display the root widget; the first time, run stage 0 right after this request."""
        from IPython.display import display

        self.prepare()
        assert self.view is not None
        cast(Any, display)(self.view.root)
        if not self._shown:
            self._shown = True
            after_current_request(self.shell, self._start, self._tasks)

    # --- stages ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self.state == "new":
            self._run_stage(0)

    def _on_next(self, button: Any) -> None:
        if button.disabled:
            return  # a gate holds it (a browser cannot click it; a message still can)
        self._advance(button)

    def _advance(self, button: Any) -> None:
        """A click on the offered Next button (or on the gate that stands for it)."""
        view = self.view
        if view is None or button is not view.button or self._busy:
            return  # a stale button, or a click that arrived while a stage ran
        if self.state == "ready" and self.requirements.unmet() is not None:
            return  # a requirement of the stage does not hold (the status line says which)
        if self._holds and self.state == "ready" and self._holds[0] == self.current:
            # the replayed Next after which the person went back to this stage: it stays here
            self._holds.pop(0)
            return
        self._busy = True
        self.offer.withdraw_gate()
        view.disable_next()
        try:
            if self._awaits_finish():
                self._finish_run()
            elif self.state == "ready":
                self._finish_stage(self.current)
                self._run_stage(self.current + 1)
            elif self.state == "failed":
                if self.current > 0:
                    self._finish_stage(self.current - 1)
                self._run_stage(self.current)
        finally:
            self._busy = False

    def _finish_stage(self, index: int) -> None:
        if self.boundary is None:  # not expected: every ready stage has one
            self.boundary = self._boundary_of(index)
        snapshot = self.boundary.capture(self.shell.user_ns)
        self.reports.send(RunnerEvent.STAGE_FINISHED, stage=index, snapshot=snapshot)

    def _run_stage(self, index: int) -> None:
        assert self.view is not None
        title = self.manifest.stages[index].title
        self.current, self.state = index, "running"
        self.view.mark(index, "running", f"Running “{title}”…")
        sink = self.sinks[index]
        sink.reset()
        self.requirements.start_stage()
        self.reports.send(RunnerEvent.STAGE_STARTED, stage=index)
        timeout = self.config.stage_timeout if self.config else 0.0
        try:
            if index == 0:
                seed(self.config)
            ran = self.warm_outputs if index == 0 else {}
            failure = self.cells.run(index, sink, ran, timeout)
        except Exception as exc:  # a fault of the runner itself: the person can still retry
            log.exception("stage %d could not run", index)
            failure = runner_failure(exc)
        sink.push()
        # The page is complete before the server hears about it.
        if failure is not None:
            self._stage_failed(index, sink, failure)
        else:
            self._stage_ready(index)

    def _stage_failed(self, index: int, sink: OutputSink, failure: Failure) -> None:
        assert self.view is not None
        self.state = "failed"
        title = self.manifest.stages[index].title
        press = self.offer.label(self._awaits_finish())
        status = f"“{title}” failed. Fix the inputs above and press {press} to retry."
        if index > 0 and self.boundary is not None:
            self.boundary.failed(self.shell.user_ns)
            if self._waiting_for_input(failure):
                failure = failure.needing_input()
                status = f"{NEEDS_INPUT} Make your choices, then press {press}."
        show_tracebacks = self.config is not None and self.config.show_tracebacks
        for output in failure_outputs(failure, show_tracebacks):
            sink.add(output)
        sink.push()
        self.view.mark(index, "failed", status)
        self.requirements.drop()  # the retry declares them again
        self._offer_next()
        self.reports.send(
            RunnerEvent.STAGE_FAILED, stage=index, error=failure.error,
            traceback=failure.traceback,
        )

    def _stage_ready(self, index: int) -> None:
        assert self.view is not None
        if index > 0:
            if self.boundary is not None:
                self.boundary.disable()
            self.view.mark_done(index - 1)
        self.boundary, self.offer.gate = None, None
        last = len(self.manifest.stages) - 1
        finish_inputs = live_inputs(self.requirements.stage_widgets()) if index == last else []
        ends_now = index == last and not finish_inputs and not self.requirements.items
        if ends_now:
            self.state = "finished"
            self.view.mark(index, "ready", DONE_UNSAVED)
            self.view.withdraw_next()
        else:
            self.state = "ready"
            if index == last:  # the person works in it still: Finish ends the run
                self._finish_inputs = finish_inputs
                names = input_names(self.shell.user_ns, finish_inputs)
                self.boundary = Boundary(names, self.shell.user_ns)
            else:
                self.boundary = self._boundary_of(index)
            if self.boundary.gate is not None:
                self.offer.gate = Gate(self.boundary.gate, self._advance, self._update_next)
            press = self.offer.label(self._awaits_finish())
            status = f"Step {index + 1} of {last + 1}: make your choices, then press {press}."
            self.offer.status = status
            self.view.mark(index, "ready", status)
            self._offer_next()
            self.requirements.watch()
        self.reports.send(RunnerEvent.STAGE_READY, stage=index)
        if ends_now:
            self.reports.send(RunnerEvent.FINISHED)

    def _finish_run(self) -> None:
        """Finish was pressed on the last stage: its snapshot, its inputs frozen, the end."""
        assert self.view is not None
        index = self.current
        self._finish_stage(index)
        disable_widgets(self._finish_inputs)
        self.requirements.drop()
        self.boundary, self._finish_inputs = None, []
        self.state = "finished"
        self.view.mark_done(index)
        self.view.say(DONE_SAVED if self.config is not None else DONE_UNSAVED)
        self.view.withdraw_next()
        self.reports.send(RunnerEvent.FINISHED)

    def _boundary_of(self, index: int) -> Boundary:
        """The hand-over from stage `index`, ready now, to the next stage."""
        stage = self.manifest.stages[index]
        gate = find_gate(self.shell.user_ns, stage.gate)
        return Boundary((w.name for w in stage.waits_on), self.shell.user_ns, gate)

    def _waiting_for_input(self, failure: Failure) -> bool:
        """Whether a failed stage read only inputs the person has not touched yet."""
        return (
            failure.cell_error is not None
            and not self.interruption.interrupted
            and self.boundary is not None
            and self.boundary.untouched()
        )

    # --- Next and Finish ------------------------------------------------------------------

    def _awaits_finish(self) -> bool:
        """Whether the last stage is ready and waits for the person's Finish."""
        return self.state == "ready" and self.current == len(self.manifest.stages) - 1

    def _offer_next(self) -> None:
        self.offer.present(self._awaits_finish())
        self._update_next()

    def _update_next(self) -> None:
        """Enable Next only while the gate (if any) and every requirement of the stage allow."""
        if self._busy or self.state not in ("ready", "failed"):
            return
        ready = self.state == "ready"
        self.offer.update(ready, self.requirements.unmet() if ready else None)

    # --- the run's parameters -------------------------------------------------------------

    def _parameters_cell_ran(self) -> Failure | None:
        self._parameters_ran = True
        return self._set_parameters() if self.config is not None else None

    def _set_parameters(self) -> Failure | None:
        assert self.config is not None
        return set_parameters(self.shell, self.capture, self.manifest, self.config)

# --- the module-level API the bootstrap cell and the server call ---------------------------

_runner: Runner | None = None


def _shell() -> Any:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RunnerError("the Freezer runner works inside an IPython kernel (Voila, Jupyter)")
    return shell


def _get_runner(app_dir: str | os.PathLike[str] | None = None) -> Runner:
    global _runner
    if _runner is None:
        where = Path(app_dir or os.environ.get(APP_DIR_ENV) or os.getcwd()).resolve()
        app = mf.load(where)
        app_root = where.parent if where.is_file() else where
        _runner = Runner(_shell(), app, app_root)
        # The server gives each kernel a copy of files/ of its own (runtime.runs.runfiles); plain
        # Voila and JupyterLab run in files/ itself.
        files = Path(os.environ.get(RUN_DIR_ENV) or app_root / mf.FILES_DIR)
        if files.is_dir():
            os.chdir(files)
    return _runner


def prepare(app_dir: str | None = None) -> None:
    """Load `app.json`, chdir into the kernel's run directory (`FREEZER_RUN_DIR`, else `files/`),
    run the leading cells of stage 0 the manifest marks warm. Idempotent."""
    _get_runner(app_dir).prepare()


def configure(
    run_id: str,
    seed: int,
    params: dict[str, Any],
    user: str,
    show_tracebacks: bool,
    stage_timeout: float = 0,
    holds: list[int] | None = None,
) -> None:
    """Bind this kernel to a run: seed, parameters, tracebacks, stage timeout (s, 0 = none),
    and `holds`: the stages the run went back to, in order (each ignores its next Next, the one
    that ended it before the person went back; `runtime.runs.rewind`)."""
    config = RunConfig(run_id, int(seed), dict(params), user, bool(show_tracebacks),
                       float(stage_timeout), tuple(int(h) for h in holds or ()))
    _get_runner().configure(config)


def show() -> None:
    """Display the app; the first call in a kernel also runs stage 0 right after this cell."""
    _get_runner().show()
