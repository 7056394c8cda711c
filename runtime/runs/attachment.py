"""A page attached to its run's kernel: what the server lets through, and what it journals.

The kernel websocket (:mod:`runtime.web.websocket`) decodes each message from the page once and
asks :func:`admit`, which decides without I/O (the time is passed in):

- **size**: a message over the limit (`--max-message-size`) is refused unread, and the person
  is told (:data:`TOO_LARGE`);
- **allowlist**: only the `shell` and `control` channels, only widget comms (`comm_open` for
  widget targets, `comm_msg`, `comm_close`) and `comm_info_request` / `kernel_info_request`;
  never the runner's `freezer.run` comm. Anything else is refused and logged;
- **flood limit**: a run's pages share a token bucket (`--flood-rate`); beyond it messages are
  refused, unjournaled, and the person is told once per flood (:data:`FLOODED`);
- **journal decision**: a `comm_msg` that changes a kernel-created widget (`update`, `custom`)
  is journaled, with the widget's creation ordinal, before it is forwarded; everything else
  admitted is forwarded as is. Not journaled: messages to comms the page opened itself, and the
  `outputs` a page writes back into an `Output` widget (replay routes those itself).

The ordinal is known without waiting for the listener's own iopub socket. The page only learns
of a widget from the kernel's iopub, which the websocket relays to it: :meth:`Attachment.shown`
sees every relayed message, in order, and numbers the widget comm_opens among them. The
listener's :class:`runtime.runs.widgets.WidgetBook` numbers every widget since the kernel
started; the first message that both have read gives the difference between the two counts,
and from then on a widget the page was shown has its ordinal at once, whether or not the
listener has read its comm_open yet. Only before that first common message (a page whose
relay is ahead of a listener that has read nothing since the page connected) is the ordinal
not known yet: :func:`admit` then says so, and the websocket waits for the listener.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from runtime.protocol import COMM_TARGET, WIDGET_CONTROL_TARGET, WIDGET_TARGET
from runtime.runs.ratelimit import TokenBucket
from runtime.runs.widgets import WidgetBook

BROWSER_MESSAGE_TYPES = frozenset(
    {"comm_open", "comm_msg", "comm_close", "comm_info_request", "kernel_info_request"}
)
"""The only message types a page may send to a kernel."""
BROWSER_CHANNELS = frozenset({"shell", "control"})
BROWSER_COMM_TARGETS = frozenset({WIDGET_TARGET, WIDGET_CONTROL_TARGET})
COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})
JOURNALED_METHODS = frozenset({"update", "custom"})
"""Widget message methods that change the kernel's state (others only ask for state)."""
FRONTEND_OUTPUT_STATE = frozenset({"outputs", "msg_id"})
"""What a page writes back into an `Output` widget: the outputs it routed there. Not a person's
action, so not journaled; replay routes those outputs itself (see :mod:`runtime.runs.widgets`)."""
FLOOD_RATE = 200.0  # messages a second a run's pages may send on average (`--flood-rate`)...
FLOOD_BURST_SECONDS = 2.0  # ...and at once, this many seconds' worth
FLOODED = "Too many changes at once: some were not applied. Slow down, then try again.\n"
MAX_MESSAGE_SIZE = 512 * 1024
"""Bytes a page's message may have (`--max-message-size`, setting `freezer_max_message_size`)."""
TOO_LARGE = (
    "That change was too large to save ({size:,} bytes; this server takes at most {limit:,}), "
    "so it was not applied. Reload the page to continue.\n"
)
SAVE_FAILED = (
    "Freezer could not save your last change, so it was not applied. "
    "Reload the page to continue."
)
PENDING = 4096
"""Relayed message ids a page keeps while its count is not lined up with the listener's."""


class Action(str, Enum):
    """What the websocket does with a page's message."""

    JOURNAL = "journal"  # append to the run's journal, then forward (not forwarded if that fails)
    FORWARD = "forward"  # forward to the kernel as is
    REFUSE = "refuse"  # drop it


