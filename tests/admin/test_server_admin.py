"""The admin pages inside the real server (`freezer serve`), signed in through its own `/login`."""

from __future__ import annotations

import asyncio
import http.cookiejar
import importlib.util
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from admin_seed import HOSTILE_INPUT, SeededApp, Store

from tests.support.processes import ServerProcess

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("runtime.web.app") is None,
    reason="the server (runtime/web/app.py) is not there yet",
)
ADMIN_TOKEN = "admin-secret-for-tests"
LABELER_TOKEN = "labeler-invite-for-tests"


async def invite_labeler(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        await store.create_invite("erin", LABELER_TOKEN)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def server(seeded_app: SeededApp, serve: Callable[..., ServerProcess]) -> ServerProcess:
    """`freezer serve` on the seeded app with token sign-in and no kernel pool."""
    asyncio.run(invite_labeler(seeded_app.db_url))
    return serve(
        seeded_app.app_dir, "--pool-size=0", "--auth", "token", "--admin-token", ADMIN_TOKEN
    )


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def browser_like() -> urllib.request.OpenerDirector:
    """Keeps cookies; does not follow redirects (signing in would go on to start a run)."""
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect
    )


def get(opener: urllib.request.OpenerDirector, url: str) -> tuple[int, dict[str, str], str]:
    """Status, headers and body; HTTP errors and redirects are answers too."""
    try:
        with opener.open(url, timeout=60) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def sign_in(token: str, server: ServerProcess) -> urllib.request.OpenerDirector:
    person = browser_like()
    status, _, _ = get(person, server.base_url + "login?token=" + token)
    assert status == 302
    return person


def test_admin_signed_in_with_the_admin_token_sees_every_run(
    server: ServerProcess, seeded_app: SeededApp
) -> None:
    admin = sign_in(ADMIN_TOKEN, server)
    status, headers, page = get(admin, server.base_url + "admin")
    assert status == 200, page
    assert headers["Content-Type"].startswith("text/html")
    for run_id in seeded_app.run_ids.values():
        assert run_id in page
    assert "Face labels" in page
    assert page.count("<svg") == 3
    assert HOSTILE_INPUT not in page and "&lt;img src=x onerror=alert(1)&gt;" in page

    status, headers, body = get(admin, server.base_url + "admin/export.json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert {row["run_id"] for row in json.loads(body)} == set(seeded_app.run_ids.values())


def test_signed_in_labeler_gets_403(server: ServerProcess) -> None:
    labeler = sign_in(LABELER_TOKEN, server)
    for path in ("admin", "admin/export.csv", "admin/export.json"):
        status, headers, body = get(labeler, server.base_url + path)
        assert status == 403, (path, body)
        assert headers["Content-Type"].startswith("text/plain")
        assert body.startswith("Only an admin can see this page.")


def test_visitor_not_signed_in_is_sent_to_login(server: ServerProcess) -> None:
    status, headers, _ = get(browser_like(), server.base_url + "admin")
    assert status == 302
    assert headers["Location"].startswith("/login?next=")
