"""Every use of a Voila internal, in one place (Voila 0.5; the next Voila is this file's work).

Voila has documented extension points for the kernel manager class and the kernel websocket
connection class; Freezer uses those from :mod:`runtime.web.app`. What Voila offers no extension
point for is here:

- :class:`RunPageHandler`: Voila's notebook page handler, mounted at `/run/<run_id>`. It checks
  that the signed-in person owns the run, gets the run's kernel (live, pooled, or replayed),
  and hands its id to Voila's `start_kernel` call through :data:`runtime.web.kernels.page_kernel`
  before letting Voila render `app.ipynb`.
- :class:`DetachHandler`: replaces Voila's unload beacon handler, which shuts the kernel down;
  a run's kernel must survive a closed tab (the culler decides when it goes).
- :class:`RunKernelWebsocketHandler`: Voila's kernel websocket handler, refusing unknown kernels
  with 403 before jupyter_server looks them up.
- :func:`freezer_voila_routes`: Voila's routes minus the ones Freezer replaces or must not
  expose (the catch-all page, the file tree, the contents API, kernel REST, `/voila/files/`).
- :func:`runtime.web.page_head.with_page_head`, applied to the page Voila renders: the run's base
  URL for relative links, and a sentence for widgets whose front-end is missing.
- :func:`restrict_browser_messages`: the message types Voila allows from the browser, without
  `shutdown_request`.
- :data:`CDN_STYLESHEET`: the `lab` template's CDN stylesheet links, dropped from the page;
  the page gets Freezer's kernel watch instead (:mod:`runtime.web.kernel_watch`).
- :func:`with_run_page_template`: Freezer's run page template (`runtime/web/templates/voila/`, based
  on Voila's `lab` template, whose widget manager it keeps) first in Voila's template paths; its
  header (title, who is signed in, links) is filled per request at :data:`HEADER_MARK`, and
  the `lab` template's empty icon link gives way to the app's favicon.
- :class:`ReadyKernelClient`: the kernel client Voila's executor gets for a page, without
  jupyter_client's fixed 0.2 s wait for a quiet iopub (the run's kernel is already up).
- :class:`SharedTemplatesExporter` (installed by :func:`share_page_templates`): Voila builds a
  new exporter, and so a new Jinja environment that compiles the page templates again, for
  every page; compiling them was most of a page's server time.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING, Any, ClassVar

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.session import new_id
from jupyter_server.base.handlers import APIHandler
from jupyter_server.services.kernels.handlers import KernelHandler
from tornado import web
from voila import notebook_renderer as voila_notebook_renderer
from voila.exporter import VoilaExporter
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.static_file_handler import AllowListFileHandler
from voila.tornado.contentshandler import VoilaContentsHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler
from voila.tornado.treehandler import TornadoVoilaTreeHandler

from runtime.errors import RuntimeAppError
from runtime.runs.attachment import BROWSER_MESSAGE_TYPES
from runtime.runs.replay import WIDGETS_CHANGED, RunDivergedError
from runtime.web.kernel_watch import with_kernel_watch
from runtime.web.kernels import KernelsBusyError, RunFailedError, page_kernel
from runtime.web.page_head import with_page_head
from runtime.web.xsrf import IdentityBoundXsrf

if TYPE_CHECKING:
    from runtime.web.app import FreezerApp

KERNEL_ID = r"(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)"
CDN_STYLESHEET = re.compile(r'<link rel="stylesheet" href="https://cdn\.jsdelivr\.net/[^"]*"[^>]*>')
"""Voila's `lab` template links Font Awesome from a CDN; an app must work offline."""
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RUN_PAGE_TEMPLATES = Path(__file__).parent / "templates" / "voila"
"""Freezer's run page template: Voila's `lab` page with a header that stays in view."""
HEADER_MARK = "<!--FREEZER_HEADER-->"
"""Where the run page template leaves room for the header of the person's page."""
EMPTY_ICON = '<link rel="icon" href="data:;base64,=">'
"""The `lab` template's empty favicon, which would hide the app's."""
REPLACED_VOILA_HANDLERS: tuple[type, ...] = (
    TornadoVoilaHandler,
    TornadoVoilaTreeHandler,
    VoilaContentsHandler,
    VoilaShutdownKernelHandler,
    VoilaKernelWebsocketHandler,
    KernelHandler,
    # `/voila/files/` served the app directory's images to anyone, run directories included;
    # a page's relative files come from its own run (runtime.web.runfile_handlers)
    AllowListFileHandler,
)