@dataclass(frozen=True)
class BrowserMessage:
    """One message from the page, decoded once. `payload` is what is forwarded as is."""

    size: int
    msg_type: str = ""  # "" when not read (over the size limit)
    channel: str = "shell"
    header: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)
    buffers: list[bytes] = field(default_factory=list)
    payload: Any = None

    @property
    def comm_id(self) -> str:
        """The comm the message is for ("None" when it names none)."""
        return str(self.content.get("comm_id"))


@dataclass(frozen=True)
class Decision:
    """What :func:`admit` decided: the action, and for a journaled message its widget's
    creation ordinal (None: not known yet). `tell` is what the person is told ("" nothing),
    `why` what the server logs ("" nothing)."""

    action: Action
    ordinal: int | None = None
    tell: str = ""
    why: str = ""


@dataclass(eq=False)
class Attachment:
    """One page's connection to its run's kernel: what :func:`admit` and :meth:`shown` know.

    `book` is the kernel's (its listener's), `bucket` the run's flood limit shared by all of
    its pages (None: no limit), `max_size` the message size limit in bytes (0: none).
    """

    book: WidgetBook
    bucket: TokenBucket | None = None
    max_size: int = MAX_MESSAGE_SIZE
    browser_comms: set[str] = field(default_factory=set)  # comms the page opened
    runner_comms: set[str] = field(default_factory=set)  # the runner's, as relayed
    outputs: set[str] = field(default_factory=set)  # Output widgets, as relayed
    flooding: bool = False  # messages are being refused by the flood limit
    misaligned: int = 0  # times the listener numbered a widget other than this page did
    _count: int = field(default=0, init=False)  # widget comm_opens relayed to the page
    _shown: dict[str, int] = field(default_factory=dict, init=False)  # comm id -> its _count
    _offset: int | None = field(default=None, init=False)  # ordinal - _count, once lined up
    _pending: OrderedDict[str, int] = field(default_factory=OrderedDict, init=False)

    def __post_init__(self) -> None:
        self.book.watch(self, aligned=False)

    def close(self) -> None:
        """The page went away: stop following the kernel's book."""
        self.book.unwatch(self)

    # --- kernel -> page ------------------------------------------------------------------------

    def shown(self, header: dict[str, Any], content: dict[str, Any] | None) -> bool:
        """Note one iopub message relayed to the page, in order (`content` is needed for comm
        messages only); True when the page must not see it (the runner's comm)."""
        msg_type = header.get("msg_type")
        hide = False
        if msg_type == "comm_open" and content is not None:
            comm_id, target = str(content.get("comm_id")), content.get("target_name")
            if target == COMM_TARGET:
                self.runner_comms.add(comm_id)
                hide = True
            elif target == WIDGET_TARGET:
                if self.book.ordinal_of(comm_id) is None:
                    self._shown[comm_id] = self._count
                self._count += 1
                state = (content.get("data") or {}).get("state") or {}
                if state.get("_model_name") == "OutputModel":
                    self.outputs.add(comm_id)
        elif msg_type in COMM_TYPES and content is not None:
            hide = self.is_runner_comm(str(content.get("comm_id")))
        if self._offset is None:
            msg_id = str(header.get("msg_id"))
            count = self.book.count_after(msg_id)
            if count is not None:
                self._line_up(count, self._count)
            else:
                self._pending[msg_id] = self._count
                if len(self._pending) > PENDING:
                    self._pending.popitem(last=False)
        return hide

    def align(self, msg_id: str, count: int) -> bool:
        """The listener counted `count` widgets up to and including `msg_id` (see
        :class:`runtime.runs.widgets.View`); True once lined up."""
        if self._offset is None:
            mine = self._pending.get(msg_id)
            if mine is None:
                return False
            self._line_up(count, mine)
        return True

    def confirm(self, comm_id: str, ordinal: int) -> None:
        """The listener numbered widget `comm_id`; a page that counted otherwise (a relayed
        message was lost) lines up again on it."""
        mine = self._shown.pop(comm_id, None)
        if mine is not None and self._offset is not None and self._offset + mine != ordinal:
            self.misaligned += 1
            self._offset = ordinal - mine

    def _line_up(self, count: int, mine: int) -> None:
        self._offset = count - mine
        self._pending.clear()

    # --- what the page was shown ---------------------------------------------------------------

    def ordinal_of(self, comm_id: str) -> int | None:
        """The creation ordinal of a kernel-created widget, or None while not known."""
        ordinal = self.book.ordinal_of(comm_id)
        if ordinal is not None:
            return ordinal
        mine = self._shown.get(comm_id)
        if mine is None or self._offset is None:
            return None
        return self._offset + mine

    def is_runner_comm(self, comm_id: str) -> bool:
        """Whether `comm_id` is the runner's `freezer.run` comm."""
        return comm_id in self.runner_comms or comm_id in self.book.runner_comms

    def is_output_widget(self, comm_id: str) -> bool:
        """Whether `comm_id` is one of the notebook's `Output` widgets."""
        return comm_id in self.outputs or comm_id in self.book.outputs

    def over_size(self, size: int) -> bool:
        """Whether a message of `size` bytes is over the limit (and so is not even read)."""
        return 0 < self.max_size < size


