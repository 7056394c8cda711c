"""Freezer's own pages: the run list, starting a run, health; and the page renderer.

Handlers stay thin: parse the request, call the store or the kernels, respond. Every page is
rendered from `runtime/web/templates/` with Jinja2's autoescape, so whatever a person typed (a name,
a parameter value) is escaped wherever it is shown.
"""

from __future__ import annotations

import ast
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from markupsafe import Markup
from tornado import web

from runtime.manifest import RESERVED_PARAMETERS, Manifest, Parameter
from runtime.web.serve_cli import with_article
from runtime.web.xsrf import IdentityBoundXsrf

if TYPE_CHECKING:
    from runtime.web.app import FreezerApp

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
FAVICONS = {"favicon.svg": "image/svg+xml", "favicon.ico": "image/x-icon"}
SEED_BITS = 31
START_FORM_FIELDS = frozenset({"_xsrf", "abandon"})
"""Fields of the start form that are not parameters."""


class ParameterError(ValueError):
    """A start link's query string does not fit the app's declared parameters."""


class Pages:
    """Renders Freezer's HTML pages (sign-in, run list, busy, messages)."""

    def __init__(self, base_url: str, title: str) -> None:
        self.base_url = base_url
        self.title = title
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def render(self, name: str, handler: web.RequestHandler | None = None, **context: Any) -> str:
        """Render template `name`; with a handler, forms get its XSRF field."""
        xsrf = Markup(handler.xsrf_form_html()) if handler is not None else Markup("")
        context.setdefault("user", getattr(handler, "current_user", None))
        return self.env.get_template(name).render(
            base_url=self.base_url, title=self.title, xsrf_form_html=xsrf, **context
        )


def parse_value(parameter: Parameter, text: str) -> Any:
    """Parse one query-string value to the type of the parameter's default."""
    kind = parameter.type
    try:
        if kind == "str":
            return text
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        value = json.loads(text) if kind != "NoneType" else ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ParameterError(
            f"parameter {parameter.name!r} must be {with_article(kind)} "
            f"(like {parameter.default!r})"
        ) from None
    expected: dict[str, type] = {"list": list, "dict": dict, "NoneType": type(None)}
    if kind not in expected or not isinstance(value, expected[kind]):
        raise ParameterError(
            f"parameter {parameter.name!r} must be {with_article(kind)} "
            f"(like {parameter.default!r})"
        )
    return value


def parse_parameters(manifest: Manifest, query: dict[str, list[bytes]]) -> dict[str, Any]:
    """The per-run parameter overrides of a start link (declared names only)."""
    declared = {p.name: p for p in manifest.parameters}
    params: dict[str, Any] = {}
    for name, values in query.items():
        parameter = declared.get(name)
        if parameter is None or name in RESERVED_PARAMETERS:
            names = ", ".join(sorted(set(declared) - RESERVED_PARAMETERS)) or "none"
            raise ParameterError(f"unknown parameter {name!r}; this app's parameters: {names}")
        params[name] = parse_value(parameter, values[-1].decode("utf-8", "replace"))
    return params