class SharedTemplatesExporter(VoilaExporter):  # type: ignore[misc]
    """Voila's page exporter whose Jinja environment, with its compiled templates, is shared
    by every page of the same templates.

    What differs from page to page reaches the templates as render arguments (notebook,
    resources, kernel). The filters Voila registers on each render (`highlight_code` for the
    notebook's language, `trusted`) are the same for every page of a server's notebooks.
    """

    _environments: ClassVar[dict[tuple[Any, ...], Any]] = {}

    def _create_environment(self) -> Any:
        key = (tuple(self.template_paths), self.template_name, self.base_url, self.theme,
               self.show_margins, self.mathjax_url)
        environment = self._environments.get(key)
        if environment is None:
            environment = self._environments[key] = super()._create_environment()
        return environment


def share_page_templates() -> None:
    """Have Voila's page renderer use :class:`SharedTemplatesExporter` (idempotent)."""
    voila_notebook_renderer.VoilaExporter = SharedTemplatesExporter


class ReadyKernelClient(AsyncKernelClient):
    """The kernel client of Voila's page executor (`ServerKernelManager.client_factory`).

    jupyter_client's `wait_for_ready` ends by reading iopub until it has been quiet for 0.2 s,
    a fixed cost on every page. Here the client is ready as soon as the iopub status of its own
    `kernel_info_request` arrives: the reply proves the shell works, the status that iopub is
    subscribed.

    Each client also gets a session id of its own. jupyter_client hands every client of a
    kernel manager the manager's session, and the session id is the shell socket's identity:
    two pages of one run rendered at once (two tabs, a double click, a proxy's retry) had two
    sockets with one identity, and the kernel's router sent both replies to one of them; the
    other page waited for its reply forever.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        session = self.session.clone()
        session.session = new_id()
        self.session = session

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (60.0 if timeout is None else timeout)
        while True:
            msg_id = self.kernel_info()
            reply = await self._reply_to(msg_id, deadline)
            if reply is not None and await self._iopub_idle_after(msg_id, deadline):
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError("Kernel didn't respond in time")

    async def _reply_to(self, msg_id: str, deadline: float) -> dict[str, Any] | None:
        while time.monotonic() < deadline:
            try:
                msg: dict[str, Any] = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                return None
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

    async def _iopub_idle_after(self, msg_id: str, deadline: float) -> bool:
        while time.monotonic() < deadline:
            try:
                msg: dict[str, Any] = await self.iopub_channel.get_msg(timeout=0.5)
            except (Empty, asyncio.TimeoutError):
                return False  # subscribed too late for this one: ask again
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
            ):
                return True
        return False


def with_run_page_template(template_paths: list[str]) -> list[str]:
    """Voila's template paths with Freezer's run page template first (its `index.html.j2`
    extends the `lab` one that the rest of the paths find)."""
    own = str(RUN_PAGE_TEMPLATES)
    return [own, *(path for path in template_paths if path != own)]


def restrict_browser_messages(kernel_manager: Any) -> None:
    """Let through only Freezer's browser allowlist (Voila's includes `shutdown_request`)."""
    kernel_manager.allowed_message_types = sorted(BROWSER_MESSAGE_TYPES)


def freezer_voila_routes(voila_routes: list[Any], server_url: str) -> list[Any]:
    """Voila's routes that Freezer keeps (static assets, themes, extensions, allowed files),
    plus Freezer's versions of its kernel websocket and unload beacon."""
    kept = [route for route in voila_routes if not issubclass(route[1], REPLACED_VOILA_HANDLERS)]
    prefix = server_url.rstrip("/")
    return [
        (prefix + f"/api/kernels/{KERNEL_ID}/channels", RunKernelWebsocketHandler),
        (prefix + r"/voila/api/shutdown/(.*)", DetachHandler),
        *kept,
    ]


class RunKernelWebsocketHandler(VoilaKernelWebsocketHandler):  # type: ignore[misc]
    """Voila's kernel websocket; a kernel this server does not know is refused (403)."""

    async def pre_get(self) -> None:
        if self.kernel_id not in self.kernel_manager:
            raise web.HTTPError(403, "unknown kernel")
        await super().pre_get()

    async def open(self, *args: Any, **kwargs: Any) -> None:
        # A kernel answers with several small frames (status busy, the reply, status idle);
        # with Nagle's algorithm on, every frame after the first waited for the page's delayed
        # ACK (~40 ms on Linux) whenever the page had just sent a message.
        self.set_nodelay(True)
        await super().open(*args, **kwargs)


