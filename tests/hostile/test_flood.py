"""A page that floods its run with widget updates: the excess is dropped before the journal,
and the server keeps serving everyone else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.runs.attachment import FLOOD_BURST_SECONDS, FLOOD_RATE
from tests.faults.harness import TIMEOUT, act, click_next, has_slider, journal, slider, write_app
from tests.hostile.test_websocket_fuzz import V1, connect, message, send_all
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_server
from tests.support.protocol import encode_v1

FLOOD = 3000


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("flood"))


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[ServerProcess]:
    process = start_server(app_dir, "--pool-size", "1")
    try:
        yield process
    finally:
        process.stop()


async def test_a_flood_of_updates_is_cut_off_before_the_journal(
    server: ServerProcess, app_dir: Path
) -> None:
    async with Person(server.base_url, request_timeout=TIMEOUT) as mallory, \
            Person(server.base_url, request_timeout=TIMEOUT) as ada:
        page = await mallory.open("new")
        await page.wait_for(has_slider("number"), TIMEOUT)
        number = slider(page, "number")
        run_id = page.page.url.rsplit("/", 1)[-1]
        bystander = await ada.open("new")
        await bystander.wait_for(has_slider("number"), TIMEOUT)

        flood = await connect(mallory, page, V1)
        updates = [
            encode_v1(message("comm_msg", {
                "comm_id": number,
                "data": {"method": "update", "state": {"value": 1 + i % 50},
                         "buffer_paths": []},
            }))
            for i in range(FLOOD)
        ]
        assert await send_all(flood, updates) == FLOOD
        flood.close()

        # everyone else's work goes on
        await act(bystander, await bystander.set_value(slider(bystander, "number"), 77))
        await click_next(bystander)
        assert (await ada.fetch("health")).code == 200

    bystander_run = bystander.page.url.rsplit("/", 1)[-1]
    finished = journal(app_dir, bystander_run, ("stage_finished",))
    assert [e["payload"]["snapshot"] for e in finished] == [{"number": 77}]

    # the limit cut in (it logs once per flood) ...
    await eventually(lambda: "flood of messages from the page" in server.log_tail(400),
                     "the server to log the flood")
    # ... and once the flooding page's queue is done, only part of the flood is journaled
    def updates() -> list[dict[str, Any]]:
        return [e for e in journal(app_dir, run_id, ("comm_msg",))
                if e["payload"].get("method") == "update"]

    burst = FLOOD_RATE * FLOOD_BURST_SECONDS
    await eventually(lambda: len(updates()) >= burst, "the burst to be journaled")
    kept = updates()
    assert len(kept) < FLOOD, len(kept)
    assert {e["payload"]["state"]["value"] for e in kept} <= set(range(1, 51))
