"""Freezer's own pages: the run list, starting a run, health; the page renderer, and the one
place the run service's outcomes become HTTP answers (:func:`outcome_page`).

Handlers stay thin: parse the request, call the run service, respond. They get their
collaborators from their route (`initialize(self, runs, pages)`, Tornado's idiom). Every page is
rendered from `runtime/web/templates/` with Jinja2's autoescape, so whatever a person typed (a
name, a parameter value) is escaped wherever it is shown.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from markupsafe import Markup
from tornado import web

from runtime.errors import RuntimeAppError
from runtime.manifest import RESERVED_PARAMETERS, Manifest, Parameter
from runtime.runs.going_back import GoBackRefusedError, go_back
from runtime.runs.outcomes import (
    KernelsBusyError,
    RunMissingError,
    RunStoppedError,
    RunUnrestorableError,
)
from runtime.web.serve_cli import with_article
from runtime.web.xsrf import IdentityBoundXsrf

if TYPE_CHECKING:
    from runtime.runs.service import RunService
    from runtime.store.store import Run

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
FAVICONS = {"favicon.svg": "image/svg+xml", "favicon.ico": "image/x-icon"}
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


def outcome_page(
    handler: web.RequestHandler, pages: Pages, run_id: str, outcome: Exception
) -> None:
    """Answer a run page the run service could not give: 404 (not the person's run), 409
    (failed, or cannot be restored), 503 with `Retry-After` (every kernel in use), else 500.
    The person gets a plain sentence; the server log the detail."""
    log = handler.log  # type: ignore[attr-defined]
    if isinstance(outcome, KernelsBusyError):
        log.warning("busy page for run %s: %s", run_id, outcome)
        handler.set_header("Retry-After", str(outcome.retry_after))
        handler.set_status(503)
        handler.finish(pages.render("busy.html", handler, retry_after=outcome.retry_after))
        return
    if isinstance(outcome, RunMissingError):
        status, headline = 404, "There is no such run of yours."
        detail = "Go to your runs to continue one or start a new one."
    elif isinstance(outcome, RunUnrestorableError):
        if outcome.divergence is not None:
            user = getattr(handler.current_user, "name", "?")
            log.error("%s (user %s)", outcome.divergence, user)
        status, headline, detail = 409, "This run cannot be restored.", outcome.sentence
    elif isinstance(outcome, RunStoppedError):
        if outcome.failure is not None:
            log.error("%s", outcome.failure)
        status, headline = 409, "This run had to be stopped."
        detail = ("One of its steps stopped the app each time it ran, so it cannot continue. "
                  "Your answers are kept and the app's administrator can see what happened; "
                  "start over to try again.")
    else:
        log.error("run %s: no kernel: %s", run_id, outcome)
        status, headline = 500, "The app could not be started."
        detail = "The server log says why. Try again in a moment."
    handler.set_status(status)
    handler.set_header("Content-Type", "text/html; charset=utf-8")
    handler.finish(pages.render("message.html", handler, headline=headline, detail=detail))


class FreezerHandler(JupyterHandler, IdentityBoundXsrf):
    """Base of Freezer's pages: the run service, the page renderer, the signed-in user, plain
    error pages."""

    def initialize(self, runs: RunService, pages: Pages) -> None:
        self.runs = runs
        self.pages = pages

    @property
    def manifest(self) -> Manifest:
        """The manifest of the app version being served."""
        return self.runs.manifest

    @property
    def user_id(self) -> int:
        """The signed-in person's user id (handlers are `@authenticated`)."""
        user_id: int = self.current_user.user_id
        return user_id

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A plain sentence for the person; the detail went to the log."""
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(self.pages.render(
            "message.html", self, headline=f"Something went wrong (error {status_code}).",
            detail="The server log has the details. Go back to your runs and try again.",
        ))

    def show_message(self, status: int, headline: str, detail: str) -> None:
        """A page with one sentence for the person."""
        self.set_status(status)
        self.finish(self.pages.render("message.html", self, headline=headline, detail=detail))


class RunListHandler(FreezerHandler):
    """`/`: the person's runs of this app (continue / start over), or a new run if none.

    Runs started on an earlier build of the same notebook are listed too: they continue on
    the version they started on."""

    @web.authenticated
    async def get(self) -> None:
        runs, stage_titles = await self.runs.runs_of(self.user_id)
        if not runs:
            # the admin lands on the admin page: a run of their own would count in its figures
            admin = getattr(self.current_user, "is_admin", False)
            self.redirect(self.pages.base_url + ("admin" if admin else "new"))
            return
        self.finish(self.pages.render("runs.html", self, runs=runs, stage_titles=stage_titles))


class NewRunHandler(FreezerHandler):
    """`/new?NAME=VALUE`: a page with a Start button for a run with those parameters; POST
    (the button, XSRF-checked): start it. POST with `abandon=RUN`: start over.

    Starting a run is a POST so that another site cannot start runs for a signed-in person
    by linking to or embedding `/new`; a shared start link still works, one click later.
    """

    @web.authenticated
    async def get(self) -> None:
        try:
            parse_parameters(self.manifest, self.request.query_arguments)
        except ParameterError as exc:
            self.show_message(400, "This start link is not valid.", str(exc))
            return
        fields = [(name, values[-1].decode("utf-8", "replace"))
                  for name, values in self.request.query_arguments.items()]
        self.finish(self.pages.render("start.html", self, fields=fields))

    @web.authenticated
    async def post(self) -> None:
        """Start a run with the form's parameters, or start over (`abandon`): abandon the given
        run (kept in the database) and start a new one with its parameters."""
        old_id = self.get_body_argument("abandon", "")
        if old_id:
            self.started(await self.runs.start_over(old_id, self.user_id))
            return
        form = {name: values for name, values in self.request.body_arguments.items()
                if name not in START_FORM_FIELDS}
        try:
            params = parse_parameters(self.manifest, form)
        except ParameterError as exc:
            self.show_message(400, "This start link is not valid.", str(exc))
            return
        self.started(await self.runs.start_run(self.user_id, params))

    def started(self, run: Run) -> None:
        """Send the person to the page of the run just started."""
        self.log.info("run %s started (user %s)", run.id, run.user_name)
        self.redirect(self.pages.base_url + "run/" + run.id, status=303)


class GoBackHandler(FreezerHandler):
    """`POST /back/<run_id>` (the run page's Back dialog, XSRF-checked; field `stage`, 0-based):
    take the run back to that stage (`docs/go-back.md`) and send the person to its page, which
    shows the stage waiting for them again. A refusal (a step is running, ...) is a page with
    one sentence (409)."""

    @web.authenticated
    async def post(self, run_id: str) -> None:
        try:
            stage = int(self.get_body_argument("stage", "-1"))
        except ValueError:
            stage = -1
        try:
            await go_back(self.runs, run_id, self.user_id, stage)
        except GoBackRefusedError as exc:
            self.log.info("%s", exc)
            self.show_message(409, "You cannot go back right now.", exc.sentence)
            return
        except RunMissingError as exc:
            outcome_page(self, self.pages, run_id, exc)
            return
        except RuntimeAppError as exc:
            # The run went back; its rebuild did not come through (every kernel busy, a
            # divergence, ...): its page says so, and retries, as for any run.
            self.log.warning("run %s went back but was not rebuilt yet: %s", run_id, exc)
        self.redirect(self.pages.base_url + "run/" + run_id, status=303)


class HealthHandler(FreezerHandler):
    """`/health`: 200 and JSON counts (live kernels, pool, runs) for load balancers and tests."""

    @allow_unauthenticated
    async def get(self) -> None:
        health = await self.runs.health()
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(health))


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
        live = self.runs.live(kernel_id)
        if live is None or live.user_id != self.user_id:
            raise web.HTTPError(403, "kernel %s is not the requester's", kernel_id)
        self.set_header("Content-Type", "application/json")
        model = self.kernel_manager.kernel_model(kernel_id)  # type: ignore[no-untyped-call]
        self.finish(json.dumps(model, default=str))
