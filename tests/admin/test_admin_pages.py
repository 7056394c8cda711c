"""The admin handlers on a real Tornado server (a free port, the real store and SQLite file).

The server is a tiny Tornado application that mounts only the admin handlers, with a stub
identity provider that reads the user from request headers; everything past identity (the admin
check, the store, the page, the charts, the exports) is the real code.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import tornado.web
from admin_seed import FORMULA_NAME, FORMULA_NOTE, HOSTILE_INPUT, HOSTILE_NAME, SeededApp, Store
from jupyter_server.auth.identity import IdentityProvider
from playwright.sync_api import Page
from tornado.httpserver import HTTPServer

from runtime.store.export_format import rows_to_json
from runtime.web.admin import admin_routes
from runtime.web.admin_data import VALUE_LIMIT, fmt_value
from runtime.web.auth import FreezerUser
from tests.support.processes import free_port

USER_HEADER = "X-Test-User"
ADMIN_HEADER = "X-Test-Admin"
ADMIN = {USER_HEADER: "boss", ADMIN_HEADER: "1"}


class HeaderIdentityProvider(IdentityProvider):  # type: ignore[misc]
    """Stub identity: the user named in a request header; admin when another header says so."""

    def get_user(self, handler: tornado.web.RequestHandler) -> FreezerUser | None:
        name = handler.request.headers.get(USER_HEADER)
        if not name:
            return None
        is_admin = handler.request.headers.get(ADMIN_HEADER) == "1"
        return FreezerUser(username=name, name=name, user_id=1, is_admin=is_admin)


@dataclass
class AdminServer:
    """A Tornado server in a thread of its own with the admin handlers mounted at `/base/`."""

    url: str
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread


def start_admin_server(db_url: str) -> tuple[AdminServer, Any, HTTPServer]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port = free_port()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        store = loop.run_until_complete(Store.open(db_url))
        app = tornado.web.Application(
            admin_routes("/base/", store=store, title="Face labels"),
            identity_provider=HeaderIdentityProvider(),
            login_url="/base/login",
            base_url="/base/",
        )
        holder["store"] = store
        holder["server"] = app.listen(port, address="127.0.0.1")
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="admin-test-server", daemon=True)
    thread.start()
    assert started.wait(30), "the test server did not start"
    server = AdminServer(f"http://127.0.0.1:{port}/base/", loop, thread)
    return server, holder["store"], holder["server"]


@pytest.fixture(scope="module")
def admin_server(seeded_app: SeededApp) -> Iterator[AdminServer]:
    server, store, http_server = start_admin_server(seeded_app.db_url)
    try:
        yield server
    finally:

        async def shutdown() -> None:
            http_server.stop()
            await store.close()

        asyncio.run_coroutine_threadsafe(shutdown(), server.loop).result(30)
        server.loop.call_soon_threadsafe(server.loop.stop)
        server.thread.join(30)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


def get(url: str, headers: dict[str, str] | None = None) -> Reply:
    """GET without following redirects; HTTP errors are replies too."""
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as response:
            return Reply(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read().decode())


def test_visitor_not_signed_in_is_sent_to_login(admin_server: AdminServer) -> None:
    reply = get(admin_server.url + "admin")
    assert reply.status == 302
    assert reply.headers["Location"].startswith("/base/login?next=")


@pytest.mark.parametrize("path", ["admin", "admin/", "admin/export.csv", "admin/export.json"])
def test_non_admin_gets_403_and_a_plain_sentence(admin_server: AdminServer, path: str) -> None:
    reply = get(admin_server.url + path, {USER_HEADER: "alice"})
    assert reply.status == 403
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.body == "Only an admin can see this page. Sign in with an admin account.\n"


def test_admin_page_shows_runs_progress_and_results(
    admin_server: AdminServer, seeded_app: SeededApp
) -> None:
    reply = get(admin_server.url + "admin", ADMIN)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.headers["Cache-Control"] == "no-store"
    assert "script-src" not in reply.headers["Content-Security-Policy"]  # default-src 'none'
    page = reply.body
    for run_id in seeded_app.run_ids.values():
        assert run_id in page
    assert "3/3 · Save" in page  # alice: finished on the last stage
    assert "1/3 · Pick the threshold" in page  # dave: just started
    assert "2/3 · Label samples" in page  # the formula run failed in stage 1
    assert page.count("<svg") == 3  # the funnel, threshold, count (note is text: no chart)
    assert "runs 3 · min -0.5 · mean 0.2 · max 0.7" in page  # threshold summary
    assert 'href="/base/admin/export.csv"' in page


def test_admin_page_counts_how_far_people_got(admin_server: AdminServer) -> None:
    page = get(admin_server.url + "admin", ADMIN).body
    funnel = page[page.index('<table class="funnel">'):]
    funnel = funnel[: funnel.index("</table>")]
    cells = [
        line.strip() for line in funnel.split("<td") if 'class="num"' in line
    ]
    counts = [cell.split(">")[1].split("<")[0] for cell in cells]
    # 4 runs started, 3 reached stage 2, 2 reached stage 3, 1 finished
    assert counts == ["4", "3", "2", "1"]


def test_typed_html_is_escaped_on_the_admin_page(admin_server: AdminServer) -> None:
    page = get(admin_server.url + "admin", ADMIN).body
    assert HOSTILE_NAME not in page and HOSTILE_INPUT not in page
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page and "<img" not in page


def test_typed_html_shows_as_text_in_a_browser(admin_server: AdminServer, page: Page) -> None:
    page.set_extra_http_headers(ADMIN)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(admin_server.url + "admin")
    runs_text = page.locator("table.runs").inner_text()
    assert HOSTILE_NAME in runs_text
    assert HOSTILE_INPUT in runs_text
    assert page.locator("img").count() == 0 and page.locator("script").count() == 0
    assert page.locator("figure svg").count() == 3
    assert page.locator("figure svg").first.bounding_box() is not None
    assert dialogs == []


def test_export_endpoints(admin_server: AdminServer, seeded_app: SeededApp) -> None:
    reply = get(admin_server.url + "admin/export.csv", ADMIN)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in reply.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(reply.body, newline="")))
    assert {row["run_id"] for row in rows} == set(seeded_app.run_ids.values())
    formula_row = next(row for row in rows if row["user"] == "'" + FORMULA_NAME)
    assert formula_row["result.note"] == "'" + FORMULA_NOTE

    reply = get(admin_server.url + "admin/export.json", ADMIN)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    data = json.loads(reply.body)
    assert {row["run_id"] for row in data} == set(seeded_app.run_ids.values())
    assert any(row["results"].get("note") == HOSTILE_INPUT for row in data)


def test_long_values_are_cut_in_the_page_but_not_in_exports() -> None:
    labels = list(range(1000))
    text = fmt_value(labels)
    assert len(text) == VALUE_LIMIT and text.endswith("…") and text.startswith("[0, 1, 2")
    assert fmt_value("short") == "short" and fmt_value(0.123456789) == "0.1235"
    assert json.loads(rows_to_json([{"results": {"labels": labels}}]))[0]["results"]["labels"] == (
        labels
    )
