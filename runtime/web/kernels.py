"""Which kernel serves which run: a pool of prepared kernels, re-attach, replay, cull and cap.

The run rows live in the database (:mod:`runtime.store.store`); the live half lives here, in memory,
and is rebuilt from the rows when it is lost: a run whose kernel is gone gets a fresh kernel and
its journal replayed (:mod:`runtime.runs.replay`). :class:`RunKernels` owns every kernel the server
starts and every background task that looks after them.

:class:`RunKernelManager` is the jupyter_server kernel manager Voila is configured with. It
never starts a kernel on Voila's behalf: the page handler first asks :class:`RunKernels` for the
run's kernel, then puts its id in :data:`page_kernel`, and Voila's `start_kernel` call returns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_core.utils import ensure_async
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web

from runtime.errors import RuntimeAppError
from runtime.manifest import FILES_DIR, MANIFEST_NAME, Manifest, dump
from runtime.protocol import PREPARE_CODE, SETTLED, RunnerEvent, lifeline_code
from runtime.protocol import configure_code as protocol_configure_code
from runtime.runs.kernel_deaths import RunFailedError, StageDeaths
from runtime.runs.kernel_start import (
    START_ATTEMPTS,
    KernelDiedError,
    KernelStartError,
    kernel_process_id,
    process_ended,
    retry_start,
    while_alive,
)
from runtime.runs.listener import KernelListener
from runtime.runs.queue_service import QueueService
from runtime.runs.replay import REPLAYED_KINDS, needs_replay, replay_run
from runtime.runs.runfiles import RUN_DIR_ENV, RunFiles, chdir_code
from runtime.runs.runner_outbox import RunnerEventOutbox

if TYPE_CHECKING:
    from runtime.runs.journal import Journal
    from runtime.store.store import Run, Store

page_kernel: ContextVar[str | None] = ContextVar("freezer_page_kernel", default=None)
"""The kernel id the page being rendered must use (set by the run page handler)."""

__all__ = [
    "KernelStartError", "KernelsBusyError", "LiveKernel", "RunFailedError", "RunKernelManager",
    "RunKernels", "page_kernel", "prepare_code", "process_ended",
]

BUSY_RETRY_AFTER = 5
POOL_REFILL_WAIT = 2.0
"""Seconds a taken pool kernel's replacement waits at most for the taker's first stage: starting
a kernel takes a core for about a second, which that page needs more (the replacement starts as
soon as the stage is ready, failed, or this has passed)."""


def prepare_code() -> str:
    """What a fresh kernel runs first: die with this server, then `runner.prepare()`."""
    return lifeline_code(os.getpid()) + PREPARE_CODE


class KernelsBusyError(RuntimeAppError):
    """Every kernel slot is taken by a run someone is using; try again in a few seconds."""

    def __init__(self, max_kernels: int) -> None:
        super().__init__(
            f"all {max_kernels} kernels are in use by people with the app open; "
            "raise --max-kernels or wait"
        )
        self.retry_after = BUSY_RETRY_AFTER


def configure_code(run: Run, show_tracebacks: bool, stage_timeout: float = 0.0) -> str:
    """The code that binds a kernel to `run` (values travel as JSON, never as code)."""
    arguments = {
        "run_id": run.id,
        "seed": run.seed,
        "params": run.params,
        "user": run.user_name,
        "show_tracebacks": show_tracebacks,
        "stage_timeout": stage_timeout,
    }
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
    page_html: str | None = None  # the app page as rendered for this kernel (see voila_adapter)
    workdir: Path | None = None  # its own directory until bound, then the run's (runfiles)
    last_used: float = field(default_factory=time.monotonic)
    detached_since: float | None = field(default_factory=time.monotonic)
    lost: bool = False  # its death was counted (see RunKernels._lost)

    def touch(self) -> None:
        """Mark the kernel as just used (restarts the idle clock)."""
        self.last_used = time.monotonic()
        if self.connections == 0:
            self.detached_since = self.last_used


class RunKernelManager(AsyncMappingKernelManager):
    """jupyter_server's kernel manager, told about runs: Voila gets the run's kernel, never a new
    one; websocket connects and disconnects, and kernel deaths, are reported to :attr:`runs`."""

    runs: RunKernels | None = None

    async def start_kernel(  # type: ignore[override]
        self, *, kernel_id: str | None = None, path: str | None = None, **kwargs: Any
    ) -> str:
        """Called by Voila's page handler: return the kernel picked for the page's run."""
        bound = page_kernel.get()
        if bound is None or bound not in self:
            raise web.HTTPError(403, "kernels are started only for a run")
        return bound

    async def start_run_kernel(self, **kwargs: Any) -> str:
        """Start a kernel for :class:`RunKernels` (the only caller)."""
        kernel_id: str = await super()._async_start_kernel(**kwargs)
        return kernel_id

    def notify_connect(self, kernel_id: str) -> None:
        super().notify_connect(kernel_id)  # type: ignore[no-untyped-call]
        if self.runs is not None:
            self.runs.on_connect(kernel_id)

    def notify_disconnect(self, kernel_id: str) -> None:
        super().notify_disconnect(kernel_id)  # type: ignore[no-untyped-call]
        if self.runs is not None:
            self.runs.on_disconnect(kernel_id)

    def remove_kernel(self, kernel_id: str) -> Any:
        # jupyter_client's restarter (restart_limit 0: no restart) or the page's executor found
        # the kernel dead, or RunKernels shut it down (then it has forgotten it already)
        pid = kernel_process_id(self._kernels.get(kernel_id))
        if self.runs is not None and pid is not None and process_ended(pid):
            self.runs.on_kernel_died(kernel_id)
        removed = super().remove_kernel(kernel_id)
        if self.runs is not None:
            self.runs.forget(kernel_id)
        return removed


class RunKernels:
    """The live kernels of one server: pool, run mapping, cull and cap."""

    def __init__(
        self,
        manager: RunKernelManager,
        store: Store,
        journal: Journal,
        manifest: Manifest,
        app_dir: Path,
        versions_dir: Path,
        *,
        pool_size: int,
        max_kernels: int,
        cull_idle_timeout: float,
        show_tracebacks: bool,
        kernel_timeout: float,
        log: logging.Logger,
        stage_timeout: float = 0.0,
        run_files: RunFiles | None = None,
        kernel_deaths_per_stage: int = 3,
    ) -> None:
        self.manager = manager
        self.run_files = run_files
        self.store = store
        self.journal = journal
        self.manifest = manifest
        self.app_dir = app_dir
        self.versions_dir = versions_dir
        self.pool_size = pool_size
        self.max_kernels = max_kernels
        self.cull_idle_timeout = cull_idle_timeout
        self.show_tracebacks = show_tracebacks
        self.stage_timeout = stage_timeout
        self.kernel_timeout = kernel_timeout
        self.log = log
        self._by_kernel: dict[str, LiveKernel] = {}
        self._by_run: dict[str, LiveKernel] = {}
        self._pool: list[LiveKernel] = []
        self._starting = 0
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._refilling = False
        self._stopping = False
        self.culled = 0
        self.outbox = RunnerEventOutbox(store, log)
        self.deaths = StageDeaths(kernel_deaths_per_stage, store, self.outbox, log)
        self.queues = QueueService(store, log)
        manager.runs = self

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Fill the pool and start the culler (both in the background)."""
        self._refill_pool()
        if self.cull_idle_timeout > 0:
            self._spawn(self._cull_loop(), "culler")
        self._spawn(self.queues.renew_loop(
            lambda: [r for r, live in self._by_run.items() if live.connections > 0]
        ), "work queue leases")

    async def stop(self) -> None:
        """Cancel the background tasks and shut every kernel down."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for live in list(self._by_kernel.values()):
            live.listener.stop()
        self._stopping = True  # kernels ended by the shutdown are not deaths
        await self.manager.shutdown_all(now=True)
        await self.outbox.close()

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- what is live ------------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        """Kernels running or starting, pool included."""
        return len(self._by_kernel) + self._starting

    @property
    def pool_count(self) -> int:
        """Prepared kernels waiting for a run."""
        return len(self._pool)

    @property
    def run_kernel_count(self) -> int:
        """Kernels bound to a run."""
        return len(self._by_run)

    def run_of_kernel(self, kernel_id: str) -> str | None:
        """The run a kernel serves (None: unknown kernel, or a pool kernel)."""
        live = self._by_kernel.get(kernel_id)
        return live.run_id if live else None

    def kernel_of_run(self, run_id: str) -> LiveKernel | None:
        """The live kernel of a run, if it has one."""
        return self._by_run.get(run_id)

    def live(self, kernel_id: str) -> LiveKernel | None:
        """The live kernel record of a kernel id."""
        return self._by_kernel.get(kernel_id)

    # --- the one entry point of the page -----------------------------------------------------

    async def kernel_for_run(self, run: Run) -> LiveKernel:
        """The run's live kernel; else a pool or new kernel bound to it, journal replayed.

        A kernel that dies while it is bound or replayed is replaced by a fresh one (at most
        :data:`START_ATTEMPTS` kernels per call). Raises :class:`KernelsBusyError` when the cap
        is reached and no kernel is idle, :class:`runtime.runs.replay.RunDivergedError` when the
        journal no longer fits the code, :class:`RunFailedError` when the run's stage has now
        ended its kernel `kernel_deaths_per_stage` times in a row (the run is marked failed),
        and :class:`KernelStartError` when no kernel could be started.
        """
        lock = self._locks.setdefault(run.id, asyncio.Lock())
        async with lock:
            live = self._by_run.get(run.id)
            if live is not None and live.kernel_id in self.manager:
                if await self._is_alive(live):
                    live.touch()
                    return live
                # died before the restarter noticed (it polls): replay in a fresh kernel
                self.log.warning("run %s: kernel %s is dead; replaying", run.id, live.kernel_id)
                await self._lost(live)
            app_dir = await self._app_dir_of(run)
            events = await self.store.events(run.id, kinds=REPLAYED_KINDS)
            for attempt in count(1):
                live = await self._acquire(app_dir)
                try:
                    await self._bind_and_replay(live, run, events)
                except KernelDiedError as exc:
                    self.log.warning("run %s: %s (attempt %d of %d)", run.id, exc, attempt,
                                     START_ATTEMPTS)
                    await self._lost(live)
                    if attempt >= START_ATTEMPTS:
                        raise
                    continue
                except BaseException:
                    await self._shutdown(live)
                    raise
                live.touch()
                return live
            raise AssertionError("unreachable")

    async def _bind_and_replay(
        self, live: LiveKernel, run: Run, events: list[Any]
    ) -> None:
        """Bind `live` to `run` and replay its journal, unless the kernel dies meanwhile."""
        pid = self._pid_of(live)
        await while_alive(self._bind(live, run), pid, live.kernel_id, "being bound to a run")
        if needs_replay(events):
            self.log.info("run %s: replaying %d events (user %s)", run.id, len(events),
                          run.user_name)
            await while_alive(
                replay_run(live.listener, run.id, events, self.kernel_timeout),
                pid, live.kernel_id, "its run was replayed",
            )

    async def release_run(self, run_id: str) -> None:
        """Shut down the run's kernel, if it has one (the run is being abandoned)."""
        live = self._by_run.get(run_id)
        if live is not None:
            await self._shutdown(live)

    # --- acquiring kernels -------------------------------------------------------------------

    async def _app_dir_of(self, run: Run) -> Path:
        """The app directory of the version `run` started on (a run keeps its version)."""
        if run.app_id == self.manifest.app_id:
            return self.app_dir
        version_dir = self.versions_dir / run.app_id
        if not (version_dir / MANIFEST_NAME).is_file():
            manifest = await self.store.get_manifest(run.app_id)
            if manifest is None:
                raise RuntimeAppError(f"run {run.id}: its app version {run.app_id} is not stored")
            version_dir.mkdir(parents=True, exist_ok=True)
            dump(manifest, version_dir)
            files = self.app_dir / FILES_DIR
            if files.is_dir() and not (version_dir / FILES_DIR).exists():
                (version_dir / FILES_DIR).symlink_to(files, target_is_directory=True)
        return version_dir

    async def _acquire(self, app_dir: Path) -> LiveKernel:
        if app_dir != self.app_dir:
            await self._make_room()
            return await self._start_prepared(app_dir)
        if self._pool:
            live = self._pool.pop(0)
            self._spawn(self._refill_when_settled(live), "pool refill")
            return live
        await self._make_room()
        return await self._start_prepared(self.app_dir)

    async def _make_room(self) -> None:
        """Under the kernel cap, shut down the least recently used idle run kernel, or raise."""
        if self.max_kernels and self.live_count >= self.max_kernels:
            victim = self._least_recently_used_idle()
            if victim is None:
                raise KernelsBusyError(self.max_kernels)
            self.log.info("kernel cap %d reached: culling idle run %s (user %s)",
                          self.max_kernels, victim.run_id, victim.user_name)
            await self._shutdown(victim)

    def _least_recently_used_idle(self) -> LiveKernel | None:
        idle = [
            live for live in self._by_run.values()
            if live.connections == 0 and not self._is_locked(live.run_id)
        ]
        return min(idle, key=lambda live: live.last_used, default=None)

    async def _is_alive(self, live: LiveKernel) -> bool:
        """Whether the kernel's process still runs (a SIGKILLed kernel is not yet removed)."""
        try:
            kernel = self.manager.get_kernel(live.kernel_id)
            if not await ensure_async(kernel.is_alive()):
                return False
        except (KeyError, web.HTTPError):  # jupyter_server: 404 for a kernel it removed
            return False
        # jupyter_client has been seen to call a SIGKILLed kernel alive (its process already a
        # zombie) until the restarter's next poll; the process table says otherwise.
        pid = kernel_process_id(kernel)
        return not (pid is not None and process_ended(pid))

    def _pid_of(self, live: LiveKernel) -> int | None:
        try:
            return kernel_process_id(self.manager.get_kernel(live.kernel_id))
        except (KeyError, web.HTTPError):
            return None

    def _is_locked(self, run_id: str | None) -> bool:
        lock = self._locks.get(run_id) if run_id else None
        return lock is not None and lock.locked()

    async def _start_prepared(self, app_dir: Path) -> LiveKernel:
        """Start a kernel for the app in `app_dir`, attach its listener, run `runner.prepare()`.

        A kernel that dies before it ever answered (another process took one of the ports
        jupyter_client picked for it) is replaced, up to :data:`START_ATTEMPTS` starts; one
        that dies later, in its warm cells, is :class:`KernelStartError` at once.
        """
        return await retry_start(lambda: self._start_prepared_once(app_dir), self.log)

    async def _start_prepared_once(self, app_dir: Path) -> LiveKernel:
        # One string hash seed for every kernel: a set of strings iterates in the same order
        # in a replay as in the person's kernel (see "What replay can and cannot reproduce").
        env = {"PYTHONHASHSEED": "0", **os.environ, "FREEZER_APP_DIR": str(app_dir)}
        self._starting += 1
        workdir = None
        try:
            if self.run_files is not None:
                workdir = await self.run_files.new_kernel_dir(app_dir / FILES_DIR)
                env[RUN_DIR_ENV] = str(workdir)
            kernel_id = await self.manager.start_run_kernel(
                kernel_name=self.manifest.kernel_name, path="", env=env
            )
        except BaseException:
            if self.run_files is not None:
                self.run_files.discard(workdir)
            raise
        finally:
            self._starting -= 1
        kernel = self.manager.get_kernel(kernel_id)
        listener = KernelListener(
            kernel_id,
            kernel.get_connection_info(),
            lambda data: self._on_runner_event(kernel_id, data),
            self.log,
        )
        live = LiveKernel(kernel_id, listener, workdir=workdir)
        listener.on_queue_request = lambda data: self.queues.answer(listener, live.run_id, data)
        self._by_kernel[kernel_id] = live
        pid = kernel_process_id(kernel)
        try:
            # The kernel's death stops its listener, which cancels the pending wait; that must
            # reach the page as "could not be started", not as an uncaught 500.
            await while_alive(listener.start(), pid, kernel_id, "starting", answered=False)
            await while_alive(listener.execute(prepare_code(), self.kernel_timeout), pid,
                              kernel_id, "running its warm cells")
        except BaseException:
            await self._shutdown(live)
            raise
        return live

    async def _refill_when_settled(self, taken: LiveKernel) -> None:
        """Refill the pool once the run that took `taken` has its stage on the page."""
        listener = taken.listener
        with contextlib.suppress(Exception):
            await listener.wait_for(
                lambda event: event.get("event") in SETTLED,
                POOL_REFILL_WAIT,
                since=len(listener.runner_events),
            )
        self._refill_pool()

    def _refill_pool(self) -> None:
        if self.pool_size > 0 and not self._refilling:
            self._refilling = True
            self._spawn(self._fill_pool(), "pool")

    async def _fill_pool(self) -> None:
        try:
            while len(self._pool) < self.pool_size and (
                not self.max_kernels or self.live_count < self.max_kernels
            ):
                try:
                    live = await self._start_prepared(self.app_dir)
                except Exception:
                    self.log.exception("could not start a pool kernel; the pool stays short")
                    return
                self._pool.append(live)
        finally:
            self._refilling = False

    async def _bind(self, live: LiveKernel, run: Run) -> None:
        live.run_id = run.id
        live.user_id = run.user_id
        live.user_name = run.user_name
        self._by_run[run.id] = live
        code = configure_code(run, self.show_tracebacks, self.stage_timeout)
        if self.run_files is not None and live.workdir is not None:
            live.workdir = self.run_files.bind(live.workdir, run.id)  # replay: back to the seed
            code = chdir_code(live.workdir) + code
        await live.listener.execute(code, self.kernel_timeout)

    async def _on_runner_event(self, kernel_id: str, data: dict[str, Any]) -> None:
        live = self._by_kernel.get(kernel_id)
        run_id = (live.run_id if live else None) or data.get("run_id")
        if not run_id:
            return
        if data.get("event") == RunnerEvent.FINISHED:
            self.log.info("run %s finished (user %s)", run_id, live.user_name if live else "?")
        self.deaths.on_runner_event(run_id, data)
        await self.outbox.submit(run_id, data)

    # --- kernels that died -------------------------------------------------------------------

    def on_kernel_died(self, kernel_id: str) -> None:
        """The kernel's process is gone and jupyter_server is removing it."""
        live = self._by_kernel.get(kernel_id)
        failure = self._count_death(live) if live is not None and not self._stopping else None
        if failure is not None:
            self._spawn(self.deaths.fail_run(failure), f"fail run {failure.run_id}")

    def _count_death(self, live: LiveKernel) -> RunFailedError | None:
        if live.lost or live.run_id is None:
            return None
        live.lost = True  # the restarter and a page can both find the same death
        return self.deaths.died(live.run_id, live.listener.runner_events)

    async def _lost(self, live: LiveKernel) -> None:
        """Shut down a run's dead kernel; :class:`RunFailedError` (the run marked failed) when
        its stage has now ended its kernel too often."""
        failure = self._count_death(live)
        await self._shutdown(live)
        if failure is not None:
            await self.deaths.fail_run(failure)
            raise failure

    # --- releasing kernels -------------------------------------------------------------------

    async def _shutdown(self, live: LiveKernel) -> None:
        self.forget(live.kernel_id)
        with contextlib.suppress(KeyError, web.HTTPError):
            await self.manager.shutdown_kernel(  # type: ignore[no-untyped-call]
                live.kernel_id, now=True
            )

    def forget(self, kernel_id: str) -> None:
        """Drop the live record of a kernel that is gone (shut down, culled or dead)."""
        live = self._by_kernel.pop(kernel_id, None)
        if live is None:
            return
        live.listener.stop()
        if self.run_files is not None:
            self.run_files.discard(live.workdir)  # a copy of the seed no run took
        if live.run_id and self._by_run.get(live.run_id) is live:
            del self._by_run[live.run_id]
        if live in self._pool:
            self._pool.remove(live)

    def on_connect(self, kernel_id: str) -> None:
        """A page's websocket attached to the kernel."""
        live = self._by_kernel.get(kernel_id)
        if live is not None:
            live.connections += 1
            live.detached_since = None
            live.last_used = time.monotonic()

    def on_disconnect(self, kernel_id: str) -> None:
        """A page's websocket closed; the kernel stays until the culler takes it."""
        live = self._by_kernel.get(kernel_id)
        if live is not None:
            live.connections = max(0, live.connections - 1)
            live.last_used = time.monotonic()
            if live.connections == 0:
                live.detached_since = live.last_used

    # --- culling -----------------------------------------------------------------------------

    async def _cull_loop(self) -> None:
        interval = min(max(self.cull_idle_timeout / 4, 0.1), 30.0)
        while True:
            await asyncio.sleep(interval)
            await self.cull_idle()

    async def cull_idle(self) -> int:
        """Shut down run kernels without a websocket for `cull_idle_timeout`; return how many."""
        now = time.monotonic()
        idle = [
            live for live in self._by_run.values()
            if live.connections == 0
            and live.detached_since is not None
            and now - live.detached_since >= self.cull_idle_timeout
            and not self._is_locked(live.run_id)
        ]
        for live in idle:
            self.log.info("culling the idle kernel of run %s (user %s)", live.run_id,
                          live.user_name)
            await self._shutdown(live)
            self.culled += 1
        return len(idle)
