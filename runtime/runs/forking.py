"""Kernels forked from a warmed parent: jupyter_client's provisioner for `--kernel-start fork`.

A spawned kernel is a new Python that imports ipykernel, ipywidgets, the runner and the app's
warm imports before it answers: most of a kernel start, and most of a kernel's memory, the same
in every kernel. :class:`ForkingProvisioner` keeps one parent process per app version
(:mod:`runtime.runs.fork_parent`) that has imported all that once, and asks it to fork a child
per kernel; the child builds IPKernelApp, its zmq context and its event loop after the fork, on
the connection file jupyter_client wrote (:class:`jupyter_client.provisioning.LocalProvisioner`
does everything but the launch). The imported pages stay shared copy-on-write between the parent
and every kernel of the app (their PSS divides them, their RSS counts them in each).

The parent of an app version is started on the first kernel of that version, started again when
it has died, and let go of when the app in its directory was rebuilt (another `app_id`): it then
ends with its last kernel. When no parent can be used (its warm imports failed, it died while
starting, the kernel command is not ipykernel's), the kernel is spawned the ordinary way and the
server log says why, once per app version and reason.

The kernel is not this process's child: poll, wait and signals go through a pidfd
(:class:`ForkedKernel`); an interrupt is SIGINT to the kernel's process group, as for a spawned
kernel. Selected with `freezer serve --kernel-start fork` (:func:`use_forking`); jupyter_client
finds it by its name, :data:`PROVISIONER_NAME`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from runtime import manifest as mf
from runtime.errors import RuntimeAppError
from runtime.runs.fork_parent import COMMAND_LINE_ROOM
from runtime.runs.kernel_start import process_ended

PROVISIONER_NAME = "freezer-forking-provisioner"
KERNEL_START_ENV = "FREEZER_KERNEL_START"
"""Environment variable naming the default of `--kernel-start` (`fork` or `spawn`)."""
KERNEL_STARTS = ("fork", "spawn")
PARENT_START_TIMEOUT = 120.0
"""Seconds a new parent may take over its imports before kernels are spawned instead."""
FORK_TIMEOUT = 30.0
"""Seconds a running parent may take to answer one fork request."""
UNKNOWN_EXIT = 1
"""The exit status reported for a forked kernel: its parent reaps it, the status is not kept."""
KERNEL_MODULE = ["-m", "ipykernel_launcher"]


class ForkUnavailableError(RuntimeAppError):
    """No parent can fork this kernel; the message says why (the kernel is spawned instead)."""


class ParentRefusedError(ForkUnavailableError):
    """The parent of an app version cannot warm (its imports fail): not tried again for it."""


def default_kernel_start() -> str:
    """`fork` or `spawn`, from :data:`KERNEL_START_ENV`; `spawn` when unset or unknown."""
    value = os.environ.get(KERNEL_START_ENV, "")
    return value if value in KERNEL_STARTS else "spawn"


class ForkedKernel:
    """The `subprocess.Popen` face jupyter_client's LocalProvisioner uses, over a pidfd."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # ended (and reaped) before we looked
            self.pidfd, self.returncode = None, UNKNOWN_EXIT
        except OSError:  # no pidfd here (old Linux): the process table
            self.pidfd = None

    def _ended(self, timeout: float | None) -> bool:
        if self.pidfd is not None:
            return bool(select.select([self.pidfd], [], [], timeout)[0])
        return process_ended(self.pid)

    def poll(self) -> int | None:
        """The exit status once the kernel has ended, else None."""
        if self.returncode is None and self._ended(0):
            self.returncode = UNKNOWN_EXIT
            self._close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Block until the kernel has ended (jupyter_client calls it once poll says so)."""
        if self.returncode is None:
            if not self._ended(timeout):
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
            self.returncode = UNKNOWN_EXIT
            self._close()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        """Signal the kernel (never another process that reused its pid); nothing once it has
        ended, as `Popen.send_signal` (jupyter_client interrupts a dead kernel to shut it down)."""
        if self.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signum)
            else:
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def _close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


@dataclass(eq=False)
class ForkParent:
    """One parent process (:mod:`runtime.runs.fork_parent`) and the socket to it."""

    app_id: str
    hash_seed: str | None
    process: subprocess.Popen[bytes]
    channel: socket.socket
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    buffer: bytes = b""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    async def read_line(self, timeout: float) -> dict[str, Any]:
        """The next JSON line from the parent; ForkUnavailableError if it ends or is silent."""
        loop = asyncio.get_running_loop()
        while b"\n" not in self.buffer:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.channel, 65536), timeout)
            except (asyncio.TimeoutError, OSError) as exc:
                raise ForkUnavailableError(f"the parent did not answer ({exc!r})") from None
            if not chunk:
                raise ForkUnavailableError("the parent ended")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def fork(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        """Have the parent fork a kernel running `argv` (ipykernel's arguments); its pid."""
        async with self.lock:
            loop = asyncio.get_running_loop()
            request = {"argv": argv, "env": env, "cwd": cwd}
            try:
                await loop.sock_sendall(self.channel, json.dumps(request).encode() + b"\n")
                answer = await self.read_line(FORK_TIMEOUT)
            except (OSError, ForkUnavailableError) as exc:
                # a late answer would be taken for the next request's: this parent is done
                self.let_go()
                self.process.kill()
                raise ForkUnavailableError(f"the parent failed to fork ({exc})") from None
        return int(answer["pid"])

    def let_go(self) -> None:
        """Stop using this parent: it ends once its last kernel has ended."""
        self.channel.close()

    def reap(self) -> bool:
        """Whether the parent has ended (and is reaped)."""
        return self.process.poll() is not None


class ForkParents:
    """The parents of this server, one per app directory (the one of its current app version)."""

    def __init__(self) -> None:
        self.by_dir: dict[Path, ForkParent] = {}
        self.refused: dict[tuple[Path, str], str] = {}  # (dir, app_id): why no parent
        self.let_go: list[ForkParent] = []
        self.lock = asyncio.Lock()

    async def parent_for(
        self, app_dir: Path, executable: str, env: dict[str, str], cwd: str
    ) -> tuple[ForkParent, str | None]:
        """A running parent for the app now in `app_dir`, and what happened to an earlier one
        (None, or a sentence for the log). ForkUnavailableError when there cannot be one.

        One caller at a time: the pool starts kernels side by side, and they share one parent.
        """
        async with self.lock:
            return await self._parent_for(app_dir, executable, env, cwd)

    async def _parent_for(
        self, app_dir: Path, executable: str, env: dict[str, str], cwd: str
    ) -> tuple[ForkParent, str | None]:
        app_id = mf.load(app_dir).app_id
        self.let_go = [p for p in self.let_go if not p.reap()]
        refused = self.refused.get((app_dir, app_id))
        if refused is not None:
            raise ForkUnavailableError(refused)
        parent = self.by_dir.get(app_dir)
        note = None
        if parent is not None and (parent.app_id != app_id or not parent.alive):
            note = ("the app was rebuilt: a new parent" if parent.alive
                    else f"the parent (pid {parent.process.pid}) had died: a new one")
            self.drop(app_dir, parent)
            parent = None
        if parent is None:
            try:
                parent = await self._start(app_dir, app_id, executable, env, cwd)
            except ParentRefusedError as exc:
                self.refused[(app_dir, app_id)] = str(exc)
                raise
            self.by_dir[app_dir] = parent
        if parent.hash_seed != env.get("PYTHONHASHSEED"):
            raise ForkUnavailableError("the kernel asks for another PYTHONHASHSEED than the "
                                       "parent's")
        return parent, note

    def drop(self, app_dir: Path, parent: ForkParent) -> None:
        """Forget `parent`; it ends with its last kernel."""
        if self.by_dir.get(app_dir) is parent:
            del self.by_dir[app_dir]
        parent.let_go()
        self.let_go.append(parent)

    def stop(self) -> None:
        """End every parent now (their kernels end with them)."""
        for parent in [*self.by_dir.values(), *self.let_go]:
            parent.let_go()
            if parent.alive:
                parent.process.kill()
            parent.process.wait()
        self.by_dir.clear()
        self.let_go.clear()
        self.lock = asyncio.Lock()  # the next event loop's

    async def _start(
        self, app_dir: Path, app_id: str, executable: str, env: dict[str, str], cwd: str
    ) -> ForkParent:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        try:
            # started from the event loop's thread: the parent-death signal it arms follows
            # this thread, which lives as long as the server
            process = subprocess.Popen(
                [executable, "-m", "runtime.runs.fork_parent", str(theirs.fileno()),
                 str(app_dir), str(os.getpid()), " " * COMMAND_LINE_ROOM],
                env=env, cwd=cwd, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise ForkUnavailableError(f"cannot start the parent: {exc}") from None
        finally:
            theirs.close()
        parent = ForkParent(app_id, env.get("PYTHONHASHSEED"), process, ours)
        try:
            answer = await parent.read_line(PARENT_START_TIMEOUT)
        except ForkUnavailableError:
            process.kill()
            parent.let_go()
            self.let_go.append(parent)
            raise
        if "error" in answer:
            parent.let_go()
            self.let_go.append(parent)
            raise ParentRefusedError(str(answer["error"]))
        return parent


PARENTS = ForkParents()
"""The parents of this server's kernels (a provisioner lives as long as one kernel)."""


def stop_parents() -> None:
    """End every fork parent of this process (the server stops; kernels are shut down)."""
    PARENTS.stop()


def ipykernel_arguments(cmd: list[str]) -> list[str]:
    """`cmd`'s arguments to IPKernelApp; ForkUnavailableError for another kernel command."""
    if cmd[1:3] != KERNEL_MODULE:
        raise ForkUnavailableError(f"the kernel command {cmd[:3]} is not ipykernel's")
    return ["ipykernel_launcher", *cmd[3:]]


class ForkingProvisioner(LocalProvisioner):
    """LocalProvisioner whose kernel is forked from its app version's warmed parent."""

    forked = False

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Fork the kernel from its app's parent; spawn it when there cannot be one."""
        env: dict[str, str] = dict(kwargs.get("env") or os.environ)
        cwd = str(kwargs.get("cwd") or os.getcwd())
        app_dir = Path(env.get("FREEZER_APP_DIR") or cwd).resolve()
        try:
            argv = ipykernel_arguments(cmd)
            parent, note = await PARENTS.parent_for(app_dir, cmd[0], env, cwd)
            if note is not None:
                self.log.info("forked kernels of %s: %s", app_dir, note)
            pid = await parent.fork(argv, env, cwd)
        except (ForkUnavailableError, mf.ManifestError) as exc:
            self._say_spawning(app_dir, str(exc))
            info: KernelConnectionInfo = await super().launch_kernel(cmd, **kwargs)
            return info
        self.process = ForkedKernel(pid)  # type: ignore[assignment]  # Popen's face
        self.pid = pid
        self.pgid = pid  # the child's own session (os.setsid), as a spawned kernel's
        self.cwd = cwd
        self.forked = True
        info = self.connection_info
        return info

    def _say_spawning(self, app_dir: Path, why: str) -> None:
        said = _said.setdefault(app_dir, set())
        if why not in said:
            said.add(why)
            self.log.warning("kernels of %s are spawned, not forked: %s", app_dir, why)


_said: dict[Path, set[str]] = {}


def use_forking(factory: Any) -> None:
    """Make jupyter_client's provisioner factory (`KernelProvisionerFactory.instance()`) give
    every kernel without a provisioner of its own a :class:`ForkingProvisioner` (on Linux;
    elsewhere kernels are spawned)."""
    from importlib.metadata import EntryPoint

    if not sys.platform.startswith("linux"):
        return
    factory.provisioners[PROVISIONER_NAME] = EntryPoint(
        PROVISIONER_NAME, f"{__name__}:ForkingProvisioner", "jupyter_client.kernel_provisioners"
    )
    factory.default_provisioner_name = PROVISIONER_NAME


def running_parents() -> list[int]:
    """The pids of the parents in use (for tests and benchmarks)."""
    return [p.process.pid for p in PARENTS.by_dir.values() if p.alive]

