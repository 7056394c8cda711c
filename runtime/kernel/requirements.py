"""`require(check, reason)`: a notebook asks for input before the person may press Next.

In a notebook cell::

    from runtime.kernel.requirements import require
    require(lambda: any(card.value for card in cards), "Label at least one photo first.")

In a Freezer app (served by Freezer or by plain Voila) Next stays disabled, with `reason` in the
status line, until `check()` returns something true. A requirement belongs to the stage whose
cells (or callbacks) declared it and is dropped when the person presses Next. Several
requirements of a stage must all hold (the status line shows the first unmet reason); a check
that raises counts as not met, and its error is logged. Requirements are checked again when any
widget created since the stage started changes its `value`, after every message from the page
(so after the notebook's callbacks ran), after every cell the kernel runs, and whenever a
requirement is declared. They add to a
`%blockrun` gate: Next is enabled only when the gate button is enabled and every requirement
holds.

Outside an app (plain Jupyter, `nbclient`, `freezer build --trace`) `require` does nothing but
return, so the notebook runs unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
from ipywidgets.widgets.widget import _instances

log = logging.getLogger("freezer.runner")

Check = Callable[[], object]


def require(check: Check, reason: str) -> None:
    """Keep Next disabled, saying `reason`, until `check()` is true (a no-op outside an app)."""
    if not callable(check):
        raise TypeError(f"require(check, reason): check must be callable, not {check!r}")
    if _current is not None:
        _current.add(check, str(reason))


@dataclass(frozen=True)
class Requirement:
    """One declared requirement."""

    check: Check
    reason: str


class Requirements:
    """The requirements of the current stage, and the widgets whose changes re-check them.

    The runner owns one and calls :meth:`start_stage` when a stage starts to run, :meth:`watch`
    when it waits for the person, and :meth:`drop` when the person moves on (or it failed).
    `on_change()` is called whenever the requirements may have come to hold or stopped holding.
    """

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.items: list[Requirement] = []
        self._on_change = on_change
        self._before: set[str] = set(_instances)  # widgets that existed before the stage
        self._observed: dict[str, widgets.Widget] = {}
        self._watching = False

    def install(self) -> None:
        """Make this the set that :func:`require` adds to (one app per kernel)."""
        global _current
        _current = self

    def start_stage(self) -> None:
        """A stage starts to run: no requirements yet; widgets made from now on are its own."""
        self.drop()
        self._before = set(_instances)

    def add(self, check: Check, reason: str) -> None:
        """:func:`require` was called."""
        self.items.append(Requirement(check, reason))
        if self._watching:
            self.refresh()

    def watch(self) -> None:
        """The stage waits for the person: re-check on changes from now on."""
        self._watching = True
        self.refresh()

    def drop(self) -> None:
        """The person moved on (or the stage failed): forget the requirements, stop observing."""
        self.items = []
        self._watching = False
        for widget in self._observed.values():
            widget.unobserve(self._changed, names="value")
        self._observed = {}

    def refresh(self) -> None:
        """Observe the stage's new widgets, then tell the runner to check again."""
        if not self._watching:
            return
        if self.items:
            self._observe_new_widgets()
        self._on_change()

    def unmet(self) -> str | None:
        """The reason of the first requirement that does not hold, or None when all hold."""
        for item in list(self.items):
            try:
                if item.check():
                    continue
            except Exception:
                log.warning("require(%r): the check raised; counted as not met",
                            item.reason, exc_info=True)
            return item.reason
        return None

    def stage_widgets(self) -> list[widgets.Widget]:
        """The widgets created since the stage started (and not closed since)."""
        return [w for model_id, w in list(_instances.items()) if model_id not in self._before]

    def _observe_new_widgets(self) -> None:
        for widget in self.stage_widgets():
            model_id = widget.model_id
            if model_id not in self._observed and widget.has_trait("value"):
                widget.observe(self._changed, names="value")
                self._observed[model_id] = widget

    def _changed(self, change: dict[str, Any]) -> None:
        self._on_change()


def after_each_message(shell: Any, callback: Callable[[], None]) -> None:
    """Call `callback` after each cell the shell ran and each `comm_msg` the kernel handled.

    A widget message (a click, a value) runs the notebook's callbacks; ipykernel dispatches it
    through `kernel.shell_handlers` and has no public hook for after its handlers ran. Without
    a kernel (a plain IPython shell) only cells are followed.
    """

    def call() -> None:
        try:
            callback()
        except Exception:
            log.exception("checking the requirements failed")

    events = getattr(shell, "events", None)
    if events is not None:
        events.register("post_run_cell", lambda result: call())
    handlers = getattr(getattr(shell, "kernel", None), "shell_handlers", None)
    if not isinstance(handlers, dict) or "comm_msg" not in handlers:
        return
    original = handlers["comm_msg"]

    def comm_msg(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        finally:
            # not for a message a subshell handled (a work queue answer, runtime.kernel.work) while
            # the main thread runs a cell: that cell's own post_run_cell checks afterwards
            if threading.current_thread() is threading.main_thread():
                call()

    handlers["comm_msg"] = comm_msg


_current: Requirements | None = None
