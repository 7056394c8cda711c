"""`WorkQueue` in a real kernel running an app without a Freezer server (plain Voila/Jupyter)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.runner.conftest import BOOTSTRAP, code, stage
from tests.support.frontend import Frontend

pytestmark = pytest.mark.timeout(120)

CLAIM = (
    "from runtime.kernel import WorkQueue\n"
    "queue = WorkQueue('faces', items=['a', 'b', 'c'], batch=2, overlap=2)\n"
    "mine = queue.claim()\n"
    "queue.submit({mine[0]: 'cat'})\n"
    "print('batch', mine, 'next', queue.claim(), 'saved', queue.saved)"
)


async def test_an_unsaved_app_gets_an_in_memory_queue(
    make_app: Callable[..., Path], start_app: Callable[[Path], Awaitable[Frontend]]
) -> None:
    fe = await start_app(make_app([stage(0, "Label", [code(CLAIM)])]))
    await fe.execute_ok(BOOTSTRAP)
    await fe.wait_for(lambda: "batch" in fe.stage_text(0))
    assert "batch ['a', 'b'] next ['b'] saved False" in fe.stage_text(0)
