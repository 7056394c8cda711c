"""The shared browser and Voila fixtures work together: Chromium shows the page's slider."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.offline import OfflineGuard
from tests.support.processes import ServerProcess

NOTEBOOK = Path(__file__).with_name("widgets.ipynb")


# Voila's own lab template links Font Awesome from a CDN; the page works without it.
@pytest.mark.allow_hosts("cdn.jsdelivr.net")
def test_chromium_shows_the_slider_of_a_plain_voila_page(
    page: Page, voila_server: Callable[..., ServerProcess]
) -> None:
    server = voila_server(NOTEBOOK)
    page.goto(server.base_url)
    slider = page.locator(".widget-slider").first
    expect(slider).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Threshold", exact=True)).to_be_visible()
    expect(page.get_by_text("threshold is 3")).to_be_visible()


def test_the_offline_guard_aborts_and_names_requests_to_other_hosts(
    page: Page, voila_server: Callable[..., ServerProcess]
) -> None:
    guard = OfflineGuard(tolerated={"cdn.jsdelivr.net"})
    page.context.unroute("**/*")  # this test's own guard instead of the fixture's
    page.context.route("**/*", guard)
    server = voila_server(NOTEBOOK)
    page.goto(server.base_url + "voila/static/")  # any loopback page: the guard passes it
    page.set_content(
        '<link rel="stylesheet" href="https://example.invalid/style.css">'
        '<link rel="stylesheet" href="https://cdn.jsdelivr.net/x.css">'
    )
    page.wait_for_load_state("load")
    assert guard.foreign == ["https://example.invalid/style.css"]
