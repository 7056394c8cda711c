"""`/run/<run_id>/<path>`: a file of the run's directory, for the page's relative links.

A markdown cell's `![a picture](pic.png)` and an HTML output's `<img src="i/cat.gif">` are
relative to the page, `/run/<run_id>/`; they name files the notebook shipped with `--include`
(seeded into the run's directory) or wrote while it ran. Only the run's owner and admins get
them; a path that leaves the run's directory is a 404 like a missing file. Files are served with
the content type their name implies, `nosniff`, and a sandboxing content security policy, so an
HTML file a notebook wrote cannot run script on the app's origin.
"""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING

from tornado import web

from runtime.runs.outcomes import RunMissingError
from runtime.web.handlers import FreezerHandler

if TYPE_CHECKING:
    from pathlib import Path

CHUNK = 64 * 1024
FILE_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def content_type(path: Path) -> str:
    """The content type of a file by its name (`application/octet-stream` when unknown)."""
    mime, encoding = mimetypes.guess_type(path.name)
    if encoding is not None or mime is None:
        return "application/octet-stream"
    if mime.startswith("text/") or mime in ("application/json", "application/javascript"):
        return f"{mime}; charset=utf-8"
    return mime


class RunFileHandler(FreezerHandler):
    """`GET /run/<run_id>/<path>`: one file of the run's directory (owner or admin only)."""

    @web.authenticated
    async def get(self, run_id: str, path: str) -> None:
        is_admin = getattr(self.current_user, "is_admin", False)
        try:
            found = await self.runs.run_file(run_id, path, self.user_id, is_admin)
        except RunMissingError as exc:
            raise web.HTTPError(404, "%s", exc) from None
        self.set_header("Content-Type", content_type(found))
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", FILE_POLICY)
        self.set_header("Cache-Control", "private, no-cache")
        with found.open("rb") as stream:
            while chunk := stream.read(CHUNK):
                self.write(chunk)
                await self.flush()

    def write_error(self, status_code: int, **kwargs: object) -> None:
        """A plain line (an image that cannot load needs no page)."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("There is no such file in this run.\n" if status_code == 404
                    else f"The file could not be sent (error {status_code}).\n")