def admit(message: BrowserMessage, state: Attachment, now: float) -> Decision:
    """Decide what happens to one message from the page (`now`: the flood limit's clock)."""
    if state.over_size(message.size):
        return Decision(
            Action.REFUSE,
            tell=TOO_LARGE.format(size=message.size, limit=state.max_size),
            why=f"refused a {message.size}-byte message (limit {state.max_size})",
        )
    why = _not_allowed(message, state)
    if why:
        return Decision(Action.REFUSE, why=f"dropped {message.msg_type or 'a message'}: {why}")
    if state.bucket is not None and not state.bucket.take(now):
        if state.flooding:
            return Decision(Action.REFUSE)
        state.flooding = True
        return Decision(Action.REFUSE, tell=FLOODED,
                        why="flood of messages from the page; dropping the excess")
    state.flooding = False
    if message.msg_type == "comm_open":
        state.browser_comms.add(message.comm_id)
    if _must_journal(message, state):
        return Decision(Action.JOURNAL, ordinal=state.ordinal_of(message.comm_id))
    return Decision(Action.FORWARD)


def _not_allowed(message: BrowserMessage, state: Attachment) -> str:
    """Why the allowlist refuses `message` ("" when it does not)."""
    if message.channel not in BROWSER_CHANNELS:
        return f"channel {message.channel!r} not allowed"
    if message.msg_type not in BROWSER_MESSAGE_TYPES:
        return "message type not allowed"
    if message.msg_type in COMM_TYPES and not isinstance(message.content.get("data") or {}, dict):
        return "malformed comm data"
    if message.msg_type == "comm_open":
        target = message.content.get("target_name")
        if not isinstance(target, str) or target not in BROWSER_COMM_TARGETS:
            return "comm target not allowed"
    elif message.msg_type in COMM_TYPES and state.is_runner_comm(message.comm_id):
        return "the runner's comm is not the page's"
    return ""


def _must_journal(message: BrowserMessage, state: Attachment) -> bool:
    if message.msg_type != "comm_msg":
        return False
    data = message.content.get("data") or {}
    method = data.get("method")
    if not isinstance(method, str) or method not in JOURNALED_METHODS:
        return False
    if message.comm_id in state.browser_comms:
        return False
    written = data.get("state") or {}
    output_sync = (
        method == "update"
        and isinstance(written, dict)
        and set(written) <= FRONTEND_OUTPUT_STATE
        and state.is_output_widget(message.comm_id)
    )
    return not output_sync
