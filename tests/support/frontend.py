"""A widget front-end straight on a kernel's ZMQ channels (no server, no websocket).

:class:`Frontend` plays the browser's widget manager for the runner tests: it listens on iopub,
keeps widget model states from `comm_open` / `comm_msg` (update), finds widgets by model name
and description, sets values (`update`) and presses buttons (`custom` click) on the shell
channel, and collects the runner's `freezer.run` events. Give it a started
`AsyncKernelManager`; `tests/runner/conftest.py`'s `start_app` fixture does.
(:class:`~tests.support.session.PageSession` is the same through a server's websocket.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from tests.support.protocol import WIDGET_REF_PREFIX, WIDGET_TARGET, Json

TIMEOUT = 60.0
"""Seconds a kernel may take to answer."""


class Frontend:
    """A widget front-end and `freezer.run` listener for one kernel (see the module docstring)."""

    def __init__(self, km: AsyncKernelManager) -> None:
        self.km = km
        self.kc = km.client()
        self.models: dict[str, Json] = {}  # comm id -> widget state
        self.events: list[Json] = []  # freezer.run messages, in order
        self.iopub: list[Json] = []  # every iopub message, in order
        self.replies: dict[str, Json] = {}  # msg id -> shell reply
        self.run_comm: str | None = None
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=TIMEOUT)
        self._tasks = [
            asyncio.create_task(self._listen_iopub()),
            asyncio.create_task(self._listen_shell()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.kc.stop_channels()

    async def _listen_iopub(self) -> None:
        while True:
            msg = await self.kc.get_iopub_msg()
            self.iopub.append(msg)
            kind, content = msg["msg_type"], msg["content"]
            if kind == "comm_open" and content["target_name"] == WIDGET_TARGET:
                self.models[content["comm_id"]] = dict(content["data"]["state"])
            elif kind == "comm_open" and content["target_name"] == "freezer.run":
                self.run_comm = content["comm_id"]
            elif kind == "comm_msg" and content["comm_id"] == self.run_comm:
                self.events.append(content["data"])
            elif kind == "comm_msg" and content["comm_id"] in self.models:
                data = content["data"]
                if data.get("method") == "update":
                    self.models[content["comm_id"]].update(data["state"])
            self._changed.set()

    async def _listen_shell(self) -> None:
        while True:
            msg = await self.kc.get_shell_msg()
            self.replies[msg["parent_header"].get("msg_id", "")] = msg
            self._changed.set()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
        """Wait until `predicate()` is truthy (re-checked on each kernel message); return it."""

        async def loop() -> Any:
            while True:
                self._changed.clear()
                result = predicate()
                if result:
                    return result
                await self._changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    # --- the person's actions -----------------------------------------------------------

    async def execute(self, source: str) -> Json:
        """Run code as a front-end would; return the execute_reply."""
        msg_id = self.kc.execute(source)
        reply: Json = await self.wait_for(lambda: self.replies.get(msg_id))
        return reply

    async def execute_ok(self, source: str) -> Json:
        reply = await self.execute(source)
        assert reply["content"]["status"] == "ok", reply["content"]
        return reply

    async def execute_idle(self, source: str) -> Json:
        """Run code successfully and wait until its iopub messages have all arrived."""
        reply = await self.execute_ok(source)
        msg_id = reply["parent_header"]["msg_id"]
        await self.wait_for(lambda: any(
            m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
            and m["parent_header"].get("msg_id") == msg_id
            for m in self.iopub
        ))
        return reply

    async def execute_text(self, source: str) -> str:
        """Run code; return what it printed."""
        reply = await self.execute_idle(source)
        msg_id = reply["parent_header"]["msg_id"]
        return "".join(
            m["content"]["text"] for m in self.iopub_outputs(msg_id) if m["msg_type"] == "stream"
        )

    def send_comm(self, comm_id: str, data: Json) -> None:
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.kc.shell_channel.send(msg)

    def set_state(self, comm_id: str, **state: Any) -> None:
        """Change widget state as a browser does (`update`)."""
        self.models[comm_id].update(state)
        self.send_comm(comm_id, {"method": "update", "state": state, "buffer_paths": []})

    def click(self, comm_id: str) -> None:
        """Press a button as a browser does."""
        self.send_comm(comm_id, {"method": "custom", "content": {"event": "click"}})

    # --- what the person sees -----------------------------------------------------------

    def find(self, model: str, description: str | None = None) -> list[str]:
        """Comm ids of widgets of a model (`DropdownModel`), optionally by description."""
        return [
            cid
            for cid, state in self.models.items()
            if state.get("_model_name") == model
            and (description is None or state.get("description") == description)
        ]

    def one(self, model: str, description: str | None = None) -> str:
        found = self.find(model, description)
        assert len(found) == 1, (model, description, found)
        return found[0]

    def ref(self, value: str) -> str:
        assert value.startswith(WIDGET_REF_PREFIX), value
        return value[len(WIDGET_REF_PREFIX) :]

    def root(self) -> Json | None:
        for state in self.models.values():
            if "freezer-app" in state.get("_dom_classes", ()):
                return state
        return None

    def stage_outputs(self, index: int) -> list[Json]:
        root = self.root()
        if root is None:
            return []
        box = self.models[self.ref(root["children"][1])]
        output = self.models[self.ref(box["children"][index])]
        return list(output.get("outputs", ()))

    def stage_text(self, index: int) -> str:
        """Everything visible in a stage's Output as text (streams, text/plain, text/html)."""
        parts = []
        for out in self.stage_outputs(index):
            if out["output_type"] == "stream":
                parts.append(out["text"])
            elif out["output_type"] == "error":
                parts.append(f"{out['ename']}: {out['evalue']}")
            else:
                data = out.get("data", {})
                parts.append(data.get("text/html") or data.get("text/plain", ""))
        return "\n".join(parts)

    def status(self) -> str:
        root = self.root()
        if root is None:
            return ""
        footer = self.models[self.ref(root["children"][2])]
        return str(self.models[self.ref(footer["children"][-1])]["value"])

    def next_button(self) -> str | None:
        """The comm id of the Next button on show, if any."""
        root = self.root()
        if root is None:
            return None
        footer = self.models[self.ref(root["children"][2])]
        first = self.ref(footer["children"][0])
        return first if self.models[first]["_model_name"] == "ButtonModel" else None

    def event_kinds(self) -> list[str]:
        return [e["event"] for e in self.events]

    def has_event(self, kind: str, **match: Any) -> Json | None:
        for event in self.events:
            if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event
        return None

    def iopub_outputs(self, parent_id: str) -> list[Json]:
        """Output messages the kernel published itself for a request."""
        return [
            m for m in self.iopub
            if m["parent_header"].get("msg_id") == parent_id
            and m["msg_type"] in ("stream", "display_data", "execute_result", "error")
        ]
