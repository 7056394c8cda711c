"""Hostile people at the HTTP level: another person's run or kernel, forged cookies, admin
routes, missing XSRF tokens, path traversal, markup typed into widgets, invite tokens, sign-in
guessing. One real server (`--auth name`, an admin token) serves every case.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from runtime.store.store import Store
from tests.faults.harness import TIMEOUT, act, click_next, journal, shows, write_app
from tests.support.errors import ClientError
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_server

ADMIN_TOKEN = "admin-" + uuid.uuid4().hex
MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'
NOTE_STAGES = (
    (
        "Write a note",
        "import ipywidgets as widgets\n"
        "note = widgets.Text(value='', description='note')\n"
        "note",
        ("note",),
    ),
    ("Done", "typed = note.value\nprint('typed:', typed)", ()),
)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("access") / "app", NOTE_STAGES,
                     collect={1: ("typed",)})


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[ServerProcess]:
    process = start_server(app_dir, "--pool-size", "1", "--auth", "name",
                           "--admin-token", ADMIN_TOKEN)
    try:
        yield process
    finally:
        process.stop()


async def signed_in(server: ServerProcess, name: str) -> Person:
    person = Person(server.base_url, request_timeout=TIMEOUT)
    await person.login(name=name)
    return person


async def test_another_persons_run_and_kernel_are_refused(server: ServerProcess) -> None:
    ada = await signed_in(server, "ada")
    bob = await signed_in(server, "bob")
    try:
        page = await ada.open("new")
        await page.wait_for(lambda p: bool(p.find_all(_model_name="TextModel")), TIMEOUT)
        run_id = page.page.url.rsplit("/", 1)[-1]
        kernel_id = page.kernel_id

        assert (await bob.fetch(f"run/{run_id}")).code == 404
        assert (await bob.fetch(f"api/kernels/{kernel_id}")).code == 403
        with pytest.raises(ClientError):
            await bob.open(f"run/{run_id}")
        request = HTTPRequest(
            page.ws_url.replace(page.session_id, uuid.uuid4().hex),
            headers={"Cookie": bob.cookies.header(), "Origin": bob.origin},
        )
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(request)
        assert refused.value.code == 403
        # Bob cannot abandon Ada's run by naming it in "start over"
        form_page = await bob.get_page("")
        xsrf = form_page.xsrf or bob.cookies.get("_xsrf") or ""
        await bob.fetch("new", method="POST", form={"abandon": run_id, "_xsrf": xsrf})
        assert (await ada.fetch(f"run/{run_id}")).code == 200
        # the kernel REST API and Voila's kernel routes are not exposed
        for path in ("api/kernels", f"api/kernels/{kernel_id}/restart",
                     f"api/kernels/{kernel_id}/interrupt", "api/sessions", "api/contents",
                     "api/terminals", "terminals/1"):
            response = await bob.fetch(path, method="POST", form={"_xsrf": xsrf})
            assert response.code in (403, 404, 405), (path, response.code)
        assert page.kernel_id in [s.kernel_id for s in ada.sessions]
    finally:
        await ada.close()
        await bob.close()


async def test_forged_or_tampered_identity_cookies_are_refused(server: ServerProcess) -> None:
    ada = await signed_in(server, "ada")
    try:
        page = await ada.open("new")
        run_id = page.page.url.rsplit("/", 1)[-1]
        signed = ada.cookies.get("freezer-user")
        assert signed
        fields = signed.split("|")
        forgeries = [
            "1", "2", signed.replace(signed[-4:], "0000"),  # unsigned ids, bad signature
            "|".join(fields[:-1] + ["0" * len(fields[-1])]),
            signed[:-1],
        ]
        for forged in forgeries:
            mallory = Person(server.base_url, cookies={"freezer-user": forged},
                             request_timeout=TIMEOUT)
            try:
                response = await mallory.fetch(f"run/{run_id}", follow_redirects=False)
                assert response.code in (302, 403, 404), (forged, response.code)
                if response.code == 302:
                    assert "/login" in response.headers["Location"]
                assert (await mallory.fetch("admin", follow_redirects=False)).code != 200
            finally:
                await mallory.close()
    finally:
        await ada.close()


async def test_admin_routes_need_an_admin(server: ServerProcess) -> None:
    anonymous = Person(server.base_url, request_timeout=TIMEOUT)
    bob = await signed_in(server, "bob")
    try:
        for path in ("admin", "admin/", "admin/export.csv", "admin/export.json"):
            response = await anonymous.fetch(path, follow_redirects=False)
            assert response.code in (302, 403), (path, response.code)
            response = await bob.fetch(path, follow_redirects=False)
            assert response.code == 403, (path, response.code)
            assert b"anonymous-" not in response.body and b"ada" not in response.body
        # the admin name is reserved; the wrong token is refused
        with pytest.raises(ClientError):
            await Person(server.base_url).login(name="admin")
        wrong = Person(server.base_url, request_timeout=TIMEOUT)
        assert (await wrong.fetch(f"login?token={ADMIN_TOKEN}x")).code != 200 or \
            (await wrong.fetch("admin", follow_redirects=False)).code != 200
        await wrong.close()
    finally:
        await anonymous.close()
        await bob.close()


async def test_forms_without_xsrf_are_refused(server: ServerProcess) -> None:
    bob = await signed_in(server, "bob")
    stranger = Person(server.base_url, request_timeout=TIMEOUT)
    try:
        for person, path, form in (
            (stranger, "login", {"name": "eve"}),
            (bob, "new", {"abandon": ""}),
            (bob, "login", {"name": "eve"}),
        ):
            response = await person.fetch(path, method="POST", form=form,
                                          follow_redirects=False)
            assert response.code == 403, (path, response.code)
        assert stranger.cookies.get("freezer-user") is None
    finally:
        await bob.close()
        await stranger.close()


TRAVERSALS = (
    "voila/files/../app.json", "voila/files/%2e%2e/app.json", "voila/files/..%2fapp.json",
    "voila/files/app.json", "voila/files/freezer.db", "voila/files/.freezer_cookie_secret",
    "voila/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "voila/files//etc/passwd",
    "voila/static/../../app.json", "voila/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "voila/static/..%2f..%2f..%2fetc%2fpasswd", "static/../app.json",
    "voila/templates/../../app.json", "voila/render/app.ipynb", "voila/tree/",
    "voila/api/shutdown/..%2f..%2f", "files/app.json", "app.ipynb", "app.json",
    "freezer.db", ".freezer_cookie_secret", "voila/files/app.ipynb", "tree", "notebooks/app.ipynb",
)


async def test_path_traversal_and_app_files_are_refused(
    server: ServerProcess, app_dir: Path
) -> None:
    bob = await signed_in(server, "bob")
    secret = (app_dir / ".freezer_cookie_secret").read_bytes()
    cell_source = b"widgets.Text(value=''"
    try:
        for path in TRAVERSALS:
            response = await bob.fetch(path, follow_redirects=True)
            body = response.body or b""
            assert b"SQLite format 3" not in body, path
            assert secret not in body, path
            assert b"root:x:0:0" not in body, path
            assert cell_source not in body and b"typed = note.value" not in body, path
            if "app.json" in path or "freezer.db" in path or "passwd" in path:
                assert response.code in (400, 403, 404), (path, response.code)
    finally:
        await bob.close()


async def test_markup_typed_into_a_widget_shows_as_text(
    server: ServerProcess, app_dir: Path
) -> None:
    carol = await signed_in(server, "carol <b>bold</b>")
    admin = Person(server.base_url, request_timeout=TIMEOUT)
    try:
        page = await carol.open("new")
        await page.wait_for(lambda p: bool(p.find_all(_model_name="TextModel")), TIMEOUT)
        run_id = page.page.url.rsplit("/", 1)[-1]
        await act(page, await page.set_value(page.find(_model_name="TextModel"), MARKUP))
        await click_next(page)
        await page.wait_for(shows("typed:"), TIMEOUT)
        await eventually(lambda: journal(Path(app_dir), run_id, ("collected",)), "collected")
        runs_page = await carol.fetch("")
        assert b"<b>bold</b>" not in runs_page.body

        assert (await admin.fetch(f"login?token={ADMIN_TOKEN}")).code == 200
        shown = b""
        for path in ("admin", f"admin?run={run_id}", f"admin/?run={run_id}"):
            response = await admin.fetch(path)
            assert response.code == 200, path
            assert b"<script>alert" not in response.body, path
            assert b"<img src=x" not in response.body, path
            assert b"<b>bold</b>" not in response.body, path
            shown += response.body
        assert b"&lt;script&gt;alert(" in shown  # the typed value is shown, as text
        assert b"carol &lt;b&gt;bold&lt;/b&gt;" in shown  # the name is shown, as text
        exported = await admin.fetch("admin/export.csv")
        assert exported.headers["Content-Type"].startswith("text/csv")
        assert "nosniff" in exported.headers.get("X-Content-Type-Options", "nosniff")
        rows = list(csv.reader(io.StringIO(exported.body.decode())))
        assert any(MARKUP in cell for row in rows for cell in row)  # kept exactly, as data
        as_json = await admin.fetch("admin/export.json")
        assert as_json.headers["Content-Type"].startswith("application/json")
        assert json.dumps(MARKUP) in json.dumps(json.loads(as_json.body))
    finally:
        await carol.close()
        await admin.close()


async def test_invite_tokens_are_stored_hashed(app_dir: Path, server: ServerProcess) -> None:
    token = "invite-" + uuid.uuid4().hex
    store = await Store.open(f"sqlite:///{app_dir / 'freezer.db'}")
    try:
        await store.create_invite("dora", token)
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(app_dir / "freezer.db", timeout=30)) as db:
        dump = "\n".join(db.iterdump())
        (stored,) = db.execute("SELECT token_hash FROM users WHERE name = 'dora'").fetchone()
    assert token not in dump
    assert stored == hashlib.sha256(token.encode()).hexdigest()


async def test_cookies_are_httponly_and_samesite(server: ServerProcess) -> None:
    person = Person(server.base_url, request_timeout=TIMEOUT)
    try:
        form = await person.get_page("login")
        response = await person.fetch(
            "login", method="POST", follow_redirects=False,
            form={"name": "erin", "_xsrf": form.xsrf or person.cookies.get("_xsrf") or ""},
        )
        cookies = [c for c in response.headers.get_list("Set-Cookie")
                   if c.startswith("freezer-user=")]
        assert cookies, response.headers
        assert "httponly" in cookies[0].lower() and "samesite=lax" in cookies[0].lower()
    finally:
        await person.close()


async def test_sign_in_guessing_is_rate_limited(tmp_path: Path, app_dir: Path) -> None:
    server = await asyncio.to_thread(start_server, app_dir, "--pool-size", "0",
                                     "--auth", "token", "--admin-token", ADMIN_TOKEN)
    guesser = Person(server.base_url, request_timeout=TIMEOUT)
    try:
        codes = [(await guesser.fetch(f"login?token={quote(uuid.uuid4().hex)}")).code
                 for _ in range(50)]
        assert 429 in codes, codes
    finally:
        await guesser.close()
        server.stop()
