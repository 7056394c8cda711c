"""Shared pieces of the fault and hostile-client tests (`tests/faults/`, `tests/hostile/`).

Everything here drives REAL processes: `freezer serve` subprocesses (started through the
server tests' `start_server`), their kernels, their SQLite files. Faults are injected with
signals and file permissions; waits are on conditions with timeouts, never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from runtime.runs.kernel_start import process_ended
from tests.server.conftest import start_server, write_app
from tests.support.testing import PageSession, Person, ServerProcess, child_pids, parse_page

__all__ = [
    "TIMEOUT", "THREE_STAGES", "start_run_unloaded", "start_server", "write_app", "slider",
    "has_slider", "text",
    "shows", "act", "click_next", "kill_hard", "kernel_pid", "journal", "eventually",
    "stage_started_counts", "restart", "kill_kernel",
]

TIMEOUT = 60.0

THREE_STAGES = (
    (
        "Pick a number",
        "import ipywidgets as widgets\n"
        "number = widgets.IntSlider(value=5, min=0, max=1000, description='number')\n"
        "number",
        ("number",),
    ),
    (
        "Pick an offset",
        "offset = widgets.IntSlider(value=0, min=0, max=1000, description='offset')\n"
        "print(f'number is {number.value}')\n"
        "offset",
        ("offset",),
    ),
    ("Result", "total = number.value + offset.value\nprint(f'total={total}')", ()),
)
"""number -> offset -> total (collected when `write_app(..., collect={2: ('total',)})`)."""


def slider(page: PageSession, description: str) -> str:
    """The model id of the IntSlider with this description."""
    return page.find(_model_name="IntSliderModel", description=description)


def has_slider(description: str) -> Callable[[PageSession], bool]:
    return lambda page: bool(page.find_all(_model_name="IntSliderModel", description=description))


def text(page: PageSession) -> str:
    """Everything the page's Output widgets show."""
    return "\n".join(page.output_text(m) for m in page.find_all(_model_name="OutputModel"))


def shows(needle: str) -> Callable[[PageSession], bool]:
    return lambda page: needle in text(page)


async def start_run_unloaded(person: Person) -> str:
    """Start a run (the start page's form, POST) without following the redirect to its page:
    the run exists, no page has loaded it. Returns its id."""
    start = await person.fetch("new")
    form = parse_page(start.effective_url, start.code, start.body.decode("utf-8"))
    assert form.start_form is not None and form.start_action is not None
    response = await person.fetch(urljoin(start.effective_url, form.start_action), method="POST",
                                  form=form.start_form, follow_redirects=False)
    assert response.code in (302, 303), response.code
    return response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]


async def act(page: PageSession, msg_id: str) -> None:
    """Wait until the kernel has handled the message (the person's action is acknowledged)."""
    await page.wait_idle(msg_id, TIMEOUT)


async def click_next(page: PageSession) -> None:
    """Click the enabled Next button and wait until the kernel handled the click."""
    button = page.find(_model_name="ButtonModel", description="Next", disabled=False)
    await act(page, await page.click(button))


def kill_hard(server: ServerProcess) -> None:
    """SIGKILL the server and its kernels at once, as a crash of the machine would."""
    processes = [server.pid, *child_pids(server.pid)]
    for pid in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(TIMEOUT)


def kernel_pid(server: ServerProcess, kernel_id: str) -> int:
    """The process id of the server's kernel `kernel_id` (its connection file names it)."""
    for pid in child_pids(server.pid):
        with contextlib.suppress(OSError):
            if kernel_id in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return pid
    raise AssertionError(f"no process of kernel {kernel_id} under server {server.pid}")


def is_dead(pid: int) -> bool:
    """Whether a process has ended (gone, or a zombie its parent has not reaped yet)."""
    return process_ended(pid)


async def kill_kernel(server: ServerProcess, kernel_id: str) -> None:
    """SIGKILL one kernel of the server and wait until its process has ended."""
    pid = kernel_pid(server, kernel_id)
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: is_dead(pid), f"kernel process {pid} to end")


async def restart(server: ServerProcess, app_dir: Path, *args: str) -> ServerProcess:
    """Start a new server on the same port and app directory (after a kill)."""
    return await asyncio.to_thread(start_server, app_dir, *args, port=server.port)


def journal(app_dir: Path, run_id: str, kinds: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A run's events straight from the SQLite file: kind, ordinal, payload (JSON text)."""
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT seq, kind, ordinal, payload FROM events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
    import json

    events = [
        {"seq": seq, "kind": kind, "ordinal": ordinal, "payload": json.loads(payload or "null")}
        for seq, kind, ordinal, payload in rows
    ]
    return [e for e in events if not kinds or e["kind"] in kinds]


def stage_started_counts(app_dir: Path, run_id: str) -> dict[int, int]:
    """How many `stage_started` events each stage has in the run's journal."""
    counts: dict[int, int] = {}
    for event in journal(app_dir, run_id, ("stage_started",)):
        stage = int(event["payload"]["stage"])
        counts[stage] = counts.get(stage, 0) + 1
    return counts


async def eventually(
    check: Callable[[], Any | Awaitable[Any]], what: str, timeout: float = TIMEOUT
) -> Any:
    """Poll `check` until it returns something truthy (then return it); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(0.05)
