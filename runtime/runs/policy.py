"""Which run kernel goes: the idle cull and the kernel cap, as pure decisions.

The run service (:mod:`runtime.runs.service`) keeps a kernel per run alive while a page uses it
and a while after. Two rules end one:

- the idle cull: a run kernel with no page attached for `cull_idle_timeout` seconds is shut
  down (the run replays when its person comes back);
- the cap: starting a kernel when `max_kernels` are alive first shuts down the least recently
  used run kernel without a page; when every run kernel has one, the start is refused with
  :class:`KernelsBusyError` (the person's page retries).

A kernel being bound or replayed (its run's lock is held) or with a page attached is never
chosen. :class:`KernelPolicy` decides from :class:`KernelUse` snapshots and its clock; it shuts
nothing down itself, so it is tested with a fake clock and plain data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from runtime.runs.outcomes import KernelsBusyError

Clock = Callable[[], float]
"""Seconds on a monotonic clock (`time.monotonic` in the server, a fake one in tests)."""


@dataclass(frozen=True)
class KernelUse:
    """What the policy needs to know of one run kernel."""

    kernel_id: str
    connections: int  # pages (websockets) attached now
    last_used: float  # clock time of its last use: a page attached, detached, rendered
    detached_since: float | None  # clock time its last page went (None: a page is attached)
    locked: bool = False  # being bound to its run or replayed: not to be touched

    @property
    def idle(self) -> bool:
        """No page is attached and nothing is being done to it."""
        return self.connections == 0 and not self.locked


class KernelPolicy:
    """The cull and cap rules of one server, over `clock`."""

    def __init__(
        self, *, max_kernels: int, cull_idle_timeout: float, clock: Clock = time.monotonic
    ) -> None:
        self.max_kernels = max_kernels  # 0: no cap
        self.cull_idle_timeout = cull_idle_timeout  # seconds; 0: never cull
        self.clock = clock

    def to_cull(self, kernels: Iterable[KernelUse]) -> list[str]:
        """The run kernels idle for at least `cull_idle_timeout` now (none when it is 0)."""
        if self.cull_idle_timeout <= 0:
            return []
        now = self.clock()
        return [
            use.kernel_id for use in kernels
            if use.idle
            and use.detached_since is not None
            and now - use.detached_since >= self.cull_idle_timeout
        ]

    def make_room(self, kernels: Iterable[KernelUse], live_count: int) -> str | None:
        """The run kernel to shut down before one more kernel may start, or None (there is
        room); :class:`KernelsBusyError` when the cap is reached and none is idle.

        `live_count` counts every kernel alive or starting, pool included; `kernels` are the
        run kernels (pool kernels are no one's and never culled for room).
        """
        if not self.max_kernels or live_count < self.max_kernels:
            return None
        victim = min((use for use in kernels if use.idle), key=lambda use: use.last_used,
                     default=None)
        if victim is None:
            raise KernelsBusyError(self.max_kernels)
        return victim.kernel_id

    def has_room(self, live_count: int) -> bool:
        """Whether one more kernel may start without culling any (the pool's refill)."""
        return not self.max_kernels or live_count < self.max_kernels

    def cull_interval(self) -> float:
        """Seconds between two looks for idle kernels."""
        return min(max(self.cull_idle_timeout / 4, 0.1), 30.0)
