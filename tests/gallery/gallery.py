"""What a person does and sees in a served example app, driven in Chromium through Playwright.

:func:`start_example` builds `examples/NAME.ipynb` and serves it as a child process; the other
functions act and look as a person does: :func:`sign_in`, :func:`wait_stage`,
:func:`press_next`, :func:`set_slider`, :func:`see`; :func:`exported_runs` reads the admin's
JSON export; :func:`shot` writes `examples/screenshots/NAME.png` when `FREEZER_SCREENSHOTS=1`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, ViewportSize, expect

from freezer.commands import build_main
from tests.support.eventually import eventually_sync
from tests.support.processes import ServerProcess, start_freezer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCREENSHOTS = EXAMPLES / "screenshots"
ADMIN_TOKEN = "gallery-admin-token"
TIMEOUT_MS = 60_000
SERVER_START_TIMEOUT = 90.0
EXPORT_POLL_MS = 50
VIEWPORT: ViewportSize = {"width": 1100, "height": 800}


@dataclass
class ServedExample:
    """An example built into `app` and served by `server` on the SQLite database `db_url`."""

    name: str
    app: Path
    db_url: str
    server: ServerProcess

    def url(self, path: str = "") -> str:
        return self.server.base_url + path


def start_example(name: str, directory: Path) -> ServedExample:
    """Build `examples/<name>.ipynb` into `directory` and serve it; wait until it answers."""
    app = directory / "app"
    assert build_main([str(EXAMPLES / f"{name}.ipynb"), "-o", str(app)]) == 0
    db_url = f"sqlite:///{directory / 'gallery.db'}"
    server = start_freezer(
        app,
        db_url=db_url,
        extra_args=("--auth", "name", "--admin-token", ADMIN_TOKEN, "--pool-size", "1"),
    )
    # In a thread of its own: Playwright's sync driver may own this thread's event loop.
    server.wait_ready_sync(SERVER_START_TIMEOUT)
    return ServedExample(name, app, db_url, server)


# --- what a person does and sees --------------------------------------------------------------


def see(locator: Locator) -> None:
    """The person sees this (waits for it)."""
    expect(locator.first).to_be_visible(timeout=TIMEOUT_MS)


def sign_in(page: Page, example: ServedExample, name: str, path: str = "") -> str:
    """Open `path` of the app, sign in with `name` on the form it leads to; returns the run id."""
    page.goto(example.url(path))
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Start").click()  # starting a run is a POST (XSRF)
    expect(page).to_have_url(re.compile(r"/run/[\w-]+$"), timeout=TIMEOUT_MS)
    return page.url.rsplit("/", 1)[-1]


def stage_mark(page: Page, index: int) -> Locator:
    """Stage `index` in the stepper (its class says its state: pending, ready, failed, ...)."""
    return page.locator(f'li.freezer-step[data-stage="{index}"]')


def wait_stage(page: Page, index: int) -> None:
    """Wait until stage `index` has run and waits for the person (or failed: then fail)."""
    mark = stage_mark(page, index)
    expect(mark).to_have_class(re.compile(r"freezer-step-(ready|failed)"), timeout=TIMEOUT_MS)
    if "freezer-step-failed" in (mark.get_attribute("class") or ""):
        outputs = stage_output(page, index).inner_text()
        pytest.fail(f"stage {index + 1} failed; the page shows:\n{outputs[-2000:]}")


def press_next(page: Page, to_stage: int) -> None:
    """Click the Next button on offer, then wait until stage `to_stage` is ready."""
    page.locator("button.freezer-next:enabled").filter(visible=True).click()
    wait_stage(page, to_stage)


def stage_output(page: Page, index: int) -> Locator:
    """The output area of stage `index` in the app."""
    return page.locator(".freezer-app > .widget-vbox > .widget-output").nth(index)


def set_slider(slider: Locator, value: str) -> None:
    """Type `value` into a slider's readout and press Enter, as a person setting an exact value."""
    readout = slider.locator(".widget-readout")
    readout.click()
    readout.press("Control+A")
    readout.press_sequentially(value)
    readout.press("Enter")
    expect(readout).to_have_text(value, timeout=TIMEOUT_MS)


def widget(page: Page, kind: str, description: str) -> Locator:
    """The widget of CSS class `kind` (e.g. `widget-slider`) whose label is `description`."""
    label = page.locator("label.widget-label", has_text=re.compile(f"^{re.escape(description)}$"))
    return page.locator(f".{kind}").filter(has=label)


def slider(page: Page, description: str) -> Locator:
    """The slider whose label is `description`."""
    return widget(page, "widget-slider", description)


def image_sources(area: Locator) -> list[str]:
    """The `src` of every image shown in an area (data: URLs of figures, blob: URLs of widgets)."""
    return [str(src) for src in area.locator("img").evaluate_all("els => els.map(e => e.src)")]


PAGE_HEIGHT_JS = """() => Math.max(...[
    document.documentElement, document.body, document.getElementById("rendered_cells"),
].filter(Boolean).map(e => e.scrollHeight + Math.max(0, e.getBoundingClientRect().top)))"""
"""How tall the page's content is: Voila's page scrolls inside `#rendered_cells`."""


def shot(page: Page, name: str) -> None:
    """Save the whole page as `examples/screenshots/NAME.png` when `FREEZER_SCREENSHOTS=1`.

    The content scrolls inside an element, not the document, so a full-page screenshot alone
    would show one window of it: the window is made as tall as the content for the picture.
    """
    if os.environ.get("FREEZER_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(exist_ok=True)
    size = page.viewport_size or VIEWPORT
    height = int(page.evaluate(PAGE_HEIGHT_JS))
    page.set_viewport_size({"width": size["width"], "height": height})
    try:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        page.set_viewport_size(size)


def exported_runs(admin: Page, example: ServedExample, finished: int) -> dict[str, dict[str, Any]]:
    """Sign the admin in, then read `/admin/export.json` (run id -> export row) until `finished`
    runs are finished: the runner tells the server a moment after the page shows the last stage.
    """
    admin.goto(example.url(f"login?token={ADMIN_TOKEN}&next=/admin"))
    expect(admin.get_by_role("heading", name="Runs")).to_be_visible(timeout=TIMEOUT_MS)
    rows: list[dict[str, Any]] = []

    def enough_finished() -> bool:
        response = admin.request.get(example.url("admin/export.json"))
        assert response.ok, f"export.json: HTTP {response.status}"
        rows[:] = json.loads(response.text())
        return sum(row["status"] == "finished" for row in rows) >= finished

    eventually_sync(enough_finished, lambda: f"{finished} finished runs: {rows}",
                    TIMEOUT_MS / 1000, interval=EXPORT_POLL_MS / 1000)
    return {row["run_id"]: row for row in rows}
