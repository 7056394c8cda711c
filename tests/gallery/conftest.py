"""Fixtures of the gallery tests: each example app clicked through in Chromium.

- `serve_example(name)` — module-scoped factory: the example built and served by
  :func:`gallery.start_example` (`--auth name`, an admin token, one pooled kernel, a SQLite file
  in a temporary directory). Servers stop at the end of the module: one server per example.
- `person` — the person's page: tests/conftest.py's `page` (which fails the test on any request
  off the machine) at the gallery's window size.
- `admin` — a page in a browser context of its own for the admin, guarded the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from gallery import TIMEOUT_MS, VIEWPORT, ServedExample, is_local_url, start_example
from playwright.sync_api import Browser, Page, Route


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
def admin(page: Page, browser: Browser) -> Iterator[Page]:
    """A second browser context for the admin (requested after `page`, so it shares its turn of
    Playwright's event loop); requests off the machine are aborted and fail the test."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    foreign: list[str] = []

    def guard(route: Route) -> None:
        if is_local_url(route.request.url):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    admin_page = context.new_page()
    admin_page.set_default_timeout(TIMEOUT_MS)
    try:
        yield admin_page
    finally:
        context.close()
    if foreign:
        pytest.fail(f"the admin's pages requested hosts other than loopback: {foreign[:5]}")


@pytest.fixture
def person(page: Page) -> Page:
    """The person's page (tests/conftest.py `page`: offline-guarded) at the gallery's size."""
    page.set_viewport_size(VIEWPORT)  # type: ignore[arg-type]
    page.set_default_timeout(TIMEOUT_MS)
    return page
