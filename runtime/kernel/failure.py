"""A failed stage: why it stopped, in one line and as a traceback, and what the person sees.

A stage fails when one of its cells raises, when it is interrupted (a kernel interrupt, or the
stage timeout: :mod:`.interrupt`), when the run's parameters cannot be set, or when the runner
itself cannot run it. Each case is a :class:`Failure`: the one-line `error` and the text
`traceback` go to the server in the `stage_failed` report, the `message` is shown to the person
above the retry button (:func:`failure_outputs`), with the cell's traceback only when the server
shows tracebacks.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace

from runtime.kernel.capture import CellError
from runtime.kernel.outputs import Output

ERROR_LINE_MAX = 500  # characters of a stage's one-line error (the traceback keeps the rest)
NEEDS_INPUT = "This step needs your input above."
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Failure:
    """Why a stage stopped: a one-line error, the text traceback, and what the person sees."""

    error: str
    traceback: str
    cell_error: CellError | None
    message: str

    def needing_input(self) -> Failure:
        """The same failure, told as a stage waiting for inputs the person has not touched."""
        return replace(self, message=NEEDS_INPUT)


def one_line(error: CellError) -> str:
    """`ValueError: bad value`, on one line of at most ERROR_LINE_MAX characters."""
    text = f"{error.ename}: {error.evalue}" if error.evalue else error.ename
    line = text.splitlines()[0] if text.strip() else error.ename
    return line if len(line) <= ERROR_LINE_MAX else line[: ERROR_LINE_MAX - 1] + "…"


def plain(traceback: list[str]) -> str:
    """A traceback as IPython formats it, without its terminal colours."""
    return _ANSI.sub("", "\n".join(traceback))


def cell_failure(cell_error: CellError) -> Failure:
    """A cell raised `cell_error`."""
    error = one_line(cell_error)
    return Failure(error, plain(cell_error.traceback), cell_error, f"This step failed: {error}")


def interrupt_failure(cell_error: CellError | None, timeout: float | None) -> Failure:
    """The stage was interrupted; `timeout` is the stage timeout (s) when that stopped it."""
    trace = plain(cell_error.traceback) if cell_error else ""
    if timeout is not None:
        limit = f"{timeout:g}"
        error = f"StageTimeout: the step ran longer than {limit} s and was stopped"
        message = f"This step took longer than {limit} seconds and was stopped."
    else:
        error = "KeyboardInterrupt: the step was interrupted"
        message = "This step was interrupted."
    return Failure(error, trace, cell_error, message)


def runner_failure(exc: Exception) -> Failure:
    """The runner itself could not run the stage (the person can still retry)."""
    error = f"{type(exc).__name__}: {exc}"
    return Failure(error, error, None, "This step could not run: " + error)


def failure_outputs(failure: Failure, show_tracebacks: bool) -> list[Output]:
    """What the stage's output area shows below its cells' outputs: the message, and the
    cell's traceback when the server shows tracebacks."""
    outputs: list[Output] = [
        {
            "output_type": "display_data",
            "data": {
                "text/html": '<div class="freezer-error" style="color:#b00020;'
                f'font-weight:bold">{html.escape(failure.message)}</div>',
                "text/plain": failure.message,
            },
            "metadata": {},
        }
    ]
    if show_tracebacks and failure.cell_error is not None:
        err = failure.cell_error
        outputs.append(
            {
                "output_type": "error",
                "ename": err.ename,
                "evalue": err.evalue,
                "traceback": err.traceback,
            }
        )
    return outputs
