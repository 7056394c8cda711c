"""The labeling app deployed as DEPLOY.md says: `freezer serve --base-url /labeling/
--trust-proxy` behind nginx (the site in `deploy/nginx.conf`, over TLS), a person in headless
Chromium going only through the proxy, and a SIGTERM mid-run that the run survives.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PlaywrightLoop
from tests.deploy.conftest import Nginx, start_server
from tests.support.eventually import eventually_sync
from tests.support.offline import OfflineGuard
from tests.support.processes import ServerProcess, child_pids

TIMEOUT_MS = 90_000
SHUTDOWN_TIMEOUT = 20.0  # --shutdown-timeout given to the server
EXIT_MARGIN = 15.0  # seconds beyond it for the interpreter to exit


@pytest.fixture
def tls_page(browser: Browser, playwright_loop: PlaywrightLoop) -> Iterator[Page]:
    """A page that accepts the test's self-signed certificate and never leaves the machine."""
    playwright_loop.claim()
    context = browser.new_context(ignore_https_errors=True)
    guard = OfflineGuard()
    context.route("**/*", guard)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        yield page
    finally:
        try:
            context.close()
        finally:
            playwright_loop.release()
    assert not guard.foreign, f"the page requested hosts other than loopback: {guard.foreign[:5]}"


def journal_rows(app_dir: Path, run_id: str) -> list[tuple[int, str, str]]:
    """(seq, kind, payload) of a run's events, straight from the SQLite file."""
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        return db.execute("SELECT seq, kind, payload FROM events WHERE run_id = ? ORDER BY seq",
                          (run_id,)).fetchall()


def label_events(app_dir: Path, run_id: str) -> list[dict[str, Any]]:
    """The browser's widget updates in the journal that chose an option (a person or a label)."""
    states = []
    for _, kind, payload in journal_rows(app_dir, run_id):
        data = json.loads(payload or "null") or {}
        if kind == "comm_msg" and "index" in data.get("state", {}):
            states.append(data["state"])
    return states


def run_row(app_dir: Path, run_id: str) -> tuple[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        status, stage = db.execute("SELECT status, stage FROM runs WHERE id = ?",
                                   (run_id,)).fetchone()
        return str(status), int(stage)


def results(app_dir: Path, run_id: str) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        rows = db.execute("SELECT name, value FROM results WHERE run_id = ?", (run_id,))
        return {name: json.loads(value) for name, value in rows}


def running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def enabled_next(page: Page) -> Any:
    return page.get_by_role("button", name="Next", disabled=False)


def answer_buttons(page: Page, label: str) -> Any:
    """The `label` button ("same" / "different") of every photo card, in page order."""
    return page.locator(".widget-toggle-buttons").filter(has_text="different") \
        .locator(".widget-toggle-button", has_text=label)


def health_through(proxy: Nginx) -> dict[str, Any]:
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with urlopen(proxy.url + "health", timeout=30, context=unverified) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


def stop_mid_run(
    server: ServerProcess, app_dir: Path, run_id: str, python: Path, args: tuple[str, ...]
) -> ServerProcess:
    """SIGTERM the server: exit status 0 within the bound, no kernel left, the journal kept;
    then start it again on the same port (nginx stays up) and return the new server."""
    kernels = child_pids(server.pid)
    assert kernels, "the server runs no kernel processes"
    interpreters = {Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                    for pid in kernels}
    assert interpreters == {str(python)}, "kernels must run on the app's own environment"
    before = journal_rows(app_dir, run_id)
    server.process.send_signal(signal.SIGTERM)
    try:
        status = server.process.wait(SHUTDOWN_TIMEOUT + EXIT_MARGIN)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running after SIGTERM:\n{server.log_tail()}") from None
    assert status == 0, server.log_tail()
    assert [pid for pid in kernels if running(pid)] == [], "kernels left behind"
    after = journal_rows(app_dir, run_id)
    assert after[: len(before)] == before, "journal rows lost on SIGTERM"
    assert "stopping" in server.log_tail(), server.log_tail()
    server.stop()
    return start_server(python, app_dir, *args, port=server.port)


def test_a_labeler_works_through_nginx_and_the_run_survives_sigterm(
    labeling_app: Path, server_python: Path, nginx: Any, tls_page: Page
) -> None:
    args = ("--trust-proxy", "--pool-size", "1", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT))
    server: ServerProcess = start_server(server_python, labeling_app, *args)
    try:
        proxy: Nginx = nginx(server.port)
        page = tls_page
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))

        # stage 1 -> 3 through the proxy: pick Alan, Next, keep the threshold, Next
        page.goto(proxy.url)
        page.get_by_role("button", name="Start").click()
        expect(page).to_have_url(re.compile(re.escape(proxy.url) + r"run/[\w-]+$"))
        run_id = page.url.rsplit("/", 1)[-1]
        page.locator(".widget-toggle-button", has_text="Alan").click()
        enabled_next(page).click()
        expect(page.get_by_text("distances of 240 photos to Alan")).to_be_visible()
        enabled_next(page).click()
        expect(answer_buttons(page, "same")).to_have_count(12)

        # stage 3: two labels, journaled, then the server is told to stop
        answer_buttons(page, "same").nth(0).click()
        answer_buttons(page, "same").nth(1).click()
        eventually_sync(lambda: len(label_events(labeling_app, run_id)) == 3,
                        "the person and two labels in the journal")
        assert sockets and all(url.startswith(f"wss://127.0.0.1:{proxy.port}/labeling/")
                               for url in sockets), sockets

        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["freezer-user"]["secure"], "identity cookie not Secure over https"
        assert all(c["secure"] for c in cookies.values()), cookies

        server = stop_mid_run(server, labeling_app, run_id, server_python, args)

        # the same page, reloaded through the proxy: the run replays to where it was
        page.reload()
        same = answer_buttons(page, "same")
        expect(same).to_have_count(12)
        expect(same.nth(0)).to_have_class(re.compile(r"\bmod-active\b"))
        expect(same.nth(1)).to_have_class(re.compile(r"\bmod-active\b"))
        expect(same.nth(2)).not_to_have_class(re.compile(r"\bmod-active\b"))
        same.nth(2).click()
        enabled_next(page).click()
        expect(page.get_by_text("3 of 12 photos labeled")).to_be_visible()

        eventually_sync(lambda: run_row(labeling_app, run_id)[0] == "finished",
                        "the run to be recorded as finished")
        summary = results(labeling_app, run_id)["summary"]
        assert (summary["person"], summary["labeled"], summary["same"]) == ("Alan", 3, 3)
        health = health_through(proxy)
        assert health["status"] == "ok" and health["runs"] >= 1 and health["live_kernels"] >= 1
    finally:
        server.stop()