class DetachHandler(APIHandler):
    """The page's unload beacon: the page is gone, the run's kernel stays (204)."""

    @web.authenticated
    async def post(self, kernel_id: str) -> None:
        self.log.debug("page detached from kernel %s", kernel_id)
        self.set_status(204)
        self.finish()


class RunPageHandler(TornadoVoilaHandler, IdentityBoundXsrf):  # type: ignore[misc]
    """`/run/<run_id>`: the app page of one run, rendered by Voila on the run's kernel.

    Its forms (start over, in the header) carry the person's bound XSRF token, as every other
    page's do."""

    def initialize(self, **kwargs: Any) -> None:
        self.freezer: FreezerApp = kwargs.pop("freezer")
        super().initialize(**kwargs)

    @web.authenticated
    async def get(self, run_id: str) -> None:
        app = self.freezer
        run = await app.store.get_run(run_id)
        user_id = getattr(self.current_user, "user_id", None)
        if run is None or run.user_id != user_id:
            self.show_message(404, "There is no such run of yours.",
                              "Go to your runs to continue one or start a new one.")
            return
        if run.status == "failed":
            self.show_failed()
            return
        if run.status == "diverged":
            recorded = (await app.store.divergences([run.id])).get(run.id, {})
            self.show_message(409, "This run cannot be restored.",
                              str(recorded.get("sentence") or WIDGETS_CHANGED))
            return
        try:
            live = await app.kernels.kernel_for_run(run)
        except KernelsBusyError as exc:
            self.log.warning("busy page for run %s: %s", run.id, exc)
            self.set_header("Retry-After", str(exc.retry_after))
            self.set_status(503)
            self.finish(app.pages.render("busy.html", self, retry_after=exc.retry_after))
            return
        except RunDivergedError as exc:
            self.log.error("%s (user %s)", exc, run.user_name)
            await app.store.record_divergence(run.id, exc.divergence.to_json())
            self.show_message(409, "This run cannot be restored.", exc.divergence.sentence)
            return
        except RunFailedError as exc:
            self.log.error("%s", exc)
            self.show_failed()
            return
        except RuntimeAppError as exc:
            self.log.error("run %s: no kernel: %s", run.id, exc)
            self.show_message(500, "The app could not be started.",
                              "The server log says why. Try again in a moment.")
            return
        # Tornado's own token sets the _xsrf cookie that Voila's unload beacon sends back (an API
        # request, double-submit checked); the header's forms carry the bound one.
        tornado_token: Any = web.RequestHandler.xsrf_token
        tornado_token.fget(self)
        header = self.page_header(run.id)
        if live.page_html is not None:
            # Re-attach: Voila would execute the bootstrap cell again only to display the same
            # root widget; the page it rendered for this kernel is that page.
            self.set_header("Content-Type", "text/html")
            self.set_header("Cache-Control", "no-cache, no-store, must-revalidate")
            self.finish(live.page_html.replace(HEADER_MARK, header, 1))
            live.touch()
            return
        token = page_kernel.set(live.kernel_id)
        parts: list[str] = []
        headed = False
        try:
            async for html in self.get_generator(path=None):
                html = CDN_STYLESHEET.sub("", html).replace(EMPTY_ICON, "")
                if not headed:
                    html, headed = with_page_head(html)
                    html = with_kernel_watch(html)
                parts.append(html)
                self.write(html.replace(HEADER_MARK, header, 1))
                self.flush()
            page = "".join(parts)
            if WIDGET_VIEW in page:  # the app showed; an error page is not worth keeping
                live.page_html = page
        finally:
            page_kernel.reset(token)
            live.touch()  # the idle clock starts when the page is complete, not before

    def show_failed(self) -> None:
        """The page of a run whose stage ended its kernel every time it ran."""
        self.show_message(409, "This run had to be stopped.",
                          "One of its steps stopped the app each time it ran, so it cannot "
                          "continue. Your answers are kept and the app's administrator can see "
                          "what happened; start over to try again.")

    def page_header(self, run_id: str) -> str:
        """The header of this person's run page: app title, who is signed in, their links."""
        user = self.current_user
        return self.freezer.pages.render(
            "run_header.html", self, run_id=run_id,
            user_name=getattr(user, "name", ""), is_admin=getattr(user, "is_admin", False),
        )

    def show_message(self, status: int, headline: str, detail: str) -> None:
        """A plain page with one sentence for the person (details are in the server log)."""
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(self.freezer.pages.render(
            "message.html", self, headline=headline, detail=detail
        ))
