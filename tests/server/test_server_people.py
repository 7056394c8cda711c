"""Two people, two runs, two kernels; reload re-attaches; the protocol's guards hold.

One server for the module (auth none, pool 1), driven at the protocol level with
`tests.support.person.Person` (HTTP + kernel websocket + widget states, like Voila's front-end).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from tests.server.conftest import write_app
from tests.support.errors import ClientError
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess
from tests.support.protocol import KernelMessage, encode_legacy
from tests.support.session import PageSession

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("people") / "app")


@pytest.fixture(scope="module")
def server(app_dir: Path, serve: Callable[..., ServerProcess]) -> ServerProcess:
    return serve(app_dir, "--pool-size", "1")


def slider(page: PageSession) -> str:
    return page.find(_model_name="IntSliderModel")


def next_button(page: PageSession) -> str:
    return page.find(_model_name="ButtonModel", description="Next", disabled=False)


def page_text(page: PageSession) -> str:
    return "\n".join(
        page.output_text(model_id) for model_id in page.find_all(_model_name="OutputModel")
    )


async def pick_and_next(page: PageSession, value: int) -> None:
    await page.wait_for(lambda p: bool(p.find_all(_model_name="IntSliderModel")), TIMEOUT,
                        "the slider of stage 0")
    msg_id = await page.set_value(slider(page), value)
    await page.wait_idle(msg_id, TIMEOUT)
    await page.wait_idle(await page.click(next_button(page)), TIMEOUT)
    await page.wait_for(lambda p: f"doubled={value * 2}" in page_text(p), TIMEOUT,
                        f"doubled={value * 2}")


async def test_two_people_get_their_own_kernel_and_result(
    server: ServerProcess, app_dir: Path, open_store: Callable[..., Any]
) -> None:
    async with Person(server.base_url) as ada, Person(server.base_url) as bob:
        page_a = await ada.open("")
        page_b = await bob.open("")
        assert page_a.kernel_id != page_b.kernel_id
        await pick_and_next(page_a, 7)
        await pick_and_next(page_b, 21)
        assert "doubled=14" in page_text(page_a) and "doubled=42" not in page_text(page_a)
        assert "doubled=42" in page_text(page_b) and "doubled=14" not in page_text(page_b)
        run_a = page_a.page.url.rsplit("/", 1)[-1]
        run_b = page_b.page.url.rsplit("/", 1)[-1]

    store = await open_store(app_dir)

    async def both_finished() -> bool:
        runs = {run.id: run for run in await store.list_runs()}
        return runs[run_a].status == runs[run_b].status == "finished"

    await eventually(both_finished)
    results = {run: {r.name: r.value for r in await store.results(run)} for run in (run_a, run_b)}
    assert results == {run_a: {"doubled": 14}, run_b: {"doubled": 42}}
    runs = {run.id: run for run in await store.list_runs()}
    assert runs[run_a].user_id != runs[run_b].user_id
    journal_a = await store.events(run_a, kinds=["comm_msg"])
    assert [e.payload.get("method") for e in journal_a] == ["update", "custom"]
    assert journal_a[0].payload["state"] == {"value": 7}


async def test_reload_reattaches_to_the_same_kernel_without_rerunning(
    server: ServerProcess,
) -> None:
    async with Person(server.base_url) as person:
        first = await person.open("")
        await first.wait_for(lambda p: bool(p.find_all(_model_name="IntSliderModel")), TIMEOUT)
        await first.wait_idle(await first.set_value(slider(first), 33), TIMEOUT)
        run_path = first.page.url
        await first.close(unload=True)

        again = await person.open(run_path)
        assert again.kernel_id == first.kernel_id
        assert again.value(slider(again)) == 33
        assert "doubled" not in page_text(again)
        # stage 0 ran once: one slider ever created in this kernel, the one the page shows
        assert len(again.find_all(_model_name="IntSliderModel")) == 1


async def test_browser_cannot_execute_code(server: ServerProcess, app_dir: Path) -> None:
    marker = app_dir / "executed.txt"
    async with Person(server.base_url) as person:
        page = await person.open("")
        code = f"open({str(marker)!r}, 'w').write('x')"
        msg_id = await page.send("shell", "execute_request", {
            "code": code, "silent": False, "store_history": False, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True,
        })
        # a message sent after it is answered, so the kernel has seen everything before it
        await page.request("shell", "kernel_info_request", {})
        assert msg_id not in page._idle
        assert not marker.exists()


async def test_another_persons_kernel_is_refused(server: ServerProcess) -> None:
    async with Person(server.base_url) as owner, Person(server.base_url) as intruder:
        page = await owner.open("")
        await intruder.get_page("")  # signed in, with a run of their own
        for path in (f"api/kernels/{page.kernel_id}",):
            response = await intruder.fetch(path)
            assert response.code == 403
        with pytest.raises(ClientError, match="403"):
            session = PageSession(intruder, page.page, page.kernel_id, "/", 0.0)
            await session.connect()
        response = await intruder.fetch(page.page.url)
        assert response.code == 404


async def test_another_apps_identity_cookie_beside_ours_does_not_sign_the_person_out(
    server: ServerProcess,
) -> None:
    """An app at an enclosing base URL of the same host sends its cookie of the same name too."""
    async with Person(server.base_url) as person:
        await person.get_page("")  # signed in, with a run
        ours = person.cookies.as_dict()["freezer-user"]
        theirs = web.create_signed_value(b"another app's secret", "freezer-user", "1").decode()

        async def identity_with(cookies: str) -> tuple[int, str]:
            response = await AsyncHTTPClient().fetch(HTTPRequest(
                server.base_url, headers={"Cookie": cookies}, follow_redirects=False,
            ), raise_error=False)
            assert not any(c.startswith("freezer-user=")
                           for c in response.headers.get_list("Set-Cookie")), "signed in anew"
            return response.code, response.headers.get("Location", "")

        alone = await identity_with(f"freezer-user={ours}")
        assert "login" not in alone[1], alone
        # The browser sends the longer path's cookie first; either order reaches the same person.
        assert await identity_with(f"freezer-user={ours}; freezer-user={theirs}") == alone
        assert await identity_with(f"freezer-user={theirs}; freezer-user={ours}") == alone
        stranger = await identity_with(f"freezer-user={theirs}")
        assert stranger[0] == 302 and "login" in stranger[1], "another app's cookie is no one here"


async def test_post_without_xsrf_is_refused(server: ServerProcess) -> None:
    async with Person(server.base_url) as person:
        await person.get_page("")
        response = await person.fetch("new", method="POST", form={"abandon": "x"})
        assert response.code == 403


async def test_health_counts_kernels_and_runs(server: ServerProcess) -> None:
    response = await AsyncHTTPClient().fetch(server.base_url + "health")
    data = json.loads(response.body)
    assert data["status"] == "ok"
    assert data["runs"] >= 1 and data["live_kernels"] >= data["run_kernels"] >= 1


async def test_unsigned_websocket_is_refused(server: ServerProcess) -> None:
    url = server.base_url.replace("http", "ws") + "api/kernels/" + "0" * 8 + "-0000-0000-0000-" \
        + "0" * 12 + "/channels"
    with pytest.raises(Exception, match="403"):
        await websocket_connect(HTTPRequest(url))


async def test_legacy_json_framing_is_journaled_and_filtered(
    server: ServerProcess, app_dir: Path, open_store: Callable[..., Any]
) -> None:
    async with Person(server.base_url) as person:
        page = await person.open("")
        await page.wait_for(lambda p: bool(p.find_all(_model_name="IntSliderModel")), TIMEOUT)
        number = slider(page)
        run_id = page.page.url.rsplit("/", 1)[-1]
        request = HTTPRequest(
            page.ws_url.replace("session_id=", "session_id=legacy"),
            headers={"Cookie": person.cookies.header(), "Origin": person.origin},
        )
        ws = await websocket_connect(request)  # no subprotocol: JSON text frames
        assert ws.selected_subprotocol is None

        def legacy(msg_type: str, content: dict[str, Any]) -> str:
            header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": "legacy",
                      "username": "", "version": "5.3", "date": ""}
            return encode_legacy(KernelMessage("shell", header, content=content))

        ws.write_message(legacy("execute_request", {"code": "1/0", "silent": False}))
        ws.write_message(legacy("comm_msg", {"comm_id": number, "data": {
            "method": "update", "state": {"value": 61}, "buffer_paths": []}}))
        await page.wait_for(lambda p: p.value(number) == 61, TIMEOUT, "the echo of value 61")
        assert not page.kernel_errors  # 1/0 never ran (it would have, before the update)

        # Next makes the runner report on its `freezer.run` comm; none of it reaches a page
        click = legacy("comm_msg", {"comm_id": next_button(page), "data": {
            "method": "custom", "content": {"event": "click"}}})
        click_id = json.loads(click)["header"]["msg_id"]
        ws.write_message(click)
        seen: list[dict[str, Any]] = []
        while True:
            frame = await asyncio.wait_for(ws.read_message(), TIMEOUT)
            assert isinstance(frame, str)
            msg = json.loads(frame)
            seen.append(msg)
            if (msg["header"]["msg_type"] == "status"
                    and msg["parent_header"].get("msg_id") == click_id
                    and msg["content"]["execution_state"] == "idle"):
                break
        assert any("doubled=122" in json.dumps(m) for m in seen)  # the stage ran
        assert not any('"freezer.run"' in json.dumps(m) or '"stage_' in json.dumps(m)
                       for m in seen)
        ws.close()

    store = await open_store(app_dir)
    journal = await store.events(run_id, kinds=["comm_msg"])
    assert [e.payload.get("state") for e in journal] == [{"value": 61}, None]


async def test_run_list_continue_and_start_over(
    server: ServerProcess, app_dir: Path, open_store: Callable[..., Any]
) -> None:
    async with Person(server.base_url) as person:
        first = await person.open("")
        old_run = first.page.url.rsplit("/", 1)[-1]
        await first.close()
        runs_page = await person.get_page("")
        assert f"run/{old_run}" in runs_page.html and "Start over" in runs_page.html
        assert runs_page.xsrf
        response = await person.fetch(
            "new", method="POST", form={"abandon": old_run, "_xsrf": runs_page.xsrf}
        )
        assert response.code == 200 and "/run/" in response.effective_url
        new_run = response.effective_url.rsplit("/", 1)[-1]
        assert new_run != old_run
    store = await open_store(app_dir)
    old = await store.get_run(old_run)
    assert old is not None and old.status == "abandoned"
