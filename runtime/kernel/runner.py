"""The kernel side of a frozen app: runs the stages and reports them to the server.

The bootstrap cell of `app.ipynb` calls :func:`show`. A Freezer server first calls
:func:`prepare` (pool kernels, before the person is known) and :func:`configure` (binds the
kernel to a run and opens the `freezer.run` comm); under plain Voila or JupyterLab neither is
called and the app runs unsaved. See `docs/internals.md` for the protocol and `docs/runner.md`
for what the person sees.
"""

from __future__ import annotations

import ast
import asyncio
import html
import logging
import os
import random
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from runtime import manifest as mf
from runtime.errors import RuntimeAppError
from runtime.kernel.boundary import Boundary
from runtime.kernel.capture import Capture, CellError
from runtime.kernel.digest import DIGEST_EVENTS, stage_digest
from runtime.kernel.finish import DONE_SAVED, DONE_UNSAVED, FINISH_LABEL, input_names, live_inputs
from runtime.kernel.gate import Gate, find_gate
from runtime.kernel.outputs import Output, OutputSink
from runtime.kernel.requirements import Requirements, after_each_message
from runtime.kernel.stepper import AppView, disable_widgets, markdown_output
from runtime.kernel.values import json_value
from runtime.protocol import COMM_TARGET, RunnerEvent

log = logging.getLogger("freezer.runner")

HIDE_OUTPUT_TAGS = frozenset({"remove-cell", "hide-output", "remove-output"})
HIDE_MARKDOWN_TAGS = frozenset({"remove-cell"})
PARAMETERS_TAG = "parameters"
WARM_TAG = "freeze:warm"
SKIP_TAG = "freeze:skip"
COLLECT_PREFIX = "collect:"
RUN_NAMES = mf.RUN_PARAMETERS
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
NEEDS_INPUT = "This step needs your input above."


class RunnerError(RuntimeAppError):
    """The runner was used in a way it cannot work (no kernel, configured too late, ...)."""


@dataclass(frozen=True)
class RunConfig:
    """What :func:`configure` binds this kernel to."""

    run_id: str
    seed: int
    params: dict[str, Any]
    user: str
    show_tracebacks: bool
    stage_timeout: float


@dataclass(frozen=True)
class Failure:
    """Why a stage stopped: a one-line error, the text traceback, and what the person sees."""

    error: str
    traceback: str
    cell_error: CellError | None
    message: str


