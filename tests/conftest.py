"""Fixtures shared by every test area: free ports, a headless Chromium, plain Voila servers.

Subfolders add their own fixtures in their own `conftest.py`; keep this one small and generic.

- `free_port` — a callable returning an unused loopback port.
- `browser` — one Playwright Chromium for the session (Debian's `/usr/bin/chromium`, never a
  downloaded browser), driven by Playwright's sync API: browser tests are plain (sync) test
  functions and their other fixtures sync too; async tests in the same session still work.
- `page` — a fresh browser context and page per test; any request to a host other than
  127.0.0.1/localhost is aborted and fails the test at teardown (the app must work offline).
  `@pytest.mark.allow_hosts("cdn.example")` tolerates named hosts (still aborted): plain
  Voila's `lab` template links Font Awesome from cdn.jsdelivr.net.
- `voila_server` — a module-scoped factory: `voila_server(notebook, *extra_args)` starts plain
  `voila NOTEBOOK` on a free port, waits until it answers and returns the
  :class:`~tests.support.processes.ServerProcess` (`.base_url`); the same arguments in one
  module share one server; all are stopped at the end of the module.
- `serve` — a module-scoped factory: `serve(app_dir, *args, port=None)` starts
  `freezer serve APP ARGS` (the real entry point, real kernels, the app's SQLite file) and
  returns it once `/health` answers; every server it started is stopped at the end of the
  module unless a test stopped it itself.

What tests share beyond fixtures (processes, the protocol client, a simulated person, the one
`eventually` wait) is in `tests/support/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.offline import OfflineGuard
from tests.support.processes import ServerProcess, start_server, start_voila
from tests.support.processes import free_port as _free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VOILA_START_TIMEOUT = 60.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_hosts(*hosts): the page fixture aborts requests to these hosts without failing",
    )


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A callable that returns an unused TCP port on 127.0.0.1."""
    return _free_port


class PlaywrightLoop:
    """Playwright's sync driver and the event loop it runs on.

    Between its calls, the sync driver leaves its loop marked as this thread's running loop,
    which makes every later `asyncio.run` (and async test) fail. The fixtures hand the mark to
    Playwright only while a browser fixture or a browser test runs, so async tests elsewhere in
    the session keep working.
    """

    def __init__(self) -> None:
        self.playwright = sync_playwright().start()
        self.loop = asyncio._get_running_loop()
        self.release()

    def claim(self) -> None:
        """Mark Playwright's loop as running: call before any Playwright call."""
        asyncio._set_running_loop(self.loop)

    def release(self) -> None:
        """Unmark it, so that other code can run event loops."""
        asyncio._set_running_loop(None)

    @contextlib.contextmanager
    def claimed(self) -> Iterator[None]:
        self.claim()
        try:
            yield
        finally:
            self.release()

    def stop(self) -> None:
        with self.claimed():
            self.playwright.stop()


@pytest.fixture(scope="session")
def playwright_loop() -> Iterator[PlaywrightLoop]:
    """Playwright's sync driver for the whole session (see :class:`PlaywrightLoop`)."""
    driver = PlaywrightLoop()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture(scope="session")
def browser(playwright_loop: PlaywrightLoop) -> Iterator[Browser]:
    """Headless Debian Chromium, shared by the session; tests open their own context."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (make browser)")
    with playwright_loop.claimed():
        chromium = playwright_loop.playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
    try:
        yield chromium
    finally:
        with playwright_loop.claimed():
            chromium.close()


@pytest.fixture
def page(
    browser: Browser, playwright_loop: PlaywrightLoop, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A page in a fresh browser context that must never leave the machine.

    Requests to any other host are aborted and reported as a test failure at teardown.
    Tests that use it are plain (sync) functions.
    """
    playwright_loop.claim()
    guard = OfflineGuard(
        {host for marker in request.node.iter_markers("allow_hosts") for host in marker.args}
    )
    context = browser.new_context()
    context.route("**/*", guard)
    try:
        yield context.new_page()
    finally:
        try:
            context.close()
        finally:
            playwright_loop.release()
    if guard.foreign:
        pytest.fail(f"the page requested hosts other than loopback: {guard.foreign[:5]}")


@pytest.fixture(scope="module")
def voila_server() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: `voila_server(notebook, *extra_args)` -> a running plain Voila server."""
    servers: dict[tuple[str, tuple[str, ...]], ServerProcess] = {}

    def start(notebook: str | os.PathLike[str], *extra_args: str) -> ServerProcess:
        key = (str(Path(notebook).resolve()), extra_args)
        if key not in servers:
            server = start_voila(notebook, extra_args=extra_args)
            servers[key] = server
            server.wait_ready_sync(VOILA_START_TIMEOUT)  # also works inside an async test
        return servers[key]

    try:
        yield start
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: `serve(app_dir, *args)` -> a running Freezer server (stopped after the module)."""
    servers: list[ServerProcess] = []

    def start(app_dir: Path, *args: str, port: int | None = None) -> ServerProcess:
        server = start_server(app_dir, *args, port=port)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
