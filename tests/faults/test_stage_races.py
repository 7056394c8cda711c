"""Races around a running stage: the kernel dies in it, Next is clicked twice, from two tabs,
or the page is reloaded while it runs. No stage may run twice, and the person continues.

Stage 1 of the app waits for a gate file (named by the number the person picked) before it
finishes, so each test holds the stage "mid-run" for exactly as long as it needs, with no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import (
    TIMEOUT,
    act,
    click_next,
    gated_stages,
    has_slider,
    journal,
    kill_kernel,
    shows,
    slider,
    stage_started_counts,
    write_app,
)
from tests.support.errors import ClientError
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_server
from tests.support.session import PageSession


@pytest.fixture(scope="module")
def gates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gates")


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory, gates: Path) -> Path:
    return write_app(tmp_path_factory.mktemp("races") / "app", gated_stages(gates),
                     collect={2: ("total",)})


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[ServerProcess]:
    process = start_server(app_dir, "--pool-size", "1")
    try:
        yield process
    finally:
        process.stop()


async def start_at_gate(person: Person, gates: Path, number: int) -> tuple[PageSession, str]:
    """A new run with `number` picked and Next clicked: stage 1 is running, held at its gate."""
    page = await person.open("new")
    await page.wait_for(has_slider("number"), TIMEOUT)
    await act(page, await page.set_value(slider(page, "number"), number))
    button = page.find(_model_name="ButtonModel", description="Next", disabled=False)
    await page.click(button)
    await eventually(lambda: (gates / f"{number}.started").exists(), "stage 1 to start")
    return page, page.page.url.rsplit("/", 1)[-1]


async def finish_run(page: PageSession, number: int, offset: int) -> None:
    await page.wait_for(has_slider("offset"), TIMEOUT, "stage 1 to finish")
    await act(page, await page.set_value(slider(page, "offset"), offset))
    await click_next(page)
    await page.wait_for(shows(f"total={number + offset}"), TIMEOUT)


def next_clicks(app_dir: Path, run_id: str) -> int:
    return sum(1 for e in journal(app_dir, run_id, ("comm_msg",))
               if e["payload"].get("method") == "custom")


async def recorded_to_the_end(app_dir: Path, run_id: str) -> None:
    """Wait until the server stored the runner's `finished` event: the page can show the last
    stage before the server's listener has written the events that led there."""
    await eventually(lambda: journal(app_dir, run_id, ("finished",)), "the run's finished event")


async def test_kernel_killed_mid_stage_replays_on_the_next_visit(
    server: ServerProcess, app_dir: Path, gates: Path
) -> None:
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        page, run_id = await start_at_gate(person, gates, 101)
        old_kernel = page.kernel_id
        await kill_kernel(server, old_kernel)
        await page.close()
        (gates / "101").touch()  # the replayed stage may pass now
        again = await person.open(f"run/{run_id}")
        assert again.kernel_id != old_kernel
        await again.wait_for(shows("passed gate 101"), TIMEOUT, "the replayed stage 1")
        assert again.value(slider(again, "number")) == 101
        await finish_run(again, 101, 4)
    assert next_clicks(app_dir, run_id) == 2  # the one before the kill, the one after
    # stage 1: once in the killed kernel, once in the replay (which went beyond the journal:
    # stage 1 never got ready there); never more. The replayed stage 0 matched the journal's
    # and was not stored again.
    await recorded_to_the_end(app_dir, run_id)
    assert stage_started_counts(app_dir, run_id) == {0: 1, 1: 2, 2: 1}


async def test_double_click_on_next_runs_the_stage_once(
    server: ServerProcess, app_dir: Path, gates: Path
) -> None:
    async with Person(server.base_url) as person:
        page, run_id = await start_at_gate(person, gates, 102)
        stale = page.find(_model_name="ButtonModel", description="Next")
        second = await page.click(stale)  # the browser had not yet seen it disabled
        (gates / "102").touch()
        await act(page, second)
        await finish_run(page, 102, 5)
    assert next_clicks(app_dir, run_id) == 3  # both clicks are journaled, the last Next too
    await recorded_to_the_end(app_dir, run_id)
    assert stage_started_counts(app_dir, run_id) == {0: 1, 1: 1, 2: 1}


async def test_next_from_two_tabs_runs_the_stage_once(
    server: ServerProcess, app_dir: Path, gates: Path
) -> None:
    async with Person(server.base_url) as person:
        first = await person.open("new")
        await first.wait_for(has_slider("number"), TIMEOUT)
        run_id = first.page.url.rsplit("/", 1)[-1]
        await act(first, await first.set_value(slider(first, "number"), 103))
        second = await person.open(f"run/{run_id}")
        assert second.kernel_id == first.kernel_id
        assert second.value(slider(second, "number")) == 103
        buttons = [tab.find(_model_name="ButtonModel", description="Next", disabled=False)
                   for tab in (first, second)]
        clicks = await asyncio.gather(*(tab.click(button)
                                        for tab, button in zip((first, second), buttons,
                                                               strict=True)))
        (gates / "103").touch()
        for tab, msg_id in zip((first, second), clicks, strict=True):
            await act(tab, msg_id)
        await second.wait_for(has_slider("offset"), TIMEOUT)
        await finish_run(first, 103, 6)
        await second.wait_for(shows("total=109"), TIMEOUT, "the other tab to follow")
    await recorded_to_the_end(app_dir, run_id)
    assert stage_started_counts(app_dir, run_id) == {0: 1, 1: 1, 2: 1}
    results = journal(app_dir, run_id, ("collected",))
    assert [e["payload"]["value"] for e in results] == [109]


async def test_reload_while_a_stage_runs_does_not_rerun_it(
    server: ServerProcess, app_dir: Path, gates: Path
) -> None:
    async with Person(server.base_url) as person:
        page, run_id = await start_at_gate(person, gates, 104)
        await page.close()  # the person reloads while stage 1 is held at its gate
        reload = asyncio.create_task(person.open(f"run/{run_id}"))
        # the page waits for the kernel, which is busy with the stage (the person sees it load)
        done, _ = await asyncio.wait({reload}, timeout=0.5)
        assert not done
        (gates / "104").touch()
        again = await asyncio.wait_for(reload, TIMEOUT)
        await again.wait_for(shows("passed gate 104"), TIMEOUT)
        await finish_run(again, 104, 1)
    await recorded_to_the_end(app_dir, run_id)
    assert stage_started_counts(app_dir, run_id) == {0: 1, 1: 1, 2: 1}


async def test_the_server_kept_serving(server: ServerProcess) -> None:
    async with Person(server.base_url) as person:
        response = await person.fetch("health")
        assert response.code == 200
        with pytest.raises(ClientError):
            await person.open("run/no-such-run")
