"""`freezer serve` options from config files (the app's own, or `--config`), `--help-all`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from tests.server.conftest import write_app
from tests.support.processes import LOOPBACK, ServerProcess, free_port

# For each command line in argv[1] (JSON): the options `freezer serve` ends up with, or, when
# it stops before serving, its exit status and what it printed on stderr. One interpreter for
# them all: importing the server takes seconds.
RUN_COMMAND_LINES = """
import contextlib, io, json, sys
from runtime.web.app import FreezerApp, serve_main
out = []
for argv in json.loads(sys.argv[1]):
    if argv[0] == "--options":
        app = FreezerApp()
        app.initialize(argv[1:])
        names = ("port", "auth", "pool_size", "base_url", "trust_proxy", "shutdown_timeout")
        out.append({name: getattr(app, name) for name in names})
    else:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = serve_main(argv)
        out.append({"status": status, "stderr": err.getvalue()})
print(json.dumps(out))
"""


def run_command_lines(*command_lines: list[str]) -> list[dict[str, Any]]:
    """`freezer serve` on each command line; `["--options", ...]` reports the options only."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_COMMAND_LINES, json.dumps(command_lines)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return write_app(tmp_path / "app")


def test_app_config_file_is_read_and_the_command_line_wins(app_dir: Path) -> None:
    (app_dir / "freezer_config.py").write_text(
        "c.FreezerApp.auth = 'name'\n"
        "c.FreezerApp.pool_size = 3\n"
        "c.FreezerApp.base_url = '/labeling'\n"
        "c.FreezerApp.trust_proxy = True\n"
    )
    from_file, changed = run_command_lines(
        ["--options", str(app_dir)],
        ["--options", str(app_dir), "--pool-size", "0", "--auth", "token", "--base-url", "/x/"],
    )
    assert from_file == {
        "port": 8866, "auth": "name", "pool_size": 3, "base_url": "/labeling/",
        "trust_proxy": True, "shutdown_timeout": 20.0,
    }
    assert (changed["pool_size"], changed["auth"], changed["base_url"]) == (0, "token", "/x/")
    assert changed["trust_proxy"] is True  # what the command line does not say, the file does


def test_config_option_names_the_file_instead_of_the_app_dir(
    app_dir: Path, tmp_path: Path
) -> None:
    (app_dir / "freezer_config.json").write_text(json.dumps(
        {"FreezerApp": {"auth": "name", "pool_size": 4}}
    ))
    elsewhere = tmp_path / "etc" / "labeling.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps({"FreezerApp": {"auth": "token", "shutdown_timeout": 5}}))
    own, chosen = run_command_lines(
        ["--options", str(app_dir)], ["--options", str(app_dir), "--config", str(elsewhere)]
    )
    assert own["pool_size"] == 4  # JSON works too
    assert (chosen["auth"], chosen["shutdown_timeout"], chosen["pool_size"]) == ("token", 5.0, 1)


def test_a_bad_config_file_is_a_one_line_error(app_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.py"
    (tmp_path / "syntax.py").write_text("c.FreezerApp.port = \n")
    (tmp_path / "wrong_type.py").write_text("c.FreezerApp.pool_size = 'many'\n")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "config.txt").write_text("port = 1\n")
    names = ("syntax.py", "wrong_type.py", "broken.json", "config.txt")
    files = [missing, *(tmp_path / name for name in names)]
    outcomes = run_command_lines(
        *([str(app_dir), "--config", str(path), "--no-browser"] for path in files)
    )
    for path, outcome in zip(files, outcomes, strict=True):
        message = outcome["stderr"].strip()
        assert outcome["status"] == 2, (path.name, outcome)
        assert message.startswith("freezer serve: ") and "\n" not in message, message
        assert path.name in message, message


def test_help_all_lists_every_option_with_its_help() -> None:
    done = subprocess.run([sys.executable, "-m", "freezer", "serve", "--help-all"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for option in ("--trust-proxy", "--config=", "--shutdown-timeout=", "--base-url=", "--db=",
                   "--FreezerApp.trust_proxy=", "--FreezerApp.shutdown_timeout=",
                   "--FreezerApp.cull_idle_timeout=", "--FreezerApp.config_file="):
        assert option in text, f"{option} missing from --help-all"
    assert "X-Forwarded-Proto" in text and "TimeoutStopSec" in text


@pytest.fixture(scope="module")
def configured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`freezer serve APP` with every option from `APP/freezer_config.json` (no trust_proxy)."""
    app_dir = write_app(tmp_path_factory.mktemp("configured") / "app")
    port = free_port()
    (app_dir / "freezer_config.json").write_text(json.dumps({"FreezerApp": {
        "port": port, "ip": LOOPBACK, "base_url": "/labeling/", "pool_size": 0,
        "open_browser": False,
    }}))
    argv = [sys.executable, "-m", "freezer", "serve", str(app_dir)]
    server = ServerProcess(argv, port, cwd=app_dir, base_path="/labeling/",
                           ready_path="health", name="freezer")
    try:
        yield server.wait_ready_sync(90)
    finally:
        server.stop()


def sign_in_cookies(server: ServerProcess, headers: dict[str, str]) -> list[str]:
    """The Set-Cookie headers of `/labeling/login` (anonymous sign-in, not followed)."""
    connection = HTTPConnection(LOOPBACK, server.port, timeout=30)
    try:
        connection.request("GET", "/labeling/login", headers=headers)
        response = connection.getresponse()
        assert response.status == 302, response.status
        return response.headers.get_all("Set-Cookie") or []
    finally:
        connection.close()


def test_a_server_configured_by_file_ignores_forwarded_headers_unless_trusted(
    configured_server: ServerProcess,
) -> None:
    with urlopen(configured_server.base_url + "health", timeout=30) as response:
        assert json.loads(response.read())["status"] == "ok"
    cookies = sign_in_cookies(configured_server, {
        "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9",
    })
    assert cookies and not any("secure" in c.lower() for c in cookies), cookies


def test_the_identity_cookie_stays_under_the_base_url(configured_server: ServerProcess) -> None:
    cookies = sign_in_cookies(configured_server, {})
    identity = [c for c in cookies if c.startswith("freezer-user=")]
    assert identity and "Path=/labeling/" in identity[0], identity
