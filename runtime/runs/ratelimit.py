"""Rate limits: failed sign-ins per client (so invite tokens cannot be guessed at speed), and
the token bucket of a run's pages (the flood limit of :mod:`runtime.runs.attachment`)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    """At most `limit` failures per key in any `window` seconds; then the key waits.

    Keys are client addresses (behind a proxy, only meaningful with `--trust-proxy`). Only
    failures count, and callers check an attempt before asking: a person who signs in right
    is never slowed down. Memory is bounded: at most `limit` times per key (the newest) and
    `max_keys` keys (the oldest key is forgotten first).
    """

    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
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

    def record_failure(self, key: str) -> bool:
        """Count one failed attempt of `key`; True when this one reached the limit."""
        before = len(self._recent(key))
        failures = self._failures.pop(key, None) or deque(maxlen=self.limit)
        failures.append(self.clock())
        self._failures[key] = failures  # re-inserted: the dict stays oldest-first
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]
        return before < self.limit <= len(failures)


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

    def take(self, now: float | None = None) -> bool:
        """Spend one token if there is one (0 rate: no limit); `now` is the clock's time,
        read from `clock` when not given."""
        if self.rate <= 0:
            return True
        now = self.clock() if now is None else now
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
