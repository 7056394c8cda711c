"""The server log has one line per sign-in, run start, finish, cull, replay and divergence, each
naming the run and the user; jupyter_server's per-page "not trusted" warning is not in it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.store.store import NewEvent
from tests.faults.harness import act, click_next, has_slider, shows, slider
from tests.server.conftest import write_app
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("log") / "app")


@pytest.fixture(scope="module")
def server(app_dir: Path, serve: Callable[..., ServerProcess]) -> ServerProcess:
    return serve(app_dir, "--auth", "name", "--pool-size", "0", "--cull-idle-timeout", "1")


def log_text(server: ServerProcess) -> str:
    return server.log_path.read_text(errors="replace")


async def logged(server: ServerProcess, pattern: str) -> list[str]:
    """Wait until the server has logged a line matching `pattern`; return every such line."""
    regex = re.compile(pattern)
    lines: list[str] = await eventually(
        lambda: [line for line in log_text(server).splitlines() if regex.search(line)],
        lambda: f"a log line matching {pattern!r}:\n{server.log_tail()}",
        TIMEOUT,
    )
    return lines


async def culled(person: Person, count: int) -> None:
    async def enough() -> bool:
        response = await person.fetch("health")
        return bool(json.loads(response.body)["culled"] >= count)

    await eventually(enough, "the idle kernel to be culled", TIMEOUT)


async def test_one_line_per_sign_in_start_finish_cull_replay_and_divergence(
    server: ServerProcess, app_dir: Path, open_store: Callable[..., Any]
) -> None:
    store = await open_store(app_dir)
    async with Person(server.base_url) as person:
        landing = await person.login("ada", follow_redirects=False)
        assert landing.status in (301, 302)
        assert len(await logged(server, r"sign-in: ada \(user \d+\) from 127\.0\.0\.1")) == 1
        page = await person.open("new")
        run_id = page.page.url.rsplit("/", 1)[-1]
        started = await logged(server, rf"run {run_id} started \(user ada\)")
        assert len(started) == 1

        await page.wait_for(has_slider("number"), TIMEOUT)
        await act(page, await page.set_value(slider(page, "number"), 4))
        await click_next(page)
        await page.wait_for(shows("doubled=8"), TIMEOUT)
        assert len(await logged(server, rf"run {run_id} finished \(user ada\)")) == 1
        await page.close()

        await culled(person, 1)
        cull = await logged(server, rf"culling the idle kernel of run {run_id} \(user ada\)")
        assert len(cull) == 1
        again = await person.open(f"run/{run_id}")
        await again.wait_for(shows("doubled=8"), TIMEOUT)
        await logged(server, rf"run {run_id}: replaying \d+ events \(user ada\)")
        await again.close()

        # a journal the code no longer rebuilds: the run cannot be restored, and the log says so
        await culled(person, 2)
        await store.append_events([NewEvent(run_id, "comm_msg", 999, {"method": "custom"})])
        response = await person.fetch(f"run/{run_id}")
        assert response.code == 409
        await logged(server,
                     rf"run {run_id}: replay diverged at event \d+ .*widget #999.*\(user ada\)")

    assert "is not trusted" not in log_text(server)
    assert "loopback TCP with signed messages" in log_text(server)
