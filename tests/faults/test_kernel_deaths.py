"""Kernels that die where the server waits on them: a stage that ends its kernel every time, a
pool kernel that died just before it was handed to a person, a kernel killed while its run was
replayed. Every page load ends in a working page on a fresh kernel or in Freezer's own plain
page, never in Voila's generic 500, and a run that cannot go on is marked failed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.runs.kernel_start import process_ended
from tests.faults.harness import (
    THREE_STAGES,
    TIMEOUT,
    act,
    click_next,
    has_slider,
    kill_kernel,
    slider,
    start_run_unloaded,
    write_app,
)
from tests.support.eventually import eventually
from tests.support.pages import parse_page
from tests.support.person import Person
from tests.support.processes import ServerProcess, child_pids, start_server

ADMIN_TOKEN = "deaths-admin"
EXITING_STAGES = (
    (
        "Pick a number",
        "import ipywidgets as widgets\n"
        "number = widgets.IntSlider(value=5, description='number')\n"
        "import os\n"
        "os._exit(3)",
        ("number",),
    ),
    ("Result", "print(number.value)", ()),
)


def kernel_pids(server: ServerProcess) -> set[int]:
    """The server's live kernel processes."""
    pids = set()
    for pid in child_pids(server.pid):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"ipykernel" in cmdline and not process_ended(pid):
                pids.add(pid)
    return pids


def run_row(app_dir: Path, run_id: str) -> tuple[str, list[tuple[int, str, str | None]]]:
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        (status,) = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        stages = db.execute('SELECT "index", status, error FROM stages WHERE run_id = ? '
                            'ORDER BY "index"', (run_id,)).fetchall()
    return status, stages


@pytest.fixture(scope="module")
def exiting_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("exiting") / "app", EXITING_STAGES)


@pytest.fixture(scope="module")
def exiting_server(exiting_app: Path) -> Iterator[ServerProcess]:
    process = start_server(exiting_app, "--pool-size", "0", "--auth", "name",
                           "--admin-token", ADMIN_TOKEN)
    try:
        yield process
    finally:
        process.stop()


async def test_a_stage_that_ends_its_kernel_fails_the_run_after_three_deaths(
    exiting_server: ServerProcess, exiting_app: Path
) -> None:
    server = exiting_server
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        await person.login(name="eve")
        run_id = await start_run_unloaded(person)
        run_path = f"run/{run_id}"
        loads = []
        for _ in range(6):
            response = await person.fetch(run_path)
            loads.append(response.code)
            if response.code != 200:
                break
            # the page came, then stage 0 ended its kernel: wait until it is gone
            kernel_id = parse_page(response.effective_url, 200, response.body.decode()).kernel_id
            assert kernel_id is not None
            await eventually(lambda: not kernel_pids(server), f"kernel {kernel_id} to die")
        body = response.body.decode()
        assert response.code == 409, (loads, server.log_tail(30))
        assert "This run had to be stopped." in body
        assert "Traceback" not in body
        assert loads == [200, 200, 200, 409]  # three deaths, then the plain page
        again = await person.fetch(run_path)  # and it stays so, without starting a kernel
        assert again.code == 409
        assert not kernel_pids(server)
    status, stages = run_row(exiting_app, run_id)
    assert status == "failed"
    assert stages[0][1] == "failed" and "stopped 3 times in a row" in (stages[0][2] or "")
    async with Person(server.base_url, request_timeout=TIMEOUT) as admin:
        await admin.fetch(f"login?token={ADMIN_TOKEN}")
        page = (await admin.fetch("admin")).body.decode()
        assert f"<code>{run_id}</code>" in page
        row = page.split(f"<code>{run_id}</code>")[0].rsplit("<tr>", 1)[-1]
        assert 'class="status-failed"' in row


def gated_stages(gates: Path) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """Stage 1 writes its kernel's pid to `GATES/NUMBER.started`, then waits for `GATES/NUMBER`."""
    return (
        THREE_STAGES[0],
        (
            "Slow step",
            "import os, pathlib, time\n"
            f"gate = pathlib.Path({str(gates)!r}) / str(number.value)\n"
            "pathlib.Path(str(gate) + '.started').write_text(str(os.getpid()))\n"
            "while not gate.exists():\n"
            "    time.sleep(0.01)\n"
            "offset = widgets.IntSlider(value=0, min=0, max=1000, description='offset')\n"
            "offset",
            ("offset",),
        ),
        THREE_STAGES[2],
    )


@pytest.fixture(scope="module")
def gates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gates")


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory, gates: Path) -> Path:
    return write_app(tmp_path_factory.mktemp("deaths") / "app", gated_stages(gates))


@pytest.fixture(scope="module")
def pooled_server(app_dir: Path) -> Iterator[ServerProcess]:
    process = start_server(app_dir, "--pool-size", "1")
    try:
        yield process
    finally:
        process.stop()


async def pool_ready(person: Person) -> bool:
    health = json.loads((await person.fetch("health")).body)
    return bool(health.get("pool_kernels", 0) >= 1)


async def test_a_pool_kernel_dead_before_it_is_handed_out_is_replaced(
    pooled_server: ServerProcess,
) -> None:
    server = pooled_server
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        await eventually(lambda: pool_ready(person), "a prepared pool kernel")
        (pool_pid,) = kernel_pids(server)
        os.kill(pool_pid, signal.SIGKILL)
        await eventually(lambda: process_ended(pool_pid), "the pool kernel to end")
        page = await person.open("new")  # before jupyter_client's restarter noticed
        await page.wait_for(has_slider("number"), TIMEOUT)
        await act(page, await page.set_value(slider(page, "number"), 7))
        assert page.value(slider(page, "number")) == 7


async def test_a_kernel_killed_while_its_run_is_replayed_is_replaced(
    pooled_server: ServerProcess, gates: Path
) -> None:
    server = pooled_server
    started, gate = gates / "201.started", gates / "201"
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        page = await person.open("new")
        await page.wait_for(has_slider("number"), TIMEOUT)
        run_id = page.page.url.rsplit("/", 1)[-1]
        await act(page, await page.set_value(slider(page, "number"), 201))
        gate.touch()
        await click_next(page)
        await page.wait_for(has_slider("offset"), TIMEOUT)
        await kill_kernel(server, page.kernel_id)
        await page.close()
        gate.unlink()
        started.unlink()
        reopen = asyncio.create_task(person.open(f"run/{run_id}"))
        # the replay re-runs stage 1 (the journaled Next) and waits at the gate: kill it there
        replaying = int(await eventually(lambda: started.exists() and started.read_text(),
                                         "the replay to reach stage 1"))
        started.unlink()
        os.kill(replaying, signal.SIGKILL)
        await eventually(lambda: started.exists(), "a fresh kernel to replay stage 1 again")
        assert int(started.read_text()) != replaying
        gate.touch()
        again = await asyncio.wait_for(reopen, TIMEOUT)
        await again.wait_for(has_slider("offset"), TIMEOUT)
        assert again.value(slider(again, "number")) == 201
