"""Fixtures of the server tests: app directories written by hand, Freezer servers in subprocesses.

- `write_app(directory, stages, parameters)` writes `app.json` (through `runtime.manifest`) and
  the one-cell `app.ipynb`, as `freezer build` would.
- `serve(app_dir, *args)` (from `tests/conftest.py`) starts `freezer serve APP ...` as a child
  process and waits until `/health` answers; `tests.support.processes.start_server` does the
  same outside a fixture.
- `open_store(app_dir)` opens the server's SQLite database from the test (WAL lets both read).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest

from runtime.manifest import Cell, Manifest, Parameter, Stage, WaitsOn, dump
from runtime.store.store import Store
from tests.support.processes import ServerProcess

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
