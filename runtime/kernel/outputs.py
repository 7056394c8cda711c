"""A stage's outputs in the kernel: nbformat output dicts, pushed to an `Output` widget.

:class:`runtime.kernel.capture.Capture` appends what a cell prints and displays to the
:class:`OutputSink` of the stage being run; the sink keeps the list in the kernel and sends it
to the widget's `outputs` state, throttled, whether or not a browser is attached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

Output = dict[str, Any]

PUSH_INTERVAL = 0.1
"""Seconds between two pushes of a sink's outputs to its widget while a cell writes a lot."""


def apply_carriage_returns(text: str) -> str:
    """Resolve `\\r` overwrites line by line, as a terminal (and Jupyter) shows them."""
    if "\r" not in text:
        return text
    lines = text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        if "\r" in line:
            parts = [part for part in line.split("\r") if part]
            lines[i] = parts[-1] if parts else ""
    return "\n".join(lines)


class OutputSink:
    """The outputs of one stage, kept in the kernel and pushed to an `Output` widget.

    Pushes are throttled to one per :data:`PUSH_INTERVAL` (a timer pushes the rest), because
    each push sends the whole list; :meth:`push` at the end of a cell sends the final state.
    Stream text is merged into the previous output of the same stream lazily, at most once
    per push, so that a cell printing many lines costs linear time.
    """

    def __init__(self, outputs: Iterable[Output] = ()) -> None:
        self._outputs: list[Output] = list(outputs)
        self._display_ids: list[str | None] = [None] * len(self._outputs)
        self._tail: list[str] = []  # text still to be appended to the last (stream) output
        self._clear_on_next = False
        self._cell_start = 0  # clear_output clears the current cell's outputs only
        self._widget: Any = None
        self._lock = threading.RLock()
        self._last_push = 0.0
        self._dirty = False
        self._timer: threading.Timer | None = None

    @property
    def outputs(self) -> list[Output]:
        """A copy of the outputs so far."""
        with self._lock:
            self._merge_tail()
            return list(self._outputs)

    def attach(self, widget: Any) -> None:
        """Show this sink's outputs in `widget` (an `ipywidgets.Output`) from now on."""
        with self._lock:
            self._widget = widget
        self.push()

    def reset(self) -> None:
        """Forget every output (a stage re-runs from its first cell)."""
        with self._lock:
            self._tail.clear()
            self._outputs.clear()
            self._display_ids.clear()
            self._clear_on_next = False
            self._cell_start = 0
            self._changed()

    def begin_cell(self) -> None:
        """The outputs from here on belong to a new cell."""
        with self._lock:
            self._merge_tail()
            self._clear_on_next = False
            self._cell_start = len(self._outputs)

    def add(self, output: Output, display_id: str | None = None) -> None:
        """Append one nbformat output dict."""
        with self._lock:
            self._merge_tail()
            self._clear_if_pending()
            self._outputs.append(output)
            self._display_ids.append(display_id)
            self._changed()

    def extend(self, outputs: list[Output]) -> None:
        """Append outputs captured earlier (warm cells run before the widget existed)."""
        for output in outputs:
            self.add(dict(output))

    def add_stream(self, name: str, text: str) -> None:
        """Append stream text, merged into the previous output when it is the same stream."""
        if not text:
            return
        with self._lock:
            self._clear_if_pending()
            last = self._outputs[-1] if len(self._outputs) > self._cell_start else None
            if last is not None and last["output_type"] == "stream" and last["name"] == name:
                self._tail.append(text)
                self._changed()
            else:
                text = apply_carriage_returns(text)
                self.add({"output_type": "stream", "name": name, "text": text})

    def update_display(self, display_id: str, data: dict[str, Any], metadata: Any) -> bool:
        """Replace the data of every output shown with `display_id`; whether there was one."""
        with self._lock:
            found = False
            for i, known in enumerate(self._display_ids):
                if known == display_id:
                    self._outputs[i] = dict(self._outputs[i], data=data, metadata=metadata)
                    found = True
            if found:
                self._changed()
            return found

    def clear(self, wait: bool = False) -> None:
        """`clear_output`: now, or (wait) just before the next output arrives."""
        with self._lock:
            if wait:
                self._clear_on_next = True
                return
            self._clear_on_next = False
            self._clear_cell()
            self._changed()

    def push(self) -> None:
        """Send the current outputs to the widget now."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._dirty = False
            self._last_push = time.monotonic()
            if self._widget is not None:
                self._merge_tail()
                self._widget.outputs = tuple(self._outputs)

    def _merge_tail(self) -> None:
        if self._tail:
            last = self._outputs[-1]
            text = apply_carriage_returns(last["text"] + "".join(self._tail))
            self._outputs[-1] = dict(last, text=text)
            self._tail.clear()

    def _clear_if_pending(self) -> None:
        if self._clear_on_next:
            self._clear_on_next = False
            self._clear_cell()

    def _clear_cell(self) -> None:
        self._tail.clear()
        del self._outputs[self._cell_start :]
        del self._display_ids[self._cell_start :]

    def _changed(self) -> None:
        if self._widget is None:
            return
        wait = PUSH_INTERVAL - (time.monotonic() - self._last_push)
        if wait <= 0:
            self.push()
        elif not self._dirty:
            self._dirty = True
            self._timer = threading.Timer(wait, self._push_if_dirty)
            self._timer.daemon = True
            self._timer.start()

    def _push_if_dirty(self) -> None:
        with self._lock:
            if self._dirty:
                self.push()
