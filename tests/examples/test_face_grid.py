"""The face grid example in Chromium: a custom widget (anywidget) written in the notebook itself.

A person selects five faces with clicks, a shift-click and the keys, presses Next, and the next
stage shows exactly those five; the stage's second grid sends a custom message from its button
("Mark these 8 as ignored") whose effect the kernel draws back. Reloading the page re-attaches
it with both drawn; after the server is SIGKILLed and restarted, replaying the run's journal
rebuilds both in a fresh kernel. No request leaves the server's origin.

The run page is served with its Content-Security-Policy (`runtime.web.voila.PAGE_POLICY`): the
grid's ES module loads from its `blob:` URL, a script and an image from another origin are
refused before any request is made.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from runtime.store.store import Store
from runtime.web.voila import PAGE_POLICY
from tests.gallery.gallery import (
    ADMIN_TOKEN,
    SERVER_START_TIMEOUT,
    TIMEOUT_MS,
    VIEWPORT,
    ServedExample,
    press_next,
    sign_in,
    stage_output,
    start_example,
    wait_stage,
)
from tests.support import processes
from tests.support.eventually import run_async
from tests.support.processes import start_freezer

if TYPE_CHECKING:
    from tests.conftest import PlaywrightLoop

PICKED = ["0", "2", "3", "4", "10"]  # faces 0 and 2 clicked, shift-click to 4, down + space
OTHERS_PAGE_1 = ["1", "5", "6", "7", "8", "9", "11", "12"]  # the first eight not picked
VIOLATIONS_JS = """() => {
  window.__violations = [];
  document.addEventListener("securitypolicyviolation",
    (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));
}"""

FOREIGN_JS = """() => {
  const script = document.createElement("script");
  script.src = "http://cdn.example.com/widget.js";
  const image = document.createElement("img");
  image.src = "http://cdn.example.com/face.png";
  document.body.append(script, image);
}"""


class OriginGuard:
    """Route handler: requests to the server's origin (and `blob:`/`data:` URLs) go through;
    any other is aborted and noted in :attr:`foreign`."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.foreign: list[str] = []

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("blob", "data", "about"):
            return True
        return f"{parts.hostname}:{parts.port}" == self.origin

    def __call__(self, route: Route) -> None:
        if self.allows(route.request.url):
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedExample]:
    """The example built and served; a test that restarts the server puts the new one here."""
    served = start_example("face_grid", tmp_path_factory.mktemp("face_grid"))
    try:
        yield served
    finally:
        served.server.stop()


@pytest.fixture
def guard(example: ServedExample) -> OriginGuard:
    return OriginGuard(f"127.0.0.1:{example.server.port}")


@pytest.fixture
def person(
    browser: Browser, playwright_loop: PlaywrightLoop, guard: OriginGuard
) -> Iterator[Page]:
    """A person's page whose every request (websockets too) must stay on the server's origin."""
    playwright_loop.claim()
    try:
        context = browser.new_context(viewport=VIEWPORT)
        context.route("**/*", guard)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("websocket", lambda ws: None if guard.allows(ws.url) else guard.foreign.append(
            ws.url))
        try:
            yield page
        finally:
            context.close()
    finally:
        playwright_loop.release()


def grids(page: Page, stage: int) -> Locator:
    return stage_output(page, stage).locator(".fg-root")


def face_ids(grid: Locator, which: str = ".fg-face") -> list[str]:
    faces = grid.locator(which)
    return [str(i) for i in faces.evaluate_all("els => els.map(e => e.dataset.id)")]


def expect_faces(grid: Locator, which: str, ids: list[str]) -> None:
    """The grid draws exactly `ids` with class `which` (waits for the kernel's echo)."""
    expect(grid.locator(f".fg-face{which}")).to_have_count(len(ids), timeout=TIMEOUT_MS)
    assert face_ids(grid, f".fg-face{which}") == ids


def expect_run_state(page: Page) -> None:
    """What the person did, drawn: the five picked (locked), the eight ignored, face 13 picked
    on the second page of the others."""
    first = grids(page, 0).first
    expect(first).to_have_class(re.compile(r"\bfg-disabled\b"), timeout=TIMEOUT_MS)
    expect_faces(first, ".fg-selected", PICKED)
    stage = stage_output(page, 1)
    expect(stage.get_by_text("You picked 5 faces: 0, 2, 3, 4, 10")).to_be_visible()
    picked, others = grids(page, 1).nth(0), grids(page, 1).nth(1)
    assert face_ids(picked) == PICKED, "the next stage shows exactly the five picked"
    expect_faces(others, ".fg-ignored", OTHERS_PAGE_1)
    expect(others.locator(".fg-status")).to_have_text("1 selected, 8 ignored · page 1 of 3")
    others.get_by_role("button", name="More →").click()
    expect_faces(others, ".fg-selected", ["13"])


def kill_hard(example: ServedExample) -> None:
    """SIGKILL the server and its kernels, as a crash of the machine would."""
    processes.kill_hard(example.server)