def declared_names(source: str) -> set[str]:
    """Top-level names a `parameters` cell assigns (empty when it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


class Runner:
    """One app in one kernel: the stages, their outputs, and the run they belong to."""

    def __init__(self, shell: Any, app: mf.Manifest, app_dir: Path) -> None:
        self.shell = shell
        self.manifest = app
        self.app_dir = app_dir
        self.capture = Capture(shell)
        self.sinks = [OutputSink() for _ in app.stages]
        self.config: RunConfig | None = None
        self.comm: Any = None
        self.view: AppView | None = None
        self.current = -1  # index of the stage that runs or ran last
        self.state = "new"  # new | running | ready | failed | finished
        self.warm_outputs: dict[int, list[Output]] = {}  # stage-0 warm cells run by prepare()
        self.boundary: Boundary | None = None  # what the ready (or retried) hand-over waits on
        self.gate: Gate | None = None  # the `%blockrun` button of that hand-over, if any
        self.requirements = Requirements(self._update_next)  # what `require()` asks of it
        self.requirements.install()
        after_each_message(shell, self.requirements.refresh)
        self._ready_status = ""  # the status line of the waiting stage, requirements met
        self._finish_inputs: list[Any] = []  # the live inputs of a last stage awaiting Finish
        self._prepared = False
        self._shown = False
        self._parameters_ran = False
        self._busy = False
        self._in_cell = False
        self._interrupted = False
        self._timed_out = False
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the three calls of the protocol ------------------------------------------------

    def prepare(self) -> None:
        """Run the leading `freeze:warm` code cells of stage 0 (once)."""
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
        for pos, cell in enumerate(self.manifest.stages[0].cells):
            if cell.kind == "markdown":
                continue
            if WARM_TAG not in cell.tags:
                break
            sink = OutputSink()
            if self._run_code_cell(cell, sink) is not None:
                # Left for show(), which runs it again and reports the failure properly.
                break
            self.warm_outputs[pos] = sink.outputs
        # Built here rather than in show(): a pool kernel has it ready before the person comes.
        titles = [stage.title for stage in self.manifest.stages]
        self.view = AppView(titles, self._on_next, saved=self.config is not None)
        for sink, widget in zip(self.sinks, self.view.outputs, strict=True):
            self.capture.register(sink, widget)
            sink.attach(widget)

    def configure(self, config: RunConfig) -> None:
        """Bind the kernel to a run; open the `freezer.run` comm and say hello."""
        if self.state != "new" and (self.config is None or self.config.run_id != config.run_id):
            raise RunnerError(
                "configure() must be called before show() runs the first stage "
                "(a kernel serves one run; start a new kernel for another run)"
            )
        from comm import create_comm

        self.config = config
        self.capture.show_tracebacks = config.show_tracebacks
        if self.view is not None:
            self.view.set_saved(True)
        if self.comm is not None:
            self.comm.close()
        self.comm = create_comm(target_name=COMM_TARGET, data={})
        self._send(RunnerEvent.HELLO, run_id=config.run_id, stages=len(self.manifest.stages))
        if self._parameters_ran and self.state == "new":
            failure = self._inject_parameters()  # the parameters cell was a warm cell
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
            self._after_current_request(self._start)

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
        self._busy = True
        if self.gate is not None:
            self.gate.release()
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
        self._send(RunnerEvent.STAGE_FINISHED, stage=index, snapshot=snapshot)

    def _run_stage(self, index: int) -> None:
        assert self.view is not None
        stage = self.manifest.stages[index]
        title = stage.title
        self.current, self.state = index, "running"
        self.view.mark(index, "running", f"Running “{title}”…")
        sink = self.sinks[index]
        sink.reset()
        self.requirements.start_stage()
        self._send(RunnerEvent.STAGE_STARTED, stage=index)
        try:
            if index == 0:
                self._seed()
            failure = self._run_cells(index, sink)
        except Exception as exc:  # a fault of the runner itself: the person can still retry
            log.exception("stage %d could not run", index)
            error = f"{type(exc).__name__}: {exc}"
            failure = Failure(error, error, None, "This step could not run: " + error)
        sink.push()
        # The page is complete before the server hears about it.
        if failure is not None:
            self.state = "failed"
            press = self._continue_label()
            status = f"“{title}” failed. Fix the inputs above and press {press} to retry."
            if index > 0 and self.boundary is not None:
                self.boundary.failed(self.shell.user_ns)
                if self._waiting_for_input(failure):
                    failure = Failure(failure.error, failure.traceback, failure.cell_error,
                                      NEEDS_INPUT)
                    status = f"{NEEDS_INPUT} Make your choices, then press {press}."
            self._show_failure(sink, failure)
            self.view.mark(index, "failed", status)
            self.requirements.drop()  # the retry declares them again
            self._offer_next()
            self._send(
                RunnerEvent.STAGE_FAILED, stage=index, error=failure.error,
                traceback=failure.traceback,
            )
            return
        if index > 0:
            if self.boundary is not None:
                self.boundary.disable()
            self.view.mark_done(index - 1)
        self.boundary, self.gate = None, None
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
                self.gate = Gate(self.boundary.gate, self._advance, self._update_next)
            press = self._continue_label()
            status = f"Step {index + 1} of {last + 1}: make your choices, then press {press}."
            self._ready_status = status
            self.view.mark(index, "ready", status)
            self._offer_next()
            self.requirements.watch()
        self._send(RunnerEvent.STAGE_READY, stage=index)
        if ends_now:
            self._send(RunnerEvent.FINISHED)

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
        self._send(RunnerEvent.FINISHED)

    def _update_next(self) -> None:
        """Enable Next only while the gate (if any) and every requirement of the stage allow."""
        view = self.view
        if view is None or view.button is None or self._busy:
            return
        if self.state not in ("ready", "failed"):
            return
        reason = self.requirements.unmet() if self.state == "ready" else None
        gate_closed = self.gate is not None and not self.gate.is_open
        view.button.disabled = gate_closed or reason is not None
        if self.state == "ready":
            view.say(reason or self._ready_status)

    def _boundary_of(self, index: int) -> Boundary:
        """The hand-over from stage `index`, ready now, to the next stage."""
        stage = self.manifest.stages[index]
        gate = find_gate(self.shell.user_ns, stage.gate)
        return Boundary((w.name for w in stage.waits_on), self.shell.user_ns, gate)

    def _offer_next(self) -> None:
        """A fresh Next button; the stage's gate, if any, stands for it."""
        assert self.view is not None
        button = self.view.offer_next(FINISH_LABEL if self._awaits_finish() else "Next")
        if self.gate is not None:
            self.gate.arm(button)
        self._update_next()

    def _continue_label(self) -> str:
        """The button the person presses to go on: Next (or Finish), or the stage's gate."""
        if self.gate is not None:
            return self.gate.label
        return FINISH_LABEL if self._awaits_finish() else "Next"

    def _awaits_finish(self) -> bool:
        """Whether the last stage is ready and waits for the person's Finish."""
        return self.state == "ready" and self.current == len(self.manifest.stages) - 1

    def _waiting_for_input(self, failure: Failure) -> bool:
        """Whether a failed stage read only inputs the person has not touched yet."""
        return (
            failure.cell_error is not None
            and not self._interrupted
            and self.boundary is not None
            and self.boundary.untouched()
        )

    def _run_cells(self, index: int, sink: OutputSink) -> Failure | None:
        stage = self.manifest.stages[index]
        collected: set[str] = set()
        with self._interruptible():
            for pos, cell in enumerate(stage.cells):
                if self._interrupted:
                    return self._interrupt_failure(None)
                if SKIP_TAG in cell.tags:
                    continue
                if cell.kind == "markdown":
                    if not HIDE_MARKDOWN_TAGS & set(cell.tags):
                        sink.add(markdown_output(cell.source))
                    continue
                if index == 0 and pos in self.warm_outputs:
                    sink.extend(self.warm_outputs[pos])  # ran in prepare()
                    continue
                failure = self._run_code_cell(cell, sink)
                if failure is not None:
                    return failure
                for tag in cell.tags:
                    if tag.startswith(COLLECT_PREFIX):
                        self._collect(index, tag[len(COLLECT_PREFIX) :])
                        collected.add(tag[len(COLLECT_PREFIX) :])
            if self._interrupted:
                return self._interrupt_failure(None)
        for name in stage.collect:
            if name not in collected:
                self._collect(index, name)
        return None

    def _run_code_cell(self, cell: mf.Cell, sink: OutputSink) -> Failure | None:
        target = None if HIDE_OUTPUT_TAGS & set(cell.tags) else sink
        with self.capture.cell(cell.source, target):
            self._in_cell = True
            try:
                result = self.shell.run_cell(cell.source, store_history=False, silent=False)
            finally:
                self._in_cell = False
            cell_error = self.capture.error
        if result.success:
            if cell_error is not None and target is not None:
                # The cell caught an exception and showed it (as `interact` does).
                for output in self.capture.error_outputs(cell_error):
                    target.add(output)
            if PARAMETERS_TAG in cell.tags:
                self._parameters_ran = True
                if self.config is not None:
                    return self._inject_parameters()
            return None
        exc = result.error_before_exec or result.error_in_exec
        if isinstance(exc, KeyboardInterrupt):
            return self._interrupt_failure(cell_error)
        if cell_error is None:
            name = type(exc).__name__ if exc is not None else "Error"
            cell_error = CellError(name, str(exc), [f"{name}: {exc}"])
        error = one_line(cell_error)
        trace = _plain(cell_error.traceback)
        return Failure(error, trace, cell_error, f"This step failed: {error}")

    def _interrupt_failure(self, cell_error: CellError | None) -> Failure:
        trace = _plain(cell_error.traceback) if cell_error else ""
        if self._timed_out and self.config is not None:
            limit = f"{self.config.stage_timeout:g}"
            error = f"StageTimeout: the step ran longer than {limit} s and was stopped"
            message = f"This step took longer than {limit} seconds and was stopped."
        else:
            error = "KeyboardInterrupt: the step was interrupted"
            message = "This step was interrupted."
        return Failure(error, trace, cell_error, message)

    def _show_failure(self, sink: OutputSink, failure: Failure) -> None:
        sink.add(
            {
                "output_type": "display_data",
                "data": {
                    "text/html": '<div class="freezer-error" style="color:#b00020;'
                    f'font-weight:bold">{html.escape(failure.message)}</div>',
                    "text/plain": failure.message,
                },
                "metadata": {},
            }
        )
        show_tracebacks = self.config is not None and self.config.show_tracebacks
        if show_tracebacks and failure.cell_error is not None:
            err = failure.cell_error
            sink.add(
                {
                    "output_type": "error",
                    "ename": err.ename,
                    "evalue": err.evalue,
                    "traceback": err.traceback,
                }
            )
        sink.push()

    # --- run binding: seed, parameters, results ------------------------------------------

    def _seed(self) -> None:
        if self.config is None:
            return
        random.seed(self.config.seed)
        try:
            import numpy
        except ImportError:
            return
        numpy.random.seed(self.config.seed % 2**32)

    def _inject_parameters(self) -> Failure | None:
        assert self.config is not None
        cell = next(
            (c for s in self.manifest.stages for c in s.cells if PARAMETERS_TAG in c.tags), None
        )
        declared = {p.name for p in self.manifest.parameters}
        if cell is not None:
            declared |= declared_names(cell.source)
        values = {k: v for k, v in self.config.params.items() if k in declared}
        ignored = sorted(set(self.config.params) - declared)
        if ignored:
            log.warning("parameters not declared by the notebook, ignored: %s", ignored)
        run_values = dict(zip(RUN_NAMES, (self.config.user, self.config.run_id), strict=True))
        values.update({k: v for k, v in run_values.items() if k in declared})
        if not values:
            return None
        code = "# Parameters of this run, injected by Freezer\n" + "".join(
            f"{name} = {value!r}\n" for name, value in values.items() if name.isidentifier()
        )
        with self.capture.cell(code, None):
            result = self.shell.run_cell(code, store_history=False, silent=True)
        if result.success:
            return None
        error = f"could not set this run's parameters: {result.error_in_exec!r}"
        return Failure(error, code, None, "This step failed: " + error)

    def _collect(self, index: int, name: str) -> None:
        if name not in self.shell.user_ns:
            log.warning("collect:%s: no global named %s after stage %d", name, name, index)
            return
        value = json_value(self.shell.user_ns[name])
        self._send(RunnerEvent.COLLECTED, stage=index, name=name, value=value)

    def _send(self, event: str, **data: Any) -> None:
        if self.comm is not None:
            if event in DIGEST_EVENTS:  # what the person saw, for replay to compare
                names = [w.name for w in self.manifest.stages[data["stage"]].waits_on]
                outputs = self.sinks[data["stage"]].outputs
                data["digest"] = stage_digest(self.shell.user_ns, names, outputs)
            self.comm.send({"event": str(event), **data})

    # --- scheduling and interruption ------------------------------------------------------

    def _after_current_request(self, func: Any) -> None:
        """Call `func` once the kernel has replied to the request being handled.

        ipykernel 7 handles one shell request at a time under `_main_asyncio_lock`; a task
        that takes the lock runs after the current request's `execute_reply` and idle status,
        and before any request that arrives later. Without a running kernel loop, call now.
        """
        kernel = getattr(self.shell, "kernel", None)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if kernel is None or loop is None:
            func()
            return
        lock = getattr(kernel, "_main_asyncio_lock", None)

        async def later() -> None:
            try:
                if isinstance(lock, asyncio.Lock):
                    async with lock:
                        func()
                else:
                    func()
            except Exception:
                log.exception("the first stage could not run")

        task = loop.create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @contextmanager
    def _interruptible(self) -> Iterator[None]:
        """SIGINT (a kernel interrupt, or the stage timeout) stops the running cell only."""
        self._interrupted = self._timed_out = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        main_id = threading.get_ident()
        guard = threading.Lock()
        timer: threading.Timer | None = None
        done = False

        def on_sigint(signum: int, frame: Any) -> None:
            self._interrupted = True
            if self._in_cell:
                raise KeyboardInterrupt

        def on_timeout() -> None:
            with guard:
                if not done:
                    self._timed_out = True
                    signal.pthread_kill(main_id, signal.SIGINT)

        previous = signal.signal(signal.SIGINT, on_sigint)
        timeout = self.config.stage_timeout if self.config else 0.0
        if timeout > 0:
            timer = threading.Timer(timeout, on_timeout)
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            with guard:
                done = True
            if timer is not None:
                timer.cancel()
            if previous is not None:  # None: a handler installed outside Python; leave ours
                signal.signal(signal.SIGINT, previous)