class FreezerHandler(JupyterHandler, IdentityBoundXsrf):
    """Base of Freezer's pages: the app object, the signed-in user, plain error pages."""

    def initialize(self, freezer: FreezerApp) -> None:
        self.freezer = freezer

    @property
    def user_id(self) -> int:
        """The signed-in person's user id (handlers are `@authenticated`)."""
        user_id: int = self.current_user.user_id
        return user_id

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A plain sentence for the person; the detail went to the log."""
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(self.freezer.pages.render(
            "message.html", self, headline=f"Something went wrong (error {status_code}).",
            detail="The server log has the details. Go back to your runs and try again.",
        ))

    def show_message(self, status: int, headline: str, detail: str) -> None:
        """A page with one sentence for the person."""
        self.set_status(status)
        self.finish(self.freezer.pages.render(
            "message.html", self, headline=headline, detail=detail
        ))


class RunListHandler(FreezerHandler):
    """`/`: the person's runs of this app (continue / start over), or a new run if none.

    Runs started on an earlier build of the same notebook are listed too: they continue on
    the version they started on."""

    @web.authenticated
    async def get(self) -> None:
        app = self.freezer
        stage_titles = {app.app_id: [stage.title for stage in app.manifest.stages]}
        runs = []
        for run in await app.store.runs_for_user(self.user_id):
            if run.status == "abandoned":
                continue
            if run.app_id not in stage_titles:  # an earlier build: same notebook?
                manifest = await app.store.get_manifest(run.app_id)
                same = manifest is not None and manifest.source_name == app.manifest.source_name
                stages = manifest.stages if manifest is not None and same else ()
                stage_titles[run.app_id] = [stage.title for stage in stages]
            if stage_titles[run.app_id]:
                runs.append(run)
        if not runs:
            # the admin lands on the admin page: a run of their own would count in its figures
            admin = getattr(self.current_user, "is_admin", False)
            self.redirect(app.base_url + ("admin" if admin else "new"))
            return
        self.finish(app.pages.render("runs.html", self, runs=runs, stage_titles=stage_titles))


class NewRunHandler(FreezerHandler):
    """`/new?NAME=VALUE`: a page with a Start button for a run with those parameters; POST
    (the button, XSRF-checked): start it. POST with `abandon=RUN`: start over.

    Starting a run is a POST so that another site cannot start runs for a signed-in person
    by linking to or embedding `/new`; a shared start link still works, one click later.
    """

    @web.authenticated
    async def get(self) -> None:
        try:
            parse_parameters(self.freezer.manifest, self.request.query_arguments)
        except ParameterError as exc:
            self.show_message(400, "This start link is not valid.", str(exc))
            return
        fields = [(name, values[-1].decode("utf-8", "replace"))
                  for name, values in self.request.query_arguments.items()]
        self.finish(self.freezer.pages.render("start.html", self, fields=fields))

    @web.authenticated
    async def post(self) -> None:
        """Start a run with the form's parameters, or start over (`abandon`): abandon the given
        run (kept in the database) and start a new one with its parameters."""
        old_id = self.get_body_argument("abandon", "")
        if old_id:
            await self.start_over(old_id)
            return
        form = {name: values for name, values in self.request.body_arguments.items()
                if name not in START_FORM_FIELDS}
        try:
            params = parse_parameters(self.freezer.manifest, form)
        except ParameterError as exc:
            self.show_message(400, "This start link is not valid.", str(exc))
            return
        await self.start_run(params)

    async def start_over(self, old_id: str) -> None:
        store = self.freezer.store
        params: dict[str, Any] = {}
        old = await store.get_run(old_id)
        if old is not None and old.user_id == self.user_id:
            await store.set_run_status(old.id, "abandoned")
            await self.freezer.kernels.release_run(old.id)
            params = dict(old.params)
        await self.start_run(params)

    async def start_run(self, params: dict[str, Any]) -> None:
        app = self.freezer
        seed = secrets.randbits(SEED_BITS)
        run = await app.store.create_run(app.app_id, self.user_id, seed, params)
        self.log.info("run %s started (user %s)", run.id, run.user_name)
        self.redirect(app.base_url + "run/" + run.id, status=303)


class HealthHandler(FreezerHandler):
    """`/health`: 200 and JSON counts (live kernels, pool, runs) for load balancers and tests."""

    @allow_unauthenticated
    async def get(self) -> None:
        app = self.freezer
        runs = await app.store.list_runs(app.app_id)
        kernels = app.kernels
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({
            "status": "ok",
            "app_id": app.app_id,
            "live_kernels": kernels.live_count,
            "run_kernels": kernels.run_kernel_count,
            "pool_kernels": kernels.pool_count,
            "culled": kernels.culled,
            "runs": len(runs),
            "active_runs": sum(1 for run in runs if run.status == "active"),
        }))


class FaviconHandler(FreezerHandler):
    """`/favicon.svg` (linked from every page) and `/favicon.ico`: the app's icon."""

    @allow_unauthenticated
    def get(self, name: str) -> None:
        self.set_header("Content-Type", FAVICONS[name])
        self.set_header("Cache-Control", "public, max-age=86400")
        self.finish((STATIC / name).read_bytes())


class KernelModelHandler(FreezerHandler):
    """`GET /api/kernels/<id>`: the kernel's model, which the page asks for before it connects;
    only for the person whose run the kernel serves. No other kernel REST is exposed."""

    @web.authenticated
    async def get(self, kernel_id: str) -> None:
        live = self.freezer.kernels.live(kernel_id)
        if live is None or live.user_id != self.user_id:
            raise web.HTTPError(403, "kernel %s is not the requester's", kernel_id)
        self.set_header("Content-Type", "application/json")
        model = self.kernel_manager.kernel_model(kernel_id)  # type: ignore[no-untyped-call]
        self.finish(json.dumps(model, default=str))
