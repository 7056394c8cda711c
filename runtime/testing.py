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
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

LOOPBACK = "127.0.0.1"


class ClientError(Exception):
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
