"""The parent process of forked kernels: warm once, then fork one kernel per request.

`python -m runtime.runs.fork_parent FD APP_DIR SERVER_PID PADDING` is started by
:class:`runtime.runs.forking.ForkingProvisioner`, once per app version. It

1. arms the parent-death signal, so it ends with the server (:mod:`runtime.runs.lifeline`);
2. imports what a kernel of the app needs before it knows its person: ipykernel, ipywidgets, the
   runner, and the modules the app's `freeze:warm` cells import (:func:`warm_imports`);
3. says `{"ready": true}` (or `{"error": "..."}` and ends) on the socket `FD`;
4. reads one JSON request a line (`argv`, `env`, `cwd`) and answers each with the `pid` of a child
   that becomes its kernel (:class:`runtime.runs.fork_kernel.ForkedKernelApp`), once that child
   has bound its sockets.

**A spare forked ahead.** The child for the next request is forked as soon as the last one was
answered (:func:`spare_kernel`): it detaches (its own session, dying with the parent) and runs
IPython's application start (profile directory, config files), then waits on a pipe. A request
whose kernel command line is the usual `-f FILE`, in the same directory and with the same
config-related environment (:data:`CONFIG_ENV`) as the parent's, is handed to it: it takes the
request's environment, directory and command line and starts its kernel from there. Any other
request is forked for then and there (:func:`become_kernel`), and the spare is let go. So the
fork and the start common to every kernel are off the request's path; the spare costs one idle
process's private pages per app version, and ends with the parent's socket.

**Imports only, not warm cells.** Running the warm cells here would share their values between
every kernel of the app, but their outputs and widgets belong to each kernel's runner (which runs
them in `runner.prepare()`, against modules already loaded), and a warm cell may open a file, a
socket or a thread that does not survive a fork. Importing is where the time goes, and an import
is shared safely as copy-on-write pages. So the parent has no zmq context, no event loop and no
thread of Python's (a warm import that starts one makes the parent refuse, and kernels are then
spawned); a native thread a library starts at import (OpenBLAS's pool) is not copied into a fork,
and the libraries that start them re-create them in the child.

Children are reaped by the kernel (SIGCHLD ignored), so the server learns of a kernel's end by
its pidfd, not by an exit status. Each child dies with this parent (parent-death signal), and this
parent with the server: a kernel never outlives the server. When the server stops using this
parent (the app was rebuilt) it closes the socket; the parent then waits until its last kernel
has ended, and ends.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import manifest as mf
from runtime.runs.lifeline import die_with_parent

BASE_IMPORTS = (
    "import ipykernel.kernelapp",
    "import ipykernel.ipkernel",
    "import ipywidgets",
    "import runtime.kernel.runner",
    "import runtime.runs.fork_kernel",
    # what IPKernelApp.initialize() imports (measured: about 170 modules, half its time)
    "import ipykernel.debugger",
    "import debugpy",
    "import IPython.core.completerlib, IPython.core.debugger, IPython.core.oinspect",
    "import IPython.extensions.storemagic, tornado.platform.asyncio",
    "import sqlite3, pdb, pydoc, psutil, faulthandler, gzip, unicodedata",
    "import xml.dom.minidom, xmlrpc.client, http.server",
)
"""What every Freezer kernel imports before its first cell, and while its kernel app starts."""
BIND_TIMEOUT = 10.0
"""Seconds the parent waits for a child to bind its sockets before it answers the server anyway
(the server's client then retries connecting as zmq does); below the server's FORK_TIMEOUT."""
CONFIG_ENV = ("IPYTHON", "JUPYTER", "XDG_", "HOME", "PYTHON", "MPL", "PATH")
"""Environment variables a kernel app reads while it prepares (where its config files are):
a spare prepared under other values than a request's is not used for it."""
COMMAND_LINE_ROOM = 2048
"""Bytes of padding in the parent's command line, which a child overwrites with its own."""


def warm_imports(app_dir: Path) -> list[str]:
    """The top-level `import` statements of the app's `freeze:warm` code cells, as source.

    A line of IPython syntax (`%magic`, `!command`) is left out before parsing; a cell that
    still does not parse is skipped (the kernel reports it); relative imports are skipped.
    """
    statements: list[str] = []
    for stage in mf.load(app_dir).stages:
        for cell in stage.cells:
            if cell.kind != "code" or mf.Tag.WARM not in cell.tags:
                continue
            lines = [ln for ln in cell.source.splitlines()
                     if not ln.lstrip().startswith(("%", "!"))]
            try:
                tree = ast.parse("\n".join(lines))
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, ast.Import) or (
                    isinstance(node, ast.ImportFrom) and node.level == 0
                ):
                    statements.append(ast.unparse(node))
    return statements


