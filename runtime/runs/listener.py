"""A listener per live kernel: its iopub from the kernel's start, the runner's reports,
server-side execution.

Each live kernel gets one jupyter_client client of the server's own. Its iopub loop

- keeps :attr:`KernelListener.widgets` (:class:`runtime.runs.widgets.WidgetBook`): each
  `jupyter.widget` comm_open's creation ordinal, the runner's comm, the `Output` widgets;
- hands every `freezer.run` comm message to `on_runner_event` (the server stores it), through
  :attr:`runner_event_filter` when one is set (replay checks what the kernel reports);
- when :attr:`output_frontend` is on (replay, no browser attached), acts as the front-end of
  the notebook's own `Output` widgets (:meth:`runtime.runs.widgets.WidgetBook.route_output`).

The same client executes the server's own code in the kernel (`runner.prepare()`,
`runner.configure(...)`) and sends replayed widget messages; :meth:`wait_for`,
:meth:`wait_idle` and :meth:`wait_future` (for messages sent without waiting, taken with
:meth:`expect_idle`) are the waits that replay and the tests use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo

from runtime.errors import RuntimeAppError
from runtime.protocol import QUEUE_REQUEST, SETTLED, RunnerEvent
from runtime.runs.widgets import OUTPUT_TYPES, OutputWidget, WidgetBook

READY_ATTEMPTS = 120
READY_INTERVAL = 0.5

RunnerEventHandler = Callable[[dict[str, Any]], Awaitable[None]]
RunnerEventFilter = Callable[[dict[str, Any]], dict[str, Any] | None]


class KernelExecutionError(RuntimeAppError):
    """Code the server executed in a kernel raised; carries the kernel's error name and value."""

    def __init__(self, kernel_id: str, ename: str, evalue: str) -> None:
        super().__init__(f"kernel {kernel_id}: {ename}: {evalue}")
        self.ename = ename
        self.evalue = evalue


class KernelTimeoutError(RuntimeAppError):
    """The kernel did not answer within the time the server waits."""


class KernelGoneError(RuntimeAppError):
    """The kernel died (its listener was stopped) while the server waited for it."""


class KernelListener:
    """Watches one kernel's iopub and executes the server's code in it. Owns its task."""

    def __init__(
        self,
        kernel_id: str,
        connection_info: KernelConnectionInfo,
        on_runner_event: RunnerEventHandler,
        log: logging.Logger,
    ) -> None:
        self.kernel_id = kernel_id
        self.on_runner_event = on_runner_event
        self.log = log
        self.client = AsyncKernelClient()
        self.client.load_connection_info(connection_info)
        self.widgets = WidgetBook()
        self.runner_events: list[dict[str, Any]] = []
        self.stage_running = False
        self.output_frontend = False
        # replay: what of a runner report reaches `on_runner_event` (None: nothing)
        self.runner_event_filter: RunnerEventFilter | None = None
        # the work queue's requests (runtime.runs.queue_service), answered, never stored as reports
        self.on_queue_request: RunnerEventHandler | None = None
        self._idle: dict[str, asyncio.Future[None]] = {}
        self._changed = asyncio.Condition()
        self._shell_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, start the iopub loop, and return once iopub is known to be subscribed."""
        self.client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        self._task = asyncio.create_task(self._iopub_loop(), name=f"listener-{self.kernel_id}")
        for _ in range(READY_ATTEMPTS):
            msg_id = self.client.kernel_info()
            try:
                await self.wait_idle(msg_id, READY_INTERVAL)
                return
            except KernelTimeoutError:
                continue
        raise KernelTimeoutError(f"kernel {self.kernel_id} did not answer on iopub")

    def stop(self) -> None:
        """Cancel the loop and close the channels; safe to call twice."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for future in self._idle.values():
            if not future.done():
                future.cancel()
        self._idle.clear()
        if self.client.channels_running:
            self.client.stop_channels()

    # --- what the kernel showed --------------------------------------------------------------

    def ordinal_of(self, comm_id: str) -> int | None:
        """The creation ordinal of a kernel-created widget comm, or None."""
        return self.widgets.ordinal_of(comm_id)

    def comm_of(self, ordinal: int) -> str | None:
        """The comm id of the widget created `ordinal`-th in this kernel, or None."""
        return self.widgets.comm_of(ordinal)

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float,
        since: int = 0,
    ) -> dict[str, Any]:
        """The first runner event from index `since` on that satisfies `predicate`."""
        async def scan() -> dict[str, Any]:
            index = since
            async with self._changed:
                while True:
                    while index < len(self.runner_events):
                        event = self.runner_events[index]
                        index += 1
                        if predicate(event):
                            return event
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except asyncio.TimeoutError:
            raise KernelTimeoutError(
                f"kernel {self.kernel_id}: no matching runner event within {timeout:g} s"
            ) from None

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        """Return once `condition()` holds, checked after every iopub message."""
        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(condition)

        try:
            await asyncio.wait_for(check(), timeout)
        except asyncio.TimeoutError:
            raise KernelTimeoutError(
                f"kernel {self.kernel_id}: condition not met within {timeout:g} s"
            ) from None

    async def wait_idle(self, msg_id: str, timeout: float) -> None:
        """Return once the kernel reported idle after handling message `msg_id`."""
        future = self.expect_idle(msg_id)
        try:
            await self.wait_future(future, timeout)
        finally:
            if future.done():
                self._idle.pop(msg_id, None)

    def expect_idle(self, msg_id: str) -> asyncio.Future[None]:
        """The future the iopub loop sets once the kernel reported idle after `msg_id`.

        Take it right after sending (before awaiting anything) and keep it: a done future
        nobody holds may be forgotten (see `_forget_stale_idles`), so a caller with many
        messages in flight awaits the futures themselves with :meth:`wait_future`.
        """
        return self._idle.setdefault(msg_id, asyncio.get_running_loop().create_future())

    async def wait_future(self, future: asyncio.Future[None], timeout: float) -> None:
        """Return once `future` (from :meth:`expect_idle`) is done; raise after `timeout`, or
        :class:`KernelGoneError` when the listener stopped first (the kernel died)."""
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            raise KernelTimeoutError(
                f"kernel {self.kernel_id} still busy after {timeout:g} s"
            ) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and not (task is not None and task.cancelling()):
                raise KernelGoneError(
                    f"kernel {self.kernel_id} stopped before it handled the message"
                ) from None
            raise

    # --- talking to the kernel ---------------------------------------------------------------

    async def execute(self, code: str, timeout: float) -> None:
        """Run `code` silently; return when the kernel is idle again; raise if it failed."""
        async with self._shell_lock:
            msg_id = self.client.execute(code, silent=False, store_history=False)
            reply = await self._reply(msg_id, timeout)
            await self.wait_idle(msg_id, timeout)
        content = reply["content"]
        if content.get("status") != "ok":
            raise KernelExecutionError(
                self.kernel_id, content.get("ename", "Error"), content.get("evalue", "")
            )

    async def _reply(self, msg_id: str, timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise KernelTimeoutError(f"kernel {self.kernel_id}: no reply within {timeout:g} s")
            try:
                msg: dict[str, Any] = await self.client.get_shell_msg(timeout=remaining)
            except Exception:  # queue.Empty from jupyter_client on timeout
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def send_comm_msg(self, comm_id: str, data: dict[str, Any], buffers: list[bytes]) -> str:
        """Send a widget message as a front-end would; return its msg_id."""
        msg = self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.client.shell_channel.send(msg) if not buffers else self.client.session.send(
            self.client.shell_channel.socket, msg, buffers=buffers
        )
        msg_id: str = msg["header"]["msg_id"]
        return msg_id

    # --- the iopub loop ----------------------------------------------------------------------

    async def _iopub_loop(self) -> None:
        socket = self.client.iopub_channel.socket
        assert socket is not None
        while True:
            try:
                frames = await socket.recv_multipart()
                msg = self._read(frames)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("kernel %s: unreadable iopub message", self.kernel_id)
                continue
            if msg is None:
                continue
            try:
                await self._handle(msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("kernel %s: error handling %s", self.kernel_id,
                                   msg.get("msg_type"))
            async with self._changed:
                self._changed.notify_all()

    def _read(self, frames: list[bytes]) -> dict[str, Any] | None:
        """The parts of an iopub message this listener needs, or None for one it ignores.

        Every iopub message also goes to the page through jupyter_server, so this is the
        second time the server reads each one: only the header is always decoded, and the
        content only of the messages acted on. (A widget's state update to the page, the
        bulk of iopub, is decoded only when it is a runner or `Output` comm's.) The signature
        is not checked: iopub is the kernel's own publishing socket. A comm_open is entered in
        :attr:`widgets` here, in stream order, before anything is awaited.
        """
        session = self.client.session
        _, parts = session.feed_identities(frames)
        header = session.unpack(parts[1])
        msg_type = header.get("msg_type")
        msg: dict[str, Any] | None = None
        if msg_type == "comm_msg":
            comms = (*self.widgets.runner_comms, *self.widgets.outputs)
            if any(c.encode() in parts[4] for c in comms):
                msg = {}
        elif msg_type in OUTPUT_TYPES or msg_type == "clear_output":
            if self.output_frontend:
                msg = {}
        elif msg_type in ("status", "comm_open"):
            msg = {}
        if msg is not None:
            msg.update(header=header, msg_type=msg_type, parent_header=session.unpack(parts[2]),
                       content=session.unpack(parts[4]))
            if msg_type == "comm_open":
                self.widgets.opened(msg["content"])
        self.widgets.seen(str(header.get("msg_id")))
        return msg

    async def _handle(self, msg: dict[str, Any]) -> None:
        msg_type = msg["header"]["msg_type"]
        content = msg["content"]
        parent_id = msg["parent_header"].get("msg_id", "")
        if msg_type == "status":
            if content.get("execution_state") == "idle" and parent_id:
                future = self._idle.setdefault(
                    parent_id, asyncio.get_running_loop().create_future()
                )
                if not future.done():
                    future.set_result(None)
                self._forget_stale_idles()
        elif msg_type == "comm_open":
            await self._on_comm_open(content)
        elif msg_type == "comm_msg":
            await self._on_comm_msg(content)
        elif msg_type == "clear_output" or msg_type in OUTPUT_TYPES:
            if self.output_frontend:
                self._route_output(msg_type, content, parent_id)

    def _forget_stale_idles(self) -> None:
        # idle results nobody waited for (the websocket's own messages) must not pile up
        if len(self._idle) > 256:
            for key in [k for k, f in self._idle.items() if f.done()][:-64]:
                del self._idle[key]

    async def _on_comm_open(self, content: dict[str, Any]) -> None:
        data = content.get("data") or {}
        if str(content.get("comm_id")) in self.widgets.runner_comms and data.get("event"):
            await self._runner_event(data)

    async def _on_comm_msg(self, content: dict[str, Any]) -> None:
        comm_id = content["comm_id"]
        data = content.get("data") or {}
        if comm_id in self.widgets.runner_comms:
            await self._runner_event(data)
            return
        self.widgets.output_state(comm_id, data)

    async def _runner_event(self, data: dict[str, Any]) -> None:
        event = data.get("event")
        if event == QUEUE_REQUEST:
            if self.on_queue_request is not None:
                await self.on_queue_request(data)
            return
        if event == RunnerEvent.STAGE_STARTED:
            self.stage_running = True
        elif event in SETTLED:
            self.stage_running = False
        self.runner_events.append(data)
        stored = data if self.runner_event_filter is None else self.runner_event_filter(data)
        if stored is not None:
            await self.on_runner_event(stored)

    def _route_output(self, msg_type: str, content: dict[str, Any], parent_id: str) -> None:
        widget = self.widgets.route_output(msg_type, content, parent_id)
        if widget is not None:
            self._sync_outputs(widget)

    def _sync_outputs(self, widget: OutputWidget) -> None:
        self.send_comm_msg(
            widget.comm_id,
            {"method": "update", "state": {"outputs": widget.outputs}, "buffer_paths": []},
            [],
        )
