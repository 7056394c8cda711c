"""Loads of one run page at the same time (two tabs, a double click, a proxy's retry): every
load answers with the run's page, on a fresh run and after the run's kernel died."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.faults.harness import (
    TIMEOUT,
    act,
    has_slider,
    kill_kernel,
    slider,
    start_run_unloaded,
    write_app,
)
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_server
from tests.support.session import PageSession


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    app_dir = write_app(tmp_path_factory.mktemp("loads") / "app")
    process = start_server(app_dir, "--pool-size", "1")
    try:
        yield process
    finally:
        process.stop()


async def open_at_once(person: Person, run_id: str, loads: int) -> list[PageSession]:
    pages = await asyncio.wait_for(
        asyncio.gather(*(person.open(f"run/{run_id}") for _ in range(loads))), TIMEOUT
    )
    for page in pages:
        await page.wait_for(has_slider("number"), TIMEOUT)
    return list(pages)


async def test_two_loads_of_a_new_run_page_both_answer(server: ServerProcess) -> None:
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        await person.login(name="ann")
        run_id = await start_run_unloaded(person)
        first, second = await open_at_once(person, run_id, 2)
        assert first.kernel_id == second.kernel_id
        await act(first, await first.set_value(slider(first, "number"), 42))
        await second.wait_for(lambda page: page.value(slider(page, "number")) == 42, TIMEOUT,
                              "the other tab to follow")


async def test_three_loads_after_the_kernel_died_all_answer(server: ServerProcess) -> None:
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        await person.login(name="bob")
        run_id = await start_run_unloaded(person)
        page = await person.open(f"run/{run_id}")
        await page.wait_for(has_slider("number"), TIMEOUT)
        await act(page, await page.set_value(slider(page, "number"), 17))
        dead = page.kernel_id
        await kill_kernel(server, dead)
        await page.close()
        pages = await open_at_once(person, run_id, 3)
        assert len({p.kernel_id for p in pages}) == 1
        assert pages[0].kernel_id != dead
        assert all(p.value(slider(p, "number")) == 17 for p in pages)
