"""Shared pieces of the fault and hostile-client tests (`tests/faults/`, `tests/hostile/`).

Everything here drives REAL processes: `freezer serve` subprocesses (started through
`tests.support.processes.start_server`), their kernels, their SQLite files. Faults are injected
with signals and file permissions; waits are on conditions with timeouts
(`tests.support.eventually`), never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from runtime.runs.kernel_start import process_ended
from tests.server.conftest import write_app
from tests.support.eventually import eventually
from tests.support.pages import parse_page
from tests.support.person import Person
from tests.support.processes import ServerProcess, kernel_pid, start_server
from tests.support.session import PageSession

__all__ = [
    "TIMEOUT", "THREE_STAGES", "start_run_unloaded", "write_app", "slider", "has_slider", "text",
    "shows", "act", "click_next", "journal", "stage_started_counts", "restart", "kill_kernel",
    "gated_stages",
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


def is_dead(pid: int) -> bool:
    """Whether a process has ended (gone, or a zombie its parent has not reaped yet)."""
    return process_ended(pid)


async def kill_kernel(server: ServerProcess, kernel_id: str) -> None:
    """SIGKILL one kernel of the server and wait until its process has ended."""
    pid = kernel_pid(server, kernel_id)
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: is_dead(pid), f"kernel process {pid} to end", TIMEOUT)


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


QUEUE_LINES = (
    "from runtime.kernel import WorkQueue\n"
    "totals = WorkQueue('totals', items=list(range(100)), batch=2, overlap=1)\n"
    "mine = totals.claim()\n"
    "print(f'claimed {mine}')\n"
)


def gated_stages(
    gates: Path, *, queue: bool = False
) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """Three stages whose second waits until the test creates the file `gates/NUMBER` (it
    touches `NUMBER.started` first), so a test decides when a stage ends. With `queue`, the
    first stage claims two work-queue items and the last submits its total for them."""
    return (
        (
            "Pick a number",
            "import ipywidgets as widgets\n"
            + (QUEUE_LINES if queue else "")
            + "number = widgets.IntSlider(value=5, min=0, max=1000, description='number')\n"
            "number",
            ("number",),
        ),
        (
            "Slow step",
            "import pathlib, time\n"
            f"gate = pathlib.Path({str(gates)!r}) / str(number.value)\n"
            "pathlib.Path(str(gate) + '.started').touch()\n"
            "while not gate.exists():\n"
            "    time.sleep(0.01)\n"
            "print(f'passed gate {number.value}')\n"
            "offset = widgets.IntSlider(value=0, min=0, max=1000, description='offset')\n"
            "offset",
            ("offset",),
        ),
        ("Result", "total = number.value + offset.value\nprint(f'total={total}')"
                   + ("\ntotals.submit({item: total for item in mine})" if queue else ""), ()),
    )
