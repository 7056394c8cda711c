"""`freezer preview NOTEBOOK`: build to a temporary app, serve it locally, rebuild on save.

The procedure: build the notebook into a fresh directory under a temporary root; start
`freezer serve` on it as a child process (no sign-in, tracebacks shown) on a loopback port; open
the browser; poll the notebook's modification time on the IOLoop. When the file changes, build
again into a new directory and, if that build succeeds, restart the server on the same port with
the new app and say so: reloading the page shows the new version (with a fresh run, since the
stages may have changed). A failed build leaves the running app alone. Ctrl-C stops the server
and removes the temporary directory.

The server runs in its own process so that a rebuilt app starts from a clean slate (manifest,
kernels, database) without reaching into the server's internals.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import webbrowser
from collections.abc import Sequence
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.ioloop import PeriodicCallback

from freezer.commands import build_and_report, run_command

LOOPBACK = "127.0.0.1"
POLL_INTERVAL_MS = 500
"""How often the notebook's modification time is checked."""
START_TIMEOUT = 120.0
"""Seconds the server has to answer HTTP after it starts."""
STOP_TIMEOUT = 20.0
"""Seconds the server has to exit after SIGTERM before it is killed."""


class PreviewError(Exception):
    """The preview cannot go on; the message is one line."""


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def say(message: str) -> None:
    """One line of the preview's own log."""
    print(f"freezer preview: {message}", file=sys.stderr, flush=True)


def notebook_stamp(path: Path) -> tuple[int, int] | None:
    """What changes when the notebook is saved: modification time and size (None: missing)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def build_app(notebook: Path, out_dir: Path, include: Sequence[str] = ()) -> bool:
    """Build `notebook` into `out_dir` as `freezer build` does (its summary, warnings and
    errors printed); True on success."""
    build = functools.partial(build_and_report, notebook, out_dir, include=include)
    return run_command(build) == 0


class Preview:
    """One preview session: the build directories, the server process and the file watcher."""

    def __init__(
        self, notebook: Path, port: int, open_browser: bool, include: Sequence[str] = ()
    ) -> None:
        self.notebook = notebook
        self.include = tuple(include)
        self.port = port
        self.open_browser = open_browser
        self.url = f"http://{LOOPBACK}:{port}/"
        self.root = Path(tempfile.mkdtemp(prefix="freezer-preview-"))
        self.builds = 0
        self.app_dir: Path | None = None
        self.server: asyncio.subprocess.Process | None = None
        self.stamp = notebook_stamp(notebook)
        self.rebuilding: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()

    async def run(self) -> int:
        """Build, serve, watch until interrupted; the exit status of the command."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopped.set)
        watcher = PeriodicCallback(self.check_notebook, POLL_INTERVAL_MS)
        try:
            app_dir = await self.build()
            if app_dir is None:
                say(f"{self.notebook}: the build failed; fix the notebook and run preview again")
                return 2
            await self.serve(app_dir)
            if self.stopped.is_set():
                return 0
            say(f"serving {self.notebook.name} at {self.url} (Ctrl-C to stop)")
            if self.open_browser:
                await asyncio.to_thread(webbrowser.open, self.url)
            watcher.start()
            await self.stopped.wait()
            return 0
        except PreviewError as exc:
            say(str(exc))
            return 2
        finally:
            watcher.stop()
            if self.rebuilding is not None:
                self.rebuilding.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.rebuilding
            await self.stop_server()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            shutil.rmtree(self.root, ignore_errors=True)

    async def build(self) -> Path | None:
        """Build the notebook into a new directory (in a worker thread); None if it failed."""
        self.builds += 1
        out_dir = self.root / f"build-{self.builds}"
        ok = await asyncio.to_thread(build_app, self.notebook, out_dir, self.include)
        if not ok:
            return None
        say(f"built {self.notebook.name} into {out_dir}")
        return out_dir

    async def serve(self, app_dir: Path) -> None:
        """Start `freezer serve` on `app_dir` and wait until it answers."""
        argv = [
            sys.executable, "-m", "freezer", "serve", str(app_dir),
            f"--port={self.port}", f"--ip={LOOPBACK}", "--FreezerApp.port_retries=0",
            "--no-browser",
            "--auth", "none", "--show-tracebacks",
        ]
        self.server = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
        )
        self.app_dir = app_dir
        await self.wait_ready()

    async def wait_ready(self) -> None:
        """Return once the server answers any HTTP request, else raise :class:`PreviewError`."""
        client = AsyncHTTPClient()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.stopped.is_set():  # Ctrl-C while the server starts: stop waiting
            server = self.server
            if server is None or server.returncode is not None:
                code = server.returncode if server else None
                raise PreviewError(f"the server exited (status {code}) before it answered")
            try:
                await client.fetch(self.url + "health", request_timeout=5)
                return
            except HTTPClientError:
                return  # any HTTP answer: it is serving
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise PreviewError(
                    f"the server did not answer on {self.url} in {START_TIMEOUT:g} s"
                )
            await asyncio.sleep(0.1)

    async def stop_server(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL to its process group after a timeout)."""
        server, self.server = self.server, None
        if server is None or server.returncode is not None:
            return
        server.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.wait(), STOP_TIMEOUT)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            await server.wait()

    def check_notebook(self) -> None:
        """The watcher's tick: start a rebuild when the notebook changed and none is running."""
        if self.rebuilding is not None and not self.rebuilding.done():
            return
        if self.server is not None and self.server.returncode is not None:
            say(f"the server exited (status {self.server.returncode}); save to restart it")
            self.server = None
        stamp = notebook_stamp(self.notebook)
        if stamp is None or stamp == self.stamp:
            return
        self.stamp = stamp
        self.rebuilding = asyncio.ensure_future(self.rebuild())

    async def rebuild(self) -> None:
        """Build the changed notebook; on success restart the server on the new app."""
        say(f"{self.notebook.name} changed; rebuilding")
        app_dir = await self.build()
        if app_dir is None:
            say("the build failed; still serving the previous version")
            return
        old_dir = self.app_dir
        await self.stop_server()
        try:
            await self.serve(app_dir)
        except PreviewError as exc:
            say(f"{exc}; fix the notebook and save again")
            return
        if old_dir is not None:
            shutil.rmtree(old_dir, ignore_errors=True)
        say(f"rebuilt (build {self.builds}); reload the page at {self.url} to see it")


def preview_main(argv: list[str]) -> int:
    """`freezer preview NOTEBOOK [--port N] [--no-browser]`."""
    parser = argparse.ArgumentParser(
        prog="freezer preview",
        description="Build a notebook to a temporary app, serve it for you alone with "
        "tracebacks shown, and rebuild whenever the notebook is saved.",
    )
    parser.add_argument("notebook", help="the .ipynb file")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument(
        "--include", metavar="PATH", action="append", default=[],
        help="a file or directory the notebook reads by relative path (as `freezer build`)",
    )
    args = parser.parse_args(argv)
    notebook = Path(args.notebook).resolve()
    if not notebook.is_file():
        print(f"freezer preview: {args.notebook}: no such file", file=sys.stderr)
        return 2
    include = [str(Path(path).resolve()) for path in args.include]
    preview = Preview(
        notebook, args.port or free_port(), open_browser=not args.no_browser, include=include
    )
    return asyncio.run(preview.run())
