"""A widget the page was just shown has its creation ordinal at once, even while the listener's
own iopub socket has not read the widget's creation yet.

A real kernel and two real iopub subscribers, as on the server: the run's
:class:`KernelListener`, and the page's relay (what jupyter_server's websocket connection
reads, noted by the page's :class:`Attachment` exactly as `RunWebsocketConnection` does). The
listener is held back for real: the kernel sends a runner report first, and the listener's
iopub loop waits in its report handler until the test lets it go; the widget's comm_open, sent
right after, stays unread in the listener's socket meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from runtime.runs.attachment import Action, Attachment, BrowserMessage, admit
from runtime.runs.listener import KernelListener

TIMEOUT = 60.0
HELD_WIDGET = (
    "from comm import create_comm\n"
    "import ipywidgets\n"
    "_report = create_comm(target_name='freezer.run', data={'event': 'hold'})\n"
    "held = ipywidgets.IntSlider(description='held')\n"
)


class Relay:
    """The page's side: a second iopub subscriber whose messages the page's attachment notes."""

    def __init__(self, client: AsyncKernelClient) -> None:
        self.client = client
        self.attachment: Attachment | None = None
        self.sliders: dict[str, str] = {}  # description -> comm id
        self.parents: set[str] = set()
        self.changed = asyncio.Event()

    async def run(self) -> None:
        session = self.client.session
        socket = self.client.iopub_channel.socket
        assert socket is not None
        while True:
            frames = await socket.recv_multipart()
            _, parts = session.feed_identities(frames)
            header = session.unpack(parts[1])
            comm = header["msg_type"] in ("comm_open", "comm_msg", "comm_close")
            content = session.unpack(parts[4]) if comm else None
            if self.attachment is not None:
                self.attachment.shown(header, content)
            self.parents.add(session.unpack(parts[2]).get("msg_id", ""))
            state = ((content or {}).get("data") or {}).get("state") or {}
            if header["msg_type"] == "comm_open" and state.get("_model_name") == "IntSliderModel":
                self.sliders[state.get("description")] = content["comm_id"]  # type: ignore[index]
            self.changed.set()

    async def until(self, condition: Any) -> None:
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), TIMEOUT)


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[AsyncKernelManager]:
    manager = AsyncKernelManager(kernel_name="python3")
    await manager.start_kernel(cwd=str(tmp_path))
    try:
        yield manager
    finally:
        await manager.shutdown_kernel(now=True)


async def test_a_widget_shown_to_the_page_has_its_ordinal_while_the_listener_is_held(
    kernel: AsyncKernelManager,
) -> None:
    client = AsyncKernelClient()
    client.load_connection_info(kernel.get_connection_info())
    client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
    relay = Relay(client)
    reading = asyncio.create_task(relay.run())
    held, release = asyncio.Event(), asyncio.Event()

    async def on_report(data: dict[str, Any]) -> None:
        if data.get("event") == "hold":
            held.set()
            await release.wait()

    listener = KernelListener("k", kernel.get_connection_info(), on_report,
                              logging.getLogger(__name__))
    try:
        # the relay is subscribed once it reads the kernel's answer to its own request
        for _ in range(120):
            msg_id = client.kernel_info()
            try:
                await asyncio.wait_for(relay.until(lambda m=msg_id: m in relay.parents), 0.5)
                break
            except asyncio.TimeoutError:
                continue
        page = relay.attachment = Attachment(listener.widgets)
        await listener.start()  # the relay reads the listener's requests' status messages too

        client.execute(HELD_WIDGET)
        await relay.until(lambda: "held" in relay.sliders)
        slider = relay.sliders["held"]
        await asyncio.wait_for(held.wait(), TIMEOUT)
        assert listener.ordinal_of(slider) is None  # held: the old code would wait here

        change = BrowserMessage(100, "comm_msg", "shell", {"msg_type": "comm_msg"}, {
            "comm_id": slider, "data": {"method": "update", "state": {"value": 3}},
        })
        decision = admit(change, page, 0.0)
        assert decision.action is Action.JOURNAL
        assert decision.ordinal is not None

        release.set()
        await listener.wait_until(lambda: listener.ordinal_of(slider) is not None, TIMEOUT)
        assert listener.ordinal_of(slider) == decision.ordinal
        assert listener.comm_of(decision.ordinal) == slider
        assert page.misaligned == 0
    finally:
        release.set()
        listener.stop()
        reading.cancel()
        client.stop_channels()
