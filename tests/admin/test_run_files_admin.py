"""Admins list and download each run's files; `freezer export --files DIR` copies them.

The seeded app's runs get working directories as their kernels would have left them
(`APP/runs/<run_id>/`), then a real `freezer serve` shows them on the admin pages.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import io
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from admin_seed import SeededApp, Store

from tests.support.processes import ServerProcess

ADMIN_TOKEN = "admin-token-for-run-files"
LABELER_TOKEN = "labeler-token-for-run-files"
ODD_NAME = 'odd "name" & <more>.txt'


def write_run_files(seeded_app: SeededApp) -> dict[str, Path]:
    """Give each seeded run a working directory with a few files."""
    dirs = {}
    for user, run_id in seeded_app.run_ids.items():
        run_dir = seeded_app.app_dir / "runs" / run_id
        (run_dir / "out").mkdir(parents=True, exist_ok=True)
        (run_dir / "rows.csv").write_text(f"user\n{user}\n")
        (run_dir / "out" / "labels.json").write_text('{"a": 1}')
        (run_dir / ODD_NAME).write_text("odd")
        dirs[run_id] = run_dir
    return dirs


async def invite_labeler(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        await store.create_invite("ivy", LABELER_TOKEN)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def run_dirs(seeded_app: SeededApp) -> dict[str, Path]:
    return write_run_files(seeded_app)


@pytest.fixture(scope="module")
def server(
    seeded_app: SeededApp, run_dirs: dict[str, Path], serve: Callable[..., ServerProcess]
) -> ServerProcess:
    asyncio.run(invite_labeler(seeded_app.db_url))
    return serve(
        seeded_app.app_dir, "--pool-size=0", "--auth", "token", "--admin-token", ADMIN_TOKEN
    )


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def signed_in(token: str, server: ServerProcess) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect
    )
    status, _, _ = get(opener, server.base_url + "login?token=" + token)
    assert status == 302
    return opener


def get(opener: urllib.request.OpenerDirector, url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with opener.open(url, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_admin_lists_a_runs_files_and_downloads_each(
    server: ServerProcess, seeded_app: SeededApp
) -> None:
    admin = signed_in(ADMIN_TOKEN, server)
    run_id = next(iter(seeded_app.run_ids.values()))
    status, _, page = get(admin, server.base_url + "admin")
    assert status == 200
    assert f'href="/admin/runs/{run_id}/files"'.encode() in page

    status, headers, listing = get(admin, server.base_url + f"admin/runs/{run_id}/files")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    text = listing.decode()
    assert "rows.csv" in text and "out/labels.json" in text
    assert "&amp; &lt;more&gt;.txt" in text and "<more>" not in text
    assert "Download all (zip)" in text

    status, headers, body = get(admin, server.base_url + f"admin/runs/{run_id}/files/rows.csv")
    assert status == 200 and body.startswith(b"user\n")
    assert headers["Content-Disposition"] == 'attachment; filename="rows.csv"'
    status, headers, body = get(
        admin, server.base_url + f"admin/runs/{run_id}/files/{quote(ODD_NAME)}"
    )
    assert status == 200 and body == b"odd"
    assert '"' not in headers["Content-Disposition"].split("filename=", 1)[1].strip('"')

    status, headers, body = get(admin, server.base_url + f"admin/runs/{run_id}/files.zip")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert sorted(archive.namelist()) == sorted([ODD_NAME, "out/labels.json", "rows.csv"])
        assert archive.read("out/labels.json") == b'{"a": 1}'


def test_run_files_pages_are_admin_only_and_stay_in_the_run(
    server: ServerProcess, seeded_app: SeededApp
) -> None:
    run_id = next(iter(seeded_app.run_ids.values()))
    labeler = signed_in(LABELER_TOKEN, server)
    for path in ("files", "files.zip", "files/rows.csv"):
        status, _, _ = get(labeler, server.base_url + f"admin/runs/{run_id}/{path}")
        assert status == 403, path
    admin = signed_in(ADMIN_TOKEN, server)
    for path in (f"{run_id}/files/..%2f..%2fapp.json", f"{run_id}/files/%2e%2e/%2e%2e/app.json",
                 f"{run_id}/files/nothing.txt", "no-such-run/files", "no-such-run/files.zip"):
        status, _, body = get(admin, server.base_url + f"admin/runs/{path}")
        assert status == 404, path
        assert b'"app_id"' not in body


def freezer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "freezer", *args], capture_output=True,
                          text=True, timeout=120)


def test_export_files_copies_every_runs_directory(
    seeded_app: SeededApp, run_dirs: dict[str, Path], tmp_path: Path
) -> None:
    destination = tmp_path / "exported"
    result = freezer("export", str(seeded_app.app_dir), "--files", str(destination),
                     "-o", str(tmp_path / "runs.csv"))
    assert result.returncode == 0, result.stderr
    assert f"copied the files of {len(run_dirs)} runs" in result.stderr
    for run_id, run_dir in run_dirs.items():
        assert (destination / run_id / "rows.csv").read_text() == (run_dir / "rows.csv").read_text()
        assert (destination / run_id / "out" / "labels.json").is_file()

    (tmp_path / "a-file").write_text("x")
    refused = freezer("export", str(seeded_app.app_dir), "--files", str(tmp_path / "a-file"))
    assert refused.returncode == 2
    assert refused.stderr.startswith("freezer export: ") and "not a directory" in refused.stderr
    assert "Traceback" not in refused.stderr
