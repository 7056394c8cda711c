"""Every use of a Voila internal, in one place (Voila 0.5; the next Voila is this file's work).

Voila has documented extension points for the kernel manager class and the kernel websocket
connection class; Freezer uses those (:func:`voila_app_config`). What Voila offers no extension
point for is here:

- the start sequence: :func:`use_app_notebook` (the notebook, the run page template, Voila's
  configuration after Freezer's config files: :func:`refresh_voila_configuration`),
  :func:`voila_settings` and :func:`voila_web_app` are `Voila.init_settings` and the tail of
  `Voila.start()` with Freezer's changes, and :func:`parse_voila_command_line` is Voila's
  command line parsing without its exit on an error;
- :class:`RunPageHandler`: Voila's notebook page handler, mounted at `/run/<run_id>`. It asks
  the run service for the run's kernel (live, pooled, or replayed), hands its id to Voila's
  `start_kernel` call through :data:`runtime.web.jupyter.page_kernel` and lets Voila render
  `app.ipynb`; :class:`PageCache` keeps the page Voila rendered for each live kernel;
- :class:`DetachHandler`: replaces Voila's unload beacon handler, which shuts the kernel down;
  a run's kernel must survive a closed tab (the culler decides when it goes).
- :class:`RunKernelWebsocketHandler`: Voila's kernel websocket handler, refusing unknown kernels
  with 403 before jupyter_server looks them up.
- :func:`freezer_voila_routes`: Voila's routes minus the ones Freezer replaces or must not
  expose (the catch-all page, the file tree, the contents API, kernel REST, `/voila/files/`).
- :func:`runtime.web.page_head.with_page_head`, applied to the page Voila renders: the run's base
  URL for relative links, and a sentence for widgets whose front-end is missing; the `lab`
  template's CDN stylesheet links (:data:`CDN_STYLESHEET`) are dropped, and the page gets
  Freezer's kernel watch instead (:mod:`runtime.web.kernel_watch`).
- :func:`restrict_browser_messages`: the message types Voila allows from the browser, without
  `shutdown_request`.
- :func:`with_run_page_template`: Freezer's run page template (`runtime/web/templates/voila/`,
  based on Voila's `lab` template, whose widget manager it keeps) first in Voila's template
  paths; its header (title, who is signed in, links) is filled per request at
  :data:`HEADER_MARK`, and the `lab` template's empty icon link gives way to the app's favicon.
- :class:`SharedTemplatesExporter` (installed by :func:`share_page_templates`): Voila builds a
  new exporter, and so a new Jinja environment that compiles the page templates again, for
  every page; compiling them was most of a page's server time.
"""

from __future__ import annotations

import re
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.services.kernels.handlers import KernelHandler
from tornado import web
from traitlets.config import Config
from voila import notebook_renderer as voila_notebook_renderer
from voila.app import Voila
from voila.exporter import VoilaExporter
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.static_file_handler import AllowListFileHandler
from voila.tornado.contentshandler import VoilaContentsHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler
from voila.tornado.treehandler import TornadoVoilaTreeHandler

from runtime.errors import RuntimeAppError
from runtime.web.handlers import Pages, outcome_page
from runtime.web.jupyter import ReadyKernelClient, RunKernelManager, page_kernel
from runtime.web.kernel_watch import with_kernel_watch
from runtime.web.page_head import with_page_head
from runtime.web.websocket import BROWSER_MESSAGE_TYPES
from runtime.web.xsrf import IdentityBoundXsrf

if TYPE_CHECKING:
    from runtime.runs.live import LiveKernel
    from runtime.runs.service import RunService

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


def with_run_page_template(template_paths: list[str]) -> list[str]:
    """Voila's template paths with Freezer's run page template first (its `index.html.j2`
    extends the `lab` one that the rest of the paths find)."""
    own = str(RUN_PAGE_TEMPLATES)
    return [own, *(path for path in template_paths if path != own)]


def restrict_browser_messages(kernel_manager: Any) -> None:
    """Let through only Freezer's browser allowlist (Voila's includes `shutdown_request`)."""
    kernel_manager.allowed_message_types = sorted(BROWSER_MESSAGE_TYPES)


def freezer_voila_routes(routes: list[Any], server_url: str, runs: RunService) -> list[Any]:
    """Voila's routes that Freezer keeps (static assets, themes, extensions, allowed files),
    plus Freezer's versions of its kernel websocket and unload beacon."""
    kept = [route for route in routes if not issubclass(route[1], REPLACED_VOILA_HANDLERS)]
    prefix = server_url.rstrip("/")
    return [
        (prefix + f"/api/kernels/{KERNEL_ID}/channels", RunKernelWebsocketHandler,
         {"runs": runs}),
        (prefix + r"/voila/api/shutdown/(.*)", DetachHandler),
        *kept,
    ]


class RunKernelWebsocketHandler(VoilaKernelWebsocketHandler):  # type: ignore[misc]
    """Voila's kernel websocket; a kernel this server does not know is refused (403).

    Its connection (:class:`runtime.web.websocket.RunWebsocketConnection`) reaches the run
    service as `websocket_handler.runs`, given here by the route."""

    def initialize(self, runs: RunService) -> None:
        self.runs = runs

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


# --- the start sequence ---------------------------------------------------------------------


def voila_app_config() -> Config:
    """Voila's configuration for Freezer: its kernel manager, no restarts, ready clients."""
    return Config({
        "VoilaConfiguration": {"multi_kernel_manager_class": RunKernelManager},
        # a dead kernel is not restarted: its run is replayed in a fresh one
        "KernelRestarter": {"restart_limit": 0},
        "ServerKernelManager": {"client_factory": ReadyKernelClient},
    })


