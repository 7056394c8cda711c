"""Runs survive losing their kernel: server SIGKILL + restart, culling, the kernel cap.

Each case drives a real server at the protocol level; the kernel the page gets after the loss
is a fresh one, rebuilt by replaying the run's journal before the page renders.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.store.store import NewEvent
from tests.faults.harness import act, click_next, has_slider, shows, slider, text
from tests.server.conftest import write_app
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, kill_hard, start_server

TIMEOUT = 60.0

THREE_STAGES = (
    (
        "Pick a number",
        "import ipywidgets as widgets\n"
        "number = widgets.IntSlider(value=5, min=0, max=100, description='number')\n"
        "number",
        ("number",),
    ),
    (
        "Pick an offset",
        "if number.value > 50:\n    raise ValueError('number too big: ' + str(number.value))\n"
        "offset = widgets.IntSlider(value=0, min=0, max=10, description='offset')\n"
        "print(f'number is {number.value}')\n"
        "offset",
        ("offset",),
    ),
    ("Result", "total = number.value + offset.value\nprint(f'total={total}')", ()),
)


async def health(person: Person) -> dict[str, Any]:
    response = await person.fetch("health")
    data: dict[str, Any] = json.loads(response.body)
    return data


async def wait_health(person: Person, predicate: Callable[[dict[str, Any]], bool]) -> None:
    """Poll /health until `predicate` holds (the culler works on its own clock)."""
    last: dict[str, Any] = {}

    async def matches() -> bool:
        last.update(await health(person))
        return predicate(last)

    await eventually(matches, lambda: f"health to match; it is {last}", TIMEOUT)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("recovery") / "app", THREE_STAGES)


async def test_sigkill_and_restart_replays_the_run(
    app_dir: Path, open_store: Callable[..., Any]
) -> None:
    server = await asyncio.to_thread(start_server, app_dir, "--pool-size", "0")
    restarted: ServerProcess | None = None
    try:
        async with Person(server.base_url) as person:
            page = await person.open("")
            await page.wait_for(has_slider("number"), TIMEOUT)
            await act(page, await page.set_value(slider(page, "number"), 12))
            await click_next(page)
            await page.wait_for(has_slider("offset"), TIMEOUT)
            await act(page, await page.set_value(slider(page, "offset"), 3))
            run_path = page.page.url
            run_id = run_path.rsplit("/", 1)[-1]
            old_kernel = page.kernel_id
            kill_hard(server)
            await page.close()

            restarted = await asyncio.to_thread(
                start_server, app_dir, "--pool-size", "0", port=server.port
            )
            again = await person.open(run_path)
            assert again.kernel_id != old_kernel
            await again.wait_for(shows("number is 12"), TIMEOUT, "stage 1 output")
            assert again.value(slider(again, "number")) == 12
            assert again.value(slider(again, "offset")) == 3
            assert "total=" not in text(again)
            await click_next(again)
            await again.wait_for(shows("total=15"), TIMEOUT, "total=15")

        store = await open_store(app_dir)
        journal = await store.events(run_id, kinds=["comm_msg"])
        # three actions before the crash, one Next after; replay wrote nothing
        assert [e.payload.get("method") for e in journal] == ["update", "custom", "update",
                                                               "custom"]

        async def finished() -> bool:
            run = await store.get_run(run_id)
            return run is not None and run.status == "finished"

        await eventually(finished)
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()


@pytest.fixture(scope="module")
def culling_server(app_dir: Path, serve: Callable[..., ServerProcess]) -> ServerProcess:
    """Culls a run's kernel 2 s after its last page closed."""
    return serve(app_dir, "--pool-size", "0", "--cull-idle-timeout", "2")


async def wait_culled(person: Person) -> None:
    await wait_health(person, lambda data: data["culled"] >= 1 and data["run_kernels"] == 0)


async def test_a_journal_that_does_not_fit_marks_the_run_diverged(
    app_dir: Path, culling_server: ServerProcess, open_store: Callable[..., Any]
) -> None:
    server = culling_server
    store = await open_store(app_dir)
    async with Person(server.base_url) as person:
        page = await person.open("new")
        await page.wait_for(has_slider("number"), TIMEOUT)
        run_id = page.page.url.rsplit("/", 1)[-1]
        await page.close()
        # the code no longer creates a widget #999 (as if the notebook had changed)
        await store.append_events([NewEvent(run_id, "comm_msg", 999, {"method": "custom"})])
        await wait_culled(person)
        response = await person.fetch(f"run/{run_id}")
        assert response.code == 409
        assert b"cannot be restored" in response.body
        run = await store.get_run(run_id)
        assert run is not None and run.status == "diverged"
        assert len(await store.events(run_id, kinds=["comm_msg"])) == 1