def warm(app_dir: Path) -> str | None:
    """Run the imports; None, or why this process cannot be a parent of kernels."""
    for statement in (*BASE_IMPORTS, *warm_imports(app_dir)):
        try:
            exec(compile(statement, f"<warm import of {app_dir}>", "exec"), {})  # noqa: S102
        except BaseException as exc:  # an import may raise anything, SystemExit included
            return f"the warm import `{statement}` failed in the parent: " \
                   f"{type(exc).__name__}: {exc}"
        if threading.active_count() > 1:
            return f"the warm import `{statement}` started a thread, which a fork cannot copy"
    return None


def show_command_line(argv: list[str]) -> None:
    """Make `/proc/self/cmdline` (what `ps` shows) read `argv`, as far as there is room.

    The child's command line is its parent's, which the provisioner pads with
    :data:`COMMAND_LINE_ROOM` bytes; Python keeps its own copy of its arguments, so the original
    area is free to overwrite (as `setproctitle` does). A forked kernel then shows the same
    `... -f kernel-ID.json` as a spawned one, for whoever looks for a kernel's process.
    """
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48 and 49)
    text = b"\0".join(a.encode() for a in argv)[: end - start - 1]
    ctypes.memmove(start, text + b"\0" * (end - start - len(text)), end - start)


def detach(parent_pid: int) -> None:
    """In a freshly forked child: its own session and signals, dying with the parent, no stdin."""
    os.setsid()  # as jupyter_client's launcher does: signals reach the kernel's group only
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    die_with_parent(parent_pid)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def adopt(request: dict[str, Any], parent_pid: int) -> list[str]:
    """Take the environment, directory and command line of `request`; its kernel arguments."""
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ["JPY_PARENT_PID"] = str(parent_pid)
    os.chdir(request["cwd"])
    argv: list[str] = request["argv"]
    show_command_line([sys.executable, "-m", *argv])
    sys.argv = argv
    return argv[1:]


def run_to_exit(body: Callable[[], None]) -> None:
    """Run `body` in a forked child, then end the child with its status; never returns."""
    status = 1
    try:
        body()
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        traceback.print_exc()
    finally:
        # never return into the parent's loop; run the kernel's own exit handlers
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        os._exit(status)


def become_kernel(request: dict[str, Any], parent_pid: int, bound_fd: int) -> None:
    """In a freshly forked child: become the kernel `request` asks for; never returns."""
    from runtime.runs.fork_kernel import launch

    def body() -> None:
        detach(parent_pid)
        launch(adopt(request, parent_pid), parent_pid, bound_fd)

    run_to_exit(body)


def wait_bound(fd: int) -> None:
    """Wait until the child on the other end of pipe `fd` has bound its sockets (it writes a
    byte), has ended (end of file) or took :data:`BIND_TIMEOUT` seconds; close `fd`."""
    try:
        if select.select([fd], [], [], BIND_TIMEOUT)[0]:
            os.read(fd, 1)
    finally:
        os.close(fd)


