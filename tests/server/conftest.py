"""Fixtures of the server tests: app directories written by hand, Freezer servers in subprocesses.

- `write_app(directory, stages, parameters)` writes `app.json` (through `runtime.manifest`) and
  the one-cell `app.ipynb`, as `freezer build` would.
- `serve(app_dir, *args)` starts `freezer serve APP --port N ...` as a child process (the real
  entry point, real kernels, a real SQLite file) and waits until `/health` answers. Servers are
  stopped at the end of the module unless a test stops one itself.
- `open_store(app_dir)` opens the server's SQLite database from the test (WAL lets both read).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import pytest

from runtime.manifest import Cell, Manifest, Parameter, Stage, WaitsOn, dump
from runtime.store.store import Store
from tests.support.testing import ServerProcess, free_port

SERVER_START_TIMEOUT = 90.0
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
"""Where the run page and admin screenshots the docs show are written."""

SLIDER_STAGES = (
    (
        "Pick a number",
        "import ipywidgets as widgets\n"
        "number = widgets.IntSlider(value=5, min=0, max=100, description='number')\n"
        "number",
        ("number",),
    ),
    (
        "Result",
        "doubled = number.value * 2\nprint(f'doubled={doubled}')",
        (),
    ),
)


def write_app(
    directory: Path,
    stages: Sequence[tuple[str, str, Sequence[str]]] = SLIDER_STAGES,
    parameters: Sequence[Parameter] = (),
    collect: dict[int, Sequence[str]] | None = None,
    title: str = "Server test app",
) -> Path:
    """Write an app directory: one code cell per stage `(title, source, waits_on names)`."""
    directory.mkdir(parents=True, exist_ok=True)
    if collect is None and stages is SLIDER_STAGES:
        collect = {1: ("doubled",)}
    manifest = Manifest(
        title=title,
        source_name="test.ipynb",
        source_sha256="0" * 64,
        freezer_version="0.1.0",
        created="2026-01-01T00:00:00Z",
        kernel_name="python3",
        kernel_language="python",
        parameters=tuple(parameters),
        stages=tuple(
            Stage(
                index=i,
                title=stage_title,
                cells=(Cell(id=f"cell{i}", kind="code", source=source),),
                waits_on=tuple(WaitsOn(name, "widget", i) for name in waits),
                collect=tuple((collect or {}).get(i, ())),
            )
            for i, (stage_title, source, waits) in enumerate(stages)
        ),
    ).with_app_id()
    dump(manifest, directory)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python",
    }
    notebook.cells = [nbformat.v4.new_code_cell("from runtime.kernel import runner\nrunner.show()")]
    nbformat.write(notebook, directory / "app.ipynb")
    return directory


def start_server(app_dir: Path, *args: str, port: int | None = None) -> ServerProcess:
    """Start `freezer serve` on `app_dir` and wait for `/health`."""
    port = port or free_port()
    argv = [
        sys.executable, "-c",
        "import sys; from freezer.cli import main; sys.exit(main())",
        "serve", str(app_dir), "--port", str(port), "--no-browser", *args,
    ]
    server = ServerProcess(argv, port, cwd=app_dir, ready_path="health", name="freezer")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, server.wait_ready(SERVER_START_TIMEOUT)).result()
    return server


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: `serve(app_dir, *args)` -> a running Freezer server (stopped after the module)."""
    servers: list[ServerProcess] = []

    def start(app_dir: Path, *args: str, port: int | None = None) -> ServerProcess:
        server = start_server(app_dir, *args, port=port)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
async def open_store() -> AsyncIterator[Callable[[Path], Any]]:
    """Factory: `await open_store(app_dir)` -> a Store on the app's SQLite file (closed after)."""
    stores: list[Store] = []

    async def opener(app_dir: Path) -> Store:
        store = await Store.open(f"sqlite:///{app_dir / 'freezer.db'}")
        stores.append(store)
        return store

    try:
        yield opener
    finally:
        for store in stores:
            await store.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Wait until `check()` is true: what the server stores as a kernel reports it lands a
    moment after the page shows it."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"still not true after {timeout:g} s: {check}"
        await asyncio.sleep(0.05)


def health(server: ServerProcess) -> dict[str, Any]:
    """The server's `/health` JSON (blocking; for sync tests)."""
    from urllib.request import urlopen

    with urlopen(server.base_url + "health", timeout=30) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


def screenshot(page: Any, name: str) -> None:
    """Save `docs/screenshots/NAME.png` of a Playwright page when `FREEZER_SCREENSHOTS=1`
    (`FREEZER_SCREENSHOTS=1 make test` refreshes the pictures the docs show; a plain test
    run leaves the tracked files alone)."""
    if os.environ.get("FREEZER_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
