"""The admin pages: `/admin` (runs, how far people got, collected results) and the exports.

The server mounts these with :func:`admin_routes`. Every handler here is admin only: the one
check is :func:`is_admin`, called from :meth:`AdminHandler.prepare` on the user the server's
identity provider (`runtime.web.auth`) returns. What `/admin` shows, and its HTML, are
:mod:`runtime.web.admin_data`'s.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado.web import HTTPError

from runtime.store.export_format import rows_to_csv, rows_to_json
from runtime.store.exporting import rows_with_default_params
from runtime.store.store import Store
from runtime.web.admin_data import RunFilter, load_page, render_page

if TYPE_CHECKING:
    from runtime.runs.runfiles import RunFiles


# --- handlers -------------------------------------------------------------------------------


def is_admin(user: Any) -> bool:
    """The one admin check: the signed-in user (from the server's identity provider) is an admin."""
    return getattr(user, "is_admin", False) is True


class AdminHandler(JupyterHandler):
    """Base of the admin handlers: admin only, never cached, no script can run in the page.

    jupyter_server's `prepare` resolves the user through the server's identity provider and
    sends a visitor who is not signed in to the login page; anyone signed in who is not an admin
    gets 403 and a plain sentence.
    """

    store: Store
    title: str
    has_run_files = False

    def initialize(self, store: Store, title: str = "Freezer", has_run_files: bool = False) -> None:
        """Called by Tornado per request with the keyword arguments from :func:`admin_routes`."""
        self.store = store
        self.title = title
        self.has_run_files = has_run_files

    @property
    def content_security_policy(self) -> str:
        return (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if self._finished:  # redirected to the login page
            return
        if not is_admin(self.current_user):
            raise HTTPError(403, "%s is not an admin", getattr(self.current_user, "name", "?"))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A plain sentence for the person; the detail went to the log."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if status_code == 403:
            self.finish("Only an admin can see this page. Sign in with an admin account.\n")
        else:
            self.finish(f"The admin page could not be shown (error {status_code}); see the log.\n")


class AdminPageHandler(AdminHandler):
    """`GET /admin`: runs table, how far people got, the collected results side by side."""

    async def get(self) -> None:
        run_filter = RunFilter(self.get_argument("status", ""), self.get_argument("user", ""))
        page = await load_page(self.store, self.title, run_filter)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        # links use the base URL people see (a proxy may strip a prefix before routing)
        export_base = url_path_join(self.base_url, "admin/export")
        runs_base = url_path_join(self.base_url, "admin/runs") if self.has_run_files else None
        # charts and HTML of a few thousand runs take tenths of a second: off the event loop
        self.finish(await asyncio.to_thread(
            render_page, page, export_base, runs_base, url_path_join(self.base_url, "/")
        ))


class ExportHandler(AdminHandler):
    """`GET /admin/export.csv` and `/admin/export.json`: every run, one row each (the CSV with
    every declared parameter filled in, the default where a run's start link set none)."""

    async def get(self, fmt: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        if fmt == "csv":
            # a spreadsheet wants every run's settings in its columns; JSON keeps what is stored
            rows = await rows_with_default_params(self.store)
            body, mime = await asyncio.to_thread(rows_to_csv, rows), "text/csv; charset=utf-8"
        else:
            rows = await self.store.export_rows()
            body = await asyncio.to_thread(rows_to_json, rows)
            mime = "application/json; charset=utf-8"
        self.set_header("Content-Type", mime)
        self.set_header("Content-Disposition", f'attachment; filename="runs-{stamp}.{fmt}"')
        self.finish(body)


def admin_routes(
    server_url: str,
    store: Store,
    title: str = "Freezer",
    run_files: RunFiles | None = None,
) -> list[tuple[str, type, dict[str, Any]]]:
    """The admin URL patterns under `server_url`, with the handlers' keyword arguments (the
    server's open store); with `run_files`, the runs' files too."""
    prefix = "/" + server_url.strip("/") + "/" if server_url.strip("/") else "/"
    kwargs: dict[str, Any] = {"store": store, "title": title}
    routes: list[tuple[str, type, dict[str, Any]]] = [
        (prefix + "admin/?", AdminPageHandler, {**kwargs, "has_run_files": run_files is not None}),
        (prefix + r"admin/export\.(csv|json)", ExportHandler, kwargs),
    ]
    if run_files is not None:
        from runtime.web.admin_files import run_files_routes

        routes.extend(run_files_routes(prefix, store, run_files, title))
    return routes

