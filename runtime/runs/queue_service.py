"""The server side of `runtime.kernel.work.WorkQueue`: answers queue requests, renews leases.

A kernel's request arrives as a `queue_request` event on its `freezer.run` comm (the listener
hands it here instead of storing it as a runner report). The answer goes back on the same comm
as a `comm_msg` addressed to a kernel *subshell* this service creates once per kernel (over
the control channel, `create_subshell_request`): the kernel's main thread is busy running the
cell that waits for the answer, and a subshell's thread is not.

Replay: every claim, submit and skip is journaled (`queue_claim`, `queue_submit`,
`queue_skip`, payload: queue, call, items, and for submit/skip the answers saved and the items
`refused`) in the run's journal. Each request carries the kernel's call number for its queue;
when the run's journal already has that call, the recorded answer is returned and nothing is
claimed or stored again, so a rebuilt run labels the same items (and a submit that was refused
for some items is refused for them again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from runtime.errors import StoreError
from runtime.protocol import REWOUND
from runtime.runs.listener import KernelListener
from runtime.runs.rewind import in_force
from runtime.store.models import NewEvent
from runtime.store.queue_store import DEFAULT_LEASE, item_key
from runtime.store.store import Store

QUEUE_EVENTS = {"claim": "queue_claim", "submit": "queue_submit", "skip": "queue_skip"}
"""The journal event kind of each request that changes the queue."""
CONTROL_TIMEOUT = 10.0
RENEW_INTERVAL = 60.0
"""Most seconds between lease renewals of the runs whose page is connected; a third of the
shortest lease a queue of this server was opened with, when that is less."""


class QueueService:
    """Answers the work-queue requests of one server's kernels. Owned by the run service."""

    def __init__(self, store: Store, log: logging.Logger) -> None:
        self.store = store
        self.log = log
        self.renew_interval = RENEW_INTERVAL
        self._interval_shortened = asyncio.Event()
        self._subshells: weakref.WeakKeyDictionary[KernelListener, str] = (
            weakref.WeakKeyDictionary()
        )
        self._subshell_locks: weakref.WeakKeyDictionary[KernelListener, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def answer(self, listener: KernelListener, run_id: str | None,
                     data: dict[str, Any]) -> None:
        """Carry out one request of the kernel behind `listener` and send the answer back."""
        reply: dict[str, Any] = {"reply": data.get("id"), "ok": True}
        try:
            if not run_id:
                raise StoreError("this kernel is not bound to a run yet")
            reply.update(await self._carry_out(run_id, data))
        except StoreError as exc:
            reply.update(ok=False, error=str(exc))
        except Exception as exc:  # a malformed request: the kernel is told, the log has it
            self.log.exception("run %s: work queue request %r failed", run_id, data.get("op"))
            reply.update(ok=False, error=f"the server could not carry out the request: {exc}")
        comm_id = data.get("comm_id")
        if isinstance(comm_id, str):
            try:
                await self._send(listener, comm_id, reply)
            except Exception:  # the kernel's call times out and says so
                self.log.exception("run %s: could not answer a work queue request", run_id)

    async def _carry_out(self, run_id: str, data: dict[str, Any]) -> dict[str, Any]:
        op, name, call = data.get("op"), str(data.get("queue")), data.get("call")
        if op == "open":
            lease = float(data.get("lease") or DEFAULT_LEASE)
            added = await self.store.queue_open(
                name, list(data.get("items") or []), int(data["batch"]), int(data["overlap"]),
                lease,
            )
            if lease / 3 < self.renew_interval:
                self.renew_interval = max(lease / 3, 0.1)
                self._interval_shortened.set()  # the loop's wait was for the longer interval
            return {"added": added}
        kind = QUEUE_EVENTS.get(str(op))
        if kind is None:
            raise StoreError(f"unknown work queue request {op!r}")
        recorded = await self._recorded(run_id, kind, name, call)
        if recorded is not None:
            return {"items": recorded.get("items", []), "refused": recorded.get("refused", []),
                    "replayed": True}
        if op == "claim":
            items = await self.store.queue_claim(name, run_id)
            payload: dict[str, Any] = {"queue": name, "call": call, "items": items}
        else:
            pairs = [(pair[0], pair[1]) for pair in data.get("answers") or []]
            outcome = await self.store.queue_answer(name, run_id, pairs, skipped=op == "skip")
            saved = {item_key(item) for item in outcome.saved}
            payload = {"queue": name, "call": call, "items": outcome.saved,
                       "answers": [list(p) for p in pairs if item_key(p[0]) in saved],
                       "refused": outcome.refused}
        await self.store.append_events([NewEvent(run_id, kind, None, payload)])
        return {"items": payload["items"], "refused": payload.get("refused", [])}

    async def _recorded(
        self, run_id: str, kind: str, name: str, call: Any
    ) -> dict[str, Any] | None:
        """The journaled payload of this call, when the run made it before (a replay).

        A claim is looked up in the whole journal: a run that went back keeps its claims and
        labels the same items again. A submit or skip only among the events still in force
        (:mod:`runtime.runs.rewind`): the new pass's answer is a new one, stored again."""
        events = await self.store.events(run_id, kinds=[kind, REWOUND])
        if kind != QUEUE_EVENTS["claim"]:
            events = in_force(events)
        for event in events:
            payload = event.payload
            if isinstance(payload, dict) and payload.get("queue") == name and (
                payload.get("call") == call
            ):
                return payload
        return None

    async def _send(self, listener: KernelListener, comm_id: str, data: dict[str, Any]) -> None:
        subshell = await self._subshell(listener)
        client = listener.client
        msg = client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        msg["header"]["subshell_id"] = subshell
        client.shell_channel.send(msg)

    async def _subshell(self, listener: KernelListener) -> str:
        """The id of the subshell that takes this kernel's answers (created on first use)."""
        lock = self._subshell_locks.setdefault(listener, asyncio.Lock())
        async with lock:
            known = self._subshells.get(listener)
            if known is not None:
                return known
            client = listener.client
            control = client.control_channel
            if not control.is_alive():
                control.start()
            request = client.session.msg("create_subshell_request", {})
            control.send(request)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CONTROL_TIMEOUT
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise StoreError("the kernel did not create a subshell for the work queue")
                try:
                    reply = await client.get_control_msg(timeout=remaining)
                except Exception:  # queue.Empty on timeout
                    continue
                if reply["parent_header"].get("msg_id") == request["header"]["msg_id"]:
                    break
            subshell = reply["content"].get("subshell_id")
            if not isinstance(subshell, str):
                raise StoreError(
                    "this kernel has no subshells (ipykernel 7 or newer is needed for the "
                    "work queue)"
                )
            self._subshells[listener] = subshell
            return subshell

    async def renew_loop(self, connected_runs: Callable[[], Sequence[str]]) -> None:
        """Renew the claims of the runs whose page is connected, every `renew_interval` s."""
        while True:
            self._interval_shortened.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._interval_shortened.wait(), self.renew_interval)
            runs = list(connected_runs())
            if runs:
                try:
                    await self.store.queue_renew(runs)
                except StoreError:
                    self.log.exception("could not renew work queue leases")
