"""The write-ahead journal: browser events are committed before they reach the kernel.

:class:`Journal` batches appends by *group commit*: while one transaction is being committed,
the appends that arrive queue up and go together into the next one. There is no fixed delay, so
a lone event is committed at once, and under load each commit carries many events (up to
`max_batch`). `append` resolves only once its event's transaction has committed, with the seq
the store gave it; if that transaction fails it raises :class:`JournalError`, and the caller must
not forward the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.errors import JournalError, StoreClosedError, StoreError
from runtime.store.store import NewEvent, Store, one_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    event: NewEvent
    future: asyncio.Future[int]


@dataclass
class JournalStats:
    """Counters for tests and benchmarks."""

    batches: int = 0  # committed transactions
    events: int = 0  # events in them
    failed: int = 0  # events whose append raised JournalError
    largest_batch: int = 0


class Journal:
    """Appends events to the store in group-committed batches, keeping each run's order.

    The journal does not own the store: closing the journal leaves the store open.
    `max_batch` caps the events in one transaction (default 500).
    """

    def __init__(self, store: Store, *, max_batch: int = 500) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.store = store
        self.max_batch = max_batch
        self.stats = JournalStats()
        self._queue: deque[_Pending] = deque()
        self._in_flight: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def append(self, event: NewEvent) -> int:
        """Journal one event; returns its seq once its transaction has committed.

        Raises :class:`JournalError` when the commit failed or the journal is closed. If the
        caller is cancelled before the event was taken into a batch, it is not written.
        """
        if self._closed:
            raise JournalError("the journal is closed; the event was not saved", event.run_id)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(event, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_loop(), name="freezer-journal")
        self._wakeup.set()
        return await future

    async def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until every event appended so far is committed or has failed.

        `timeout` is in seconds (None: no limit); past it, :class:`JournalError`.
        """
        waiting = [p.future for p in (*self._in_flight, *self._queue)]
        if not waiting:
            return
        _, not_done = await asyncio.wait(waiting, timeout=timeout)
        if not_done:
            raise JournalError(f"{len(not_done)} events still not committed after {timeout} s")

    async def close(self, timeout: float | None = 30.0) -> None:
        """Refuse new appends, commit the queued ones, and stop the writer task."""
        self._closed = True
        try:
            await self.flush(timeout)
        finally:
            if self._writer is not None:
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer
                self._writer = None
            self._fail(list(self._queue), "the journal was closed before the commit")
            self._queue.clear()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def queued(self) -> int:
        """Appends waiting for the next transaction (not counting the one being committed)."""
        return len(self._queue)

    async def _write_loop(self) -> None:
        """The writer task: commit whatever is queued, one batch at a time, until cancelled."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._take_batch()
                if not batch:
                    continue
                self._in_flight = batch
                try:
                    await self._commit(batch)
                except asyncio.CancelledError:
                    self._fail(batch, "the journal was closed during the commit")
                    raise
                finally:
                    self._in_flight = []

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        while self._queue and len(batch) < self.max_batch:
            pending = self._queue.popleft()
            if not pending.future.done():  # a cancelled caller does not want it written
                batch.append(pending)
        return batch

    async def _commit(self, batch: list[_Pending]) -> None:
        """Commit one batch; when it fails, retry each run's events on their own."""
        groups: dict[str, list[_Pending]] = {}
        for pending in batch:
            groups.setdefault(pending.event.run_id, []).append(pending)
        try:
            await self._commit_group(batch)
            return
        except StoreError as exc:
            if isinstance(exc, StoreClosedError) or len(groups) == 1:
                self._fail(batch, f"the event was not saved: {exc}", exc)
                return
        except Exception as exc:  # a bug must not stop the writer and strand every caller
            log.exception("journal: unexpected error while committing")
            self._fail(batch, f"the event was not saved: {one_line(exc)}", exc)
            return
        # One run's bad event must not cost the other runs theirs; each run's group is its
        # own transaction, so each run's order and all-or-nothing commit still hold.
        for run_id, group in groups.items():
            try:
                await self._commit_group(group)
            except Exception as exc:
                self._fail(group, f"run {run_id}: the event was not saved: {one_line(exc)}", exc)

    async def _commit_group(self, group: Sequence[_Pending]) -> None:
        seqs = await self.store.append_events([p.event for p in group])
        self.stats.batches += 1
        self.stats.events += len(group)
        self.stats.largest_batch = max(self.stats.largest_batch, len(group))
        for pending, seq in zip(group, seqs, strict=True):
            if not pending.future.done():
                pending.future.set_result(seq)

    def _fail(
        self, batch: Sequence[_Pending], message: str, cause: BaseException | None = None
    ) -> None:
        """Fail each waiting append with its own :class:`JournalError`."""
        if cause is not None and batch:
            log.warning("journal commit failed for %d events: %s", len(batch), cause)
        for pending in batch:
            if not pending.future.done():
                self.stats.failed += 1
                error = JournalError(message, pending.event.run_id)
                error.__cause__ = cause
                pending.future.set_exception(error)
