"""Hostile sign-ins and forms: `next` targets that try to leave the server, a correct token
after many wrong ones, a database that refuses the sign-in, XSRF cookies set by someone else,
and runs started from another site. Real servers (`freezer serve`), real SQLite files.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route

from tests.faults.harness import TIMEOUT, write_app
from tests.support.pages import parse_page
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_freezer, start_server

ADMIN_TOKEN = "admin-" + uuid.uuid4().hex
EVIL = "evil.example"
BYPASSES = [
    "//evil.example/", "///evil.example/", "////evil.example/", "/\\evil.example/",
    "\\/evil.example/", "\\\\evil.example/", "/\t/evil.example/", "/%09/evil.example/",
    "/\n/evil.example/", "/\r\n/evil.example/", "/%0d%0a/evil.example/", "/%2F/evil.example/",
    "/%2f%2fevil.example/", "/%5Cevil.example/", "/%5C%5Cevil.example/", "https:evil.example",
    "https://evil.example/", "http:/evil.example/", "HTTPS://evil.example", "//evil.example@x/",
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "\x00//evil.example/", " //evil.example/",
    "/\u3000/evil.example/", "/\u2028/evil.example/", "/\ufeff/evil.example/",
    "\uff0f\uff0fevil.example/", "/\uff0fevil.example/", "//evil\u3002example/",
    "/./..//evil.example/", "/.%2e//evil.example/", "evil.example", "./evil.example",
    "@evil.example", "/\x7f/evil.example/",
]


def where_a_browser_goes(page_url: str, location: str) -> str:
    """The URL a browser resolves a `Location` to: WHATWG URL parsing strips leading and
    trailing C0 controls and spaces, drops every tab and newline, reads `\\` as `/`."""
    location = location.strip("".join(chr(c) for c in range(0x21)))
    location = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
    return urljoin(page_url, location)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("sign_in") / "app")


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[ServerProcess]:
    """`--auth name` under the base URL `/app/` (`server.base_url` ends in `/app/`)."""
    process = start_freezer(
        app_dir, base_url="/app/", cwd=app_dir,
        extra_args=("--pool-size", "0", "--auth", "name", "--admin-token", ADMIN_TOKEN),
    )
    try:
        yield process.wait_ready_sync(TIMEOUT)
    finally:
        process.stop()


async def sign_in_to(person: Person, target: str) -> tuple[int, str]:
    """Sign in with `?next=target` through the name form; the status and `Location`."""
    query = "login?next=" + quote(target, safe="")
    form = await person.get_page(query)
    response = await person.fetch(query, method="POST", follow_redirects=False, form={
        "name": "nora", "_xsrf": form.xsrf or person.cookies.get("_xsrf") or "",
    })
    return response.code, response.headers.get("Location", "")


def assert_stays(base: str, target: str, code: int, location: str) -> None:
    """The sign-in redirected to a page of this server under its base URL."""
    assert code == 302, (target, code)
    goes = urlsplit(where_a_browser_goes(base + "login", location))
    assert goes.scheme == "http" and goes.netloc == urlsplit(base).netloc, (target, location)
    assert goes.path.startswith(urlsplit(base).path), (target, location)


async def test_next_never_leaves_the_server(token_server: ServerProcess) -> None:
    base = token_server.base_url
    async with Person(base, request_timeout=TIMEOUT) as person:
        for target in BYPASSES:
            link = await person.fetch(f"login?token={ADMIN_TOKEN}&next=" + quote(target, safe=""),
                                      follow_redirects=False)
            assert_stays(base, target, link.code, link.headers.get("Location", ""))
        for raw in ("/%09/evil.example/", "/%0D%0A/evil.example/", "/%5Cevil.example/",
                    "/%2F/evil.example/", "%2F%2Fevil.example/", "/%E3%80%80/evil.example/"):
            link = await person.fetch(f"login?token={ADMIN_TOKEN}&next={raw}",
                                      follow_redirects=False)
            assert_stays(base, raw, link.code, link.headers.get("Location", ""))
        form = await person.get_page("login?next=" + quote("/\t/evil.example/", safe=""))
        assert EVIL not in form.html  # the sign-in form does not carry the target either
        link = await person.fetch(f"login?token={ADMIN_TOKEN}&next=/admin",
                                  follow_redirects=False)
        assert link.headers["Location"] == "/admin"


async def test_next_stays_under_the_base_url(server: ServerProcess) -> None:
    base = server.base_url
    async with Person(base, request_timeout=TIMEOUT) as person:
        for target in BYPASSES + ["/other-app/", "/app/../other/", "/app/./x", "/ap", "/app"]:
            code, location = await sign_in_to(person, target)
            assert_stays(base, target, code, location)
            assert location == "/app/", (target, location)
        # a path under the base URL is kept, query string and all
        code, location = await sign_in_to(person, "/app/run/abc?x=1&y=%C3%A9")
        assert (code, location) == (302, "/app/run/abc?x=1&y=%C3%A9")
        code, location = await sign_in_to(person, "/app/new?label=caf\u00e9")
        assert (code, location) == (302, "/app/new?label=caf%C3%A9")


@pytest.fixture(scope="module")
def token_server(app_dir: Path) -> Iterator[ServerProcess]:
    process = start_server(app_dir, "--pool-size", "0", "--auth", "token",
                           "--admin-token", ADMIN_TOKEN)
    try:
        yield process
    finally:
        process.stop()


async def test_the_right_token_signs_in_after_many_wrong_ones(
    token_server: ServerProcess,
) -> None:
    async with Person(token_server.base_url, request_timeout=TIMEOUT) as colleague, \
            Person(token_server.base_url, request_timeout=TIMEOUT) as admin:
        codes = [(await colleague.fetch(f"login?token={uuid.uuid4().hex}")).code
                 for _ in range(15)]
        assert codes[:10] == [403] * 10 and codes[10:] == [429] * 5, codes
        limited = await colleague.fetch(f"login?token={uuid.uuid4().hex}")
        assert limited.code == 429 and limited.headers.get("Retry-After")
        # the admin, behind the same address, is not locked out: the right token signs in
        signed_in = await admin.fetch(f"login?token={ADMIN_TOKEN}", follow_redirects=False)
        assert signed_in.code == 302, signed_in.code
        assert (await admin.fetch("admin")).code == 200
        # ... through the form too, and wrong tokens stay limited
        form = await colleague.get_page("login")
        posted = await colleague.fetch("login", method="POST", follow_redirects=False, form={
            "token": ADMIN_TOKEN, "_xsrf": form.xsrf or ""})
        assert posted.code == 302, posted.code
        assert (await colleague.fetch(f"login?token={uuid.uuid4().hex}")).code == 429
    assert token_server.log_tail(2000).count("wrong tokens in 60 s from") == 1


@contextlib.contextmanager
def sign_ins_refused(db_path: Path) -> Iterator[None]:
    """Make the server's database refuse new people (a full disk, to the server)."""
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as db:
        db.execute("CREATE TRIGGER refuse_users BEFORE INSERT ON users "
                   "BEGIN SELECT RAISE(ABORT, 'database or disk is full (injected)'); END")
        db.commit()
        try:
            yield
        finally:
            db.execute("DROP TRIGGER refuse_users")
            db.commit()


