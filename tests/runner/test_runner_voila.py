"""The frozen app under plain `voila app/app.ipynb`, clicked through in headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from runner.conftest import code, md, stage, write_app
from tests.support.processes import ServerProcess

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(
        tmp_path_factory.mktemp("voila") / "app",
        [
            stage(0, "Pick a letter", [
                md("# Pick a letter"),
                code(
                    "import ipywidgets as w\n"
                    "from runtime.kernel import require\n"
                    "pick = w.Dropdown(options=['a', 'b', 'c'], value='a', description='Letter')\n"
                    "require(lambda: pick.value != 'a', 'Pick a letter other than a.')\n"
                    "pick"
                ),
            ], waits_on=["pick"]),
            stage(1, "Use it", [
                md("## Use it"),
                code("print('You picked', pick.value.upper())"),
            ]),
            stage(2, "Done", [md("## Done"), code("print('All', 'done')")]),
        ],
    )


@pytest.mark.allow_hosts("cdn.jsdelivr.net")
def test_plain_voila_steps_through_every_stage(
    app_dir: Path, voila_server: Callable[..., ServerProcess], page: Page
) -> None:
    server = voila_server(app_dir / "app.ipynb")
    page.goto(server.base_url, timeout=TIMEOUT_MS)
    app = page.locator(".freezer-app")
    expect(app.locator("h1", has_text="Pick a letter")).to_be_visible(timeout=TIMEOUT_MS)
    expect(app).to_contain_text("Progress is not saved", timeout=TIMEOUT_MS)
    expect(app.locator("[aria-current=step]")).to_contain_text("Pick a letter")
    next_button = app.get_by_role("button", name="Next")
    expect(next_button).to_be_disabled()  # the notebook's requirement holds it
    expect(app).to_contain_text("Pick a letter other than a.")
    app.locator("select").select_option("b")
    expect(next_button).to_be_enabled()
    next_button.click()
    expect(app).to_contain_text("You picked B", timeout=TIMEOUT_MS)
    expect(app.locator("select")).to_be_disabled()
    expect(app.locator("[aria-current=step]")).to_contain_text("Use it")
    app.get_by_role("button", name="Next").click()
    expect(app).to_contain_text("All done", timeout=TIMEOUT_MS)
    expect(app.locator("h2", has_text="Done")).to_be_visible()
    expect(app.get_by_role("button", name="Next")).to_have_count(0)
    expect(app).to_contain_text("every step has run")
    # no going back without a server's journal to rebuild from (docs/go-back.md)
    expect(app.locator("li.freezer-step-done")).to_have_count(2)
    expect(app.get_by_role("button", name=re.compile("^Back to:"))).to_have_count(0)
