"""A page whose kernel died is told so, in Chromium: it says the run is being rebuilt, reloads
by itself, and shows the run again on a fresh kernel (the journal replayed). A run whose
stage ends its kernel every time reloads to Freezer's "had to be stopped" page."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, expect

from runtime.web.kernel_watch import REBUILDING
from tests.faults.harness import write_app
from tests.faults.test_kernel_deaths import EXITING_STAGES
from tests.support.processes import ServerProcess, kernel_pid, start_server

if TYPE_CHECKING:
    from tests.conftest import PlaywrightLoop

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("told") / "app")


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[ServerProcess]:
    process = start_server(app_dir, "--pool-size", "1")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def page(browser: Browser, playwright_loop: PlaywrightLoop) -> Iterator[Page]:
    playwright_loop.claim()
    try:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            context.close()
    finally:
        playwright_loop.release()


def kernel_id_of(page: Page) -> str:
    config = page.locator("#jupyter-config-data").text_content() or ""
    match = re.search(r'"kernelId":\s*"([\w-]+)"', config)
    assert match, config[:300]
    return match.group(1)


def test_a_page_whose_kernel_died_says_so_and_comes_back(page: Page, server: ServerProcess) -> None:
    page.goto(server.base_url + "new")
    page.get_by_role("button", name="Start").click()  # starting a run is a POST (XSRF)
    expect(page).to_have_url(re.compile(r"/run/[\w-]+$"))
    value = page.locator(".widget-readout")
    expect(value).to_have_text("5", timeout=TIMEOUT_MS)
    page.locator(".widget-readout").fill("37")
    page.keyboard.press("Enter")
    expect(value).to_have_text("37")
    run_url = page.url
    dead = kernel_id_of(page)
    os.kill(kernel_pid(server, dead), signal.SIGKILL)
    expect(page.get_by_role("status")).to_have_text(REBUILDING, timeout=TIMEOUT_MS)
    # reloaded on another kernel (while the new document loads it has no body yet)
    page.wait_for_function(
        f"() => document.body !== null && !document.body.innerHTML.includes({dead!r})",
        timeout=TIMEOUT_MS)
    assert page.url == run_url
    expect(page.locator(".widget-readout")).to_have_text("37", timeout=TIMEOUT_MS)
    assert kernel_id_of(page) != dead


def test_a_stage_that_ends_its_kernel_reloads_to_the_stopped_page(
    page: Page, tmp_path: Path
) -> None:
    server = start_server(write_app(tmp_path / "app", EXITING_STAGES), "--pool-size", "0")
    try:
        page.goto(server.base_url + "new")
        page.get_by_role("button", name="Start").click()
        expect(page.get_by_text("This run had to be stopped.")).to_be_visible(timeout=TIMEOUT_MS)
    finally:
        server.stop()
