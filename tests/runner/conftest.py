"""Fixtures for the runner tests: app directories, and real kernels with a widget front-end.

- `make_app(stages, parameters=())` writes `app.json` (through `runtime.manifest`) and the
  bootstrap `app.ipynb` into a fresh directory and returns it; `code()`, `md()` and `stage()`
  build its cells and stages.
- `start_app(app_dir)` starts a `python3` kernel with `cwd=app_dir` and returns a
  :class:`~tests.support.frontend.Frontend` (a widget front-end on the kernel's own channels)
  attached to it; every kernel is shut down at the end of the test.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager

from runtime.manifest import Cell, Manifest, Parameter, Stage, WaitsOn, dump
from tests.support.frontend import Frontend

BOOTSTRAP = "from runtime.kernel import runner\nrunner.show()"
_ids = itertools.count()


def code(source: str, *tags: str) -> Cell:
    """A code cell of the app."""
    return Cell(id=f"c{next(_ids)}", kind="code", source=source, tags=tuple(tags))


def md(source: str, *tags: str) -> Cell:
    """A markdown cell of the app."""
    return Cell(id=f"m{next(_ids)}", kind="markdown", source=source, tags=tuple(tags))


def stage(
    index: int,
    title: str,
    cells: Iterable[Cell],
    waits_on: Iterable[str | tuple[str, str]] = (),
    collect: Iterable[str] = (),
) -> Stage:
    """A stage; `waits_on` items are names (widgets) or `(name, kind)` pairs."""
    waits = tuple(
        WaitsOn(name=w, kind="widget", bound_in_cell=0)
        if isinstance(w, str)
        else WaitsOn(name=w[0], kind=w[1], bound_in_cell=0)  # type: ignore[arg-type]
        for w in waits_on
    )
    cell_list = tuple(cells)
    warm = all("freeze:warm" in c.tags for c in cell_list if c.kind == "code")
    return Stage(
        index=index, title=title, cells=cell_list, waits_on=waits, collect=tuple(collect),
        warm=warm,
    )


def configure(
    run: str = "run-1",
    seed: int = 7,
    params: dict[str, object] | None = None,
    user: str = "ann",
    tb: bool = False,
    timeout: float = 0,
) -> str:
    """Source of the `runner.configure(...)` call a Freezer server would execute."""
    return (
        "from runtime.kernel import runner\n"
        f"runner.configure({run!r}, {seed}, {params or {}!r}, {user!r}, {tb}, {timeout})"
    )


def write_app(
    directory: Path, stages: Iterable[Stage], parameters: Iterable[Parameter] = ()
) -> Path:
    """Write a frozen app (manifest and bootstrap notebook) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(
        title="Runner test app",
        source_name="test.ipynb",
        source_sha256="0" * 64,
        freezer_version="0.1.0",
        created="2026-01-01T00:00:00Z",
        kernel_name="python3",
        kernel_language="python",
        stages=tuple(stages),
        parameters=tuple(parameters),
    ).with_app_id()
    dump(manifest, directory)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python"
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Runner test app"),
        nbformat.v4.new_code_cell(BOOTSTRAP),
    ]
    nbformat.write(nb, directory / "app.ipynb")
    return directory


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., Path]:
    """`make_app(stages, parameters=())` -> a fresh app directory."""
    counter = itertools.count()

    def make(stages: Iterable[Stage], parameters: Iterable[Parameter] = ()) -> Path:
        return write_app(tmp_path / f"app{next(counter)}", stages, parameters)

    return make


@pytest.fixture
async def start_app() -> AsyncIterator[Callable[[Path], Awaitable[Frontend]]]:
    """`await start_app(app_dir)` -> a Frontend on a fresh kernel running in `app_dir`."""
    started: list[Frontend] = []

    async def start(app_dir: Path) -> Frontend:
        km = AsyncKernelManager(kernel_name="python3")
        await km.start_kernel(cwd=str(app_dir))
        frontend = Frontend(km)
        started.append(frontend)
        await frontend.start()
        return frontend

    try:
        yield start
    finally:
        for frontend in started:
            await frontend.stop()
        await asyncio.gather(*(f.km.shutdown_kernel(now=True) for f in started))