async def test_culled_kernel_is_replayed_transparently(culling_server: ServerProcess) -> None:
    server = culling_server
    async with Person(server.base_url) as person:
        page = await person.open("new")
        await page.wait_for(has_slider("number"), TIMEOUT)
        await act(page, await page.set_value(slider(page, "number"), 9))
        await click_next(page)
        await page.wait_for(shows("number is 9"), TIMEOUT)
        run_path, old_kernel = page.page.url, page.kernel_id
        await page.close()
        await wait_culled(person)

        again = await person.open(run_path)
        assert again.kernel_id != old_kernel
        await again.wait_for(shows("number is 9"), TIMEOUT, "stage 1 output after replay")
        assert again.value(slider(again, "number")) == 9


async def test_kernel_cap_evicts_idle_runs_and_says_busy(
    app_dir: Path, serve: Callable[..., ServerProcess]
) -> None:
    server = await asyncio.to_thread(
        serve, app_dir, "--pool-size", "0", "--max-kernels", "1"
    )
    async with Person(server.base_url) as ada, Person(server.base_url) as bob:
        page_a = await ada.open("new")
        await page_a.wait_for(has_slider("number"), TIMEOUT)
        await act(page_a, await page_a.set_value(slider(page_a, "number"), 4))
        busy = await bob.start()
        assert busy.code == 503
        assert busy.headers.get("Retry-After")
        assert b"busy" in busy.body

        await page_a.close()  # Ada's kernel is now idle: Bob's run may take its place
        page_b = await bob.open(busy.effective_url)
        assert page_b.kernel_id != page_a.kernel_id
        assert (await health(bob))["live_kernels"] == 1
        await page_b.close()

        back = await ada.open(page_a.page.url)  # Ada's run comes back by replay
        await back.wait_for(has_slider("number"), TIMEOUT)
        assert back.value(slider(back, "number")) == 4


INTERACT_STAGES = (
    (
        "Square",
        "from ipywidgets import interact\n"
        "@interact(x=(0, 10))\n"
        "def square(x=2):\n"
        "    print(f'x squared={x * x}')\n",
        (),
    ),
    ("Done", "print('done')", ()),
)


async def test_replay_fills_the_notebooks_own_output_widgets(
    tmp_path: Path, serve: Callable[..., ServerProcess], open_store: Callable[..., Any]
) -> None:
    app = write_app(tmp_path / "app", INTERACT_STAGES)
    server = await asyncio.to_thread(
        serve, app, "--pool-size", "0", "--cull-idle-timeout", "2"
    )
    async with Person(server.base_url) as person:
        page = await person.open("")
        await page.wait_for(has_slider("x"), TIMEOUT)
        await act(page, await page.set_value(slider(page, "x"), 7))
        await page.wait_for(shows("x squared=49"), TIMEOUT)
        run_path = page.page.url
        await page.close()
        await wait_culled(person)
        # the person's one action; not the outputs the page routed into the Output widget
        store = await open_store(app)
        journal = await store.events(run_path.rsplit("/", 1)[-1], kinds=["comm_msg"])
        assert [e.payload for e in journal] == [
            {"method": "update", "state": {"value": 7}, "buffer_paths": []}
        ]

        again = await person.open(run_path)
        assert again.value(slider(again, "x")) == 7
        assert "x squared=49" in text(again)
        assert "x squared=4\n" not in text(again)  # the interact output was replaced, not added



async def test_a_run_finishes_on_the_app_version_it_started_on(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")  # stage 1 prints doubled=...
    server = await asyncio.to_thread(start_server, app, "--pool-size", "0")
    restarted: ServerProcess | None = None
    try:
        async with Person(server.base_url) as person:
            page = await person.open("")
            await page.wait_for(has_slider("number"), TIMEOUT)
            await act(page, await page.set_value(slider(page, "number"), 6))
            run_path = page.page.url
            await page.close()
            await asyncio.to_thread(server.stop)

            tripled = ("Result", "tripled = number.value * 3\nprint(f'tripled={tripled}')", ())
            write_app(app, (THREE_STAGES[0], tripled))  # a new build of the notebook
            restarted = await asyncio.to_thread(
                start_server, app, "--pool-size", "0", port=server.port
            )
            runs_page = await person.get_page("")  # the run of the earlier build is listed
            assert run_path.rsplit("/", 1)[-1] in runs_page.html
            old = await person.open(run_path)
            assert old.value(slider(old, "number")) == 6
            await click_next(old)
            await old.wait_for(shows("doubled=12"), TIMEOUT, "the old version's stage 1")

            new = await person.open("new")
            await new.wait_for(has_slider("number"), TIMEOUT)
            await act(new, await new.set_value(slider(new, "number"), 6))
            await click_next(new)
            await new.wait_for(shows("tripled=18"), TIMEOUT, "the new version's stage 1")
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
