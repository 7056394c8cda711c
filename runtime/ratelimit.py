"""A limit on failed sign-ins per client, so invite tokens cannot be guessed at speed."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    """At most `limit` failures per key in any `window` seconds; then the key waits.

    Keys are client addresses (behind a proxy, only meaningful with `--trust-proxy`). Only
    failures count: a person who signs in right is never slowed down.
    """

    def __init__(
        self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, key: str) -> float:
        """Seconds `key` must wait before its next attempt (0: it may try now)."""
        failures = self._recent(key)
        if len(failures) < self.limit:
            return 0.0
        return max(0.0, failures[0] + self.window - self.clock())

    def record_failure(self, key: str) -> None:
        """Count one failed attempt of `key`."""
        self._recent(key)
        self._failures.setdefault(key, deque()).append(self.clock())


class TokenBucket:
    """`rate` actions a second on average, bursts of up to `burst`; `take()` says if one may go."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = burst
        self._at = clock()

    def take(self) -> bool:
        """Spend one token if there is one (0 rate: no limit)."""
        if self.rate <= 0:
            return True
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
