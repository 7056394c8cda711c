"""The kernel websocket between a person's page and their run's kernel.

:class:`RunWebsocketConnection` is jupyter_server's ZMQ websocket connection with three duties
added (it is installed as the server's `kernel_websocket_connection_class`):

- **ownership**: only the person whose run the kernel serves may connect (else 403);
- **allowlist**: from the browser only widget comms (`comm_open` for widget targets,
  `comm_msg`, `comm_close`) and `comm_info_request` / `kernel_info_request` pass; anything
  else (`execute_request`, `shutdown_request`, ...) is dropped and logged;
- **write-ahead journal**: every browser `comm_msg` to a kernel-created widget is appended to
  the run's journal *before* it is forwarded. Messages keep their order through one queue and
  one task per connection; a message whose journal write failed is not forwarded, and the page
  is told.

The runner's `freezer.run` comm is the server's business: its messages never reach the browser.
Both framings of the kernel websocket are handled: JSON text (and its legacy binary variant)
and the `v1.kernel.websocket.jupyter.org` binary protocol.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
)
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from tornado import web
from tornado.websocket import WebSocketClosedError

from runtime.errors import JournalError, RuntimeAppError
from runtime.protocol import COMM_TARGET, WIDGET_CONTROL_TARGET, WIDGET_TARGET
from runtime.runs.ratelimit import TokenBucket
from runtime.store.store import NewEvent, pack_buffers

if TYPE_CHECKING:
    from runtime.runs.live import LiveKernel
    from runtime.runs.service import RunService

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
BROWSER_MESSAGE_TYPES = frozenset(
    {"comm_open", "comm_msg", "comm_close", "comm_info_request", "kernel_info_request"}
)
"""The only message types a page may send to a kernel."""
BROWSER_COMM_TARGETS = frozenset({WIDGET_TARGET, WIDGET_CONTROL_TARGET})
JOURNALED_METHODS = frozenset({"update", "custom"})
"""Widget message methods that change the kernel's state (others only ask for state)."""
FRONTEND_OUTPUT_STATE = frozenset({"outputs", "msg_id"})
"""What a page writes back into an `Output` widget: the outputs it routed there. Not a person's
action, so not journaled; replay routes those outputs itself (see :mod:`runtime.runs.listener`)."""
COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})
FLOOD_RATE = 200.0  # messages a second a run's pages may send on average (`--flood-rate`)...
FLOOD_BURST_SECONDS = 2.0  # ...and at once, this many seconds' worth
FLOODED = "Too many changes at once: some were not applied. Slow down, then try again.\n"
MAX_MESSAGE_SIZE = 512 * 1024
"""Bytes a page's message may have (`--max-message-size`, setting `freezer_max_message_size`)."""
TOO_LARGE = (
    "That change was too large to save ({size:,} bytes; this server takes at most {limit:,}), "
    "so it was not applied. Reload the page to continue.\n"
)
ORDINAL_WAIT = 5.0  # seconds to wait for the listener to see a widget the page already knows
SAVE_FAILED = (
    "Freezer could not save your last change, so it was not applied. "
    "Reload the page to continue."
)


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


@dataclass
class BrowserMessage:
    """One parsed message from the page, still carrying its original frame."""

    raw: Any
    msg_type: str
    header: dict[str, Any]
    content: dict[str, Any]
    buffers: list[bytes] = field(default_factory=list)


_BUCKETS: weakref.WeakKeyDictionary[LiveKernel, TokenBucket] = weakref.WeakKeyDictionary()
"""One flood limit per live run kernel, shared by every page (tab) of the run."""


