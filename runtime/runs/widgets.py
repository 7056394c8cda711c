"""What one kernel showed on iopub: its widgets in creation order, the runner's comm, its
`Output` widgets, and the replay's front-end for them. No I/O: the listener feeds it.

:class:`WidgetBook` is filled by :class:`runtime.runs.listener.KernelListener`, which sees
every iopub message of the kernel from its start:

- every `jupyter.widget` comm_open gets the next **creation ordinal** (comm id -> ordinal), which
  is how a journaled browser message is tied to "the 7th widget" rather than to a comm id that
  only exists in this kernel, and how replay finds that widget again in a new kernel;
- the runner's `freezer.run` comm ids are kept, so its messages are told apart;
- the notebook's own `Output` widgets are kept, and when the listener is the front-end (replay,
  no browser attached) :meth:`WidgetBook.route_output` does what nbclient does: outputs whose
  parent message is an Output's `msg_id` are written into that widget's `outputs`;
- for each message, :meth:`WidgetBook.seen` lets the pages' views of the same kernel
  (:class:`runtime.runs.attachment.PageView`) line their own count of widgets up with this one
  (see there).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.protocol import COMM_TARGET, WIDGET_TARGET

OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error", "update_display_data")
RECENT = 4096
"""Message ids the book remembers (with its count of widgets after each) for late views."""


class View(Protocol):
    """A second reader of the same iopub stream that lines its count up with the book's."""

    def align(self, msg_id: str, count: int) -> bool:
        """The book has counted `count` widgets up to and including `msg_id`; True once the
        view no longer needs to be told."""

    def confirm(self, comm_id: str, ordinal: int) -> None:
        """The book gave widget `comm_id` creation ordinal `ordinal`."""


@dataclass
class OutputWidget:
    """What the replay front-end keeps of one `Output` widget."""

    comm_id: str
    msg_id: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    clear_on_next: bool = False


class WidgetBook:
    """One kernel's widgets, runner comms and Output widgets, in the order iopub showed them."""

    def __init__(self) -> None:
        self.ordinals: dict[str, int] = {}
        self.comm_ids: list[str] = []
        self.runner_comms: set[str] = set()
        self.outputs: dict[str, OutputWidget] = {}
        self._recent: OrderedDict[str, int] = OrderedDict()
        self._views: weakref.WeakSet[Any] = weakref.WeakSet()
        self._unaligned: weakref.WeakSet[Any] = weakref.WeakSet()

    # --- fed by the listener, in iopub order -------------------------------------------------

    def opened(self, content: dict[str, Any]) -> None:
        """A comm_open from the kernel: number a widget, or note the runner's comm."""
        comm_id = str(content.get("comm_id"))
        target = content.get("target_name")
        if target == COMM_TARGET:
            self.runner_comms.add(comm_id)
        elif target == WIDGET_TARGET:
            ordinal = self.ordinals[comm_id] = len(self.comm_ids)
            self.comm_ids.append(comm_id)
            state = (content.get("data") or {}).get("state") or {}
            if state.get("_model_name") == "OutputModel":
                self.outputs[comm_id] = OutputWidget(comm_id, msg_id=state.get("msg_id", ""))
            for view in list(self._views):
                view.confirm(comm_id, ordinal)

    def seen(self, msg_id: str) -> None:
        """The listener has read iopub message `msg_id` (and counted it, if a widget's)."""
        count = len(self.comm_ids)
        self._recent[msg_id] = count
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        for view in list(self._unaligned):
            if view.align(msg_id, count):
                self._unaligned.discard(view)

    def output_state(self, comm_id: str, data: dict[str, Any]) -> None:
        """A kernel's comm_msg to an Output widget: keep its `msg_id` and `outputs`."""
        widget = self.outputs.get(comm_id)
        if widget is None or data.get("method") not in ("update", "echo_update"):
            return
        state = data.get("state") or {}
        if "msg_id" in state:
            widget.msg_id = state["msg_id"] or ""
        if "outputs" in state and data.get("method") == "update":
            widget.outputs = list(state["outputs"])

    def route_output(
        self, msg_type: str, content: dict[str, Any], parent_id: str
    ) -> OutputWidget | None:
        """Write one output into the Output widget capturing `parent_id`, as a front-end does;
        returns the widget whose `outputs` changed (for the caller to send), or None."""
        widget = next(
            (w for w in self.outputs.values() if w.msg_id and w.msg_id == parent_id), None
        )
        if widget is None:
            return None
        if msg_type == "clear_output":
            if content.get("wait"):
                widget.clear_on_next = True
                return None
            widget.outputs = []
            return widget
        if widget.clear_on_next:
            widget.outputs = []
            widget.clear_on_next = False
        if msg_type == "update_display_data":
            return None
        last = widget.outputs[-1] if widget.outputs else {}
        if (msg_type == "stream" and last.get("output_type") == "stream"
                and last.get("name") == content.get("name")):
            widget.outputs[-1] = {**last, "text": last.get("text", "") + content.get("text", "")}
        else:
            output = {"output_type": msg_type, **content}
            output.pop("transient", None)
            widget.outputs.append(output)
        return widget

    # --- read by the server --------------------------------------------------------------------

    def ordinal_of(self, comm_id: str) -> int | None:
        """The creation ordinal of a kernel-created widget comm, or None."""
        return self.ordinals.get(comm_id)

    def comm_of(self, ordinal: int) -> str | None:
        """The comm id of the widget created `ordinal`-th in this kernel, or None."""
        if 0 <= ordinal < len(self.comm_ids):
            return self.comm_ids[ordinal]
        return None

    def count_after(self, msg_id: str) -> int | None:
        """The widgets counted up to and including `msg_id`, if the book still knows it."""
        return self._recent.get(msg_id)

    def watch(self, view: View, aligned: bool) -> None:
        """Tell `view` of every widget numbered from now on, and, until `aligned`, of every
        message read (both kept weakly: a view nobody holds any more is dropped)."""
        self._views.add(view)
        if not aligned:
            self._unaligned.add(view)

    def unwatch(self, view: View) -> None:
        """Stop telling `view` anything."""
        self._views.discard(view)
        self._unaligned.discard(view)
