"""The admin in Chromium: the admin token lands on `/admin` and starts no run; the runs table
shows each run's parameters (defaults included) and filters by status and user; the CSV has the
parameters of default runs filled; every page links to the admin page for the admin.

The screenshot goes to `docs/screenshots/admin.png` (shown by `examples/README.md`) with
`FREEZER_SCREENSHOTS=1`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from runtime.manifest import Parameter
from tests.server.conftest import screenshot, write_app
from tests.support.processes import ServerProcess

TIMEOUT_MS = 60_000
TOKEN = "s3cret"


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(
        tmp_path_factory.mktemp("admin") / "app",
        parameters=(Parameter("batch", 1, "int"), Parameter("freezer_user", "", "str")),
        title="Label pictures",
    )


@pytest.fixture(scope="module")
def server(app_dir: Path, serve: Callable[..., ServerProcess]) -> ServerProcess:
    return serve(app_dir, "--auth", "name", "--admin-token", TOKEN, "--pool-size", "1")


def start_run(
    browser: Browser, server: ServerProcess, name: str, query: str = "", start_over: bool = False
) -> str:
    """`name` signs in and starts a run (then `/new?query`, or starts over from the run list,
    confirming); returns the run id."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.base_url + "login")
        page.fill("#name", name)
        page.click("button[type=submit]")
        page.get_by_role("button", name="Start").click()  # starting a run is a POST
        expect(page).to_have_url(re.compile(r"/run/[\w-]+$"))
        if query:
            page.goto(server.base_url + "new?" + query)
            page.get_by_role("button", name="Start").click()
            expect(page).to_have_url(re.compile(r"/run/[\w-]+$"))
        if start_over:
            first = page.url
            page.goto(server.base_url)
            messages: list[str] = []
            page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
            page.click("form.start-over button[type=submit]")
            expect(page).to_have_url(re.compile(r"/run/[\w-]+$"))
            assert page.url != first
            assert "This run is kept" in messages[0]
        return page.url.rsplit("/", 1)[1]
    finally:
        context.close()


def run_users(app_dir: Path) -> list[str]:
    with sqlite3.connect(app_dir / "freezer.db") as db:
        rows = db.execute("select users.name from runs join users on runs.user_id = users.id")
        return sorted(name for (name,) in rows)


def test_admin_lands_on_admin_page_and_filters_runs(
    server: ServerProcess, page: Page, app_dir: Path
) -> None:
    browser = page.context.browser
    assert browser is not None
    start_run(browser, server, "ada", start_over=True)
    start_run(browser, server, "bob", "batch=3")
    assert run_users(app_dir) == ["ada", "ada", "bob", "bob"]

    page.set_default_timeout(TIMEOUT_MS)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(server.base_url + f"login?token={TOKEN}")
    expect(page).to_have_url(re.compile(r"/admin$"))
    assert run_users(app_dir) == ["ada", "ada", "bob", "bob"], "signing in as admin started a run"

    table = page.locator("table.runs")
    expect(table.locator("tr")).to_have_count(5)
    ada = table.locator("tr", has_text="ada")
    expect(ada.locator("td.params")).to_have_text(["batch = 1", "batch = 1"])
    expect(table.locator("td.params", has_text="batch = 3")).to_have_count(1)
    expect(table.locator("td.params", has_text="freezer_user")).to_have_count(0)

    def show(status: str, user: str) -> None:
        page.select_option("form.filter select[name=status]", status)
        page.select_option("form.filter select[name=user]", user)
        page.click("form.filter button[type=submit]")

    show("", "bob")
    expect(page).to_have_url(re.compile(r"user=bob"))
    expect(table.locator("tr")).to_have_count(3)
    expect(page.locator(".shown-count")).to_have_text("2 of 4 runs shown")
    show("abandoned", "")
    expect(table.locator("tr")).to_have_count(2)
    expect(table.locator("tr", has_text="ada")).to_have_count(1)
    show("active", "bob")
    expect(table.locator("tr")).to_have_count(3)
    show("abandoned", "bob")
    expect(table.locator("tr")).to_have_count(1)
    show("", "")
    expect(table.locator("tr")).to_have_count(5)
    page.locator("#runs").scroll_into_view_if_needed()
    screenshot(page, "admin")
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#runs").scroll_into_view_if_needed()
    screenshot(page, "admin-phone")

    # the CSV: every run has its parameters, defaults included
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    request = urllib.request.Request(server.base_url + "admin/export.csv",
                                     headers={"Cookie": cookies})
    with urllib.request.urlopen(request, timeout=30) as response:
        rows = list(csv.DictReader(io.StringIO(response.read().decode())))
    assert sorted(row["param.batch"] for row in rows) == ["1", "1", "1", "3"]
    # the JSON export keeps what is stored: only what start links set
    request = urllib.request.Request(server.base_url + "admin/export.json",
                                     headers={"Cookie": cookies})
    with urllib.request.urlopen(request, timeout=30) as response:
        stored = sorted(json.dumps(run["params"]) for run in json.loads(response.read()))
    assert stored == ['{"batch": 3}', "{}", "{}", "{}"]


def test_admin_sees_an_admin_link_on_every_page(server: ServerProcess, page: Page) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.base_url + f"login?token={TOKEN}")
    expect(page).to_have_url(re.compile(r"/admin$"))
    expect(page.locator("header nav.account")).to_contain_text("Signed in as admin")
    # a run of the admin's own (to try the app): the run page and the run list link back
    page.goto(server.base_url + "new")
    page.get_by_role("button", name="Start").click()
    expect(page).to_have_url(re.compile(r"/run/[\w-]+$"))
    link = page.locator("#freezer-header a.freezer-admin-link")
    expect(link).to_have_attribute("href", "/admin")
    page.goto(server.base_url)
    expect(page.locator("nav.account a.admin-link")).to_have_attribute("href", "/admin")
    page.goto(server.base_url + "run/no-such-run")
    expect(page.locator("nav.account a.admin-link")).to_be_visible()
