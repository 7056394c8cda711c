"""A Voila page connected to its kernel over the websocket, as a browser's front-end does.

:class:`PageSession` opens `/api/kernels/<id>/channels` (Jupyter's v1 protocol or plain JSON),
asks the kernel for every widget's state (the `jupyter.widget.control` comm of ipywidgets 8,
falling back to `comm_info_request` + `request_state`), sends widget updates and button
clicks the way the widget manager does, and keeps the states current (see
:class:`~tests.support.widgets.WidgetManager`), so a test can wait on what a person would see.
Made by :meth:`tests.support.person.Person.open`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from tests.support.errors import ClientError
from tests.support.pages import Page
from tests.support.protocol import (
    CONTROL_TARGET,
    KERNEL_PROTOCOL_VERSION,
    WIDGET_TARGET,
    WS_PROTOCOL_V1,
    Json,
    KernelMessage,
    decode_legacy,
    decode_v1,
    encode_legacy,
    encode_v1,
    put_buffers,
)
from tests.support.widgets import WidgetManager

if TYPE_CHECKING:
    from tests.support.person import Person


class PageSession(WidgetManager):
    """A Voila page connected to its kernel, with the widget states a browser would hold.

    :attr:`widgets` maps a model id to its state (a plain dict with `_model_name`, `value`,
    `description`, ...), kept current from the kernel's messages. Output widgets collect the
    outputs routed to them the way the browser's widget manager does, and send them back to
    the kernel as the browser does.
    """

    def __init__(
        self, person: Person, page: Page, kernel_id: str, base_path: str, started: float
    ) -> None:
        super().__init__()
        self.person = person
        self.page = page
        self.kernel_id = kernel_id
        self.session_id = uuid.uuid4().hex
        self.started = started
        self.timings: dict[str, float] = {}
        self.received = 0  # messages from the kernel
        self.closed_reason: str | None = None
        parts = urlsplit(person.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = urlencode({"session_id": self.session_id})
        self.ws_url = (
            f"{scheme}://{parts.netloc}{base_path.rstrip('/')}/api/kernels/{kernel_id}"
            f"/channels?{query}"
        )
        self._ws: WebSocketClientConnection | None = None
        self._v1 = True
        self._reader: asyncio.Task[None] | None = None
        self._replies: dict[str, asyncio.Future[KernelMessage]] = {}
        self._idle: set[str] = set()  # requests the kernel has finished (status idle)
        self._change = asyncio.Event()
        self._control_comm: str | None = None
        self._control_reply: asyncio.Future[KernelMessage] | None = None

    # -- connection

    async def connect(self) -> None:
        """Open the kernel websocket (v1 subprotocol, like JupyterLab's services)."""
        request = HTTPRequest(
            self.ws_url,
            headers={"Cookie": self.person.cookies.header(), "Origin": self.person.origin},
            request_timeout=self.person.request_timeout,
        )
        try:
            self._ws = await websocket_connect(
                request, subprotocols=[WS_PROTOCOL_V1], max_message_size=512 * 1024 * 1024
            )
        except (HTTPClientError, OSError) as error:
            raise ClientError(f"kernel websocket {self.ws_url} refused: {error}") from error
        self._v1 = self._ws.selected_subprotocol == WS_PROTOCOL_V1
        if self._ws.protocol is not None:
            # Browsers send small frames at once; Nagle's algorithm would hold them back.
            self._ws.protocol.set_nodelay(True)
        self._reader = asyncio.create_task(self._read_loop(), name=f"page {self.kernel_id}")
        await self.request("shell", "kernel_info_request", {})
        self.timings["connected"] = time.perf_counter() - self.started

    async def load_widgets(self, control_timeout: float = 4.0) -> None:
        """Get every widget's state from the kernel, as ipywidgets 8's manager does.

        First the `jupyter.widget.control` comm (`request_states`); when the kernel does not
        answer within `control_timeout` seconds, `comm_info_request` and one `request_state`
        per widget comm.
        """
        comm_id = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        self._control_comm, self._control_reply = comm_id, loop.create_future()
        await self.send(
            "shell",
            "comm_open",
            {"comm_id": comm_id, "target_name": CONTROL_TARGET, "data": {}},
            metadata={"version": "1.0.0"},
        )
        await self.send(
            "shell", "comm_msg", {"comm_id": comm_id, "data": {"method": "request_states"}}
        )
        try:
            reply = await asyncio.wait_for(asyncio.shield(self._control_reply), control_timeout)
        except asyncio.TimeoutError:
            await self._load_widgets_one_by_one()
        else:
            self._apply_states(reply)
        finally:
            self._control_comm = self._control_reply = None
        await self.send("shell", "comm_close", {"comm_id": comm_id, "data": {}})
        self.timings["widgets"] = time.perf_counter() - self.started
        self._notify()

    async def _load_widgets_one_by_one(self) -> None:
        reply = await self.request("shell", "comm_info_request", {"target_name": WIDGET_TARGET})
        comm_ids = list((reply.content.get("comms") or {}).keys())
        for comm_id in comm_ids:
            self.widgets.setdefault(comm_id, {})
            await self.send(
                "shell", "comm_msg", {"comm_id": comm_id, "data": {"method": "request_state"}}
            )
        await self.wait_for(
            lambda page: all("_model_name" in page.widgets.get(c, {}) for c in comm_ids),
            timeout=30,
            what="the state of every widget comm",
        )

    def _apply_states(self, reply: KernelMessage) -> None:
        data = reply.content.get("data") or {}
        states: Json = data.get("states") or {}
        put_buffers(states, data.get("buffer_paths") or [], reply.buffers)
        for model_id, entry in states.items():
            state = dict(entry.get("state") or {})
            state.setdefault("_model_name", entry.get("model_name"))
            state.setdefault("_model_module", entry.get("model_module"))
            state.setdefault("_model_module_version", entry.get("model_module_version"))
            self._set_state(model_id, state)

    async def unload(self) -> int:
        """What the page does on `beforeunload`: POST Voila's shutdown beacon; the status.

        Plain Voila shuts the kernel down; Freezer's server detaches it from the page. Voila
        0.5's page sets no `_xsrf` cookie, so a browser's beacon is refused (403) and the
        kernel lives on; like a browser that has the cookie, the client sends a double-submit
        token of its own, so that tests and benchmarks free their kernels.
        """
        token = self.person.cookies.get("_xsrf")
        if token is None:
            token = uuid.uuid4().hex
            self.person.cookies.set("_xsrf", token)
        base_path = str(self.page.config.get("baseUrl") or "/")
        url = urljoin(self.person.origin, f"{base_path}voila/api/shutdown/{self.kernel_id}")
        response = await self.person.fetch(url, method="POST", form={"_xsrf": token})
        return int(response.code)

    async def close(self, *, unload: bool = False) -> None:
        """Close the websocket; with `unload`, first send the page's unload beacon."""
        if unload and self.closed_reason is None:
            with contextlib.suppress(ClientError):
                await self.unload()
        if self.closed_reason is None:
            self.closed_reason = "closed by the client"
        if self._ws is not None:
            self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for future in self._replies.values():
            future.cancel()
        self._notify()
        if self in self.person.sessions:
            self.person.sessions.remove(self)

    # -- sending

    async def send(
        self,
        channel: str,
        msg_type: str,
        content: Json,
        *,
        metadata: Json | None = None,
        msg_id: str | None = None,
    ) -> str:
        """Send one message to the kernel; returns its msg_id."""
        if self._ws is None or self.closed_reason is not None:
            raise ClientError(f"page {self.kernel_id} is not connected ({self.closed_reason})")
        msg_id = msg_id or uuid.uuid4().hex
        data = content.get("data") if msg_type == "comm_msg" else None
        if isinstance(data, dict) and data.get("method") == "update":
            self._sent_update(str(content.get("comm_id")), data.get("state") or {}, msg_id)
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.session_id,
            "username": "",
            "date": datetime.now(timezone.utc).isoformat(),
            "version": KERNEL_PROTOCOL_VERSION,
        }
        msg = KernelMessage(channel, header, {}, metadata or {}, content)
        try:
            await self._ws.write_message(
                encode_v1(msg) if self._v1 else encode_legacy(msg), binary=self._v1
            )
        except WebSocketClosedError as error:
            raise ClientError(f"page {self.kernel_id}: the websocket closed") from error
        return msg_id

    async def request(
        self, channel: str, msg_type: str, content: Json, timeout: float = 60.0
    ) -> KernelMessage:
        """Send a request and wait for its reply (the message whose parent it is, on `channel`)."""
        future: asyncio.Future[KernelMessage] = asyncio.get_running_loop().create_future()
        # Registered before sending: the reply may be read before `send` returns.
        msg_id = uuid.uuid4().hex
        self._replies[msg_id] = future
        try:
            await self.send(channel, msg_type, content, msg_id=msg_id)
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise ClientError(f"no reply to {msg_type} within {timeout:g} s") from None
        finally:
            self._replies.pop(msg_id, None)

    async def set_state(self, model_id: str, state: Json) -> str:
        """Change widget state like a view does: locally at once, then an `update` comm_msg."""
        self._require(model_id)
        self._set_state(model_id, state)
        return await self.send(
            "shell",
            "comm_msg",
            {"comm_id": model_id, "data": {"method": "update", "state": state, "buffer_paths": []}},
        )

    async def set_value(self, model_id: str, value: Any) -> str:
        """Set a widget's `value` (a slider drag, a text edit); returns the msg_id."""
        return await self.set_state(model_id, {"value": value})

    async def send_custom(self, model_id: str, content: Json) -> str:
        """Send a widget custom message (`model.send(content)` in the front-end)."""
        self._require(model_id)
        return await self.send(
            "shell",
            "comm_msg",
            {"comm_id": model_id, "data": {"method": "custom", "content": content}},
        )

    async def click(self, model_id: str) -> str:
        """Click a Button; returns the msg_id."""
        return await self.send_custom(model_id, {"event": "click"})

    # -- reading state

    # -- reading state

    def shows_all_widgets(self) -> bool:
        """Whether every widget the page shows, and all it refers to, has its state here."""
        ids = self.page.shown_model_ids
        wanted = ids + [ref for model_id in ids for ref in self.descendants(model_id)]
        return all("_model_name" in self.widgets.get(model_id, {}) for model_id in wanted)

    # -- waiting

    async def wait_for(
        self, predicate: Callable[[PageSession], bool], timeout: float = 30.0, what: str = ""
    ) -> None:
        """Wait until `predicate(self)` holds, checking after every kernel message."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if self.closed_reason is not None:
                raise ClientError(
                    f"page {self.kernel_id} closed ({self.closed_reason}) while waiting for "
                    f"{what or predicate}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClientError(
                    f"waited {timeout:g} s for {what or predicate}; the page has {self.describe()}"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._change.wait(), remaining)

    async def wait_idle(self, msg_id: str, timeout: float = 30.0) -> None:
        """Wait until the kernel has finished handling message `msg_id` (status idle)."""
        await self.wait_for(
            lambda page: msg_id in page._idle, timeout, f"the kernel to handle {msg_id}"
        )

    async def round_trip(
        self,
        action: Callable[[], Awaitable[Any]],
        until: Callable[[PageSession], bool],
        timeout: float = 30.0,
    ) -> float:
        """Seconds from starting `action` (e.g. a set_value) until `until` holds on the page."""
        started = time.perf_counter()
        await action()
        await self.wait_for(until, timeout)
        return time.perf_counter() - started

    # -- receiving

    # -- receiving

    def _notify(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    async def _read_loop(self) -> None:
        assert self._ws is not None
        try:
            while True:
                data = await self._ws.read_message()
                if data is None:
                    break
                msg = (
                    decode_v1(data) if self._v1 and isinstance(data, bytes) else decode_legacy(data)
                )
                self.received += 1
                try:
                    await self._handle(msg)
                except ClientError:
                    pass  # an Output's sync-back met a closing websocket; the next read ends
                self._notify()
        finally:
            if self.closed_reason is None:
                reason = self._ws.close_reason or f"code {self._ws.close_code}"
                self.closed_reason = f"the server closed the websocket: {reason}"
            self._notify()

    async def _handle(self, msg: KernelMessage) -> None:
        reply = self._replies.get(msg.parent_id)
        if reply is not None and msg.channel == "shell" and not reply.done():
            reply.set_result(msg)
        if msg.msg_type == "status":
            if msg.content.get("execution_state") == "idle":
                self._idle.add(msg.parent_id)
            return
        if msg.msg_type == "comm_msg" and self._is_control_reply(msg):
            if self._control_reply is not None and not self._control_reply.done():
                self._control_reply.set_result(msg)
            return
        sync = self._apply(msg)
        if sync is None or self.closed_reason is not None:
            return
        model_id, outputs = sync
        await self.send(
            "shell",
            "comm_msg",
            {
                "comm_id": model_id,
                "data": {"method": "update", "state": {"outputs": outputs}, "buffer_paths": []},
            },
        )

    def _is_control_reply(self, msg: KernelMessage) -> bool:
        data = msg.content.get("data") or {}
        return (
            str(msg.content.get("comm_id")) == self._control_comm
            and data.get("method") == "update_states"
        )
