"""A listener per live kernel: widget comm ordinals, the runner's reports, server-side execution.

Each live kernel gets one jupyter_client client of the server's own. Its iopub loop

- counts the `jupyter.widget` comm_opens the kernel sends (comm id -> creation ordinal), which
  is how a journaled browser message is tied to "the 7th widget" rather than to a comm id that
  only exists in this kernel;
- hands every `freezer.run` comm message to `on_runner_event` (the server stores it), through
  :attr:`runner_event_filter` when one is set (replay checks what the kernel reports);
- when :attr:`output_frontend` is on (replay, no browser attached), acts as the front-end of
  the notebook's own `Output` widgets, as nbclient does: outputs whose parent message is an
  Output's `msg_id` are written into that widget's `outputs`.

The same client executes the server's own code in the kernel (`runner.prepare()`,
`runner.configure(...)`) and sends replayed widget messages; :meth:`wait_for`,
:meth:`wait_idle` and :meth:`wait_future` (for messages sent without waiting, taken with
:meth:`expect_idle`) are the waits that replay and the tests use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo

from runtime.errors import RuntimeAppError
from runtime.protocol import COMM_TARGET, QUEUE_REQUEST, SETTLED, WIDGET_TARGET, RunnerEvent

OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error", "update_display_data")
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


@dataclass
class OutputWidget:
    """What the replay front-end keeps of one `Output` widget."""

    comm_id: str
    msg_id: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    clear_on_next: bool = False


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
        self.ordinals: dict[str, int] = {}
        self.comm_ids: list[str] = []
        self.runner_comms: set[str] = set()
        self.runner_events: list[dict[str, Any]] = []
        self.stage_running = False
        self.output_frontend = False
        # replay: what of a runner report reaches `on_runner_event` (None: nothing)
        self.runner_event_filter: RunnerEventFilter | None = None
        # the work queue's requests (runtime.runs.queue_service), answered, never stored as reports
        self.on_queue_request: RunnerEventHandler | None = None
        self._outputs: dict[str, OutputWidget] = {}
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
        return self.ordinals.get(comm_id)

    def comm_of(self, ordinal: int) -> str | None:
        """The comm id of the widget created `ordinal`-th in this kernel, or None."""
        if 0 <= ordinal < len(self.comm_ids):
            return self.comm_ids[ordinal]
        return None

    def is_output_widget(self, comm_id: str) -> bool:
        """Whether `comm_id` is one of the notebook's `Output` widgets."""
        return comm_id in self._outputs

    def is_runner_comm(self, comm_id: str) -> bool:
        """Whether `comm_id` is the runner's `freezer.run` comm."""
        return comm_id in self.runner_comms

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
        is not checked: iopub is the kernel's own publishing socket.
        """
        session = self.client.session
        _, parts = session.feed_identities(frames)
        header = session.unpack(parts[1])
        msg_type = header.get("msg_type")
        if msg_type == "comm_msg":
            if not any(c.encode() in parts[4] for c in (*self.runner_comms, *self._outputs)):
                return None
        elif msg_type in OUTPUT_TYPES or msg_type == "clear_output":
            if not self.output_frontend:
                return None
        elif msg_type not in ("status", "comm_open"):
            return None
        return {
            "header": header,
            "msg_type": msg_type,
            "parent_header": session.unpack(parts[2]),
            "content": session.unpack(parts[4]),
        }

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
        comm_id = content["comm_id"]
        target = content.get("target_name")
        if target == WIDGET_TARGET:
            self.ordinals[comm_id] = len(self.comm_ids)
            self.comm_ids.append(comm_id)
            state = content.get("data", {}).get("state", {})
            if state.get("_model_name") == "OutputModel":
                self._outputs[comm_id] = OutputWidget(comm_id, msg_id=state.get("msg_id", ""))
        elif target == COMM_TARGET:
            self.runner_comms.add(comm_id)
            data = content.get("data") or {}
            if data.get("event"):
                await self._runner_event(data)

    async def _on_comm_msg(self, content: dict[str, Any]) -> None:
        comm_id = content["comm_id"]
        data = content.get("data") or {}
        if comm_id in self.runner_comms:
            await self._runner_event(data)
            return
        widget = self._outputs.get(comm_id)
        if widget is not None and data.get("method") in ("update", "echo_update"):
            state = data.get("state", {})
            if "msg_id" in state:
                widget.msg_id = state["msg_id"] or ""
            if "outputs" in state and data.get("method") == "update":
                widget.outputs = list(state["outputs"])

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
        widget = next(
            (w for w in self._outputs.values() if w.msg_id and w.msg_id == parent_id), None
        )
        if widget is None:
            return
        if msg_type == "clear_output":
            if content.get("wait"):
                widget.clear_on_next = True
            else:
                widget.outputs = []
                self._sync_outputs(widget)
            return
        if widget.clear_on_next:
            widget.outputs = []
            widget.clear_on_next = False
        output = {"output_type": msg_type, **content}
        if msg_type == "stream" and widget.outputs and widget.outputs[-1].get(
            "output_type"
        ) == "stream" and widget.outputs[-1].get("name") == content.get("name"):
            merged = dict(widget.outputs[-1])
            merged["text"] = merged.get("text", "") + content.get("text", "")
            widget.outputs[-1] = merged
        elif msg_type == "update_display_data":
            return
        else:
            output.pop("transient", None)
            widget.outputs.append(output)
        self._sync_outputs(widget)

    def _sync_outputs(self, widget: OutputWidget) -> None:
        self.send_comm_msg(
            widget.comm_id,
            {"method": "update", "state": {"outputs": widget.outputs}, "buffer_paths": []},
            [],
        )
