"""Storing the runner's reports in order, and holding on to the ones the database refused.

A stage's `collected`, `stage_ready` and `finished` reports reach the server once, from the
kernel; the person already sees what they report. When the database refuses them (a full disk,
a read-only volume, a lock held too long) they must not be dropped, or the run would later end
`finished` without the results its page showed. :class:`RunnerEventOutbox` stores each report as
it comes; once one is refused, it and every later report of the same run wait in order, and a
background task tries again (0.2 s, doubling up to 5 s) until the database takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from runtime.errors import RunnerEventError, StoreClosedError, UnknownRunError

if TYPE_CHECKING:
    from runtime.store.store import Store

FIRST_RETRY = 0.2
LAST_RETRY = 5.0
FINAL_ERRORS = (RunnerEventError, UnknownRunError, StoreClosedError)
"""Refusals that no retry can change: a malformed report, a run that is not stored, a closed
store (the server is stopping)."""


class RunnerEventOutbox:
    """The runner reports of every run, stored in order; refused ones retried until stored."""

    def __init__(self, store: Store, log: logging.Logger) -> None:
        self.store = store
        self.log = log
        self._held: dict[str, deque[dict[str, Any]]] = {}
        self._retries: dict[str, asyncio.Task[None]] = {}

    def held(self, run_id: str | None = None) -> int:
        """Reports waiting to be stored (of one run, or of all)."""
        if run_id is not None:
            return len(self._held.get(run_id, ()))
        return sum(len(queue) for queue in self._held.values())

    async def submit(self, run_id: str, data: dict[str, Any]) -> None:
        """Store one report now, or behind the run's held ones; never raises."""
        queue = self._held.get(run_id)
        if queue is not None:
            queue.append(data)
            self.log.warning("run %s: holding runner event %r (%d held)", run_id,
                             data.get("event"), len(queue))
            return
        try:
            await self.store.record_runner_event(run_id, data)
            return
        except FINAL_ERRORS:
            self.log.exception("run %s: runner event %r not stored", run_id, data.get("event"))
            return
        except Exception as exc:
            self.log.error("run %s: the database refused runner event %r (%s); holding it and "
                           "retrying until it is stored", run_id, data.get("event"), exc)
        queue = self._held.setdefault(run_id, deque())
        queue.appendleft(data)
        self._retries[run_id] = asyncio.create_task(
            self._retry(run_id, queue), name=f"runner events of {run_id}"
        )

    async def _retry(self, run_id: str, queue: deque[dict[str, Any]]) -> None:
        delay, attempts = FIRST_RETRY, 0
        try:
            while queue:
                await asyncio.sleep(delay)
                try:
                    await self.store.record_runner_event(run_id, queue[0])
                except FINAL_ERRORS:
                    self.log.exception("run %s: runner event %r not stored", run_id,
                                       queue[0].get("event"))
                except Exception as exc:
                    attempts += 1
                    delay = min(delay * 2, LAST_RETRY)
                    if attempts % 10 == 0:
                        self.log.error("run %s: %d runner events still held after %d attempts "
                                       "(%s)", run_id, len(queue), attempts, exc)
                    continue
                queue.popleft()
                delay = FIRST_RETRY
            self.log.info("run %s: held runner events stored", run_id)
        finally:
            if not queue:
                self._held.pop(run_id, None)
            self._retries.pop(run_id, None)

    async def close(self) -> None:
        """Stop retrying; one last try for what is held, then log what could not be stored."""
        for task in list(self._retries.values()):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for run_id, queue in list(self._held.items()):
            while queue:
                try:
                    await self.store.record_runner_event(run_id, queue[0])
                except Exception:
                    break
                queue.popleft()
            if queue:
                self.log.error("run %s: %d runner events could not be stored before the server "
                               "stopped: %s", run_id, len(queue),
                               [event.get("event") for event in queue])
        self._held.clear()
