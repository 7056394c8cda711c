"""Fixtures of the gallery tests: each example app clicked through in Chromium.

- `serve_example(name)` — module-scoped factory: the example built and served by
  :func:`gallery.start_example` (`--auth name`, an admin token, one pooled kernel, a SQLite file
  in a temporary directory). Servers stop at the end of the module: one server per example.
- `person`, `admin` — pages in two browser contexts (two people) whose requests go through the
  `offline` guard: anything off the machine is aborted, and `offline.check()` at the end of the
  test (or the teardown, if the test did not get there) fails the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from gallery import TIMEOUT_MS, VIEWPORT, ServedExample, start_example
from playwright.sync_api import Browser, BrowserContext, Page

from tests.support.offline import OfflineGuard

if TYPE_CHECKING:
    from tests.conftest import PlaywrightLoop


@pytest.fixture(scope="module")
def serve_example(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], ServedExample]]:
    """Factory: `serve_example(name)` -> the example built and served (stopped after the module)."""
    served: dict[str, ServedExample] = {}

    def start(name: str) -> ServedExample:
        if name not in served:
            served[name] = start_example(name, tmp_path_factory.mktemp(name))
        return served[name]

    try:
        yield start
    finally:
        for example in served.values():
            example.server.stop()


@pytest.fixture
def offline() -> OfflineGuard:
    """The guard of the test's browser contexts; the test ends with `offline.check()`."""
    return OfflineGuard()


def guarded_page(browser: Browser, offline: OfflineGuard) -> tuple[BrowserContext, Page]:
    """A page in a fresh browser context whose requests go through `offline`."""
    context = browser.new_context(viewport=VIEWPORT)
    context.route("**/*", offline)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return context, page


@pytest.fixture
def person(
    browser: Browser, playwright_loop: PlaywrightLoop, offline: OfflineGuard
) -> Iterator[Page]:
    """The person's page. Playwright's loop is this test's while it runs (tests/conftest.py)."""
    playwright_loop.claim()
    try:
        context, page = guarded_page(browser, offline)
        try:
            yield page
        finally:
            context.close()
    finally:
        playwright_loop.release()
    if offline.foreign and not offline.checked:
        pytest.fail(f"the pages requested hosts other than loopback: {offline.foreign[:5]}")


@pytest.fixture
def admin(person: Page, browser: Browser, offline: OfflineGuard) -> Iterator[Page]:
    """The admin's page, in a browser context of its own (set up after the person's, so it runs
    inside the person's turn of Playwright's loop)."""
    context, page = guarded_page(browser, offline)
    try:
        yield page
    finally:
        context.close()
