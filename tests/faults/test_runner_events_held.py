"""The database refuses writes while a stage runs (a full disk): the stage's reports
(`collected`, `stage_ready`, `finished`) are held and stored once the database takes writes
again, so the finished run has the result its page showed.

The refusal is the trigger of `test_database_refuses.py` (every insert into `events` aborts),
injected while the stage waits at a gate file and dropped after the page showed the result.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import TIMEOUT, act, has_slider, shows, slider, write_app
from tests.faults.test_database_refuses import writes_refused
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_server


def gated_result(gates: Path) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    return (
        (
            "Pick a number",
            "import ipywidgets as widgets\n"
            "number = widgets.IntSlider(value=5, min=0, max=1000, description='number')\n"
            "number",
            ("number",),
        ),
        (
            "Result",
            "import pathlib, time\n"
            f"gate = pathlib.Path({str(gates)!r}) / str(number.value)\n"
            "pathlib.Path(str(gate) + '.started').touch()\n"
            "while not gate.exists():\n"
            "    time.sleep(0.01)\n"
            "total = number.value * 3\n"
            "print(f'total={total}')",
            (),
        ),
    )


@pytest.fixture(scope="module")
def gates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gates")


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory, gates: Path) -> Path:
    return write_app(tmp_path_factory.mktemp("held") / "app", gated_result(gates),
                     collect={1: ("total",)})


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[ServerProcess]:
    process = start_server(app_dir, "--pool-size", "0")
    try:
        yield process
    finally:
        process.stop()


def stored(app_dir: Path, run_id: str) -> tuple[str, dict[str, object]]:
    """The run's status and its results table, straight from the SQLite file."""
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        (status,) = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        results = dict(db.execute("SELECT name, value FROM results WHERE run_id = ?",
                                  (run_id,)).fetchall())
    return status, results


async def test_reports_refused_while_a_stage_ran_are_stored_once_the_disk_has_room(
    server: ServerProcess, app_dir: Path, gates: Path
) -> None:
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        page = await person.open("new")
        await page.wait_for(has_slider("number"), TIMEOUT)
        run_id = page.page.url.rsplit("/", 1)[-1]
        await act(page, await page.set_value(slider(page, "number"), 14))
        button = page.find(_model_name="ButtonModel", description="Next", disabled=False)
        await page.click(button)  # the stage runs until its gate opens
        await eventually(lambda: (gates / "14.started").exists(), "the last stage to start")
        with writes_refused(app_dir / "freezer.db"):
            (gates / "14").touch()
            await page.wait_for(shows("total=42"), TIMEOUT, "the result on the page")
            # the server logs each refused report ("could not store", or "holding" it)
            await eventually(lambda: "runner event 'finished'" in server.log_tail(2000),
                             "the server to be refused the run's last report")
            assert stored(app_dir, run_id) == ("active", {})  # nothing of it stored yet
        await eventually(lambda: stored(app_dir, run_id)[0] == "finished",
                         "the held reports to be stored")
    assert stored(app_dir, run_id) == ("finished", {"total": 42})
