"""Deployment options of `freezer serve`: config files, a trusted reverse proxy, shutdown.

- :class:`DeploymentOptions` — the traits a deployment needs (`--config`, `--trust-proxy`,
  `--max-message-size`, `--shutdown-timeout`), mixed into :class:`runtime.web.app.FreezerApp`, so
  they are command-line flags, config-file entries and `--help-all` lines like every other
  option.
- :func:`load_app_config` — `freezer_config.py` / `freezer_config.json` in the app directory, or
  the file `--config` names, read the way Jupyter servers read theirs: the command line wins;
  a file that cannot be used is a one-line error (exit status 2), not a traceback.
- :func:`listen` — the HTTP server; behind a trusted proxy it takes the client's address,
  protocol and host from `X-Forwarded-For`/`X-Real-Ip`, `X-Forwarded-Proto`/`X-Scheme` and
  `X-Forwarded-Host`, and marks every cookie `Secure` when the person's protocol is https.
- :func:`shutdown_within` — run the server's shutdown with a bound; kernels still alive after it
  are killed, so a stopped server never leaves kernel processes behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer
from traitlets import Bool, Float, Integer, TraitError, Unicode
from traitlets.config import Application, Config, Configurable
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

from runtime import manifest

DEPLOY_ALIASES = {
    "config": "FreezerApp.config_file",
    "max-message-size": "FreezerApp.max_message_size",
    "flood-rate": "FreezerApp.flood_rate",
    "shutdown-timeout": "FreezerApp.shutdown_timeout",
}
DEPLOY_FLAGS = {
    "trust-proxy": (
        {"FreezerApp": {"trust_proxy": True}},
        "Trust X-Forwarded-For/-Proto/-Host from a reverse proxy in front of the server.",
    ),
}


class ConfigFileError(ValueError):
    """The config file given with `--config` does not exist or is not a .py/.json file."""


class DeploymentOptions(Configurable):
    """The options of a server deployed behind a reverse proxy and a service manager."""

    config_file = Unicode(
        "",
        config=True,
        help="A config file (.py or .json, traitlets format: c.FreezerApp.port = 8866) read "
        "instead of APP/freezer_config.py and APP/freezer_config.json. Options given on the "
        "command line win over the file. Default (empty): the app directory's file, if any.",
    )
    trust_proxy = Bool(
        False,
        config=True,
        help="Take the client's address, protocol and host from the X-Forwarded-For "
        "(X-Real-Ip), X-Forwarded-Proto (X-Scheme) and X-Forwarded-Host headers. Only for a "
        "server that a reverse proxy alone can reach (listening on 127.0.0.1): anyone else "
        "could forge them. Cookies are Secure when the forwarded protocol is https. "
        "Default False: the headers are ignored.",
    )
    max_message_size = Integer(
        512 * 1024,
        config=True,
        help="Bytes one message from a page (a widget change) may have. A bigger one is "
        "refused before it is saved or reaches the kernel, and the page says so; raise it "
        "for apps whose widgets carry files (FileUpload). Default 524288 (512 KiB); 0: no "
        "limit below the websocket's own 10 MiB.",
    )
    flood_rate = Float(
        200.0,
        config=True,
        help="Messages a second one run's pages (all its tabs together) may send on average, "
        "with bursts of twice as many; the excess is dropped before the journal and the page "
        "is told. Far above a person dragging a slider. Default 200; 0: no limit.",
    )
    shutdown_timeout = Float(
        20.0,
        config=True,
        help="Seconds a SIGTERM or SIGINT gives the server to stop: refuse new connections, "
        "commit the journal, shut the kernels down. Kernels still running after it are "
        "killed. Keep it below the service manager's stop timeout (systemd: TimeoutStopSec, "
        "default 90). Default 20; 0: no bound.",
    )


def config_files_of(app_dir: Path, config_file: str) -> list[Path]:
    """The config files to read: the one `--config` names, else the app directory's."""
    if config_file:
        path = Path(config_file).expanduser().resolve()
        if path.suffix not in (".py", ".json"):
            raise ConfigFileError(f"{config_file}: a config file ends in .py or .json")
        if not path.is_file():
            raise ConfigFileError(f"{config_file}: no such config file")
        return [path]
    return [p for p in (app_dir / f"{manifest.CONFIG_NAME}.py",
                          app_dir / f"{manifest.CONFIG_NAME}.json")
            if p.is_file()]


def read_config_file(path: Path, log: logging.Logger) -> Config:
    """One traitlets config file (.py or .json); raises :class:`ConfigFileError`."""
    loader_class = PyFileConfigLoader if path.suffix == ".py" else JSONFileConfigLoader
    loader = loader_class(path.name, str(path.parent), log=log)
    try:
        config: Config = loader.load_config()
    except Exception as exc:  # the file's own code raised, or it is not valid JSON
        raise ConfigFileError(f"{path}: {type(exc).__name__}: {exc}") from exc
    return config