async def test_signing_in_while_the_disk_is_full_says_so_and_can_be_retried(
    server: ServerProcess, app_dir: Path
) -> None:
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        form = await person.get_page("login")
        fields = {"name": "fiona-" + uuid.uuid4().hex[:6], "_xsrf": form.xsrf or ""}
        with sign_ins_refused(app_dir / "freezer.db"):
            refused = await person.fetch("login", method="POST", form=fields,
                                         follow_redirects=False)
            body = refused.body.decode()
            assert refused.code == 503, (refused.code, body)
            assert refused.headers.get("Retry-After")
            assert "could not save your sign-in" in body and "try again" in body
            assert "Traceback" not in body and "disk is full" not in body
            retry_form = parse_page(refused.effective_url, refused.code, body)
            assert retry_form.xsrf, "the page offers the form again"
        again = await person.fetch("login", method="POST", follow_redirects=False,
                                   form={**fields, "_xsrf": retry_form.xsrf or ""})
        assert again.code == 302, again.code
        assert person.cookies.get("freezer-user")


async def test_an_anonymous_sign_in_while_the_disk_is_full_says_so(app_dir: Path) -> None:
    server = await asyncio.to_thread(start_server, app_dir, "--pool-size", "0")  # --auth none
    try:
        async with Person(server.base_url, request_timeout=TIMEOUT) as person:
            with sign_ins_refused(app_dir / "freezer.db"):
                refused = await person.fetch("", follow_redirects=True)
                body = refused.body.decode()
                assert refused.code == 503, (refused.code, body)
                assert "could not save your sign-in" in body and "Traceback" not in body
                assert 'name="name"' not in body  # no name to type in anonymous mode
            again = await person.get_page("", click_start=False)
            assert again.start_form is not None  # signed in: the start page
    finally:
        server.stop()


