"""What a person does in a real browser (headless Chromium): pick, Next, reload, continue."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.faults.harness import journal
from tests.server.conftest import write_app
from tests.support.processes import ServerProcess, kill_hard, start_server

TIMEOUT_MS = 60_000
CULLED = """() => {
    const request = new XMLHttpRequest();
    request.open("GET", "health", false);
    request.send();
    const health = JSON.parse(request.responseText);
    return health.culled >= 1 && health.run_kernels === 0;
}"""


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("browser") / "app")


@pytest.fixture(scope="module")
def server(app_dir: Path, serve: Callable[..., ServerProcess]) -> ServerProcess:
    return serve(app_dir, "--pool-size", "1")


def kernel_id(page: Page) -> str:
    config = json.loads(page.locator("#jupyter-config-data").text_content() or "{}")
    return str(config["kernelId"])


def sends_value(value: int) -> Callable[[str | bytes], bool]:
    """A websocket frame predicate: a widget update setting `value`."""
    needle = f'"value":{value}'.encode()

    def predicate(payload: str | bytes) -> bool:
        data = payload.encode() if isinstance(payload, str) else payload
        return needle in data.replace(b" ", b"")

    return predicate


def slider_readout(page: Page) -> str:
    return page.locator(".widget-readout").first.inner_text()


def test_pick_next_reload_shows_the_same_run(server: ServerProcess, page: Page) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    with page.expect_websocket(lambda ws: "/channels" in ws.url) as opened:
        page.goto(server.base_url)
        page.get_by_role("button", name="Start").click()
    expect(page).to_have_url(re.compile(r"/run/[\w-]+$"))
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.wait_for()
    handle.focus()
    # the page has sent the last value to the server before the person reloads
    with opened.value.expect_event("framesent", predicate=sends_value(8)):
        for _ in range(3):
            handle.press("ArrowRight")
    expect(page.locator(".widget-readout").first).to_have_text("8")
    first_kernel = kernel_id(page)
    run_url = page.url

    # reload mid-stage: same stage, same value, same kernel, nothing ran again
    page.reload()
    page.locator(".widget-slider").first.wait_for()
    expect(page.locator(".widget-readout").first).to_have_text("8")
    assert kernel_id(page) == first_kernel
    assert page.url == run_url
    expect(page.get_by_text("doubled=")).to_have_count(0)

    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("doubled=16")).to_be_visible()

    page.reload()
    expect(page.get_by_text("doubled=16")).to_be_visible()
    assert kernel_id(page) == first_kernel
    assert slider_readout(page) == "8"


def test_a_culled_run_comes_back_in_the_browser(
    app_dir: Path, serve: Callable[..., ServerProcess], page: Page
) -> None:
    server = serve(app_dir, "--pool-size", "0", "--cull-idle-timeout", "2")
    page.set_default_timeout(TIMEOUT_MS)
    with page.expect_websocket(lambda ws: "/channels" in ws.url) as opened:
        page.goto(server.base_url + "new")
        page.get_by_role("button", name="Start").click()
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.wait_for()
    handle.focus()
    with opened.value.expect_event("framesent", predicate=sends_value(6)):
        handle.press("ArrowRight")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("doubled=12")).to_be_visible()
    run_url, first_kernel = page.url, kernel_id(page)

    page.goto(server.base_url + "health")  # the tab moves on; the kernel is culled 2 s later
    page.wait_for_function(CULLED, polling=100)

    page.goto(run_url)
    expect(page.get_by_text("doubled=12")).to_be_visible()
    expect(page.locator(".widget-readout").first).to_have_text("6")
    assert kernel_id(page) != first_kernel



def test_a_server_killed_mid_run_comes_back_in_the_browser(
    tmp_path: Path, page: Page
) -> None:
    app_dir = write_app(tmp_path / "app")
    server = start_server(app_dir, "--pool-size", "1")
    page.set_default_timeout(TIMEOUT_MS)
    try:
        with page.expect_websocket(lambda ws: "/channels" in ws.url) as opened:
            page.goto(server.base_url + "new")
            page.get_by_role("button", name="Start").click()
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.wait_for()
        handle.focus()
        with opened.value.expect_event("framesent", predicate=sends_value(6)):
            handle.press("ArrowRight")
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_text("doubled=12")).to_be_visible()
        run_url, first_kernel = page.url, kernel_id(page)
        run_id = run_url.rsplit("/", 1)[-1]

        kill_hard(server)  # the server and every kernel, as a crash would
        server = start_server(app_dir, "--pool-size", "1", port=server.port)

        page.goto(run_url)  # the person reloads: the run is rebuilt by replay
        expect(page.get_by_text("doubled=12")).to_be_visible()
        expect(page.locator(".widget-readout").first).to_have_text("6")
        assert kernel_id(page) != first_kernel
        # the journal holds exactly what the person did: one slider move, one Next
        actions = [e["payload"].get("method") for e in journal(app_dir, run_id, ("comm_msg",))]
        assert actions == ["update", "custom"]
    finally:
        server.stop()