def parse_voila_command_line(app: Voila, argv: list[str] | None) -> None:
    """traitlets' parsing as Voila does it, without Voila's `catch_config_error` (which logs
    a bad value as CRITICAL and exits 1): the error reaches the caller."""
    Voila.parse_command_line.__wrapped__(app, argv)


def refresh_voila_configuration(app: Any) -> None:
    """Give Voila's configuration object, made before the config files were read, their
    settings too (raises traitlets' `TraitError`)."""
    voila_configuration = getattr(app, "voila_configuration", None)
    if voila_configuration is not None:
        voila_configuration.update_config(app.config)


def use_app_notebook(app: Voila, notebook: Path, show_tracebacks: bool) -> None:
    """Serve `notebook` with Freezer's run page template first in Voila's template paths."""
    app.voila_configuration.show_tracebacks = show_tracebacks
    app.notebook_path = str(notebook)
    app.template_paths = with_run_page_template(app.template_paths)


def make_connection_dir(root: str) -> str:
    """A private directory for the kernels' connection files (as `Voila.start` makes)."""
    return tempfile.mkdtemp(prefix="freezer_", dir=root)


def voila_settings(app: Voila, show_tracebacks: bool) -> dict[str, Any]:
    """`Voila.init_settings` (kernel manager, identity provider, Jinja environments), with
    Freezer's browser allowlist and shared page templates."""
    settings: dict[str, Any] = Voila.init_settings(app)
    restrict_browser_messages(app.kernel_manager)
    share_page_templates()
    app.kernel_manager.allow_tracebacks = show_tracebacks
    return settings


def voila_web_app(
    app: Voila, settings: dict[str, Any], routes: list[Any]
) -> tornado.web.Application:
    """The Tornado application as `Voila.start` makes it: `routes` (Freezer's) first."""
    web_app = tornado.web.Application(**settings)
    web_app.settings.update(app.tornado_settings)
    web_app.add_handlers(".*$", routes)
    return web_app


def voila_routes(app: Voila, runs: RunService) -> list[Any]:
    """The routes of `Voila.init_handlers` that Freezer keeps, with its own replacements."""
    return freezer_voila_routes(Voila.init_handlers(app), app.server_url, runs)


def run_page_route(
    app: Voila, pattern: str, runs: RunService, pages: Pages, cache: PageCache, notebook: str
) -> tuple[str, type, dict[str, Any]]:
    """The run page's route, with Voila's handler arguments and Freezer's collaborators."""
    return (pattern, RunPageHandler, {
        "runs": runs, "pages": pages, "page_cache": cache,
        "notebook_path": notebook,
        "template_paths": app.template_paths,
        "config": app.config,
        "voila_configuration": app.voila_configuration,
    })


# --- the run page ---------------------------------------------------------------------------


class PageCache:
    """The app page as Voila rendered it for each live kernel, for the next page of its run.

    Re-attaching, Voila would execute the bootstrap cell again only to display the same root
    widget; the page it rendered for the kernel is that page. An entry goes with its kernel's
    live record."""

    def __init__(self) -> None:
        self._pages: weakref.WeakKeyDictionary[LiveKernel, str] = weakref.WeakKeyDictionary()

    def get(self, live: LiveKernel) -> str | None:
        """The page rendered for `live`, if one was kept."""
        return self._pages.get(live)

    def keep(self, live: LiveKernel, html: str) -> None:
        """Keep the page rendered for `live`, if it showed the app (an error page is not worth
        keeping)."""
        if WIDGET_VIEW in html:
            self._pages[live] = html


class RunPageHandler(TornadoVoilaHandler, IdentityBoundXsrf):  # type: ignore[misc]
    """`/run/<run_id>`: the app page of one run, rendered by Voila on the run's kernel.

    Its forms (start over, in the header) carry the person's bound XSRF token, as every other
    page's do."""

    def initialize(
        self, runs: RunService, pages: Pages, page_cache: PageCache, **kwargs: Any
    ) -> None:
        self.runs = runs
        self.pages = pages
        self.page_cache = page_cache
        super().initialize(**kwargs)

    @web.authenticated
    async def get(self, run_id: str) -> None:
        try:
            live = await self.runs.open_page(run_id, getattr(self.current_user, "user_id", None))
        except RuntimeAppError as exc:
            outcome_page(self, self.pages, run_id, exc)
            return
        # Tornado's own token sets the _xsrf cookie that Voila's unload beacon sends back (an API
        # request, double-submit checked); the header's forms carry the bound one.
        tornado_token: Any = web.RequestHandler.xsrf_token
        tornado_token.fget(self)
        header = self.page_header(run_id)
        cached = self.page_cache.get(live)
        if cached is not None:
            self.set_header("Content-Type", "text/html")
            self.set_header("Cache-Control", "no-cache, no-store, must-revalidate")
            self.finish(cached.replace(HEADER_MARK, header, 1))
            self.runs.touch(live)
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
            self.page_cache.keep(live, "".join(parts))
        finally:
            page_kernel.reset(token)
            self.runs.touch(live)  # the idle clock starts when the page is complete, not before

    def page_header(self, run_id: str) -> str:
        """The header of this person's run page: app title, who is signed in, their links."""
        user = self.current_user
        return self.pages.render(
            "run_header.html", self, run_id=run_id,
            user_name=getattr(user, "name", ""), is_admin=getattr(user, "is_admin", False),
        )
