"""`freezer preview`: builds and serves a notebook, and rebuilds when the notebook is saved."""

from __future__ import annotations

import asyncio
import http.cookiejar
import importlib.util
import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

from freezer.preview import preview_main
from tests.support.eventually import eventually
from tests.support.processes import ServerProcess, free_port

needs_server = pytest.mark.skipif(
    importlib.util.find_spec("runtime.web.app") is None,
    reason="the server (runtime/web/app.py) is not there yet",
)
WAIT = 120.0


def notebook(heading: str) -> dict[str, object]:
    """A two-stage notebook: a text box, then a cell that reads it."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [
            {"cell_type": "markdown", "id": "m0", "metadata": {}, "source": f"# {heading}"},
            {
                "cell_type": "code", "id": "c0", "metadata": {}, "execution_count": None,
                "outputs": [],
                "source": "import ipywidgets as w\nname = w.Text(value='x')\nname",
            },
            {
                "cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None,
                "outputs": [], "source": "print('hello', name.value)",
            },
        ],
    }


async def fetch_page(server: ServerProcess) -> str:
    """GET the app like a browser (cookies kept, redirects followed); the page of a new run."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )

    def fetch() -> str:
        with opener.open(server.base_url, timeout=60) as response:
            assert response.status == 200
            return str(response.read().decode())

    try:
        return await asyncio.to_thread(fetch)
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"GET {exc.url}: {exc.code}\n{server.log_tail(80)}") from None


async def fetch_health(server: ServerProcess) -> str:
    """The server's `/health` JSON text."""
    response = await AsyncHTTPClient().fetch(server.base_url + "health", request_timeout=30)
    return str(response.body.decode())


async def wait_for_log(
    server: ServerProcess, pattern: str, timeout: float = WAIT
) -> re.Match[str]:
    """Wait until the preview's output matches `pattern` (fails at once if the preview ended)."""

    def search() -> re.Match[str] | None:
        found = re.search(pattern, server.log_path.read_text(errors="replace"))
        if found is None and server.process.poll() is not None:
            raise AssertionError(f"no {pattern!r} in the preview's output:\n{server.log_tail()}")
        return found

    match: re.Match[str] = await eventually(
        search, lambda: f"{pattern!r} in the preview's output:\n{server.log_tail()}", timeout,
        interval=0.1,
    )
    return match


@needs_server
async def test_preview_serves_and_rebuilds_on_save(tmp_path: Path) -> None:
    source = tmp_path / "hello.ipynb"
    source.write_text(json.dumps(notebook("First version")), encoding="utf-8")
    port = free_port()
    argv = [
        sys.executable, "-m", "freezer", "preview", str(source), f"--port={port}", "--no-browser",
    ]
    server = ServerProcess(argv, port, cwd=tmp_path, ready_path="health", name="preview")
    try:
        first = await wait_for_log(server, r"built hello.ipynb into (\S+)")
        await server.wait_ready(WAIT)
        page = await fetch_page(server)
        assert "First version" in page
        first_app = json.loads(await fetch_health(server))["app_id"]

        source.write_text("{ not json", encoding="utf-8")  # saved mid-edit
        await wait_for_log(server, r"the build failed; still serving the previous version")
        assert json.loads(await fetch_health(server))["app_id"] == first_app  # still serving

        source.write_text(json.dumps(notebook("Second version")), encoding="utf-8")
        await wait_for_log(server, r"rebuilt \(build 3\)")
        second = await wait_for_log(server, r"built hello.ipynb into (\S+build-3)")
        assert not Path(first.group(1)).exists()  # the previous build was removed
        assert "Second version" in await fetch_page(server)
        assert json.loads(await fetch_health(server))["app_id"] != first_app
        assert Path(second.group(1)).is_dir()
    finally:
        server.stop()
    assert not Path(second.group(1)).exists()  # Ctrl-C / SIGTERM removed the temporary apps


def test_missing_notebook_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert preview_main([str(tmp_path / "nope.ipynb"), "--no-browser"]) == 2
    assert "no such file" in capsys.readouterr().err
