"""`WorkQueue`: divide a notebook's items among the people using the app.

```python
from runtime.kernel.work import WorkQueue
queue = WorkQueue("faces", items=photo_ids, batch=12, overlap=2)
mine = queue.claim()                      # this run's batch: at most 12 item ids
queue.submit({item: label for item, label in answers.items()})     # or queue.skip(items)
```

Under a Freezer server the queue lives in the server's database (`runtime/store/queue_store.py`) and
this module is only its client, in the person's kernel: each call is a request on the runner's
`freezer.run` comm, and the call waits (at most `timeout` seconds) for the server's answer on
the same comm. The cell that calls is still running, so the kernel's main thread cannot handle
that answer; the server sends it to a kernel *subshell* (Jupyter's kernel subshells, ipykernel
7), whose own thread hands it to the waiting call. No other message is handled out of order.

Without a Freezer server (plain Jupyter, Voila, the runner's unsaved mode) the queue is in
memory, for one person: items come in order, `batch` at a time; `overlap` has nobody else to
count. See `docs/work-queue.md`.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runtime.errors import RuntimeAppError
from runtime.protocol import QUEUE_REQUEST, RUN_DIR_ENV

DEFAULT_TIMEOUT = 30.0


class WorkQueueError(RuntimeAppError):
    """A work queue call that cannot be carried out; says which queue and why.

    A submit or skip refused for some items (this run's claim on them lapsed) has them in
    `refused`, and the items whose answers were saved all the same in `saved`.
    """

    def __init__(
        self, message: str, refused: Sequence[Any] = (), saved: Sequence[Any] = ()
    ) -> None:
        super().__init__(message)
        self.refused, self.saved = list(refused), list(saved)


def refusal(name: str, op: str, refused: Sequence[Any], saved: Sequence[Any]) -> WorkQueueError:
    """The error of a submit or skip the server refused for some items."""
    what = "answers" if op == "submit" else "skips"
    one = len(refused) == 1
    kept = f"; the other {len(saved)} were saved" if saved else ""
    return WorkQueueError(
        f"work queue {name!r}: {what} for item{'' if one else 's'} "
        f"{', '.join(map(repr, refused))} not saved: "
        f"{'that item is' if one else 'those items are'} no longer this run's (the claim "
        "lapsed, e.g. while the page was away longer than the lease, and someone else may have "
        f"{'it' if one else 'them'} now){kept}. claim() gives a new batch.",
        refused, saved,
    )


def _checked_items(name: str, items: Iterable[Any]) -> list[Any]:
    checked = list(items)
    for item in checked:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise WorkQueueError(
                f"work queue {name!r}: item {item!r} is a {type(item).__name__}; items are ids "
                "(strings or numbers): keep the data elsewhere, keyed by the id"
            )
    return checked


class MemoryQueue:
    """The queue of one person in one kernel (no Freezer server)."""

    def __init__(self, items: Sequence[Any], batch: int) -> None:
        self.items = list(dict.fromkeys(items))
        self.batch = batch
        self.claimed: list[Any] = []
        self.answers: dict[Any, Any] = {}
        self.skipped: set[Any] = set()

    def claim(self) -> list[Any]:
        if not self.claimed:
            fresh = (i for i in self.items if i not in self.answers and i not in self.skipped)
            self.claimed = [item for item, _ in zip(fresh, range(self.batch), strict=False)]
        return list(self.claimed)

    def answer(self, pairs: Sequence[tuple[Any, Any]], skipped: bool) -> None:
        for item, answer in pairs:
            if skipped:
                self.skipped.add(item)
            else:
                self.answers[item] = answer
        ended = {item for item, _ in pairs}
        self.claimed = [item for item in self.claimed if item not in ended]


class ServerChannel:
    """Requests to the Freezer server over the runner's comm; answers arrive on a subshell."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        comm.on_msg(self._on_msg)
        # ipykernel may route a comm's incoming messages to the subshell it last sent from
        # (the main shell here, which is busy waiting); the server names the subshell itself.
        comm._reply_subshell_for = lambda _data, default: default

    def request(self, op: str, timeout: float, **data: Any) -> dict[str, Any]:
        """Send one request and wait for its answer (`ok`, and the op's result or `error`)."""
        request_id = uuid.uuid4().hex
        done = threading.Event()
        answer: list[dict[str, Any]] = []
        with self._lock:
            self._waiting[request_id] = (done, answer)
        try:
            self.comm.send({"event": QUEUE_REQUEST, "id": request_id, "op": op,
                            "comm_id": self.comm.comm_id, **data})
            if not done.wait(timeout):
                raise WorkQueueError(
                    f"work queue {data.get('queue')!r}: the server did not answer {op}() "
                    f"within {timeout:g} s; try again"
                )
        finally:
            with self._lock:
                self._waiting.pop(request_id, None)
        reply = answer[0]
        if not reply.get("ok"):
            raise WorkQueueError(str(reply.get("error") or f"{op}() failed on the server"))
        return reply

    def _on_msg(self, msg: dict[str, Any]) -> None:
        """Subshell thread: an answer of the server."""
        data = msg.get("content", {}).get("data") or {}
        with self._lock:
            waiting = self._waiting.get(str(data.get("reply")))
        if waiting is not None:
            waiting[1].append(data)
            waiting[0].set()


_channels: dict[int, ServerChannel] = {}
_calls: dict[str, int] = {}
"""Per queue name, the calls this kernel made: a replay (a new kernel) asks for call n again
and gets the answer the journal recorded for it."""


def _server_channel() -> ServerChannel | None:
    """The channel to this kernel's Freezer server, or None when the run is not saved."""
    from runtime.kernel import runner

    active = runner._runner
    comm = None if active is None or active.config is None else active.reports.comm
    if comm is None:
        if os.environ.get(RUN_DIR_ENV):  # a Freezer server's kernel, not bound to a run yet
            raise WorkQueueError(
                "a WorkQueue cannot be made before the person is known: not in a "
                "`freeze:warm` cell (make it in a later cell)"
            )
        return None
    channel = _channels.get(id(comm))
    if channel is None or channel.comm is not comm:
        channel = _channels[id(comm)] = ServerChannel(comm)
    return channel


class WorkQueue:
    """A queue of item ids shared by everyone using the app (see the module docstring).

    `batch`: items per claim. `overlap`: answers from different people an item needs to be
    done. `lease`: seconds a claim lasts unless the person's page stays connected (default 10
    minutes). `timeout`: seconds a call waits for the server.
    """

    def __init__(
        self,
        name: str,
        items: Iterable[Any],
        batch: int = 12,
        overlap: int = 1,
        *,
        lease: float = 600.0,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise WorkQueueError(f"a work queue needs a name (a non-empty string), not {name!r}")
        for label, value in (("batch", batch), ("overlap", overlap)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise WorkQueueError(f"work queue {name!r}: {label} must be a whole number "
                                     f"of at least 1, not {value!r}")
        self.name, self.batch, self.overlap, self.lease = name, batch, overlap, float(lease)
        self.timeout = timeout
        self.items = _checked_items(name, items)
        self._channel = _server_channel()
        self._memory: MemoryQueue | None = None
        if self._channel is None:
            self._memory = MemoryQueue(self.items, batch)
        else:
            self._request("open", items=self.items, batch=batch, overlap=overlap,
                          lease=self.lease)

    @property
    def saved(self) -> bool:
        """Whether the queue is the server's (shared, saved) rather than in memory."""
        return self._channel is not None

    def claim(self) -> list[Any]:
        """This run's batch: its unfinished claim if it has one, else up to `batch` new items.

        An empty list means nothing is left for this person right now.
        """
        if self._memory is not None:
            return self._memory.claim()
        return list(self._request("claim")["items"])

    def submit(self, answers: Mapping[Any, Any]) -> None:
        """Record this person's answers ({item: answer}, JSON values); ends their claims.

        Submitting an item again from the same run (going back to an earlier stage) replaces
        its answer. An item whose claim lapsed is refused: :class:`WorkQueueError`, after the
        others are saved, naming it (`refused`).
        """
        if not isinstance(answers, Mapping):
            raise WorkQueueError(f"work queue {self.name!r}: submit() takes a dict "
                                 f"{{item: answer}}, not a {type(answers).__name__}")
        pairs = [(item, answer) for item, answer in answers.items()]
        _checked_items(self.name, (item for item, _ in pairs))
        self._answer(pairs, skipped=False)

    def skip(self, items: Iterable[Any]) -> None:
        """Give items back without answering; this person will not get them again."""
        pairs = [(item, None) for item in _checked_items(self.name, items)]
        self._answer(pairs, skipped=True)

    def _answer(self, pairs: list[tuple[Any, Any]], skipped: bool) -> None:
        if self._memory is not None:
            self._memory.answer(pairs, skipped)
        elif pairs:
            op = "skip" if skipped else "submit"
            reply = self._request(op, answers=[list(p) for p in pairs])
            if reply.get("refused"):
                raise refusal(self.name, op, reply["refused"], reply.get("items") or [])

    def _request(self, op: str, **data: Any) -> dict[str, Any]:
        assert self._channel is not None
        call = _calls.get(self.name, 0)
        _calls[self.name] = call + 1
        return self._channel.request(op, self.timeout, queue=self.name, call=call, **data)