class RunWebsocketConnection(ZMQChannelsWebsocketConnection):
    """A kernel websocket that only its run's owner may open, with allowlist and journal."""

    _live: LiveKernel | None = None
    _queue: asyncio.Queue[BrowserMessage] | None = None
    _pump: asyncio.Task[None] | None = None
    _flooding = False  # messages are being dropped by the flood limit
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
        self._browser_comms: set[str] = set()
        self._runner_comms: set[str] = set()
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
        super().disconnect()  # type: ignore[no-untyped-call]

    # --- browser -> kernel -------------------------------------------------------------------

    def handle_incoming_message(self, incoming_msg: Any) -> None:
        """Check a page's message against the allowlist and queue it for journal + forward."""
        self._framing = (super().subprotocol,)
        if self.is_too_large(incoming_msg):
            return
        try:
            message = self.parse_browser_message(incoming_msg)
        except Exception:
            self.log.warning("dropped an unreadable message from the page (kernel %s)",
                             self.kernel_id)
            return
        if not self.is_allowed(message) or not self.within_flood_limit(message):
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._pump is None:
            self._pump = asyncio.create_task(self._forward_in_order(self._queue))
        self._queue.put_nowait(message)

    def parse_browser_message(self, ws_msg: Any) -> BrowserMessage:
        """Header, content and buffers of a page's message in either framing."""
        if self.subprotocol == V1_PROTOCOL:
            check_frame(ws_msg, 8, "little")
            _channel, parts = deserialize_msg_from_ws_v1(ws_msg)  # type: ignore[no-untyped-call]
            header = self.session.unpack(parts[0])
            content = self.session.unpack(parts[3])
            buffers = [bytes(b) for b in parts[4:]]
        else:
            if isinstance(ws_msg, bytes):
                check_frame(ws_msg, 4, "big")
                msg = deserialize_binary_message(ws_msg)  # type: ignore[no-untyped-call]
            else:
                msg = json.loads(ws_msg)
            header, content = msg["header"], msg.get("content") or {}
            buffers = [bytes(b) for b in msg.get("buffers") or []]
        return BrowserMessage(ws_msg, str(header.get("msg_type")), header, content, buffers)

    def is_too_large(self, ws_msg: Any) -> bool:
        """Refuse, unread and unjournaled, a message above the size limit, and tell the page."""
        limit = int(self.websocket_handler.settings.get(
            "freezer_max_message_size", MAX_MESSAGE_SIZE
        ))
        size = len(ws_msg.encode("utf-8", "surrogatepass")) if isinstance(ws_msg, str) \
            else len(ws_msg)
        if limit <= 0 or size <= limit:
            return False
        self.log.warning("run %s: refused a %d-byte message from the page (limit %d)",
                         self._live.run_id if self._live else "?", size, limit)
        self.write_stderr(TOO_LARGE.format(size=size, limit=limit), {})  # type: ignore[no-untyped-call]
        return True

    def is_allowed(self, message: BrowserMessage) -> bool:
        """The allowlist: message types, comm targets, and never the runner's comm."""
        why = ""
        if message.msg_type not in BROWSER_MESSAGE_TYPES:
            why = "message type not allowed"
        elif message.msg_type == "comm_open":
            if message.content.get("target_name") not in BROWSER_COMM_TARGETS:
                why = "comm target not allowed"
            else:
                self._browser_comms.add(str(message.content.get("comm_id")))
        elif message.msg_type in COMM_TYPES and self._is_runner_comm(
            str(message.content.get("comm_id"))
        ):
            why = "the runner's comm is not the page's"
        if why:
            self.log.warning("dropped %s from the page of run %s: %s", message.msg_type,
                             self._live.run_id if self._live else "?", why)
            return False
        return True

    def within_flood_limit(self, message: BrowserMessage) -> bool:
        """A run's pages share a token bucket; beyond it messages are dropped, unjournaled."""
        if self._live is None:
            return False
        rate = float(self.websocket_handler.settings.get("freezer_flood_rate", FLOOD_RATE))
        if rate <= 0:
            return True
        bucket = _BUCKETS.get(self._live)
        if bucket is None:
            bucket = _BUCKETS[self._live] = TokenBucket(rate, rate * FLOOD_BURST_SECONDS)
        if bucket.take():
            self._flooding = False
            return True
        if not self._flooding:
            self._flooding = True
            self.log.warning("run %s: flood of messages from the page; dropping the excess",
                             self._live.run_id)
            self.write_stderr(FLOODED, message.header)  # type: ignore[no-untyped-call]
        return False

    async def _forward_in_order(self, queue: asyncio.Queue[BrowserMessage]) -> None:
        while True:
            if self._closing and queue.empty():
                try:
                    self._finish_disconnect()
                except Exception:
                    self.log.exception("closing the websocket of kernel %s", self.kernel_id)
                return
            message = await queue.get()
            self._busy = True
            try:
                await self._journal_and_forward(message)
            except Exception:
                self.log.exception("%s from the page of kernel %s not forwarded",
                                   message.msg_type, self.kernel_id)
            finally:
                self._busy = False

    async def _journal_and_forward(self, message: BrowserMessage) -> None:
        try:
            if self._must_journal(message):
                await self._journal(message)
        except JournalError as exc:
            self.log.error("run %s: widget message not forwarded: %s",
                           self._live.run_id if self._live else "?", exc)
            if not self._closing:
                self.write_stderr(SAVE_FAILED, message.header)  # type: ignore[no-untyped-call]
                self._show_kernel_state(str(message.content.get("comm_id")))
            return
        except Exception:
            self.log.exception("widget message not forwarded")
            return
        super().handle_incoming_message(message.raw)

    def _show_kernel_state(self, comm_id: str) -> None:
        """Have the kernel send the widget's state again, so the page stops showing a change
        the kernel never got (ipywidgets answers `request_state` with an `update`)."""
        if self._live is not None:
            self._live.listener.send_comm_msg(comm_id, {"method": "request_state"}, [])

    def _must_journal(self, message: BrowserMessage) -> bool:
        if message.msg_type != "comm_msg":
            return False
        data = message.content.get("data") or {}
        comm_id = str(message.content.get("comm_id"))
        if data.get("method") not in JOURNALED_METHODS or comm_id in self._browser_comms:
            return False
        live = self._live
        state = data.get("state") or {}
        is_output_sync = (
            data.get("method") == "update"
            and set(state) <= FRONTEND_OUTPUT_STATE
            and live is not None
            and live.listener.is_output_widget(comm_id)
        )
        return not is_output_sync

    async def _journal(self, message: BrowserMessage) -> None:
        live = self._live
        assert live is not None and live.run_id is not None
        comm_id = str(message.content.get("comm_id"))
        listener = live.listener
        if listener.ordinal_of(comm_id) is None:
            try:
                await listener.wait_until(
                    lambda: listener.ordinal_of(comm_id) is not None, ORDINAL_WAIT
                )
            except RuntimeAppError:
                self.log.warning("run %s: message to unknown widget %s forwarded unjournaled",
                                 live.run_id, comm_id)
                return
        event = NewEvent(
            run_id=live.run_id,
            kind="comm_msg",
            ordinal=listener.ordinal_of(comm_id),
            payload=message.content.get("data") or {},
            buffers=pack_buffers(message.buffers),
        )
        await self.runs.journal.append(event)

    # --- kernel -> browser -------------------------------------------------------------------

    def handle_outgoing_message(self, stream: Any, outgoing_msg: list[Any]) -> None:
        """Forward the kernel's messages, except the runner's `freezer.run` comm."""
        try:
            if self._is_runner_message(stream, outgoing_msg):
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

    def _is_runner_message(self, stream: Any, outgoing_msg: list[Any]) -> bool:
        channel = stream if isinstance(stream, str) else getattr(stream, "channel", None)
        if channel != "iopub":
            return False
        _, parts = self.session.feed_identities(outgoing_msg)
        header = self.session.unpack(parts[1])
        if header.get("msg_type") not in COMM_TYPES:
            return False
        content = self.session.unpack(parts[4])
        comm_id = str(content.get("comm_id"))
        if content.get("target_name") == COMM_TARGET:
            self._runner_comms.add(comm_id)
            return True
        return self._is_runner_comm(comm_id)

    def _is_runner_comm(self, comm_id: str) -> bool:
        live = self._live
        return comm_id in self._runner_comms or (
            live is not None and live.listener.is_runner_comm(comm_id)
        )
