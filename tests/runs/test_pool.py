"""The pool of prepared kernels (:class:`runtime.runs.pool.KernelPool`) over a fake starter:
it fills up to its size, refills after a take, replaces a dead kernel, starts one when empty,
and shuts its kernels down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from runtime.runs.pool import KernelPool

LOG = logging.getLogger("tests.runs.pool")


@dataclass(eq=False)
class FakeKernel:
    """A kernel the fake starter made."""

    number: int
    alive: bool = True
    shut_down: bool = False


class FakeStarter:
    """Starts numbered fake kernels at once; `fail` makes starts raise."""

    def __init__(self) -> None:
        self.started: list[FakeKernel] = []
        self.fail = False

    async def start(self) -> FakeKernel:
        if self.fail:
            raise RuntimeError("no kernel today")
        kernel = FakeKernel(len(self.started) + 1)
        self.started.append(kernel)
        return kernel

    async def is_alive(self, kernel: FakeKernel) -> bool:
        return kernel.alive and not kernel.shut_down

    async def shut_down(self, kernel: FakeKernel) -> None:
        kernel.shut_down = True


def pool_of(
    size: int,
    starter: FakeStarter,
    *,
    has_room: Callable[[], bool] = lambda: True,
    make_room: Callable[[], Awaitable[None]] | None = None,
    settled: Callable[[FakeKernel], Awaitable[None]] | None = None,
) -> KernelPool[FakeKernel]:
    return KernelPool(starter, size, LOG, has_room=has_room, make_room=make_room,
                      settled=settled)


async def test_fill_starts_kernels_up_to_the_size() -> None:
    starter = FakeStarter()
    pool = pool_of(2, starter)
    pool.fill()
    await pool.wait_idle()
    assert len(pool) == 2 and len(starter.started) == 2
    pool.fill()  # full: nothing more
    await pool.wait_idle()
    assert len(starter.started) == 2


async def test_a_taken_kernel_is_replaced_once_its_run_settled() -> None:
    starter = FakeStarter()
    waiting, settled = asyncio.Event(), asyncio.Event()

    async def wait_settled(kernel: FakeKernel) -> None:
        waiting.set()
        await settled.wait()

    pool = pool_of(1, starter, settled=wait_settled)
    pool.fill()
    await pool.wait_idle()
    first = await pool.take()
    assert first is starter.started[0] and len(pool) == 0
    await waiting.wait()
    assert len(starter.started) == 1, "the replacement waits for the taker's first stage"
    settled.set()
    await pool.wait_idle()
    assert len(pool) == 1 and starter.started[1] in pool


async def test_a_dead_pool_kernel_is_shut_down_and_replaced() -> None:
    starter = FakeStarter()
    pool = pool_of(2, starter)
    pool.fill()
    await pool.wait_idle()
    dead, alive = starter.started
    dead.alive = False
    taken = await pool.take()
    assert taken is alive
    assert dead.shut_down
    await pool.wait_idle()
    assert len(pool) == 2 and dead not in pool and alive not in pool


async def test_taking_from_an_empty_pool_makes_room_and_starts_one() -> None:
    starter = FakeStarter()
    rooms: list[int] = []

    async def make_room() -> None:
        rooms.append(len(starter.started))

    pool = pool_of(0, starter, make_room=make_room)
    taken = await pool.take()
    assert taken is starter.started[0] and not taken.shut_down
    assert rooms == [0], "room is made before the kernel starts"
    await pool.wait_idle()
    assert len(pool) == 0, "a pool of size 0 keeps nothing"


async def test_the_pool_stays_short_when_the_cap_leaves_no_room() -> None:
    starter = FakeStarter()
    pool = pool_of(3, starter, has_room=lambda: len(starter.started) < 2)
    pool.fill()
    await pool.wait_idle()
    assert len(pool) == 2


async def test_a_failing_start_leaves_the_pool_short_and_a_discarded_kernel_is_replaced() -> None:
    starter = FakeStarter()
    pool = pool_of(1, starter)
    starter.fail = True
    pool.fill()
    await pool.wait_idle()
    assert len(pool) == 0
    starter.fail = False
    pool.fill()
    await pool.wait_idle()
    (kernel,) = pool.ready
    pool.discard(kernel)  # it died in the pool; the server forgot it
    await pool.wait_idle()
    assert len(pool) == 1 and kernel not in pool


async def test_shutdown_shuts_every_pool_kernel_down() -> None:
    starter = FakeStarter()
    pool = pool_of(2, starter)
    pool.fill()
    await pool.wait_idle()
    await pool.shutdown()
    assert len(pool) == 0
    assert all(kernel.shut_down for kernel in starter.started)