ERROR_LINE_MAX = 500  # characters of a stage's one-line error (the traceback keeps the rest)


def one_line(error: CellError) -> str:
    """`ValueError: bad value`, on one line of at most ERROR_LINE_MAX characters."""
    text = f"{error.ename}: {error.evalue}" if error.evalue else error.ename
    line = text.splitlines()[0] if text.strip() else error.ename
    return line if len(line) <= ERROR_LINE_MAX else line[: ERROR_LINE_MAX - 1] + "…"


def _plain(traceback: list[str]) -> str:
    return _ANSI.sub("", "\n".join(traceback))


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
        where = Path(app_dir or os.environ.get("FREEZER_APP_DIR") or os.getcwd()).resolve()
        app = mf.load(where)
        app_root = where.parent if where.is_file() else where
        _runner = Runner(_shell(), app, app_root)
        # The server gives each kernel a copy of files/ of its own (runtime.runs.runfiles); plain
        # Voila and JupyterLab run in files/ itself.
        files = Path(os.environ.get("FREEZER_RUN_DIR") or app_root / mf.FILES_DIR)
        if files.is_dir():
            os.chdir(files)
    return _runner


def prepare(app_dir: str | None = None) -> None:
    """Load `app.json`, chdir into the kernel's run directory (`FREEZER_RUN_DIR`, else `files/`),
    run the leading `freeze:warm` cells. Idempotent."""
    _get_runner(app_dir).prepare()


def configure(
    run_id: str,
    seed: int,
    params: dict[str, Any],
    user: str,
    show_tracebacks: bool,
    stage_timeout: float = 0,
) -> None:
    """Bind this kernel to a run: seed, parameters, tracebacks, stage timeout (s, 0 = none)."""
    config = RunConfig(run_id, int(seed), dict(params), user, bool(show_tracebacks),
                       float(stage_timeout))
    _get_runner().configure(config)


def show() -> None:
    """Display the app; the first call in a kernel also runs stage 0 right after this cell."""
    _get_runner().show()
