"""Waiting for a condition: the one polling helper every test uses, and a bridge for sync tests.

- `await eventually(check, what, timeout)` polls `check` (a function, sync or async) until it
  returns something truthy and returns that; after `timeout` seconds it fails the test with an
  AssertionError naming `what`.
- `eventually_sync(...)` is the same for plain (sync) tests, e.g. those driving Playwright.
- `run_async(coroutine)` runs a coroutine to completion from sync code, in a thread of its own
  (so it also works inside an async test or while Playwright holds this thread's loop).

Polling is on a condition with a timeout, never a fixed sleep standing in for one.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

TIMEOUT = 60.0
"""Seconds a condition may take by default: generous, as the machine is shared."""
INTERVAL = 0.05
"""Seconds between two checks."""

What = str | Callable[[], str]
"""What is waited for, for the failure message (a callable is read only on failure)."""


def _failure(check: Callable[[], Any], what: What, timeout: float) -> AssertionError:
    text = what() if callable(what) else what
    return AssertionError(f"timed out after {timeout:g} s waiting for {text or check}")


async def eventually(
    check: Callable[[], Any | Awaitable[Any]],
    what: What = "",
    timeout: float = TIMEOUT,
    *,
    interval: float = INTERVAL,
) -> Any:
    """Poll `check` until it returns something truthy (then return it); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise _failure(check, what, timeout)
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], Any],
    what: What = "",
    timeout: float = TIMEOUT,
    *,
    interval: float = INTERVAL,
) -> Any:
    """:func:`eventually` for sync tests: poll `check` (a plain function) from this thread."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise _failure(check, what, timeout)
        time.sleep(interval)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, on an event loop in a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