async def runs_of(app_dir: Path, name: str) -> list[str]:
    def read() -> list[str]:
        with contextlib.closing(sqlite3.connect(app_dir / "freezer.db", timeout=30)) as db:
            rows = db.execute("SELECT runs.id FROM runs JOIN users ON users.id = runs.user_id "
                              "WHERE users.name = ? ORDER BY runs.created_at", (name,))
            return [row[0] for row in rows]

    return await asyncio.to_thread(read)


async def test_a_forged_xsrf_cookie_and_field_are_refused(
    server: ServerProcess, app_dir: Path
) -> None:
    base = server.base_url
    async with Person(base, request_timeout=TIMEOUT) as bob, \
            Person(base, request_timeout=TIMEOUT) as ada:
        await bob.login(name="bob")
        await ada.login(name="ada")
        first = await bob.start()
        assert "/run/" in first.effective_url
        before = await runs_of(app_dir, "bob")
        run_id = before[-1]
        # someone who can set cookies for the host sets both halves of the double submit
        forged = "2|deadbeef|" + "00" * 16 + "|1700000000"
        bob.cookies.set("_xsrf", forged)
        response = await bob.fetch("new", method="POST", follow_redirects=False,
                                   form={"abandon": run_id, "_xsrf": forged})
        assert response.code == 403, response.code
        # a token made for another person does not work either
        ada_form = await ada.get_page("new", click_start=False)
        assert ada_form.start_form is not None
        response = await bob.fetch("new", method="POST", follow_redirects=False,
                                   form={"abandon": run_id, "_xsrf": ada_form.xsrf or ""})
        assert response.code == 403, response.code
        assert await runs_of(app_dir, "bob") == before
        # bob's own form does
        own = await bob.get_page("", click_start=False)
        response = await bob.fetch("new", method="POST", follow_redirects=False,
                                   form={"abandon": run_id, "_xsrf": own.xsrf or ""})
        assert response.code == 303, response.code
        assert len(await runs_of(app_dir, "bob")) == len(before) + 1


async def test_a_sign_in_form_made_before_signing_in_still_signs_in(
    server: ServerProcess, app_dir: Path
) -> None:
    # Two tabs show the sign-in form; the person signs in from the first. The second tab's form
    # was made before there was an identity (its token is the double-submit cookie's), so it
    # must still sign in, under the name typed there, not answer 403.
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        second_tab = await person.get_page("login")
        assert second_tab.xsrf
        await person.login(name="cleo")
        response = await person.fetch("login", method="POST", follow_redirects=False,
                                      form={"name": "cleo2", "_xsrf": second_tab.xsrf})
        assert response.code == 302, response.code
        assert "login" not in response.headers["Location"]
        started = await person.start()
        assert "/run/" in started.effective_url
        assert len(await runs_of(app_dir, "cleo2")) == 1  # the second tab's name signed in


async def test_a_start_link_from_another_site_starts_no_run(
    server: ServerProcess, app_dir: Path
) -> None:
    base = server.base_url
    async with Person(base, request_timeout=TIMEOUT) as carl:
        await carl.login(name="carl")
        assert await runs_of(app_dir, "carl") == []
        # what an <img src> or a link on another site makes the browser send
        page = await carl.get_page("new", click_start=False)
        assert page.start_form is not None and await runs_of(app_dir, "carl") == []
        assert (await carl.fetch("new", method="POST", form={})).code == 403
        assert await runs_of(app_dir, "carl") == []
        started = await carl.start()  # the person clicks Start
        assert "/run/" in started.effective_url
        assert len(await runs_of(app_dir, "carl")) == 1


BROWSER_BYPASSES = ["/%09/evil.example/", "//evil.example/", "/%5Cevil.example/",
                    "%5C/evil.example/", "/%0D%0A/evil.example/", "/%2F/evil.example/",
                    "https:evil.example"]
"""`next` values as written in the query string of the sign-in link."""


def test_chromium_stays_on_the_server_after_signing_in(
    token_server: ServerProcess, page: Page
) -> None:
    """What the probe saw: Chromium following `Location: /\\t/evil.example/` to evil.example."""
    reached: list[str] = []

    def evil(route: Route) -> None:
        reached.append(route.request.url)
        route.fulfill(status=200, body="evil")

    page.route("**://evil.example/**", evil)
    for target in BROWSER_BYPASSES:
        try:
            page.goto(token_server.base_url + f"login?token={ADMIN_TOKEN}&next={target}")
        except PlaywrightError as exc:  # a redirect is not routed: evil.example is looked up
            pytest.fail(f"next={target}: Chromium left the server: {exc.message.splitlines()[0]}")
        assert urlsplit(page.url).hostname == "127.0.0.1", (target, page.url)
    assert not reached, reached
