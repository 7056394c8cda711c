"""`freezer serve` on a database it cannot use: one line naming the database, exit status 2,
no traceback, no server left running. The real entry point in a subprocess, real SQLite files.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import manifest
from runtime.store.store import Store
from tests.server.conftest import write_app
from tests.support.processes import free_port

START_TIMEOUT = 60.0
"""Seconds to wait for the command (a server that does start runs until this)."""


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("serve_database") / "app")


def serve(app_dir: Path, db_url: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", "import sys; from freezer.cli import main; sys.exit(main())",
            "serve", str(app_dir), "--port", str(free_port()), "--no-browser",
            "--pool-size", "0", "--db", db_url]
    return subprocess.run(argv, cwd=app_dir, capture_output=True, text=True,
                          timeout=START_TIMEOUT, check=False)


def written_database(app_dir: Path, path: Path) -> Path:
    """The database a server of the app leaves behind (its tables, the app's row)."""

    async def write() -> None:
        store = await Store.open(f"sqlite:///{path}")
        try:
            await store.ensure_app(manifest.load(app_dir))
        finally:
            await store.close()

    asyncio.run(write())  # left in WAL mode, which a read-only connection can keep
    return path


@pytest.mark.parametrize("case", [
    "missing directory", "a directory", "not a database", "read-only", "not a URL",
])
def test_an_unusable_database_is_one_line_and_exit_2(
    app_dir: Path, tmp_path: Path, case: str
) -> None:
    if case == "missing directory":
        url, shown = f"sqlite:///{tmp_path}/nowhere/freezer.db", "unable to open"
    elif case == "a directory":
        url, shown = f"sqlite:///{tmp_path}", "unable to open"
    elif case == "not a database":
        (tmp_path / "notes.db").write_text("not a database\n" * 100)
        url, shown = f"sqlite:///{tmp_path}/notes.db", "not a database"
    elif case == "read-only":
        # The tests may run as root, which file modes do not stop: SQLite's read-only mode
        # refuses writes the same way a read-only file or volume does.
        path = written_database(app_dir, tmp_path / "ro.db")
        url, shown = f"sqlite:///file:{path}?mode=ro&uri=true", "readonly database"
    else:
        url, shown = "no-such-scheme:::", "Could not parse"
    result = serve(app_dir, url)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("freezer serve:")]
    assert len(errors) == 1, result.stderr
    assert "cannot use the database" in errors[0] and shown in errors[0], errors[0]
    assert result.stderr.rstrip().endswith(errors[0])
    assert "Traceback" not in result.stderr + result.stdout


def test_a_database_url_password_is_not_printed(app_dir: Path) -> None:
    port = free_port()  # nothing listens there
    result = serve(app_dir, f"postgresql://freezer:hunter2@127.0.0.1:{port}/freezer")
    if "psycopg" in result.stderr and "pip install" in result.stderr:
        pytest.skip("PostgreSQL driver not installed")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr
