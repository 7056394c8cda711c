"""The kernel websocket between a person's page and their run's kernel.

:class:`RunWebsocketConnection` is jupyter_server's ZMQ websocket connection with three duties
added (it is installed as the server's `kernel_websocket_connection_class`):

- **ownership**: only the person whose run the kernel serves may connect (else 403);
- **admission**: each message from the page is decoded once, here, and
  :func:`runtime.runs.attachment.admit` decides (size, allowlist, flood limit, journal); an
  admitted message is then sent to the kernel's socket as it came (the frames of the binary
  protocol, the decoded message of the JSON one), not read or allowlisted a second time by
  jupyter_server;
- **write-ahead journal**: every browser `comm_msg` that changes a kernel-created widget is
  appended to the run's journal *before* it is forwarded. Messages keep their order through one
  queue and one task per connection; a message whose journal write failed is not forwarded,
  and the page is told.

The runner's `freezer.run` comm is the server's business: its messages never reach the browser.
Every iopub message relayed to the page is noted by the page's
:class:`runtime.runs.attachment.Attachment`, which is how a widget the page was just shown has
its creation ordinal without waiting for the listener's own iopub socket.
Both framings of the kernel websocket are handled: JSON text (and its legacy binary variant)
and the `v1.kernel.websocket.jupyter.org` binary protocol.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from typing import TYPE_CHECKING, Any, Literal

from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
)
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from tornado import web
from tornado.websocket import WebSocketClosedError

from runtime.errors import JournalError, RuntimeAppError
from runtime.runs.attachment import (
    COMM_TYPES,
    FLOOD_BURST_SECONDS,
    FLOOD_RATE,
    MAX_MESSAGE_SIZE,
    SAVE_FAILED,
    Action,
    Attachment,
    BrowserMessage,
    Decision,
    admit,
)
from runtime.runs.ratelimit import TokenBucket
from runtime.store.store import NewEvent, pack_buffers

if TYPE_CHECKING:
    from runtime.runs.live import LiveKernel
    from runtime.runs.service import RunService

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
ORDINAL_WAIT = 5.0
"""Seconds to wait for the listener when a page's relay could not yet number a widget."""


def check_frame(frame: Any, width: int, byteorder: Literal["little", "big"]) -> None:
    """Refuse a binary frame whose leading count of offsets does not fit in the frame.

    jupyter_server's parsers build a list of that many offsets before looking at them, so a
    frame starting with a huge count would hang the whole server (found by the websocket fuzzer).
    """
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise ValueError("a binary frame was expected")
    count = int.from_bytes(bytes(frame[:width]), byteorder)
    if len(frame) < width or count < 1 or width * (count + 1) > len(frame):
        raise ValueError(f"malformed frame: {count} offsets in {len(frame)} bytes")


_BUCKETS: weakref.WeakKeyDictionary[LiveKernel, TokenBucket] = weakref.WeakKeyDictionary()
"""One flood limit per live run kernel, shared by every page (tab) of the run."""


def frame_size(ws_msg: Any) -> int:
    """Bytes of a websocket frame as the page sent it."""
    if isinstance(ws_msg, str):
        return len(ws_msg.encode("utf-8", "surrogatepass"))
    return len(ws_msg)


class RunWebsocketConnection(ZMQChannelsWebsocketConnection):
    """A kernel websocket that only its run's owner may open, with admission and journal."""

    _live: LiveKernel | None = None
    _attachment: Attachment | None = None
    _queue: asyncio.Queue[tuple[BrowserMessage, Decision]] | None = None
    _pump: asyncio.Task[None] | None = None
    _busy = False  # the queue task holds a message (journaling or forwarding it)
    _closing = False  # the page went away; disconnect once the queue is done
    _framing: tuple[str | None] | None = None  # the subprotocol, kept past the socket's close

    @property
    def subprotocol(self) -> str | None:
        """The framing the page chose; remembered, as queued messages outlive the socket."""
        if self._framing is None:
            self._framing = (super().subprotocol,)
        return self._framing[0]

    @property
    def runs(self) -> RunService:
        """The run service, given to the websocket handler by its route
        (:class:`runtime.web.voila.RunKernelWebsocketHandler`)."""
        runs: RunService | None = getattr(self.websocket_handler, "runs", None)
        if runs is None:
            raise RuntimeAppError("the websocket handler is not Freezer's own")
        return runs

    async def prepare(self) -> None:
        """Refuse anyone but the run's owner (403), then let jupyter_server prepare."""
        live = self.runs.live(self.kernel_id)
        user = self.websocket_handler.current_user
        user_id = getattr(user, "user_id", None)
        if live is None or live.run_id is None or user_id is None or user_id != live.user_id:
            self.log.warning("refused websocket to kernel %s for user %s", self.kernel_id,
                             user_id)
            raise web.HTTPError(403, "this kernel belongs to another person's run")
        self._live = live
        settings = self.websocket_handler.settings
        rate = float(settings.get("freezer_flood_rate", FLOOD_RATE))
        bucket = None
        if rate > 0:
            bucket = _BUCKETS.get(live)
            if bucket is None:
                bucket = _BUCKETS[live] = TokenBucket(rate, rate * FLOOD_BURST_SECONDS)
        self._attachment = Attachment(
            live.listener.widgets,
            bucket=bucket,
            max_size=int(settings.get("freezer_max_message_size", MAX_MESSAGE_SIZE)),
        )
        await super().prepare()  # type: ignore[no-untyped-call]

    def disconnect(self) -> None:  # type: ignore[override]
        """Close the connection once the messages the page sent before it left are journaled
        and forwarded (a person's last change before a reload must not be lost)."""
        if self._pump is not None and (self._busy or (self._queue and not self._queue.empty())):
            self._closing = True
            return
        self._finish_disconnect()

    def _finish_disconnect(self) -> None:
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()
        self._pump = None
        if self._attachment is not None:
            self._attachment.close()
        super().disconnect()  # type: ignore[no-untyped-call]

    # --- browser -> kernel -------------------------------------------------------------------

    def handle_incoming_message(self, incoming_msg: Any) -> None:
        """Decode a page's message once, admit it, and queue it for journal + forward."""
        self._framing = (super().subprotocol,)
        attachment = self._attachment
        if attachment is None:
            return
        size = frame_size(incoming_msg)
        try:
            message = (BrowserMessage(size) if attachment.over_size(size)
                       else self.read_message(incoming_msg, size))
        except Exception:
            self.log.warning("dropped an unreadable message from the page (kernel %s)",
                             self.kernel_id)
            return
        try:
            decision = admit(message, attachment, time.monotonic())
        except Exception:
            self.log.exception("dropped a message from the page that could not be admitted")
            return
        if decision.why:
            self.log.warning("run %s: %s", self._run_id, decision.why)
        if decision.tell:
            self.write_stderr(decision.tell, message.header)  # type: ignore[no-untyped-call]
        if decision.action is Action.REFUSE:
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._pump is None:
            self._pump = asyncio.create_task(self._forward_in_order(self._queue))
        self._queue.put_nowait((message, decision))

    def read_message(self, ws_msg: Any, size: int) -> BrowserMessage:
        """A page's message in either framing, decoded once; its payload is what is sent on."""
        payload: Any
        if self.subprotocol == V1_PROTOCOL:
            check_frame(ws_msg, 8, "little")
            channel, parts = deserialize_msg_from_ws_v1(ws_msg)  # type: ignore[no-untyped-call]
            header = self.session.unpack(parts[0])
            content = self.session.unpack(parts[3])
            buffers = [bytes(b) for b in parts[4:]]
            payload = parts
        else:
            if isinstance(ws_msg, bytes):
                check_frame(ws_msg, 4, "big")
                payload = deserialize_binary_message(ws_msg)  # type: ignore[no-untyped-call]
            else:
                payload = json.loads(ws_msg)
            channel = payload.pop("channel", None)
            header, content = payload["header"], payload.get("content") or {}
            buffers = [bytes(b) for b in payload.get("buffers") or []]
        if not isinstance(header, dict) or not isinstance(content, dict):
            raise ValueError("a message's header and content are objects")
        return BrowserMessage(
            size, str(header.get("msg_type")), "shell" if channel is None else str(channel),
            header, content, buffers, payload,
        )

    def _forward(self, message: BrowserMessage) -> None:
        """Send an admitted message to the kernel as it came (jupyter_server's last step of
        `handle_incoming_message`, without its second reading and allowlist)."""
        if not self.channels:
            self.log.debug("kernel %s: message for a closed websocket", self.kernel_id)
            return
        stream = self.channels.get(message.channel)
        if stream is None:
            self.log.warning("kernel %s: no channel %r", self.kernel_id, message.channel)
            return
        if isinstance(message.payload, list):
            self.session.send_raw(stream, message.payload)
        else:
            self.session.send(stream, message.payload)

    async def _forward_in_order(
        self, queue: asyncio.Queue[tuple[BrowserMessage, Decision]]
    ) -> None:
        while True:
            if self._closing and queue.empty():
                try:
                    self._finish_disconnect()
                except Exception:
                    self.log.exception("closing the websocket of kernel %s", self.kernel_id)
                return
            message, decision = await queue.get()
            self._busy = True
            try:
                await self._journal_and_forward(message, decision)
            except Exception:
                self.log.exception("%s from the page of kernel %s not forwarded",
                                   message.msg_type, self.kernel_id)
            finally:
                self._busy = False

    async def _journal_and_forward(self, message: BrowserMessage, decision: Decision) -> None:
        try:
            if decision.action is Action.JOURNAL:
                await self._journal(message, decision.ordinal)
        except JournalError as exc:
            self.log.error("run %s: widget message not forwarded: %s", self._run_id, exc)
            if not self._closing:
                self.write_stderr(SAVE_FAILED, message.header)  # type: ignore[no-untyped-call]
                self._show_kernel_state(message.comm_id)
            return
        except Exception:
            self.log.exception("widget message not forwarded")
            return
        self._forward(message)

    def _show_kernel_state(self, comm_id: str) -> None:
        """Have the kernel send the widget's state again, so the page stops showing a change
        the kernel never got (ipywidgets answers `request_state` with an `update`)."""
        if self._live is not None:
            self._live.listener.send_comm_msg(comm_id, {"method": "request_state"}, [])

    async def _journal(self, message: BrowserMessage, ordinal: int | None) -> None:
        live, attachment = self._live, self._attachment
        assert live is not None and live.run_id is not None and attachment is not None
        if live.retired:  # the person went back: the run continues in a fresh kernel
            raise JournalError("the run went back to an earlier step; not saved", live.run_id)
        comm_id = message.comm_id
        if ordinal is None:
            # Only a page whose relay has not lined up with the listener yet gets here.
            try:
                await live.listener.wait_until(
                    lambda: attachment.ordinal_of(comm_id) is not None, ORDINAL_WAIT
                )
            except RuntimeAppError:
                self.log.warning("run %s: message to unknown widget %s forwarded unjournaled",
                                 live.run_id, comm_id)
                return
            ordinal = attachment.ordinal_of(comm_id)
        event = NewEvent(
            run_id=live.run_id,
            kind="comm_msg",
            ordinal=ordinal,
            payload=message.content.get("data") or {},
            buffers=pack_buffers(message.buffers),
        )
        await self.runs.journal.append(event)

    @property
    def _run_id(self) -> str:
        return str(self._live.run_id) if self._live is not None else "?"

    # --- kernel -> browser -------------------------------------------------------------------

    def handle_outgoing_message(self, stream: Any, outgoing_msg: list[Any]) -> None:
        """Forward the kernel's messages, except the runner's `freezer.run` comm."""
        try:
            if self._is_hidden(stream, outgoing_msg):
                return
        except Exception:
            self.log.exception("could not inspect a kernel message; forwarding it")
        try:
            super().handle_outgoing_message(stream, outgoing_msg)
        except WebSocketClosedError:
            # A reply to a page that already went away. Raised into pyzmq's stream callback,
            # it left a closed stream registered, and the event loop spun on it (every page
            # of the server hung); dropping the reply is all there is to do.
            self.log.debug("kernel %s: dropped a message for a closed page", self.kernel_id)

    def _is_hidden(self, stream: Any, outgoing_msg: list[Any]) -> bool:
        """Note an iopub message for the page's attachment; True for the runner's comm."""
        channel = stream if isinstance(stream, str) else getattr(stream, "channel", None)
        if channel != "iopub" or self._attachment is None:
            return False
        _, parts = self.session.feed_identities(outgoing_msg)
        header = self.session.unpack(parts[1])
        content = (self.session.unpack(parts[4]) if header.get("msg_type") in COMM_TYPES
                   else None)
        return self._attachment.shown(header, content)
