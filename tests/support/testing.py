"""A client that acts as a person on a Voila-served page, without a browser.

It speaks the same protocol as Voila's front-end: it GETs the page, reads the kernel id the page
carries, opens the kernel websocket (`/api/kernels/<id>/channels`, Jupyter's v1 protocol or plain
JSON), asks the kernel for every widget's state (the `jupyter.widget.control` comm of ipywidgets
8, falling back to `comm_info_request` + `request_state`), and then sends widget updates and
button clicks the way the widget manager does. Widget states are kept as plain dicts, updated
from the kernel's `comm_msg` updates, so a test can wait on what a person would see.

The same module starts servers (plain Voila, Freezer's server) as child processes on loopback
ports for tests and benchmarks. Server tests, replay checks, benchmarks and load tests reuse it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from runtime.errors import RuntimeAppError

LOOPBACK = "127.0.0.1"


class ClientError(RuntimeAppError):
    """The page, the server or the kernel did not behave as a person's browser expects."""


def free_port() -> int:
    """An unused TCP port on the loopback interface (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """Every descendant of process `pid` (Linux `/proc`); empty when it is gone."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        children_file = Path(f"/proc/{parent}/task/{parent}/children")
        try:
            children = [int(p) for p in children_file.read_text().split()]
        except (OSError, ValueError):
            continue
        found.extend(children)
        pending.extend(children)
    return found


