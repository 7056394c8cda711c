"""Servers as child processes on loopback ports, and the processes they start.

- `free_port()`: an unused loopback port.
- :class:`ServerProcess`: a web server started as a child process in a session of its own,
  its output in a log file; `wait_ready` (async) / `wait_ready_sync` until it answers HTTP,
  `stop` ends it and every process it started.
- `start_voila(notebook)` and `start_freezer(app_dir, ...)`: plain Voila and `freezer serve`
  on a free port, not yet waited for; `start_server(app_dir, *args)`: `freezer serve` in the
  app's directory, once it answers.
- `child_pids`, `cmdline`, `kernel_pid`, `kernel_pids`, `kill_hard`: the process tree read
  from Linux `/proc`, and killing it at once as a crash would.

Tests, benchmarks and load tests all start their servers through here.
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

from tests.support.errors import ClientError
from tests.support.eventually import run_async

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """An unused TCP port on the loopback interface (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


# --- the process tree ------------------------------------------------------------------------


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


def cmdline(pid: int) -> list[str]:
    """The command line process `pid` was started with; empty when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def kernel_pids(server: ServerProcess | int) -> dict[str, int]:
    """Kernel id -> pid of a server's kernels (from their `kernel-<id>.json` argument)."""
    found: dict[str, int] = {}
    for pid in child_pids(_pid(server)):
        for arg in cmdline(pid):
            name = Path(arg).name
            if name.startswith("kernel-") and name.endswith(".json"):
                found[name[len("kernel-") : -len(".json")]] = pid
    return found


def kernel_pid(server: ServerProcess | int, kernel_id: str) -> int:
    """The pid of the server's kernel `kernel_id` (its connection file names it)."""
    for pid in child_pids(_pid(server)):
        if kernel_id in " ".join(cmdline(pid)):
            return pid
    raise AssertionError(f"no process of kernel {kernel_id} under server {_pid(server)}")


def _pid(server: ServerProcess | int) -> int:
    return server if isinstance(server, int) else server.pid


# --- a server --------------------------------------------------------------------------------


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

    def wait_ready_sync(self, timeout: float = 60.0) -> ServerProcess:
        """:meth:`wait_ready` from sync code (also inside an async test); the server is
        stopped if it does not get ready. Returns the server."""
        try:
            run_async(self.wait_ready(timeout))
        except BaseException:
            self.stop()
            raise
        return self

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


def kill_hard(server: ServerProcess, timeout: float = 60.0) -> None:
    """SIGKILL the server and its kernels at once, as a crash of the machine would."""
    for pid in [server.pid, *child_pids(server.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout)


# --- the servers tests start -----------------------------------------------------------------


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
    base_url: str = "/",
    python: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    name: str = "freezer",
) -> ServerProcess:
    """Start `freezer serve APP` on a loopback port (ready at `/health` under `base_url`); call
    :meth:`ServerProcess.wait_ready`. The database defaults to the app's own SQLite file.

    `python` is the interpreter whose Freezer serves (default: this one), `cwd` the server's
    directory (default: the app's parent).
    """
    app_dir = Path(app_dir).resolve()
    port = port or free_port()
    argv = [
        str(python or sys.executable), "-m", "freezer", "serve", str(app_dir),
        f"--port={port}", f"--ip={LOOPBACK}", "--FreezerApp.port_retries=0", "--no-browser",
        *([f"--db={db_url}"] if db_url else []),
        *(["--base-url", base_url] if base_url != "/" else []),
        *extra_args,
    ]  # fmt: skip
    return ServerProcess(
        argv, port, cwd=cwd or app_dir.parent, base_path=base_url, ready_path="health", name=name
    )


SERVER_START_TIMEOUT = 90.0


def start_server(
    app_dir: str | os.PathLike[str],
    *args: str,
    port: int | None = None,
    timeout: float = SERVER_START_TIMEOUT,
) -> ServerProcess:
    """`freezer serve APP ARGS` run from the app directory, returned once `/health` answers
    (callable from sync code and from async tests)."""
    server = start_freezer(app_dir, port=port, extra_args=args, cwd=app_dir)
    return server.wait_ready_sync(timeout)
