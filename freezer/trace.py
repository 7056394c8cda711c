"""`--trace`: run the notebook once in a throw-away kernel and see which cells show widgets.

Static analysis cannot see widgets that a library function builds and displays
(``annotations = annotate(items)``). Tracing executes the notebook top to bottom with the
widgets' default values, as a person who never touches anything would, and records the code
cells whose outputs include a widget view (``application/vnd.jupyter.widget-view+json``).
The planner treats the names those cells bind as pending.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import nbformat

from freezer.errors import TraceError

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
DEFAULT_KERNEL = "python3"
KERNEL_START_TIMEOUT = 60.0
"""Seconds to wait for the throw-away kernel to answer."""
ALIVE_CHECK_SECONDS = 1.0
"""While a cell is silent, how often the kernel process is checked for being alive."""
SKIP_TAG = "freeze:skip"
_BLOCK_MAGICS = ("%block", "%blockrun")
_DISPLAY_TYPES = ("display_data", "execute_result", "update_display_data")


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
    cell that raises is reported and the trace goes on; a cell that times out ends it with
    :class:`TraceError`.
    """
    from jupyter_client.manager import KernelManager

    out = sys.stderr if progress is None else progress
    cells = [(i, c) for i, c in enumerate(nb.cells) if _runs_in_trace(c)]
    manager = KernelManager(kernel_name=kernel_name)
    try:
        # The kernel's own log lines (not the cells' output, which comes over iopub) are noise.
        manager.start_kernel(
            cwd=str(cwd),
            env=dict(os.environ if env is None else env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except Exception as exc:
        raise TraceError(f"--trace: cannot start a {kernel_name} kernel: {exc}") from None
    client = manager.client()
    client.start_channels()
    try:
        try:
            client.wait_for_ready(timeout=KERNEL_START_TIMEOUT)
        except RuntimeError as exc:
            raise TraceError(f"--trace: the {kernel_name} kernel did not start: {exc}") from None
        showing: set[int] = set()
        for n, (index, cell) in enumerate(cells, start=1):
            label = f"trace: cell {index + 1} ({n}/{len(cells)})"
            started = time.monotonic()
            widgets, error = _execute(manager, client, cell.source, cell_timeout, where, index)
            elapsed = time.monotonic() - started
            if widgets:
                showing.add(index)
            _report(out, label, elapsed, widgets, error)
        return frozenset(showing)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _runs_in_trace(cell: Any) -> bool:
    if cell.cell_type != "code" or not cell.source.strip():
        return False
    if SKIP_TAG in cell.get("metadata", {}).get("tags", []):
        return False
    first = cell.source.lstrip().split(maxsplit=1)[0]
    return first not in _BLOCK_MAGICS


def _execute(
    manager: Any, client: Any, source: str, timeout: float, where: str, index: int
) -> tuple[bool, str | None]:
    """Run one cell; return (showed a widget view, one-line error or None)."""
    msg_id = client.execute(source, store_history=True, allow_stdin=False)
    deadline = time.monotonic() + timeout if timeout > 0 else None
    widgets = False
    error: str | None = None
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise TraceError(
                f"{where}: cell {index + 1}: still running after {timeout:g} s under --trace; "
                "raise --trace-timeout, or tag the cell freeze:skip"
            )
        wait = ALIVE_CHECK_SECONDS if deadline is None else min(ALIVE_CHECK_SECONDS,
                                                                 deadline - now)
        try:
            msg = client.get_iopub_msg(timeout=wait)
        except queue.Empty:
            if not manager.is_alive():
                raise TraceError(
                    f"{where}: cell {index + 1}: the kernel died running it under --trace; "
                    "fix the cell or tag it freeze:skip"
                ) from None
            continue
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind in _DISPLAY_TYPES and WIDGET_VIEW_MIME in content.get("data", {}):
            widgets = True
        elif kind == "error":
            error = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"
        elif kind == "status" and content.get("execution_state") == "idle":
            return widgets, error


def _report(
    progress: TextIO, label: str, elapsed: float, widgets: bool, error: str | None
) -> None:
    what = "shows widgets" if widgets else "ok"
    if error is not None:
        what = f"raised {error.splitlines()[0] if error else 'an error'}"
    print(f"{label}: {what} ({elapsed:.1f} s)", file=progress, flush=True)

