"""When the runner's own work runs in the kernel, and how a running stage is stopped.

- :func:`after_current_request`: stage 0 runs right after the request that showed the app
  (`runner.show()`) has been answered, so the page has its widgets before the first cell runs,
  and before any request that arrives later.
- :class:`Interruption`: while a stage runs, SIGINT (a kernel interrupt from the server or
  Jupyter, or the stage timeout's own timer) stops the cell that runs, as a `KeyboardInterrupt`
  in it, and the stage then stops too; between two cells it stops the stage before the next.
  The kernel itself keeps running and the person can retry the stage.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("freezer.runner")


def after_current_request(
    shell: Any, func: Callable[[], None], tasks: set[asyncio.Task[None]]
) -> None:
    """Call `func` once the kernel has replied to the request being handled.

    ipykernel 7 handles one shell request at a time under `_main_asyncio_lock`; a task
    that takes the lock runs after the current request's `execute_reply` and idle status,
    and before any request that arrives later. Without a running kernel loop, call now.
    The task is kept in `tasks` (its owner's) until it is done.
    """
    kernel = getattr(shell, "kernel", None)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if kernel is None or loop is None:
        func()
        return
    lock = getattr(kernel, "_main_asyncio_lock", None)

    async def later() -> None:
        try:
            if isinstance(lock, asyncio.Lock):
                async with lock:
                    func()
            else:
                func()
        except Exception:
            log.exception("the first stage could not run")

    task = loop.create_task(later())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


class Interruption:
    """Whether the stage that runs (or ran last) was interrupted, and by its timeout."""

    def __init__(self) -> None:
        self.interrupted = False
        self.timed_out = False
        self.timeout = 0.0  # the stage timeout (s) of the stage that runs; 0: none
        self._in_cell = False

    @contextmanager
    def stage(self, timeout: float) -> Iterator[None]:
        """While the body runs a stage: SIGINT, or `timeout` seconds (0: none), interrupt it."""
        self.interrupted = self.timed_out = False
        self.timeout = timeout
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        main_id = threading.get_ident()
        guard = threading.Lock()
        timer: threading.Timer | None = None
        done = False

        def on_sigint(signum: int, frame: Any) -> None:
            self.interrupted = True
            if self._in_cell:
                raise KeyboardInterrupt

        def on_timeout() -> None:
            with guard:
                if not done:
                    self.timed_out = True
                    signal.pthread_kill(main_id, signal.SIGINT)

        previous = signal.signal(signal.SIGINT, on_sigint)
        if timeout > 0:
            timer = threading.Timer(timeout, on_timeout)
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            with guard:
                done = True
            if timer is not None:
                timer.cancel()
            if previous is not None:  # None: a handler installed outside Python; leave ours
                signal.signal(signal.SIGINT, previous)

    @contextmanager
    def cell(self) -> Iterator[None]:
        """While the body runs a cell: SIGINT raises `KeyboardInterrupt` in it."""
        self._in_cell = True
        try:
            yield
        finally:
            self._in_cell = False

    def stopped_by_timeout(self) -> float | None:
        """The stage timeout (s) if it is what interrupted the stage, else None."""
        return self.timeout if self.timed_out else None