@dataclass
class Spare:
    """A child forked ahead of the next request, its kernel app prepared (see the module's
    docstring); it reads the request on `request_fd` and says on `bound_fd` when it listens."""

    pid: int
    request_fd: int
    bound_fd: int
    env: dict[str, str]
    cwd: str

    def fits(self, request: dict[str, Any]) -> bool:
        """Whether the request's kernel is the one this spare prepared for."""
        from runtime.runs.fork_kernel import command_line_config

        argv: list[str] = request["argv"]
        if command_line_config(argv[1:], 0) is None or request["cwd"] != self.cwd:
            return False
        keys = {k for k in (*request["env"], *self.env) if k.startswith(CONFIG_ENV)}
        return all(request["env"].get(k) == self.env.get(k) for k in keys)

    def hand(self, request: dict[str, Any]) -> bool:
        """Give the spare the request (it becomes that kernel); False if it is gone."""
        try:
            os.write(self.request_fd, json.dumps(request).encode() + b"\n")
        except OSError:
            self.drop()
            return False
        os.close(self.request_fd)
        wait_bound(self.bound_fd)
        return True

    def drop(self) -> None:
        """Let the spare go: it ends at the end of its request pipe."""
        for fd in (self.request_fd, self.bound_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def spare_kernel(request_fd: int, parent_pid: int, bound_fd: int) -> None:
    """In a child forked ahead: prepare the kernel app, wait for a request, become its kernel;
    at the end of `request_fd` without a request, end. Never returns."""
    from runtime.runs.fork_kernel import ForkedKernelApp

    def body() -> None:
        detach(parent_pid)
        show_command_line([sys.executable, "-m", "runtime.runs.fork_parent", "(spare kernel)"])
        app = ForkedKernelApp.prepared_instance(parent_pid, bound_fd)
        with os.fdopen(request_fd, "rb") as requests:
            line = requests.readline()
        if not line:
            return
        app.run(adopt(json.loads(line), parent_pid))

    run_to_exit(body)


def fork_spare(parent_pid: int, channel: socket.socket, reader: Any) -> Spare | None:
    """Fork the next spare (None if the fork fails: requests are forked as they come)."""
    request_r, request_w = os.pipe()
    bound_r, bound_w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for fd in (request_r, request_w, bound_r, bound_w):
            os.close(fd)
        return None
    if pid == 0:
        os.close(request_w)
        os.close(bound_r)
        reader.close()
        channel.close()
        spare_kernel(request_r, parent_pid, bound_w)
    os.close(request_r)
    os.close(bound_w)
    return Spare(pid, request_w, bound_r, dict(os.environ), os.getcwd())


def fork_kernel(request: dict[str, Any], parent_pid: int, channel: socket.socket,
                reader: Any) -> int:
    """Fork a child for `request` now (no spare fits); its pid once it listens."""
    bound_r, bound_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(bound_r)
        reader.close()
        channel.close()
        become_kernel(request, parent_pid, bound_w)
    os.close(bound_w)
    wait_bound(bound_r)
    return pid


def serve_forks(channel: socket.socket) -> None:
    """Fork a kernel for each request line on `channel`; at its end, wait for the kernels."""
    parent_pid = os.getpid()
    reader = channel.makefile("rb")
    spare = fork_spare(parent_pid, channel, reader)
    for line in reader:
        request = json.loads(line)
        if spare is not None and spare.fits(request) and spare.hand(request):
            pid = spare.pid
        else:
            if spare is not None:
                spare.drop()
            pid = fork_kernel(request, parent_pid, channel, reader)
        channel.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        spare = fork_spare(parent_pid, channel, reader)
    if spare is not None:
        spare.drop()
    # the server let go of this parent (a rebuilt app): stay while a kernel still depends on us
    # (with SIGCHLD ignored, wait() returns only once every child has ended)
    try:
        while True:
            os.wait()
    except ChildProcessError:
        pass


def main(argv: list[str]) -> int:
    """`FD APP_DIR SERVER_PID`: warm, report, then fork kernels until the socket closes."""
    fd, app_dir, server_pid = int(argv[0]), Path(argv[1]), int(argv[2])  # argv[3]: padding
    channel = socket.socket(fileno=fd)
    die_with_parent(server_pid)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        error = warm(app_dir)
    except mf.ManifestError as exc:
        error = str(exc)
    channel.sendall(json.dumps({"error": error} if error else {"ready": True}).encode() + b"\n")
    if error:
        return 1
    # what the imports made is never collected: the kernels' collections leave those pages shared
    gc.freeze()
    serve_forks(channel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