class ServerProcess:
    """A web server running as a child process on a loopback port.

    Output goes to `log_path`. :meth:`stop` sends SIGTERM (Voila and jupyter_server shut their
    kernels down on it) and kills whatever is left of the process tree after `timeout`.
    """

    def __init__(
        self,
        argv: Sequence[str],
        port: int,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        base_path: str = "/",
        ready_path: str = "voila/static/",
        name: str = "server",
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.name = name
        self.base_url = f"http://{LOOPBACK}:{port}{base_path}"
        self.ready_path = ready_path
        fd, log_name = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
        self.log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The server's process id."""
        return int(self.process.pid)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server printed (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once the server answers HTTP at `ready_path` (any status), else raise."""
        client = AsyncHTTPClient()
        deadline = time.monotonic() + timeout
        url = self.base_url + self.ready_path
        while True:
            if self.process.poll() is not None:
                raise ClientError(
                    f"{self.name} exited with status {self.process.returncode} before it "
                    f"answered on port {self.port}:\n{self.log_tail()}"
                )
            try:
                await client.fetch(url, request_timeout=5, follow_redirects=False)
                return
            except HTTPClientError:
                return  # any HTTP answer means the server is serving
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise ClientError(
                    f"{self.name} did not answer on port {self.port} within {timeout:g} s:\n"
                    f"{self.log_tail()}"
                )
            await asyncio.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server and every process it started; safe to call twice."""
        descendants = child_pids(self.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout)
        for pid in descendants:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def voila_command() -> str:
    """The `voila` executable next to this Python interpreter."""
    return str(Path(sys.executable).with_name("voila"))


def start_voila(
    notebook: str | os.PathLike[str],
    *,
    port: int | None = None,
    extra_args: Sequence[str] = (),
) -> ServerProcess:
    """Start plain `voila NOTEBOOK` on a loopback port; call :meth:`ServerProcess.wait_ready`."""
    notebook = Path(notebook).resolve()
    port = port or free_port()
    argv = [
        voila_command(),
        str(notebook),
        "--no-browser",
        f"--port={port}",
        f"--Voila.ip={LOOPBACK}",
        "--Voila.port_retries=0",
        *extra_args,
    ]
    return ServerProcess(argv, port, cwd=notebook.parent, name="voila")


def start_freezer(
    app_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    db_url: str | None = None,
    extra_args: Sequence[str] = ("--auth", "name"),
) -> ServerProcess:
    """Start `freezer serve APP` on a loopback port (ready at `/health`); call
    :meth:`ServerProcess.wait_ready`. The database defaults to the app's own SQLite file.
    """
    app_dir = Path(app_dir).resolve()
    port = port or free_port()
    argv = [
        sys.executable, "-m", "freezer", "serve", str(app_dir),
        f"--port={port}", f"--ip={LOOPBACK}", "--FreezerApp.port_retries=0", "--no-browser",
        *([f"--db={db_url}"] if db_url else []),
        *extra_args,
    ]  # fmt: skip
    return ServerProcess(argv, port, cwd=app_dir.parent, ready_path="health", name="freezer")


# --- the kernel websocket protocol ---------------------------------------------------------

Json = dict[str, Any]

WS_PROTOCOL_V1 = "v1.kernel.websocket.jupyter.org"
KERNEL_PROTOCOL_VERSION = "5.3"
WIDGET_TARGET = "jupyter.widget"
CONTROL_TARGET = "jupyter.widget.control"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
CELL_OUTPUT_TYPE = "application/vnd.voila.cell-output+json"
OUTPUT_MESSAGES = ("stream", "display_data", "execute_result", "error", "clear_output")
WIDGET_REF_PREFIX = "IPY_MODEL_"


@dataclass
class KernelMessage:
    """One Jupyter message as it travels over the kernel websocket."""

    channel: str
    header: Json
    parent_header: Json = field(default_factory=dict)
    metadata: Json = field(default_factory=dict)
    content: Json = field(default_factory=dict)
    buffers: list[bytes] = field(default_factory=list)

    @property
    def msg_type(self) -> str:
        return str(self.header.get("msg_type", ""))

    @property
    def msg_id(self) -> str:
        return str(self.header.get("msg_id", ""))

    @property
    def parent_id(self) -> str:
        return str(self.parent_header.get("msg_id", ""))


def encode_v1(msg: KernelMessage) -> bytes:
    """Frame a message in jupyter_server's v1 kernel websocket protocol (offsets, then parts)."""
    parts = [
        json.dumps(part).encode()
        for part in (msg.header, msg.parent_header, msg.metadata, msg.content)
    ] + [bytes(b) for b in msg.buffers]
    channel = msg.channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(channel))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return b"".join([head, channel, *parts])


def decode_v1(data: bytes) -> KernelMessage:
    """Parse a v1 websocket frame."""
    count = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    channel = data[offsets[0] : offsets[1]].decode()
    parts = [data[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
    header, parent, metadata, content = (json.loads(p) if p else {} for p in parts[:4])
    return KernelMessage(channel, header, parent or {}, metadata, content, list(parts[4:]))


def decode_legacy(data: str | bytes) -> KernelMessage:
    """Parse a message of the legacy protocol: JSON text, or binary with buffers."""
    buffers: list[bytes] = []
    if isinstance(data, bytes):
        count = int.from_bytes(data[:4], "big")
        offsets = [int.from_bytes(data[4 * (i + 1) : 4 * (i + 2)], "big") for i in range(count)]
        offsets.append(len(data))
        msg = json.loads(data[offsets[0] : offsets[1]])
        buffers = [data[offsets[i] : offsets[i + 1]] for i in range(1, count)]
    else:
        msg = json.loads(data)
    return KernelMessage(
        msg.get("channel") or "shell",
        msg["header"],
        msg.get("parent_header") or {},
        msg.get("metadata") or {},
        msg.get("content") or {},
        buffers,
    )


def encode_legacy(msg: KernelMessage) -> str:
    """A message in the legacy JSON protocol (widget messages this client sends have no buffers)."""
    return json.dumps(
        {
            "channel": msg.channel,
            "header": msg.header,
            "parent_header": msg.parent_header,
            "metadata": msg.metadata,
            "content": msg.content,
            "buffers": [],
        }
    )


def put_buffers(
    state: Json, buffer_paths: Sequence[Sequence[Any]], buffers: Sequence[bytes]
) -> None:
    """Put binary buffers back into a widget state at their paths (as ipywidgets does)."""
    for path, buffer in zip(buffer_paths, buffers, strict=False):
        if not path:
            continue
        target: Any = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = bytes(buffer)


def widget_refs(value: Any) -> list[str]:
    """Model ids referenced (`IPY_MODEL_<id>`) anywhere in a state value."""
    if isinstance(value, str):
        return [value[len(WIDGET_REF_PREFIX) :]] if value.startswith(WIDGET_REF_PREFIX) else []
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in widget_refs(item)]
    if isinstance(value, list | tuple):
        return [ref for item in value for ref in widget_refs(item)]
    return []


# --- pages and cookies -------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """What the client read from an HTML page."""

    url: str
    status: int
    html: str
    config: Json  # Voila's `jupyter-config-data` (kernelId, baseUrl, ...), {} when absent
    outputs: list[Json]  # the cell outputs the page carries
    xsrf: str | None  # the `_xsrf` field of a form on the page, if any
    start_form: dict[str, str] | None = None  # the fields of Freezer's Start button's form
    start_action: str = ""  # where that form posts to

    @property
    def kernel_id(self) -> str | None:
        """The kernel the page is bound to (Voila's `kernelId`)."""
        value = self.config.get("kernelId")
        return str(value) if value else None

    @property
    def shown_model_ids(self) -> list[str]:
        """Model ids of the widget views the page's outputs show, in page order."""
        ids = []
        for output in self.outputs:
            view = (output.get("data") or {}).get(WIDGET_VIEW_MIME)
            if isinstance(view, dict) and view.get("model_id"):
                ids.append(str(view["model_id"]))
        return ids


class _PageParser(HTMLParser):
    """Collects Voila's config script, cell output scripts and an `_xsrf` form field."""

    def __init__(self) -> None:
        super().__init__()
        self.config: Json = {}
        self.outputs: list[Json] = []
        self.xsrf: str | None = None
        self.start_form: dict[str, str] | None = None
        self.start_action = ""
        self._in_start_form = False
        self._script: str | None = None  # which script we are inside: "config" / "output"
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            if attributes.get("id") == "jupyter-config-data":
                self._script = "config"
            elif attributes.get("type") in (CELL_OUTPUT_TYPE, WIDGET_VIEW_MIME):
                self._script = attributes["type"]
            self._text = []
        elif tag == "form" and "data-freezer-start" in attributes:
            self._in_start_form = True
            self.start_form = {}
            self.start_action = attributes.get("action") or ""
        elif tag == "input" and attributes.get("name"):
            if attributes["name"] == "_xsrf":
                self.xsrf = attributes.get("value")
            if self._in_start_form and self.start_form is not None:
                self.start_form[str(attributes["name"])] = attributes.get("value") or ""

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_start_form = False
        if tag != "script" or self._script is None:
            return
        text = "".join(self._text).strip()
        kind, self._script = self._script, None
        if not text:
            return
        value = json.loads(text)
        if kind == "config":
            self.config = value
        elif kind == WIDGET_VIEW_MIME:  # the classic template's bare widget view
            self.outputs.append({"output_type": "display_data", "data": {kind: value}})
        else:
            self.outputs.append(value)


def parse_page(url: str, status: int, html: str) -> Page:
    """Read the parts of an HTML page a Voila front-end uses."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return Page(url, status, html, parser.config, parser.outputs, parser.xsrf, parser.start_form,
                parser.start_action)


class CookieJar:
    """The cookies of one person for one server (no domains or paths: one origin)."""

    def __init__(self, cookies: dict[str, str] | None = None) -> None:
        self._coded: dict[str, str] = dict(cookies or {})

    def update(self, response: HTTPResponse) -> None:
        """Store the cookies a response sets and drop those it expires."""
        for header in response.headers.get_list("Set-Cookie"):
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(header)
            except CookieError:
                continue
            for name, morsel in jar.items():
                if morsel.value == "" or _expired(morsel["expires"], morsel["max-age"]):
                    self._coded.pop(name, None)
                else:
                    self._coded[name] = morsel.coded_value

    def set(self, name: str, value: str) -> None:
        """Set a cookie as a page's script would."""
        self._coded[name] = value

    def get(self, name: str) -> str | None:
        """A cookie's value as the server set it (quotes removed)."""
        coded = self._coded.get(name)
        return coded.strip('"') if coded is not None else None

    def as_dict(self) -> dict[str, str]:
        """Name -> value as sent, to hand the identity to another :class:`Person`."""
        return dict(self._coded)

    def header(self) -> str:
        """The `Cookie` request header."""
        return "; ".join(f"{name}={value}" for name, value in self._coded.items())


def _seconds(retry_after: str | None) -> float | None:
    """A `Retry-After` header in seconds (the HTTP-date form counts as one second)."""
    if retry_after is None:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        return 1.0


def _expired(expires: str, max_age: str) -> bool:
    if max_age:
        with contextlib.suppress(ValueError):
            return int(max_age) <= 0
    if expires:
        with contextlib.suppress(TypeError, ValueError):
            return parsedate_to_datetime(expires) <= datetime.now(timezone.utc)
    return False


# --- a person -----------------------------------------------------------------------------


class Person:
    """One person with a browser's cookie jar, opening pages on one server.

    `Person(base_url)`, then `await person.login(name=...)` on Freezer's server (not needed on
    plain Voila), then `session = await person.open(path)`. Close with `await person.close()`
    or use `async with Person(...) as person:`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        cookies: dict[str, str] | None = None,
        request_timeout: float = 300.0,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.cookies = CookieJar(cookies)
        self.request_timeout = request_timeout
        self.sessions: list[PageSession] = []
        self.busy_retries = 0  # "busy, retrying" answers waited out
        # One client per person, like one browser: Tornado's shared client queues requests
        # beyond 10 at a time, which would distort load tests.
        self._http = AsyncHTTPClient(force_instance=True, max_clients=4)

    async def __aenter__(self) -> Person:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def url(self, path: str) -> str:
        """An absolute URL for a path relative to the server's base URL."""
        return urljoin(self.base_url, path.lstrip("/"))

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    async def fetch(
        self,
        path: str,
        *,
        method: str = "GET",
        form: dict[str, str] | None = None,
        follow_redirects: bool = True,
    ) -> HTTPResponse:
        """An HTTP request with this person's cookies; follows redirects keeping new cookies.

        Returns the final response whatever its status; `response.effective_url` is its URL.
        """
        url = self.url(path)
        body = urlencode(form) if form is not None else None
        for _ in range(10):
            headers = {"Cookie": self.cookies.header()} if self.cookies.header() else {}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                headers["Origin"] = self.origin
                headers["Referer"] = url
            request = HTTPRequest(
                url,
                method=method,
                body=body,
                headers=headers,
                follow_redirects=False,
                request_timeout=self.request_timeout,
            )
            response = await self._http.fetch(request, raise_error=False)
            if response.code == 599 and response.error is not None:
                raise ClientError(f"{method} {url} failed: {response.error}")
            self.cookies.update(response)
            location = response.headers.get("Location")
            if not follow_redirects or response.code not in (301, 302, 303, 307, 308):
                return response
            if not location:
                return response
            url = urljoin(url, location)
            if response.code in (301, 302, 303):
                method, body = "GET", None
        raise ClientError(f"too many redirects from {self.url(path)}")

    async def start(self, query: str = "") -> HTTPResponse:
        """Start a run like a person with the start link `new?QUERY`: open it, click Start.

        Returns the final response (the run page, or whatever refused to start it); a start
        link that shows no Start button (400: a wrong parameter) is returned as it is.
        """
        return await self.click_start(await self.fetch("new" + (f"?{query}" if query else "")))

    async def click_start(self, response: HTTPResponse) -> HTTPResponse:
        """On Freezer's start page, click Start (POST its form); any other page as it is."""
        if response.code != 200 or b"data-freezer-start" not in (response.body or b""):
            return response
        page = parse_page(response.effective_url, response.code,
                          response.body.decode("utf-8", errors="replace"))
        if page.start_form is None:
            return response
        action = urljoin(response.effective_url, page.start_action)
        return await self.fetch(action, method="POST", form=page.start_form)

    async def get_page(
        self, path: str = "", *, busy_timeout: float = 300.0, click_start: bool = True
    ) -> Page:
        """GET an HTML page (after redirects) and read it; an error status raises.

        A 503 with `Retry-After` (Freezer's "busy, retrying" page) is requested again after the
        seconds it asks for, as that page does, for at most `busy_timeout` seconds. Freezer's
        start page (`new?...`, or `/` for a person without runs) is clicked through, as a person
        would, unless `click_start` is false.
        """
        deadline = time.monotonic() + busy_timeout
        while True:
            response = await self.fetch(path)
            if click_start:
                started = await self.click_start(response)
                if started is not response:
                    response = started
                    path = response.effective_url  # a busy run page is retried, not restarted
            retry_after = _seconds(response.headers.get("Retry-After"))
            remaining = deadline - time.monotonic()
            if response.code != 503 or retry_after is None or remaining <= 0:
                break
            self.busy_retries += 1
            await asyncio.sleep(min(retry_after, remaining))
        html = response.body.decode("utf-8", errors="replace") if response.body else ""
        if response.code >= 400:
            raise ClientError(
                f"GET {response.effective_url} answered {response.code}: {html[:300]!r}"
            )
        return parse_page(response.effective_url, response.code, html)

    async def login(
        self,
        name: str | None = None,
        path: str = "login",
        *,
        follow_redirects: bool = True,
        **fields: str,
    ) -> Page:
        """Sign in through a form like a person: GET it for `_xsrf`, POST `name` and fields.

        Returns the page the sign-in led to (or the redirect itself without
        `follow_redirects`); a status >= 400 raises :class:`ClientError`.
        """
        form_page = await self.get_page(path)
        form = dict(fields)
        if name is not None:
            form["name"] = name
        xsrf = form_page.xsrf or self.cookies.get("_xsrf")
        if xsrf:
            form["_xsrf"] = xsrf
        response = await self.fetch(
            path, method="POST", form=form, follow_redirects=follow_redirects
        )
        html = response.body.decode("utf-8", errors="replace") if response.body else ""
        if response.code >= 400:
            raise ClientError(f"sign-in at {path} answered {response.code}: {html[:300]!r}")
        return parse_page(response.effective_url, response.code, html)

    async def open(
        self, path: str = "", *, timeout: float = 300.0, load_widgets: bool = True
    ) -> PageSession:
        """Open a Voila page like a browser: GET it, connect to its kernel, load widget states.

        The steps and their times are in :attr:`PageSession.timings` (seconds from the request).
        """
        started = time.perf_counter()
        page = await self.get_page(path)
        page_loaded = time.perf_counter() - started
        kernel_id = page.kernel_id
        if kernel_id is None:
            raise ClientError(f"{page.url} carries no kernel id: is it a Voila page?")
        base_path = str(page.config.get("baseUrl") or urlsplit(self.base_url).path)
        # The widget manager asks for the kernel's model before it connects.
        model_url = urljoin(self.origin, f"{base_path.rstrip('/')}/api/kernels/{kernel_id}")
        response = await self.fetch(model_url)
        if response.code != 200:
            raise ClientError(f"GET {model_url} answered {response.code}")
        session = PageSession(self, page, kernel_id, base_path, started)
        session.timings["page"] = page_loaded
        self.sessions.append(session)
        try:
            await asyncio.wait_for(session.connect(), timeout)
            if load_widgets:
                await asyncio.wait_for(session.load_widgets(), timeout)
        except BaseException:
            await session.close()
            raise
        return session

    async def close(self) -> None:
        """Close every page this person opened and the HTTP client."""
        for session in list(self.sessions):
            await session.close()
        self._http.close()


# --- a page connected to its kernel ----------------------------------------------------------


class PageSession:
    """A Voila page connected to its kernel, with the widget states a browser would hold.

    :attr:`widgets` maps a model id to its state (a plain dict with `_model_name`, `value`,
    `description`, ...), kept current from the kernel's messages. Output widgets collect the
    outputs routed to them the way the browser's widget manager does, and send them back to
    the kernel as the browser does.
    """

    def __init__(
        self, person: Person, page: Page, kernel_id: str, base_path: str, started: float
    ) -> None:
        self.person = person
        self.page = page
        self.kernel_id = kernel_id
        self.session_id = uuid.uuid4().hex
        self.started = started
        self.timings: dict[str, float] = {}
        self.widgets: dict[str, Json] = {}
        self.kernel_errors: list[Json] = []  # `error` outputs no Output widget captured
        self.stray_outputs: list[Json] = []  # other outputs no Output widget captured
        self.received = 0  # messages from the kernel
        self.closed_reason: str | None = None
        parts = urlsplit(person.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = urlencode({"session_id": self.session_id})
        self.ws_url = (
            f"{scheme}://{parts.netloc}{base_path.rstrip('/')}/api/kernels/{kernel_id}"
            f"/channels?{query}"
        )
        self._ws: WebSocketClientConnection | None = None
        self._v1 = True
        self._reader: asyncio.Task[None] | None = None
        self._replies: dict[str, asyncio.Future[KernelMessage]] = {}
        self._idle: set[str] = set()  # requests the kernel has finished (status idle)
        self.stderr: dict[str, str] = {}  # stderr text by the request it answers (e.g. the
        # server's "not applied" notices for a message it dropped)
        self._change = asyncio.Event()
        self._output_routes: dict[str, str] = {}  # parent msg id -> Output model id
        self._clear_next: set[str] = set()  # Output models with a pending clear_output(wait)
        # (model id, state key) -> msg_id of this page's latest update of it, until its echo
        self._unechoed: dict[tuple[str, str], str] = {}
        self._control_comm: str | None = None
        self._control_reply: asyncio.Future[KernelMessage] | None = None

    # -- connection

    async def connect(self) -> None:
        """Open the kernel websocket (v1 subprotocol, like JupyterLab's services)."""
        request = HTTPRequest(
            self.ws_url,
            headers={"Cookie": self.person.cookies.header(), "Origin": self.person.origin},
            request_timeout=self.person.request_timeout,
        )
        try:
            self._ws = await websocket_connect(
                request, subprotocols=[WS_PROTOCOL_V1], max_message_size=512 * 1024 * 1024
            )
        except (HTTPClientError, OSError) as error:
            raise ClientError(f"kernel websocket {self.ws_url} refused: {error}") from error
        self._v1 = self._ws.selected_subprotocol == WS_PROTOCOL_V1
        if self._ws.protocol is not None:
            # Browsers send small frames at once; Nagle's algorithm would hold them back.
            self._ws.protocol.set_nodelay(True)
        self._reader = asyncio.create_task(self._read_loop(), name=f"page {self.kernel_id}")
        await self.request("shell", "kernel_info_request", {})
        self.timings["connected"] = time.perf_counter() - self.started

    async def load_widgets(self, control_timeout: float = 4.0) -> None:
        """Get every widget's state from the kernel, as ipywidgets 8's manager does.

        First the `jupyter.widget.control` comm (`request_states`); when the kernel does not
        answer within `control_timeout` seconds, `comm_info_request` and one `request_state`
        per widget comm.
        """
        comm_id = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        self._control_comm, self._control_reply = comm_id, loop.create_future()
        await self.send(
            "shell",
            "comm_open",
            {"comm_id": comm_id, "target_name": CONTROL_TARGET, "data": {}},
            metadata={"version": "1.0.0"},
        )
        await self.send(
            "shell", "comm_msg", {"comm_id": comm_id, "data": {"method": "request_states"}}
        )
        try:
            reply = await asyncio.wait_for(asyncio.shield(self._control_reply), control_timeout)
        except asyncio.TimeoutError:
            await self._load_widgets_one_by_one()
        else:
            self._apply_states(reply)
        finally:
            self._control_comm = self._control_reply = None
        await self.send("shell", "comm_close", {"comm_id": comm_id, "data": {}})
        self.timings["widgets"] = time.perf_counter() - self.started
        self._notify()

    async def _load_widgets_one_by_one(self) -> None:
        reply = await self.request("shell", "comm_info_request", {"target_name": WIDGET_TARGET})
        comm_ids = list((reply.content.get("comms") or {}).keys())
        for comm_id in comm_ids:
            self.widgets.setdefault(comm_id, {})
            await self.send(
                "shell", "comm_msg", {"comm_id": comm_id, "data": {"method": "request_state"}}
            )
        await self.wait_for(
            lambda page: all("_model_name" in page.widgets.get(c, {}) for c in comm_ids),
            timeout=30,
            what="the state of every widget comm",
        )

    def _apply_states(self, reply: KernelMessage) -> None:
        data = reply.content.get("data") or {}
        states: Json = data.get("states") or {}
        put_buffers(states, data.get("buffer_paths") or [], reply.buffers)
        for model_id, entry in states.items():
            state = dict(entry.get("state") or {})
            state.setdefault("_model_name", entry.get("model_name"))
            state.setdefault("_model_module", entry.get("model_module"))
            state.setdefault("_model_module_version", entry.get("model_module_version"))
            self._set_state(model_id, state)

    async def unload(self) -> int:
        """What the page does on `beforeunload`: POST Voila's shutdown beacon; the status.

        Plain Voila shuts the kernel down; Freezer's server detaches it from the page. Voila
        0.5's page sets no `_xsrf` cookie, so a browser's beacon is refused (403) and the
        kernel lives on; like a browser that has the cookie, the client sends a double-submit
        token of its own, so that tests and benchmarks free their kernels.
        """
        token = self.person.cookies.get("_xsrf")
        if token is None:
            token = uuid.uuid4().hex
            self.person.cookies.set("_xsrf", token)
        base_path = str(self.page.config.get("baseUrl") or "/")
        url = urljoin(self.person.origin, f"{base_path}voila/api/shutdown/{self.kernel_id}")
        response = await self.person.fetch(url, method="POST", form={"_xsrf": token})
        return int(response.code)

    async def close(self, *, unload: bool = False) -> None:
        """Close the websocket; with `unload`, first send the page's unload beacon."""
        if unload and self.closed_reason is None:
            with contextlib.suppress(ClientError):
                await self.unload()
        if self.closed_reason is None:
            self.closed_reason = "closed by the client"
        if self._ws is not None:
            self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for future in self._replies.values():
            future.cancel()
        self._notify()
        if self in self.person.sessions:
            self.person.sessions.remove(self)

    # -- sending

    async def send(
        self,
        channel: str,
        msg_type: str,
        content: Json,
        *,
        metadata: Json | None = None,
        msg_id: str | None = None,
    ) -> str:
        """Send one message to the kernel; returns its msg_id."""
        if self._ws is None or self.closed_reason is not None:
            raise ClientError(f"page {self.kernel_id} is not connected ({self.closed_reason})")
        msg_id = msg_id or uuid.uuid4().hex
        data = content.get("data") if msg_type == "comm_msg" else None
        if isinstance(data, dict) and data.get("method") == "update":
            for key in data.get("state") or {}:
                self._unechoed[(str(content.get("comm_id")), key)] = msg_id
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.session_id,
            "username": "",
            "date": datetime.now(timezone.utc).isoformat(),
            "version": KERNEL_PROTOCOL_VERSION,
        }
        msg = KernelMessage(channel, header, {}, metadata or {}, content)
        try:
            await self._ws.write_message(
                encode_v1(msg) if self._v1 else encode_legacy(msg), binary=self._v1
            )
        except WebSocketClosedError as error:
            raise ClientError(f"page {self.kernel_id}: the websocket closed") from error
        return msg_id

    async def request(
        self, channel: str, msg_type: str, content: Json, timeout: float = 60.0
    ) -> KernelMessage:
        """Send a request and wait for its reply (the message whose parent it is, on `channel`)."""
        future: asyncio.Future[KernelMessage] = asyncio.get_running_loop().create_future()
        # Registered before sending: the reply may be read before `send` returns.
        msg_id = uuid.uuid4().hex
        self._replies[msg_id] = future
        try:
            await self.send(channel, msg_type, content, msg_id=msg_id)
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise ClientError(f"no reply to {msg_type} within {timeout:g} s") from None
        finally:
            self._replies.pop(msg_id, None)

    async def set_state(self, model_id: str, state: Json) -> str:
        """Change widget state like a view does: locally at once, then an `update` comm_msg."""
        self._require(model_id)
        self._set_state(model_id, state)
        return await self.send(
            "shell",
            "comm_msg",
            {"comm_id": model_id, "data": {"method": "update", "state": state, "buffer_paths": []}},
        )

    async def set_value(self, model_id: str, value: Any) -> str:
        """Set a widget's `value` (a slider drag, a text edit); returns the msg_id."""
        return await self.set_state(model_id, {"value": value})

    async def send_custom(self, model_id: str, content: Json) -> str:
        """Send a widget custom message (`model.send(content)` in the front-end)."""
        self._require(model_id)
        return await self.send(
            "shell",
            "comm_msg",
            {"comm_id": model_id, "data": {"method": "custom", "content": content}},
        )

    async def click(self, model_id: str) -> str:
        """Click a Button; returns the msg_id."""
        return await self.send_custom(model_id, {"event": "click"})

    # -- reading state

    def find_all(
        self, model_name: str | None = None, description: str | None = None, **state: Any
    ) -> list[str]:
        """Ids of the widgets whose `_model_name`, `description` and other state match."""
        wanted = dict(state)
        if model_name is not None:
            wanted["_model_name"] = model_name
        if description is not None:
            wanted["description"] = description
        return [
            model_id
            for model_id, current in self.widgets.items()
            if all(current.get(key) == value for key, value in wanted.items())
        ]

    def find(
        self, model_name: str | None = None, description: str | None = None, **state: Any
    ) -> str:
        """The id of the one widget that matches (see :meth:`find_all`); else ClientError."""
        found = self.find_all(model_name, description, **state)
        if len(found) != 1:
            wanted = {"model_name": model_name, "description": description, **state}
            raise ClientError(
                f"{len(found)} widgets match {wanted}; the page has {self.describe()}"
            )
        return found[0]

    def value(self, model_id: str) -> Any:
        """A widget's current `value`."""
        return self._require(model_id).get("value")

    def outputs(self, model_id: str) -> list[Json]:
        """The outputs an Output widget shows."""
        return list(self._require(model_id).get("outputs") or [])

    def output_text(self, model_id: str) -> str:
        """The text an Output widget shows: streams, `text/plain` data and error names."""
        texts = []
        for output in self.outputs(model_id):
            if output.get("output_type") == "stream":
                texts.append(str(output.get("text", "")))
            elif output.get("output_type") == "error":
                texts.append(f"{output.get('ename')}: {output.get('evalue')}\n")
            else:
                texts.append(str((output.get("data") or {}).get("text/plain", "")))
        return "".join(texts)

    def descendants(self, model_id: str) -> list[str]:
        """Model ids a widget refers to (children, layout, style, ...), depth first."""
        seen: list[str] = []
        pending = [model_id]
        while pending:
            current = pending.pop()
            for ref in widget_refs(self.widgets.get(current, {})):
                if ref not in seen and ref != model_id:
                    seen.append(ref)
                    pending.append(ref)
        return seen

    def shows_all_widgets(self) -> bool:
        """Whether every widget the page shows, and all it refers to, has its state here."""
        ids = self.page.shown_model_ids
        wanted = ids + [ref for model_id in ids for ref in self.descendants(model_id)]
        return all("_model_name" in self.widgets.get(model_id, {}) for model_id in wanted)

    def describe(self) -> str:
        """A short summary of the widgets, for error messages."""
        items = [
            f"{state.get('_model_name')}({state.get('description')!r}, {state.get('value')!r})"
            for state in self.widgets.values()
            if state.get("_model_name") not in ("LayoutModel", "StyleModel")
            and not str(state.get("_model_name", "")).endswith("StyleModel")
        ]
        return "[" + ", ".join(items) + "]"

    # -- waiting

    async def wait_for(
        self, predicate: Callable[[PageSession], bool], timeout: float = 30.0, what: str = ""
    ) -> None:
        """Wait until `predicate(self)` holds, checking after every kernel message."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if self.closed_reason is not None:
                raise ClientError(
                    f"page {self.kernel_id} closed ({self.closed_reason}) while waiting for "
                    f"{what or predicate}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClientError(
                    f"waited {timeout:g} s for {what or predicate}; the page has {self.describe()}"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._change.wait(), remaining)

    async def wait_idle(self, msg_id: str, timeout: float = 30.0) -> None:
        """Wait until the kernel has finished handling message `msg_id` (status idle)."""
        await self.wait_for(
            lambda page: msg_id in page._idle, timeout, f"the kernel to handle {msg_id}"
        )

    async def round_trip(
        self,
        action: Callable[[], Awaitable[Any]],
        until: Callable[[PageSession], bool],
        timeout: float = 30.0,
    ) -> float:
        """Seconds from starting `action` (e.g. a set_value) until `until` holds on the page."""
        started = time.perf_counter()
        await action()
        await self.wait_for(until, timeout)
        return time.perf_counter() - started

    # -- receiving

    def _require(self, model_id: str) -> Json:
        if model_id not in self.widgets:
            raise ClientError(f"no widget {model_id} on the page; it has {self.describe()}")
        return self.widgets[model_id]

    def _notify(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    def _set_state(self, model_id: str, state: Json) -> None:
        current = self.widgets.setdefault(model_id, {})
        current.update(state)
        if current.get("_model_name") == "OutputModel" and "msg_id" in state:
            for parent, target in list(self._output_routes.items()):
                if target == model_id:
                    del self._output_routes[parent]
            if state["msg_id"]:
                self._output_routes[str(state["msg_id"])] = model_id

    async def _read_loop(self) -> None:
        assert self._ws is not None
        try:
            while True:
                data = await self._ws.read_message()
                if data is None:
                    break
                msg = (
                    decode_v1(data) if self._v1 and isinstance(data, bytes) else decode_legacy(data)
                )
                self.received += 1
                try:
                    await self._handle(msg)
                except ClientError:
                    pass  # an Output's sync-back met a closing websocket; the next read ends
                self._notify()
        finally:
            if self.closed_reason is None:
                reason = self._ws.close_reason or f"code {self._ws.close_code}"
                self.closed_reason = f"the server closed the websocket: {reason}"
            self._notify()

    async def _handle(self, msg: KernelMessage) -> None:
        reply = self._replies.get(msg.parent_id)
        if reply is not None and msg.channel == "shell" and not reply.done():
            reply.set_result(msg)
        kind = msg.msg_type
        if kind == "status":
            if msg.content.get("execution_state") == "idle":
                self._idle.add(msg.parent_id)
        elif kind == "comm_open" and msg.content.get("target_name") == WIDGET_TARGET:
            data = msg.content.get("data") or {}
            state = dict(data.get("state") or {})
            put_buffers(state, data.get("buffer_paths") or [], msg.buffers)
            self._set_state(str(msg.content["comm_id"]), state)
        elif kind == "comm_msg":
            await self._handle_comm_msg(msg)
        elif kind == "comm_close":
            comm_id = str(msg.content.get("comm_id"))
            self.widgets.pop(comm_id, None)
        elif kind in OUTPUT_MESSAGES:
            if kind == "stream" and msg.content.get("name") == "stderr" and msg.parent_id:
                self.stderr[msg.parent_id] = self.stderr.get(msg.parent_id, "") + str(
                    msg.content.get("text", "")
                )
            await self._handle_output(msg)

    async def _handle_comm_msg(self, msg: KernelMessage) -> None:
        comm_id = str(msg.content.get("comm_id"))
        data = msg.content.get("data") or {}
        if comm_id == self._control_comm and data.get("method") == "update_states":
            if self._control_reply is not None and not self._control_reply.done():
                self._control_reply.set_result(msg)
            return
        if data.get("method") in ("update", "echo_update") and comm_id in self.widgets:
            state = dict(data.get("state") or {})
            put_buffers(state, data.get("buffer_paths") or [], msg.buffers)
            if data.get("method") == "echo_update":
                state = self._foreign_echo(comm_id, state, msg.parent_id)
            self._set_state(comm_id, state)

    def _foreign_echo(self, comm_id: str, state: Json, parent_id: str) -> Json:
        """What the browser's widget manager keeps of an `echo_update`: keys this page changed
        itself are already applied, and an echo of an older change of ours must not undo a
        newer one still in flight; other pages' changes apply."""
        kept: Json = {}
        for key, value in state.items():
            latest = self._unechoed.get((comm_id, key))
            if latest is None:
                kept[key] = value
            elif latest == parent_id:
                del self._unechoed[(comm_id, key)]
        return kept

    async def _handle_output(self, msg: KernelMessage) -> None:
        model_id = self._output_routes.get(msg.parent_id)
        if model_id is None or model_id not in self.widgets:
            target = self.kernel_errors if msg.msg_type == "error" else self.stray_outputs
            target.append({"output_type": msg.msg_type, **msg.content})
            return
        # What the browser's OutputModel does: add (merging streams), clear, sync back.
        state = self.widgets[model_id]
        outputs: list[Json] = list(state.get("outputs") or [])
        if msg.msg_type == "clear_output":
            if msg.content.get("wait"):
                self._clear_next.add(model_id)
            else:
                outputs = []
        else:
            if model_id in self._clear_next:
                self._clear_next.discard(model_id)
                outputs = []
            output = {"output_type": msg.msg_type, **msg.content}
            output.pop("transient", None)
            last = outputs[-1] if outputs else None
            if (
                msg.msg_type == "stream"
                and last is not None
                and last.get("output_type") == "stream"
                and last.get("name") == output.get("name")
            ):
                outputs[-1] = {
                    **last,
                    "text": str(last.get("text", "")) + str(output.get("text", "")),
                }
            else:
                outputs.append(output)
        state["outputs"] = outputs
        if self.closed_reason is not None:
            return
        await self.send(
            "shell",
            "comm_msg",
            {
                "comm_id": model_id,
                "data": {"method": "update", "state": {"outputs": outputs}, "buffer_paths": []},
            },
        )
