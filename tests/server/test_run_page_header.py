"""The run page in Chromium: a header that stays in view (title, stepper, status, Next, who is
signed in), Next by keyboard, scrolling to the new stage, hiding finished stages, Start over.

Screenshots go to `docs/screenshots/` (shown by `examples/README.md`) with `FREEZER_SCREENSHOTS=1`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.server.conftest import screenshot, write_app
from tests.support.processes import ServerProcess

TIMEOUT_MS = 60_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TALL = (
    "display(widgets.HTML('<div style=\"height:1200px;padding:8px;background:"
    "linear-gradient(#f4f7fb,#dfe8f3)\">{}</div>'))\n"
)
STAGES = (
    (
        "Name the label",
        "import ipywidgets as widgets\n"
        "label = widgets.Text(value='cat', description='label')\n"
        + TALL.format("Pictures to label")
        + "label",
        ("label",),
    ),
    ("Check", "print(f'label={label.value}')\n" + TALL.format("Checked pictures"), ()),
    ("Result", "print('all done')", ()),
)
COUNT_NEXT_CLICKS = """() => {
    window.freezerNextClicks = 0;
    document.addEventListener("click", (event) => {
        if (event.target.closest && event.target.closest(".freezer-next")) {
            window.freezerNextClicks += 1;
        }
    }, true);
}"""


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("header") / "app", STAGES, title="Label pictures")


@pytest.fixture(scope="module")
def server(app_dir: Path, serve: Callable[..., ServerProcess]) -> ServerProcess:
    return serve(app_dir, "--auth", "name", "--admin-token", "s3cret", "--pool-size", "1")


def sign_in(page: Page, server: ServerProcess, name: str) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.base_url + "login")
    page.fill("#name", name)
    page.click("button[type=submit]")
    page.get_by_role("button", name="Start").click()  # starting a run is a POST
    expect(page).to_have_url(re.compile(r"/run/[\w-]+$"))
    page.locator("#freezer-header button.freezer-next").wait_for()


def step(page: Page, index: int) -> object:
    return page.locator(f'#freezer-header li.freezer-step[data-stage="{index}"]')


def stage_view(page: Page, index: int) -> object:
    return page.locator(".freezer-app > .freezer-stages > .widget-output").nth(index)


def in_view(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    return bool(box["y"] >= 0 and box["y"] + box["height"] <= size["height"])


def test_header_stays_in_view_and_next_shows_the_new_stage(
    server: ServerProcess, page: Page
) -> None:
    page.set_viewport_size(DESKTOP)
    sign_in(page, server, "ada")
    header = page.locator("#freezer-header")
    expect(header.locator(".freezer-title")).to_have_text("Label pictures")
    expect(header.locator(".freezer-stepper")).to_contain_text("● Name the label")
    expect(header.locator(".freezer-stepper")).to_contain_text("○ Check")
    expect(header.locator(".freezer-footer")).to_contain_text("Step 1 of 3")
    expect(header.locator(".freezer-keys")).to_contain_text("Enter")
    screenshot(page, "run-page")

    header.locator("button.freezer-next").click()
    expect(step(page, 0)).to_have_class(re.compile("freezer-step-done"))
    expect(header.locator(".freezer-stepper")).to_contain_text("✓ Name the label")
    expect(stage_view(page, 1)).to_contain_text("label=cat")
    # the new stage starts just below the header, which is still at the top with Next in it
    page.wait_for_function("""() => {
        const header = document.getElementById("freezer-header").getBoundingClientRect();
        const stage = document.querySelectorAll(".freezer-stages > .widget-output")[1]
            .getBoundingClientRect();
        return Math.abs(stage.top - header.bottom) < 40 && header.top === 0;
    }""")
    assert in_view(page, "#freezer-header button.freezer-next")
    screenshot(page, "run-page-after-next")

    # finished stages can be hidden and shown again
    page.click("#freezer-collapse")
    expect(stage_view(page, 0)).to_have_attribute("data-freezer-collapsed", "")
    expect(page.locator(".widget-text").first).to_be_hidden()
    step(page, 0).click()
    expect(page.locator(".widget-text").first).to_be_visible()

    page.set_viewport_size(PHONE)
    assert in_view(page, "#freezer-header button.freezer-next")
    assert in_view(page, "#freezer-header .freezer-stepper")
    screenshot(page, "run-page-phone")


def test_enter_presses_next_only_when_nothing_else_takes_the_key(
    server: ServerProcess, page: Page
) -> None:
    page.set_viewport_size(DESKTOP)
    sign_in(page, server, "grace")
    page.evaluate(COUNT_NEXT_CLICKS)
    clicks = "window.freezerNextClicks"

    text = page.locator(".widget-text input").first
    text.focus()
    text.press("Enter")
    text.press("Control+Enter")
    assert page.evaluate(clicks) == 0, "Enter in a text field pressed Next"

    # a widget that handled the key itself (preventDefault) keeps it
    page.evaluate("""() => {
        const output = document.querySelector(".freezer-stages > .widget-output");
        output.addEventListener("keydown", (event) => event.preventDefault());
        output.dispatchEvent(new KeyboardEvent("keydown",
            {key: "Enter", bubbles: true, cancelable: true}));
    }""")
    assert page.evaluate(clicks) == 0, "a key a widget had handled pressed Next"

    text.evaluate("element => element.blur()")
    expect(page.locator("#freezer-header button.freezer-next")).to_be_enabled()
    page.keyboard.press("Control+Enter")
    assert page.evaluate(clicks) == 1
    expect(step(page, 0)).to_have_class(re.compile("freezer-step-done"))
    expect(step(page, 1)).to_have_class(re.compile("freezer-step-ready"))
    # the stepper and Next are separate widgets: the key is for Next once Next can be pressed
    expect(page.locator("#freezer-header button.freezer-next")).to_be_enabled()
    page.keyboard.press("Enter")
    assert page.evaluate(clicks) == 2
    expect(step(page, 2)).to_have_class(re.compile("freezer-step-(ready|done)"))


def test_header_says_who_is_signed_in_and_start_over_keeps_the_run(
    server: ServerProcess, page: Page, app_dir: Path
) -> None:
    page.set_viewport_size(DESKTOP)
    sign_in(page, server, "linus")
    first_run = page.url.rsplit("/", 1)[1]
    account = page.locator("#freezer-header .freezer-account")
    expect(account).to_contain_text("Signed in as linus")
    expect(account.locator("a.freezer-runs-link")).to_have_attribute("href", "/")
    expect(account.locator("a.freezer-sign-out")).to_have_attribute("href", "/logout")
    expect(account.locator("a.freezer-admin-link")).to_have_count(0)

    page.click("#freezer-start-over")
    dialog = page.locator("#freezer-start-over-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("This run is kept")
    expect(dialog).to_contain_text("abandoned")
    screenshot(page, "start-over")
    dialog.locator("[data-cancel]").click()
    expect(dialog).to_be_hidden()
    assert page.url.endswith(first_run)

    page.click("#freezer-start-over")
    dialog.locator("button.freezer-confirm-start-over").click()
    expect(page).not_to_have_url(re.compile(first_run))
    page.locator("#freezer-header button.freezer-next").wait_for()
    with sqlite3.connect(app_dir / "freezer.db") as db:
        status = db.execute("select status from runs where id = ?", (first_run,)).fetchone()
    assert status == ("abandoned",)

    page.click("#freezer-header a.freezer-sign-out")
    expect(page).to_have_url(re.compile(r"/login"))
