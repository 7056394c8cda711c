"""The run service: what the server does for a run, as domain operations.

The web layer (:mod:`runtime.web`) parses a request, calls one of these and maps the outcome to
HTTP (:func:`runtime.web.handlers.outcome_page`); nothing here knows of tornado, jupyter_server
or Voila. The operations:

- :meth:`RunService.start_run` / :meth:`RunService.start_over`: a new run (a row; its kernel
  comes when its page opens);
- :meth:`RunService.open_page`: the run's kernel for its page: live, from the pool, or a fresh
  one with the journal replayed (the outcomes it raises are in :mod:`runtime.runs.outcomes`);
- :meth:`RunService.attach` / :meth:`RunService.detach`: a page's websocket came or went;
- the idle cull and the kernel cap (:mod:`.policy`), the pool (:mod:`.pool`), and kernel deaths
  counted per stage (:mod:`.kernel_deaths`).

The run rows live in the database; the live half (:mod:`.live`) is in memory and rebuilt from
the rows when lost: a run whose kernel is gone gets a fresh one, its journal replayed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.manifest import Manifest
from runtime.protocol import SETTLED, RunnerEvent
from runtime.runs.kernel_deaths import RunFailedError, StageDeaths
from runtime.runs.kernel_start import START_ATTEMPTS, KernelDiedError, while_alive
from runtime.runs.live import KernelProcesses, LiveKernel, LiveKernels, configure_code
from runtime.runs.outcomes import RunMissingError, RunStoppedError, RunUnrestorableError
from runtime.runs.policy import KernelPolicy, KernelUse
from runtime.runs.pool import KernelPool
from runtime.runs.queue_service import QueueService
from runtime.runs.replay import (
    REPLAYED_KINDS,
    WIDGETS_CHANGED,
    RunDivergedError,
    needs_replay,
    replay_run,
)
from runtime.runs.rewind import holds, in_force
from runtime.runs.runfiles import RunFiles
from runtime.runs.runner_outbox import RunnerEventOutbox
from runtime.runs.versions import app_dir_of

if TYPE_CHECKING:
    from runtime.runs.journal import Journal
    from runtime.store.store import Run, Store

SEED_BITS = 31
POOL_REFILL_WAIT = 2.0
"""Seconds a taken pool kernel's replacement waits at most for the taker's first stage: starting
a kernel takes a core for about a second, which that page needs more (the replacement starts as
soon as the stage is ready, failed, or this has passed)."""


class RunService:
    """The runs of one server: their rows, their live kernels, pool, cull and cap."""

    def __init__(
        self,
        processes: KernelProcesses,
        store: Store,
        journal: Journal,
        manifest: Manifest,
        app_dir: Path,
        versions_dir: Path,
        *,
        policy: KernelPolicy,
        pool_size: int,
        show_tracebacks: bool,
        kernel_timeout: float,
        log: logging.Logger,
        stage_timeout: float = 0.0,
        run_files: RunFiles | None = None,
        kernel_deaths_per_stage: int = 3,
    ) -> None:
        self.store = store
        self.journal = journal
        self.manifest = manifest
        self.app_dir = app_dir
        self.versions_dir = versions_dir
        self.policy = policy
        self.show_tracebacks = show_tracebacks
        self.stage_timeout = stage_timeout
        self.kernel_timeout = kernel_timeout
        self.run_files = run_files
        self.log = log
        self.culled = 0
        self.outbox = RunnerEventOutbox(store, log)
        self.deaths = StageDeaths(kernel_deaths_per_stage, store, self.outbox, log)
        self.queues = QueueService(store, log)
        self.kernels = LiveKernels(
            processes, app_dir=app_dir, kernel_name=manifest.kernel_name,
            kernel_timeout=kernel_timeout, log=log, on_runner_event=self._on_runner_event,
            on_queue_request=self.queues.answer, run_files=run_files,
            on_forget=lambda live: self.pool.discard(live),
        )
        self.pool: KernelPool[LiveKernel] = KernelPool(
            self.kernels, pool_size, log,
            has_room=lambda: self.policy.has_room(self.kernels.count),
            make_room=self._make_room, settled=self._settled,
        )
        self.processes = processes
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Fill the pool and start the culler (both in the background)."""
        self.pool.fill()
        if self.policy.cull_idle_timeout > 0:
            self._spawn(self._cull_loop(), "culler")
        self._spawn(self.queues.renew_loop(
            lambda: [r for r, live in self.kernels.by_run.items() if live.connections > 0]
        ), "work queue leases")

    async def stop(self) -> None:
        """Cancel the background tasks and shut every kernel down."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._stopping = True  # kernels ended by the shutdown are not deaths
        await self.pool.shutdown()
        self.kernels.stop_listeners()
        await self.processes.shut_down_all()
        await self.outbox.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- what is live ------------------------------------------------------------------------

    def live(self, kernel_id: str) -> LiveKernel | None:
        """The live kernel record of a kernel id."""
        return self.kernels.by_kernel.get(kernel_id)

    async def health(self) -> dict[str, Any]:
        """Counts for `/health`: live kernels, pool, culled, runs."""
        runs = await self.store.list_runs(self.manifest.app_id)
        return {
            "status": "ok",
            "app_id": self.manifest.app_id,
            "live_kernels": self.kernels.count,
            "run_kernels": len(self.kernels.by_run),
            "pool_kernels": len(self.pool),
            "culled": self.culled,
            "runs": len(runs),
            "active_runs": sum(1 for run in runs if run.status == "active"),
        }

    # --- runs --------------------------------------------------------------------------------

    async def runs_of(self, user_id: int) -> tuple[list[Run], dict[str, list[str]]]:
        """The person's runs that can continue, with the stage titles of their app versions.

        Runs started on an earlier build of the same notebook are included: they continue on
        the version they started on."""
        stage_titles = {self.manifest.app_id: [stage.title for stage in self.manifest.stages]}
        runs = []
        for run in await self.store.runs_for_user(user_id):
            if run.status == "abandoned":
                continue
            if run.app_id not in stage_titles:  # an earlier build: same notebook?
                manifest = await self.store.get_manifest(run.app_id)
                same = manifest is not None and manifest.source_name == self.manifest.source_name
                stages = manifest.stages if manifest is not None and same else ()
                stage_titles[run.app_id] = [stage.title for stage in stages]
            if stage_titles[run.app_id]:
                runs.append(run)
        return runs, stage_titles

    async def start_run(self, user_id: int, params: dict[str, Any]) -> Run:
        """A new run of the served version with `params` and a fresh seed."""
        seed = secrets.randbits(SEED_BITS)
        return await self.store.create_run(self.manifest.app_id, user_id, seed, params)

    async def start_over(self, old_id: str, user_id: int) -> Run:
        """Abandon the person's run `old_id` (kept in the database, its kernel shut down) and
        start a new one with its parameters (a run not theirs: a new one with none)."""
        params: dict[str, Any] = {}
        old = await self.store.get_run(old_id)
        if old is not None and old.user_id == user_id:
            await self.store.set_run_status(old.id, "abandoned")
            await self.release_run(old.id)
            params = dict(old.params)
        return await self.start_run(user_id, params)

    async def run_file(self, run_id: str, path: str, user_id: int, is_admin: bool) -> Path:
        """A file of the run's directory, for its owner or an admin; else
        :class:`RunMissingError`."""
        run = await self.store.get_run(run_id)
        if run is None or (run.user_id != user_id and not is_admin):
            raise RunMissingError(f"run {run_id} is not the requester's")
        found = self.run_files.file_path(run_id, path) if self.run_files else None
        if found is None:
            raise RunMissingError(f"run {run_id} has no file {path!r}")
        return found

    async def open_page(self, run_id: str, user_id: int | None) -> LiveKernel:
        """The kernel of the person's run, for its page (see the module's docstring)."""
        run = await self.store.get_run(run_id)
        if run is None or run.user_id != user_id:
            raise RunMissingError(f"no run {run_id} of user {user_id}")
        if run.status == "failed":
            raise RunStoppedError(run.id)
        if run.status == "diverged":
            recorded = (await self.store.divergences([run.id])).get(run.id, {})
            raise RunUnrestorableError(run.id, str(recorded.get("sentence") or WIDGETS_CHANGED))
        try:
            return await self.kernel_for_run(run)
        except RunDivergedError as exc:
            await self.store.record_divergence(run.id, exc.divergence.to_json())
            raise RunUnrestorableError(run.id, exc.divergence.sentence, exc) from exc
        except RunFailedError as exc:
            raise RunStoppedError(run.id, exc) from exc

    def touch(self, live: LiveKernel) -> None:
        """The kernel was just used (its page rendered): restart its idle clock."""
        live.touch(self.policy.clock())

    async def kernel_for_run(self, run: Run) -> LiveKernel:
        """The run's live kernel; else a pool or new kernel bound to it, journal replayed.

        A kernel that dies while it is bound or replayed is replaced by a fresh one (at most
        :data:`START_ATTEMPTS` kernels per call). Raises
        :class:`runtime.runs.policy.KernelsBusyError` when the cap is reached and no kernel is
        idle, :class:`RunDivergedError` when the journal no longer fits the code,
        :class:`RunFailedError` when the run's stage has now ended its kernel
        `kernel_deaths_per_stage` times in a row (the run is marked failed), and
        :class:`runtime.runs.kernel_start.KernelStartError` when no kernel could be started.
        """
        async with self.run_lock(run.id):
            live = self.kernels.by_run.get(run.id)
            if live is not None and self.kernels.has(live):
                if await self.kernels.is_alive(live):
                    self.touch(live)
                    return live
                # died before the restarter noticed (it polls): replay in a fresh kernel
                self.log.warning("run %s: kernel %s is dead; replaying", run.id, live.kernel_id)
                await self.lost(live)
            app_dir = await app_dir_of(run, self.manifest, self.app_dir, self.versions_dir,
                                       self.store)
            events = in_force(await self.store.events(run.id, kinds=REPLAYED_KINDS))
            for attempt in count(1):
                live = await self._acquire(app_dir)
                try:
                    await self._bind_and_replay(live, run, events)
                except KernelDiedError as exc:
                    self.log.warning("run %s: %s (attempt %d of %d)", run.id, exc, attempt,
                                     START_ATTEMPTS)
                    await self.lost(live)
                    if attempt >= START_ATTEMPTS:
                        raise
                    continue
                except BaseException:
                    await self.kernels.shut_down(live)
                    raise
                self.touch(live)
                return live
            raise AssertionError("unreachable")

    async def _bind_and_replay(self, live: LiveKernel, run: Run, events: list[Any]) -> None:
        """Bind `live` to `run` and replay its journal, unless the kernel dies meanwhile."""
        pid = self.kernels.pid_of(live)
        code = configure_code(run, self.show_tracebacks, self.stage_timeout, holds(events))
        await while_alive(self.kernels.bind(live, run, code), pid, live.kernel_id,
                          "being bound to a run")
        if needs_replay(events):
            self.log.info("run %s: replaying %d events (user %s)", run.id, len(events),
                          run.user_name)
            await while_alive(
                replay_run(live.listener, run.id, events, self.kernel_timeout),
                pid, live.kernel_id, "its run was replayed",
            )

    def run_lock(self, run_id: str) -> asyncio.Lock:
        """Held while the run's kernel is found, replayed or replaced."""
        return self._locks.setdefault(run_id, asyncio.Lock())

    async def release_run(self, run_id: str) -> None:
        """Shut down the run's kernel, if it has one (the run is being abandoned)."""
        live = self.kernels.by_run.get(run_id)
        if live is not None:
            await self.kernels.shut_down(live)

    # --- acquiring kernels -------------------------------------------------------------------

    async def _acquire(self, app_dir: Path) -> LiveKernel:
        if app_dir != self.app_dir:
            await self._make_room()
            return await self.kernels.start(app_dir)
        return await self.pool.take()

    def _uses(self) -> list[KernelUse]:
        return [
            KernelUse(live.kernel_id, live.connections, live.last_used, live.detached_since,
                      locked=self._is_locked(run_id))
            for run_id, live in self.kernels.by_run.items()
        ]

    async def _make_room(self) -> None:
        """Under the kernel cap, shut down the least recently used idle run kernel, or raise."""
        victim_id = self.policy.make_room(self._uses(), self.kernels.count)
        victim = self.kernels.by_kernel.get(victim_id) if victim_id else None
        if victim is not None:
            self.log.info("kernel cap %d reached: culling idle run %s (user %s)",
                          self.policy.max_kernels, victim.run_id, victim.user_name)
            await self.kernels.shut_down(victim)

    def _is_locked(self, run_id: str | None) -> bool:
        lock = self._locks.get(run_id) if run_id else None
        return lock is not None and lock.locked()

    async def _settled(self, taken: LiveKernel) -> None:
        """Until the run that took `taken` has its stage on the page (or a while has passed)."""
        listener = taken.listener
        await listener.wait_for(lambda event: event.get("event") in SETTLED, POOL_REFILL_WAIT,
                                since=len(listener.runner_events))

    async def _on_runner_event(self, kernel_id: str, data: dict[str, Any]) -> None:
        live = self.kernels.by_kernel.get(kernel_id)
        run_id = (live.run_id if live else None) or data.get("run_id")
        if not run_id:
            return
        if data.get("event") == RunnerEvent.FINISHED:
            self.log.info("run %s finished (user %s)", run_id, live.user_name if live else "?")
        self.deaths.on_runner_event(run_id, data)
        await self.outbox.submit(run_id, data)

    # --- what the kernel manager reports -----------------------------------------------------

    def attach(self, kernel_id: str) -> None:
        """A page's websocket attached to the kernel."""
        live = self.kernels.by_kernel.get(kernel_id)
        if live is not None:
            live.connections += 1
            live.detached_since = None
            live.last_used = self.policy.clock()

    def detach(self, kernel_id: str) -> None:
        """A page's websocket closed; the kernel stays until the culler takes it."""
        live = self.kernels.by_kernel.get(kernel_id)
        if live is not None:
            live.connections = max(0, live.connections - 1)
            live.touch(self.policy.clock())

    def died(self, kernel_id: str) -> None:
        """The kernel's process is gone and the kernel manager is removing it."""
        live = self.kernels.by_kernel.get(kernel_id)
        failure = self._count_death(live) if live is not None and not self._stopping else None
        if failure is not None:
            self._spawn(self.deaths.fail_run(failure), f"fail run {failure.run_id}")

    def forget(self, kernel_id: str) -> None:
        """The kernel manager removed the kernel (shut down, culled or dead)."""
        self.kernels.forget(kernel_id)

    def _count_death(self, live: LiveKernel) -> RunFailedError | None:
        if live.lost or live.run_id is None:
            return None
        live.lost = True  # the restarter and a page can both find the same death
        return self.deaths.died(live.run_id, live.listener.runner_events)

    async def lost(self, live: LiveKernel) -> None:
        """Shut down a run's dead kernel; :class:`RunFailedError` (the run marked failed) when
        its stage has now ended its kernel too often."""
        failure = self._count_death(live)
        await self.kernels.shut_down(live)
        if failure is not None:
            await self.deaths.fail_run(failure)
            raise failure

    # --- culling -----------------------------------------------------------------------------

    async def _cull_loop(self) -> None:
        interval = self.policy.cull_interval()
        while True:
            await asyncio.sleep(interval)
            await self.cull_idle()

    async def cull_idle(self) -> int:
        """Shut down run kernels without a websocket for `cull_idle_timeout`; return how many."""
        idle = [self.kernels.by_kernel[k] for k in self.policy.to_cull(self._uses())]
        for live in idle:
            self.log.info("culling the idle kernel of run %s (user %s)", live.run_id,
                          live.user_name)
            await self.kernels.shut_down(live)
            self.culled += 1
        return len(idle)