def load_app_config(
    app: Application,
    app_dir: Path,
    config_file: str,
    refresh: Callable[[Application], None] | None = None,
) -> list[Path]:
    """Read the app's config files into `app` (the command line keeps priority).

    `refresh(app)` gives the new config to components the app made before this call (Voila's
    configuration: :func:`runtime.web.voila.refresh_voila_configuration`). Returns the files
    read; raises :class:`ConfigFileError` for a file that cannot be used.
    """
    files = config_files_of(app_dir, config_file)
    if not files:
        return []
    config = Config()
    for path in files:
        config.merge(read_config_file(path, app.log))
    config.merge(app.cli_config)
    try:
        app.update_config(config)
        if refresh is not None:
            refresh(app)
    except TraitError as exc:
        names = ", ".join(str(path) for path in files)
        raise ConfigFileError(f"{names}: {exc}") from exc
    for path in files:
        app.log.info("read config file %s", path)
    return files


# --- behind a reverse proxy ------------------------------------------------------------------


def secure_cookies(headers: httputil.HTTPHeaders) -> None:
    """Add the Secure attribute to every Set-Cookie header that lacks it."""
    cookies = headers.get_list("Set-Cookie")
    if not cookies:
        return
    del headers["Set-Cookie"]
    for cookie in cookies:
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        headers.add("Set-Cookie", cookie if "secure" in attributes else f"{cookie}; Secure")


class _ForwardedRequest(httputil.HTTPMessageDelegate):
    """One request from the trusted proxy: forwarded host applied, cookies Secure over https.

    Tornado's `xheaders` has already taken the address and protocol from the forwarded
    headers when :meth:`headers_received` runs.
    """

    def __init__(
        self, delegate: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection
    ) -> None:
        self.delegate = delegate
        self.connection = connection

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        forwarded_host = headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        if forwarded_host:
            # jupyter_server compares a websocket's Origin with Host: the person's host it is.
            headers["Host"] = forwarded_host
        context = getattr(self.connection, "context", None)
        if getattr(context, "protocol", "") == "https":
            self._secure_cookies_of_response()
        return self.delegate.headers_received(start_line, headers)

    def _secure_cookies_of_response(self) -> None:
        # Tornado adds cookies after its output transforms run, so the response's headers are
        # rewritten where they leave: this request's connection (one per request here).
        write_headers = self.connection.write_headers

        def write_secure_headers(
            start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
            headers: httputil.HTTPHeaders,
            chunk: bytes | None = None,
        ) -> Any:
            secure_cookies(headers)
            return write_headers(start_line, headers, chunk)

        self.connection.write_headers = write_secure_headers  # type: ignore[method-assign]

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()


class ForwardedHeaders(httputil.HTTPServerConnectionDelegate):
    """Wraps the Tornado application for a server behind a trusted reverse proxy."""

    def __init__(self, application: httputil.HTTPServerConnectionDelegate) -> None:
        self.application = application

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        inner = self.application.start_request(server_conn, request_conn)
        return _ForwardedRequest(inner, request_conn)

    def on_close(self, server_conn: object) -> None:
        self.application.on_close(server_conn)


def listen(
    application: httputil.HTTPServerConnectionDelegate,
    port: int,
    address: str,
    *,
    trust_proxy: bool,
    **settings: Any,
) -> HTTPServer:
    """Serve `application` on `address`:`port`; forwarded headers count only with
    `trust_proxy`."""
    delegate = ForwardedHeaders(application) if trust_proxy else application
    server = HTTPServer(delegate, xheaders=trust_proxy, **settings)
    server.listen(port, address)
    return server


# --- shutdown --------------------------------------------------------------------------------


def child_processes() -> list[int]:
    """Process ids of this process's children (Linux `/proc`; empty elsewhere)."""
    pid = os.getpid()
    with contextlib.suppress(OSError, ValueError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    return []


async def shutdown_within(
    shutdown: Awaitable[None], timeout: float, log: logging.Logger
) -> bool:
    """Await `shutdown` for at most `timeout` seconds (0: no bound); on timeout, kill the
    kernels it did not stop. Returns whether it finished in time."""
    try:
        if timeout > 0:
            await asyncio.wait_for(shutdown, timeout)
        else:
            await shutdown
        return True
    except asyncio.TimeoutError:
        left = child_processes()
        log.error("shutdown took longer than %g s; killing %d kernel processes",
                  timeout, len(left))
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # a kernel leads its own process group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return False
