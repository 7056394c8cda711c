"""Waiting on a kernel only while its process lives, and knowing why a start failed.

A kernel's process can end while the server waits on it: a port another process took between
jupyter_client picking it and the kernel binding it (`ZMQError: Address already in use`), a
warm cell calling `os._exit`, the out-of-memory killer, a person's stage. jupyter_client's
restarter notices only on its next poll, and a wait on the kernel's sockets never notices at
all. :func:`while_alive` runs one wait and watches the process table beside it, so the server
stops waiting as soon as the process is gone and says so with :class:`KernelDiedError`.

The run service (:mod:`runtime.runs.service`) decides what to do about it: a kernel that died
before it ever answered is started again (:data:`START_ATTEMPTS`), one that died in a stage is
counted against the stage (:mod:`runtime.runs.kernel_deaths`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

from runtime.errors import RuntimeAppError

T = TypeVar("T")

START_ATTEMPTS = 3
"""Kernel starts tried for one kernel before the page is told it could not be started: a start
whose kernel died before answering (a port taken by another process) is tried again."""
DEATH_POLL = 0.1
"""Seconds between two looks at the process table while the server waits on a kernel."""


class KernelStartError(RuntimeAppError):
    """A kernel died before it was ready (its warm cells or the runner failed to load)."""


class KernelDiedError(KernelStartError):
    """The kernel's process ended (or the kernel was removed) while the server waited on it.

    `answered` says whether the kernel had answered on its sockets before: a kernel that never
    did most likely failed to bind its ports, and starting another one is worth it.
    """

    def __init__(self, kernel_id: str, doing: str, answered: bool = True) -> None:
        super().__init__(f"kernel {kernel_id} died while {doing}")
        self.kernel_id = kernel_id
        self.answered = answered


def process_ended(pid: int) -> bool:
    """Whether process `pid` has ended (gone, or a zombie), by /proc; False where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return Path("/proc/self").exists()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"])


def kernel_process_id(kernel: Any) -> int | None:
    """The process id of a jupyter_client kernel manager's kernel (None when not local)."""
    process = getattr(getattr(kernel, "provisioner", None), "process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


async def _process_end(pid: int) -> None:
    while not process_ended(pid):
        await asyncio.sleep(DEATH_POLL)


async def while_alive(
    wait: Awaitable[T], pid: int | None, kernel_id: str, doing: str, *, answered: bool = True
) -> T:
    """Await `wait` unless the kernel's process `pid` ends first; then :class:`KernelDiedError`.

    A `wait` cancelled from inside (the kernel's listener stopped because jupyter_server removed
    the dead kernel) is the same death; a cancellation of the caller stays a cancellation.
    """
    task = asyncio.ensure_future(wait)
    watcher = asyncio.ensure_future(_process_end(pid)) if pid is not None else None
    try:
        waiting = {task} if watcher is None else {task, watcher}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and not task.cancelled():
            return task.result()
        raise KernelDiedError(kernel_id, doing, answered)
    finally:
        for pending in (task, watcher):
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending


async def retry_start(start: Callable[[], Awaitable[T]], log: logging.Logger) -> T:
    """`start()`, again while its kernel dies before it ever answered, up to
    :data:`START_ATTEMPTS` times; a kernel that answered and then died is not started again
    (its warm cells end it: a crash loop)."""
    for attempt in count(1):
        try:
            return await start()
        except KernelDiedError as exc:
            if exc.answered or attempt >= START_ATTEMPTS:
                raise
            log.warning("%s (start %d of %d; a port taken by another process?): starting "
                        "another", exc, attempt, START_ATTEMPTS)
    raise AssertionError("unreachable")
