"""The one wait helper: returns what the condition returned, awaits async conditions, and fails
naming what it waited for."""

from __future__ import annotations

import itertools

import pytest

from tests.support.eventually import eventually, eventually_sync, run_async


async def test_eventually_returns_the_first_truthy_result() -> None:
    counter = itertools.count()
    assert await eventually(lambda: next(counter) >= 3 and "done", "three checks") == "done"


async def test_eventually_awaits_an_async_condition() -> None:
    calls: list[int] = []

    async def check() -> list[int]:
        calls.append(1)
        return calls if len(calls) == 2 else []

    assert await eventually(check, "two calls") == [1, 1]


async def test_eventually_fails_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match="waiting for the impossible"):
        await eventually(lambda: False, "the impossible", timeout=0)
    with pytest.raises(AssertionError, match="waiting for late text"):
        await eventually(lambda: None, lambda: "late text", timeout=0)


def test_eventually_sync_and_run_async() -> None:
    counter = itertools.count()
    assert eventually_sync(lambda: next(counter) == 2, "the third check") is True
    with pytest.raises(AssertionError, match="never"):
        eventually_sync(lambda: 0, "never", timeout=0)
    assert run_async(eventually(lambda: 7, "seven")) == 7
