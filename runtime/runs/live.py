"""The kernels one server has alive: their records, how one is started and prepared, stopped.

A :class:`LiveKernel` is the in-memory half of a run's kernel (the run's row is in the
database): its listener, its run (None while it waits in the pool), the pages attached to it.
:class:`LiveKernels` starts kernel processes through :class:`KernelProcesses` (implemented by
:class:`runtime.web.jupyter.RunKernelManager` over jupyter_server), attaches a listener and runs
`runner.prepare()` in them, binds them to runs, and forgets them when they are gone. It is the
pool's :class:`runtime.runs.pool.KernelStarter`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jupyter_client.connect import KernelConnectionInfo

from runtime.manifest import FILES_DIR
from runtime.protocol import APP_DIR_ENV, PREPARE_CODE, RUN_DIR_ENV, lifeline_code
from runtime.protocol import configure_code as protocol_configure_code
from runtime.runs.kernel_start import retry_start, while_alive
from runtime.runs.listener import KernelListener
from runtime.runs.runfiles import RunFiles, chdir_code

if TYPE_CHECKING:
    from runtime.store.store import Run


class KernelProcesses(Protocol):
    """Kernel processes by id: what the server's kernel manager does for the run service."""

    def __contains__(self, kernel_id: str) -> bool:
        """Whether the manager still has the kernel."""
        ...

    async def start_process(self, kernel_name: str, env: dict[str, str]) -> str:
        """Start a kernel process with `env`; its kernel id."""
        ...

    def connection_info(self, kernel_id: str) -> KernelConnectionInfo:
        """The kernel's ports, transport and key (for a listener's client)."""
        ...

    def process_id(self, kernel_id: str) -> int | None:
        """The kernel's process id (None: not a local process, or no such kernel)."""
        ...

    async def kernel_alive(self, kernel_id: str) -> bool:
        """Whether the kernel's process still runs (False for a kernel the manager forgot)."""
        ...

    async def shut_down(self, kernel_id: str) -> None:
        """Stop the kernel now (nothing if the manager has forgotten it)."""
        ...

    async def shut_down_all(self) -> None:
        """Stop every kernel the manager has."""
        ...


RunnerEventSink = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Called with a kernel id and each runner event its listener receives."""
QueueRequestSink = Callable[[KernelListener, str | None, dict[str, Any]], Awaitable[None]]
"""Called with a kernel's listener, its run id and each work-queue request of its runner."""


def prepare_code() -> str:
    """What a fresh kernel runs first: die with this server, then `runner.prepare()`."""
    return lifeline_code(os.getpid()) + PREPARE_CODE


def configure_code(
    run: Run, show_tracebacks: bool, stage_timeout: float = 0.0, holds: Sequence[int] = ()
) -> str:
    """The code that binds a kernel to `run` (values travel as JSON, never as code); `holds`:
    the stages its journal went back to (:mod:`runtime.runs.rewind`)."""
    arguments: dict[str, Any] = {
        "run_id": run.id,
        "seed": run.seed,
        "params": run.params,
        "user": run.user_name,
        "show_tracebacks": show_tracebacks,
        "stage_timeout": stage_timeout,
    }
    if holds:
        arguments["holds"] = list(holds)
    return protocol_configure_code(arguments)


@dataclass(eq=False)
class LiveKernel:
    """A kernel this server started: its listener, its run (None in the pool), its use."""

    kernel_id: str
    listener: KernelListener
    run_id: str | None = None
    user_id: int | None = None
    user_name: str = ""  # for the server log
    connections: int = 0
    workdir: Path | None = None  # its own directory until bound, then the run's (runfiles)
    retired: bool = False  # its run went back: nothing its pages send is journaled any more
    last_used: float = field(default_factory=time.monotonic)
    detached_since: float | None = field(default_factory=time.monotonic)
    lost: bool = False  # its death was counted (see RunService.lost)

    def touch(self, now: float) -> None:
        """Mark the kernel as used at `now` (restarts the idle clock)."""
        self.last_used = now
        if self.connections == 0:
            self.detached_since = now