def restart(example: ServedExample) -> None:
    """Start the server again on the same port and database; it replaces the killed one."""
    server = start_freezer(
        example.app, port=example.server.port, db_url=example.db_url,
        extra_args=("--auth", "name", "--admin-token", ADMIN_TOKEN, "--pool-size", "1"),
    )
    example.server = server.wait_ready_sync(SERVER_START_TIMEOUT)


def journal(db_url: str, run_id: str) -> list[dict[str, Any]]:
    """The browser widget messages the server journaled for the run (their payloads)."""

    async def read() -> list[dict[str, Any]]:
        store = await Store.open(db_url)
        try:
            return [event.payload for event in await store.events(run_id, kinds=["comm_msg"])]
        finally:
            await store.close()

    return run_async(read())


def test_selection_and_custom_message_survive_next_reload_and_a_server_crash(
    example: ServedExample, person: Page, guard: OriginGuard
) -> None:
    run_id = sign_in(person, example, "faye")
    wait_stage(person, 0)
    grid = grids(person, 0).first
    faces = grid.locator(".fg-face")
    expect(faces).to_have_count(24)
    faces.nth(0).click()
    faces.nth(2).click()
    faces.nth(4).click(modifiers=["Shift"])  # 2..4
    person.keyboard.press("ArrowDown")  # from face 4 to face 10, one row down
    person.keyboard.press(" ")
    expect_faces(grid, ".fg-selected", PICKED)
    expect(grid.locator(".fg-status")).to_have_text("5 selected")
    press_next(person, 1)

    # Disabled after Next: the kernel set the grid's `disabled`, the ES module honours it.
    expect(grid).to_have_class(re.compile(r"\bfg-disabled\b"), timeout=TIMEOUT_MS)
    faces.nth(1).click(force=True)  # aria-disabled: a person can still click it
    person.keyboard.press(" ")
    others = grids(person, 1).nth(1)
    others.get_by_role("button", name="Mark these 8 as ignored").click()  # a custom message
    expect_faces(others, ".fg-ignored", OTHERS_PAGE_1)  # drawn from the kernel's `ignored`
    others.get_by_role("button", name="More →").click()
    others.locator(".fg-face").first.click()
    expect(others.locator(".fg-status")).to_have_text("1 selected, 8 ignored · page 2 of 3")
    expect_faces(grid, ".fg-selected", PICKED)  # the locked grid took neither click nor key

    person.reload()  # the page re-attaches to the same kernel
    wait_stage(person, 1)
    expect_run_state(person)

    payloads = journal(example.db_url, run_id)
    custom = [p["content"] for p in payloads if p.get("method") == "custom"
              and p.get("content", {}).get("action") == "ignore"]
    assert custom == [{"action": "ignore", "ids": [int(i) for i in OTHERS_PAGE_1]}]
    selections = [p["state"]["selected"] for p in payloads
                  if p.get("method") == "update" and "selected" in p.get("state", {})]
    assert selections == [[0], [0, 2], [0, 2, 3, 4], [0, 2, 3, 4, 10], [13]]

    kill_hard(example)
    restart(example)
    person.goto(example.url(f"run/{run_id}"))  # a fresh kernel, rebuilt from the journal
    wait_stage(person, 1)
    expect_run_state(person)
    press_next(person, 2)
    summary = stage_output(person, 2)
    expect(summary.get_by_text(re.compile(
        r"'picked': \[0, 2, 3, 4, 10\],\s+'picked_later': \[13\],\s+"
        r"'ignored': \[1, 5, 6, 7, 8, 9, 11, 12\]"
    ))).to_be_visible()
    assert guard.foreign == [], f"requests left the server's origin: {guard.foreign[:5]}"


def policy_directives(policy: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            found[words[0]] = words[1:]
    return found


def test_the_run_page_is_served_with_the_page_policy(
    example: ServedExample, person: Page, guard: OriginGuard
) -> None:
    sign_in(person, example, "csp")
    person.add_init_script(f"({VIOLATIONS_JS})()")
    response = person.reload()
    assert response is not None
    policy = policy_directives(response.headers.get("content-security-policy", ""))
    assert policy == policy_directives(PAGE_POLICY)
    assert policy["default-src"] == ["'self'"] and "blob:" in policy["script-src"]
    assert not any(s in ("*", "http:", "https:") or "://" in s
                   for sources in policy.values() for s in sources)
    wait_stage(person, 0)
    expect(grids(person, 0).first.locator(".fg-face")).to_have_count(24)
    assert person.evaluate("window.__violations") == []
    person.evaluate(FOREIGN_JS)  # a script and an image from another origin
    person.wait_for_function("window.__violations.length >= 2")
    violations = person.evaluate("window.__violations")
    assert sorted(v.split()[0] for v in violations) == ["img-src", "script-src-elem"]
    assert all("cdn.example.com" in v for v in violations), violations
    assert guard.foreign == [], "the policy refused them before any request was made"
