"""`--trace`: run the notebook once in a throw-away kernel and see which cells show widgets.

Static analysis cannot see widgets that a library function builds and displays
(``annotations = annotate(items)``). Tracing executes the notebook top to bottom with the
widgets' default values, as a person who never touches anything would, and records the code
cells whose outputs include a widget view (``application/vnd.jupyter.widget-view+json``).
The planner treats the names those cells bind as pending. The cells run through nbclient, the
executor of `jupyter nbconvert --execute`.
"""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from freezer.errors import TraceError
from freezer.syntax import BLOCK_MAGICS
from runtime.manifest import Tag

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
DEFAULT_KERNEL = "python3"
KERNEL_START_TIMEOUT = 60
"""Seconds to wait for the throw-away kernel to answer."""
_DISPLAY_TYPES = ("display_data", "execute_result", "update_display_data")
_QUIET = logging.getLogger("freezer.trace")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False  # nbclient logs the timeouts and deaths that TraceError reports


class _TracingClient(NotebookClient):
    """nbclient's executor, noting what each cell shows as the kernel sends it: a widget view
    a cell clears, or routes into an Output widget, is still a view the cell showed."""

    def __init__(self, nb: nbformat.NotebookNode, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.showing: set[int] = set()
        self.errors: dict[int, str] = {}

    def process_message(
        self, msg: dict[str, Any], cell: nbformat.NotebookNode, cell_index: int
    ) -> Any:
        kind, content = msg["msg_type"], msg.get("content", {})
        if kind in _DISPLAY_TYPES and WIDGET_VIEW_MIME in content.get("data", {}):
            self.showing.add(cell_index)
        elif kind == "error":
            self.errors[cell_index] = (
                f"{content.get('ename', 'Error')}: {content.get('evalue', '')}")
        return super().process_message(msg, cell, cell_index)


def trace_notebook(
    nb: nbformat.NotebookNode,
    *,
    cell_timeout: float = 60,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    progress: TextIO | None = None,
    where: str = "notebook",
    kernel_name: str = DEFAULT_KERNEL,
) -> frozenset[int]:
    """Execute `nb` once in a fresh kernel; return the indices of widget-showing cells.

    `cell_timeout` is seconds per cell (0 means no limit). The kernel (`kernel_name`, the one
    the app runs on) starts in `cwd` (the notebook's directory, so relative paths work, and
    files the notebook writes are written there, as with `jupyter nbconvert --execute`) with
    `env` (default: this process's environment). Cells tagged ``freeze:skip`` and ``%block``
    markers are not run. Each cell's outcome is one line on `progress` (default: stderr); a
    cell that raises is reported and the trace goes on; a cell that times out, or kills the
    kernel, ends it with :class:`TraceError`. `nb` itself is left as it was.
    """
    out = sys.stderr if progress is None else progress
    nb = copy.deepcopy(nb)  # the executor writes each cell's outputs into the notebook
    cells = [(i, c) for i, c in enumerate(nb.cells) if _runs_in_trace(c)]
    client = _TracingClient(
        nb, kernel_name=kernel_name, timeout_func=lambda cell: cell_timeout or None,
        startup_timeout=KERNEL_START_TIMEOUT, allow_errors=True, shutdown_kernel="immediate",
        store_widget_state=False, record_timing=False, log=_QUIET,
    )
    _start_kernel(client, kernel_name, cwd, env)
    with client.setup_kernel():  # the kernel is up: this shuts it down on the way out
        for n, (index, cell) in enumerate(cells, start=1):
            label = f"trace: cell {index + 1} ({n}/{len(cells)})"
            started = time.monotonic()
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                raise TraceError(
                    f"{where}: cell {index + 1}: still running after {cell_timeout:g} s under "
                    "--trace; raise --trace-timeout, or tag the cell freeze:skip"
                ) from None
            except DeadKernelError:
                raise TraceError(
                    f"{where}: cell {index + 1}: the kernel died running it under --trace; "
                    "fix the cell or tag it freeze:skip"
                ) from None
            _report(out, label, time.monotonic() - started, index in client.showing,
                    client.errors.get(index))
        return frozenset(client.showing)


def _start_kernel(client: NotebookClient, kernel_name: str, cwd: str | os.PathLike[str],
                  env: Mapping[str, str] | None) -> None:
    """Start the client's kernel and wait until it answers, or raise :class:`TraceError`."""
    client.km = client.create_kernel_manager()
    try:
        # The kernel's own log lines (not the cells' output, which comes over iopub) are noise.
        client.start_new_kernel(
            cwd=str(cwd), env=dict(os.environ if env is None else env),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    except Exception as exc:
        raise TraceError(f"--trace: cannot start a {kernel_name} kernel: {exc}") from None
    try:
        client.start_new_kernel_client()  # shuts the kernel down if it does not answer
    except RuntimeError as exc:
        raise TraceError(f"--trace: the {kernel_name} kernel did not start: {exc}") from None


def _runs_in_trace(cell: Any) -> bool:
    if cell.cell_type != "code" or not cell.source.strip():
        return False
    if Tag.SKIP in cell.get("metadata", {}).get("tags", []):
        return False
    first = cell.source.lstrip().split(maxsplit=1)[0]
    return first[:1] != "%" or first[1:] not in BLOCK_MAGICS


def _report(
    progress: TextIO, label: str, elapsed: float, widgets: bool, error: str | None
) -> None:
    what = "shows widgets" if widgets else "ok"
    if error is not None:
        what = f"raised {error.splitlines()[0] if error else 'an error'}"
    print(f"{label}: {what} ({elapsed:.1f} s)", file=progress, flush=True)
