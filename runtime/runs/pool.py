"""The pool of prepared kernels: started, warm cells run, waiting for the next new run.

A new run takes a pool kernel instead of waiting a second or more for a kernel to start; the
pool starts a replacement once the taker's first stage is on the page (starting a kernel takes
a core, which that page needs more). The pool starts and stops kernels through a
:class:`KernelStarter`; in the server that is :class:`runtime.runs.live.LiveKernels` (over
jupyter_server's kernel manager), in the tests a small fake.

The pool never exceeds `size`, and never starts a kernel the cap leaves no room for (`has_room`).
A pool kernel found dead when taken is shut down and the next one (or a new one) is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

K = TypeVar("K")


class KernelStarter(Protocol[K]):
    """Starts, checks and stops prepared kernels (the pool's only way to reach them)."""

    async def start(self) -> K:
        """Start a kernel and prepare it for a run (its warm cells run); raises
        :class:`runtime.runs.kernel_start.KernelStartError` when it cannot."""
        ...

    async def is_alive(self, kernel: K) -> bool:
        """Whether the kernel's process still runs."""
        ...

    async def shut_down(self, kernel: K) -> None:
        """Stop the kernel (it may be dead already)."""
        ...


class KernelPool(Generic[K]):
    """Up to `size` prepared kernels; :meth:`take` hands one out (or starts one)."""

    def __init__(
        self,
        starter: KernelStarter[K],
        size: int,
        log: logging.Logger,
        *,
        has_room: Callable[[], bool] = lambda: True,
        make_room: Callable[[], Awaitable[None]] | None = None,
        settled: Callable[[K], Awaitable[None]] | None = None,
    ) -> None:
        self.starter = starter
        self.size = size
        self.log = log
        self.has_room = has_room  # whether the cap allows one more kernel (refills only then)
        self.make_room = make_room  # before a take starts a kernel: cull one, or refuse (busy)
        self.settled = settled  # awaited after a take, before its replacement starts
        self.ready: list[K] = []
        self._filling = False
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self.ready)

    def __contains__(self, kernel: object) -> bool:
        return kernel in self.ready

    def fill(self) -> None:
        """Start kernels in the background until the pool is full (or the cap is reached)."""
        if self.size > 0 and not self._filling:
            self._filling = True
            self._spawn(self._fill(), "pool")

    async def take(self) -> K:
        """A prepared kernel: a live pool kernel (then a replacement starts once it settled),
        else a new one (after `make_room`)."""
        while self.ready:
            kernel = self.ready.pop(0)
            if await self.starter.is_alive(kernel):
                self._spawn(self._refill_after(kernel), "pool refill")
                return kernel
            self.log.warning("a pool kernel had died; taking another")
            await self.starter.shut_down(kernel)
            self.fill()
        if self.make_room is not None:
            await self.make_room()
        return await self.starter.start()

    def discard(self, kernel: K) -> None:
        """Drop a pool kernel that is gone (it died, or was shut down); a replacement starts."""
        if kernel in self.ready:
            self.ready.remove(kernel)
            self.fill()

    async def wait_idle(self) -> None:
        """Until the pool's background work (fills, refills) is done."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop filling and shut every pool kernel down."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        ready, self.ready = self.ready, []
        for kernel in ready:
            await self.starter.shut_down(kernel)

    async def _refill_after(self, taken: K) -> None:
        if self.settled is not None:
            with contextlib.suppress(Exception):
                await self.settled(taken)
        self.fill()

    async def _fill(self) -> None:
        try:
            while len(self.ready) < self.size and self.has_room():
                try:
                    kernel = await self.starter.start()
                except Exception:
                    self.log.exception("could not start a pool kernel; the pool stays short")
                    return
                self.ready.append(kernel)
        finally:
            self._filling = False

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