class LiveKernels:
    """Every kernel this server started, by kernel and by run; starts, binds and stops them."""

    def __init__(
        self,
        processes: KernelProcesses,
        *,
        app_dir: Path,
        kernel_name: str,
        kernel_timeout: float,
        log: logging.Logger,
        on_runner_event: RunnerEventSink,
        on_queue_request: QueueRequestSink,
        run_files: RunFiles | None = None,
        on_forget: Callable[[LiveKernel], None] | None = None,
    ) -> None:
        self.processes = processes
        self.app_dir = app_dir
        self.kernel_name = kernel_name
        self.kernel_timeout = kernel_timeout
        self.log = log
        self.on_runner_event = on_runner_event
        self.on_queue_request = on_queue_request
        self.run_files = run_files
        self.on_forget = on_forget
        self.by_kernel: dict[str, LiveKernel] = {}
        self.by_run: dict[str, LiveKernel] = {}
        self.starting = 0

    @property
    def count(self) -> int:
        """Kernels running or starting, pool included."""
        return len(self.by_kernel) + self.starting

    # --- the pool's KernelStarter ------------------------------------------------------------

    async def start(self, app_dir: Path | None = None) -> LiveKernel:
        """Start a kernel for the app in `app_dir` (default: the served one), attach its
        listener, run `runner.prepare()`.

        A kernel that dies before it ever answered (another process took one of the ports
        jupyter_client picked for it) is replaced, up to
        :data:`runtime.runs.kernel_start.START_ATTEMPTS` starts; one that dies later, in its
        warm cells, is :class:`runtime.runs.kernel_start.KernelStartError` at once.
        """
        return await retry_start(lambda: self._start_once(app_dir or self.app_dir), self.log)

    async def is_alive(self, live: LiveKernel) -> bool:
        """Whether the kernel's process still runs (a SIGKILLed kernel is not yet removed)."""
        return await self.processes.kernel_alive(live.kernel_id)

    async def shut_down(self, live: LiveKernel) -> None:
        """Forget the kernel and stop its process."""
        self.forget(live.kernel_id)
        await self.processes.shut_down(live.kernel_id)

    # --- the rest ----------------------------------------------------------------------------

    def pid_of(self, live: LiveKernel) -> int | None:
        """The kernel's process id, if it still has one."""
        return self.processes.process_id(live.kernel_id)

    def has(self, live: LiveKernel) -> bool:
        """Whether the kernel manager still has the kernel."""
        return live.kernel_id in self.processes

    async def bind(self, live: LiveKernel, run: Run, code: str) -> None:
        """Make `live` the kernel of `run` and run `code` (the configure code) in it."""
        live.run_id = run.id
        live.user_id = run.user_id
        live.user_name = run.user_name
        self.by_run[run.id] = live
        if self.run_files is not None and live.workdir is not None:
            live.workdir = self.run_files.bind(live.workdir, run.id)  # replay: back to the seed
            code = chdir_code(live.workdir) + code
        await live.listener.execute(code, self.kernel_timeout)

    def forget(self, kernel_id: str) -> None:
        """Drop the live record of a kernel that is gone (shut down, culled or dead)."""
        live = self.by_kernel.pop(kernel_id, None)
        if live is None:
            return
        live.listener.stop()
        if self.run_files is not None:
            self.run_files.discard(live.workdir)  # a copy of the seed no run took
        if live.run_id and self.by_run.get(live.run_id) is live:
            del self.by_run[live.run_id]
        if self.on_forget is not None:
            self.on_forget(live)

    def stop_listeners(self) -> None:
        """Stop every listener (the server is stopping)."""
        for live in list(self.by_kernel.values()):
            live.listener.stop()

    async def _start_once(self, app_dir: Path) -> LiveKernel:
        # One string hash seed for every kernel: a set of strings iterates in the same order
        # in a replay as in the person's kernel (see "What replay can and cannot reproduce").
        env = {"PYTHONHASHSEED": "0", **os.environ, APP_DIR_ENV: str(app_dir)}
        self.starting += 1
        workdir = None
        try:
            if self.run_files is not None:
                workdir = await self.run_files.new_kernel_dir(app_dir / FILES_DIR)
                env[RUN_DIR_ENV] = str(workdir)
            kernel_id = await self.processes.start_process(self.kernel_name, env)
        except BaseException:
            if self.run_files is not None:
                self.run_files.discard(workdir)
            raise
        finally:
            self.starting -= 1
        listener = KernelListener(
            kernel_id,
            self.processes.connection_info(kernel_id),
            lambda data: self.on_runner_event(kernel_id, data),
            self.log,
        )
        live = LiveKernel(kernel_id, listener, workdir=workdir)
        listener.on_queue_request = lambda data: self.on_queue_request(listener, live.run_id, data)
        self.by_kernel[kernel_id] = live
        pid = self.processes.process_id(kernel_id)
        try:
            # The kernel's death stops its listener, which cancels the pending wait; that must
            # reach the page as "could not be started", not as an uncaught 500.
            await while_alive(listener.start(), pid, kernel_id, "starting", answered=False)
            await while_alive(listener.execute(prepare_code(), self.kernel_timeout), pid,
                              kernel_id, "running its warm cells")
        except BaseException:
            await self.shut_down(live)
            raise
        return live
