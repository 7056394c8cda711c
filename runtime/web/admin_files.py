"""The admin pages of a run's files: list them, download one, download all as a zip.

`/admin/runs/<run_id>/files` lists the files of the run's working directory (what the seed put
there and what the notebook wrote), `/admin/runs/<run_id>/files/<path>` downloads one, and
`/admin/runs/<run_id>/files.zip` all of them. Admin only, like every page of :mod:`.admin`;
downloads are attachments, never rendered on the server's origin.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jupyter_server.utils import url_path_join
from tornado.web import HTTPError

from runtime.runs.runfiles import RUN_ID, RunFiles
from runtime.web.admin import AdminHandler
from runtime.web.admin_data import templates
from runtime.web.runfile_handlers import CHUNK

if TYPE_CHECKING:
    from runtime.store.store import Run, Store



def fmt_size(size: int) -> str:
    """A file size for people: `812 B`, `4.2 kB`, `51.3 MB`."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def fmt_mtime(stamp: float) -> str:
    """A file's modification time, UTC to the second."""
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


class RunFilesHandler(AdminHandler):
    """Base of the run files pages: the run must exist in the store."""

    run_files: RunFiles

    def initialize(  # type: ignore[override]
        self, store: Store, run_files: RunFiles, title: str = "Freezer"
    ) -> None:
        super().initialize(store, title)
        self.run_files = run_files

    async def known_run(self, run_id: str) -> Run:
        """The run's row, or 404."""
        run = await self.store.get_run(run_id)
        if run is None:
            raise HTTPError(404, "no run %s", run_id)
        return run


class RunFilesPageHandler(RunFilesHandler):
    """`GET /admin/runs/<run_id>/files`: the run's files with sizes, times and download links."""

    async def get(self, run_id: str) -> None:
        run = await self.known_run(run_id)
        files = await asyncio.to_thread(self.run_files.files, run_id)
        base = url_path_join(self.base_url, "admin/runs", run_id)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(templates.get_template("admin_files.html").render(
            title=self.title, run=run, files=files, base=base,
            admin_url=url_path_join(self.base_url, "admin"),
            total=fmt_size(sum(f.size for f in files)), fmt_size=fmt_size, fmt_mtime=fmt_mtime,
        ))


class RunFileDownloadHandler(RunFilesHandler):
    """`GET /admin/runs/<run_id>/files/<path>`: one file, as an attachment."""

    async def get(self, run_id: str, path: str) -> None:
        await self.known_run(run_id)
        found = self.run_files.file_path(run_id, path)
        if found is None:
            raise HTTPError(404, "run %s has no file %r", run_id, path)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Disposition", f'attachment; filename="{safe_name(found.name)}"')
        with found.open("rb") as stream:
            while chunk := stream.read(CHUNK):
                self.write(chunk)
                await self.flush()


class RunFilesZipHandler(RunFilesHandler):
    """`GET /admin/runs/<run_id>/files.zip`: every file of the run in one zip archive."""

    async def get(self, run_id: str) -> None:
        await self.known_run(run_id)
        body = await asyncio.to_thread(self.run_files.zip_bytes, run_id)
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", f'attachment; filename="run-{run_id}-files.zip"')
        self.finish(body)


def safe_name(name: str) -> str:
    """A file name fit for a Content-Disposition header (quotes and controls replaced)."""
    return "".join(c if c.isprintable() and c not in '"\\' else "_" for c in name) or "file"


def run_files_routes(
    prefix: str, store: Store, run_files: RunFiles, title: str
) -> list[tuple[str, type, dict[str, Any]]]:
    """The run files URL patterns under `prefix` (which ends with `/`)."""
    kwargs: dict[str, Any] = {"store": store, "run_files": run_files, "title": title}
    run = prefix + f"admin/runs/({RUN_ID.pattern})"
    return [
        (run + "/files/?", RunFilesPageHandler, kwargs),
        (run + r"/files\.zip", RunFilesZipHandler, kwargs),
        (run + "/files/(.+)", RunFileDownloadHandler, kwargs),
    ]
