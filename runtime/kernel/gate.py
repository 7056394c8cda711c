"""The author's gate: the button a `%blockrun NAME` names ends its stage instead of a bare Next.

In the notebook, `%blockrun go` (ipython_blocking) blocks until the person clicks `go`; the
author's own code enables `go` only once the input is valid (an `observe` validator). In the
app, while the stage waits:

- Next follows `go.disabled`: disabled while `go` is, re-checked whenever it changes (and
  disabled too while a requirement of the stage does not hold, see :mod:`.requirements`);
- a click on `go` continues the run exactly as Next would, after the author's own click
  handlers ran (they may compute what the next stage reads). The click is an ordinary widget
  message, so the server journals it and a replay re-sends it: the run advances again.

Whether the click counts is decided by `go.disabled` when the click arrived, not after the
author's handlers ran (a handler that disables its button against a second click must not
cancel the first). Next and `go` lead to the same Next button's handler, and every Next button
is used once, so the two together advance once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

import ipywidgets as widgets

log = logging.getLogger("freezer.runner")


def find_gate(user_ns: MutableMapping[str, Any], name: str | None) -> widgets.Button | None:
    """The button `name` is bound to, or None (no gate, or not a button: plain Next then)."""
    if name is None:
        return None
    button = user_ns.get(name)
    if isinstance(button, widgets.Button):
        return button
    log.warning("%%blockrun %s: %s is not a button (%s); Next continues the run",
                name, name, type(button).__name__)
    return None


class Gate:
    """One gate button, tied to the Next button offered while its stage waits."""

    def __init__(
        self,
        button: widgets.Button,
        advance: Callable[[widgets.Button], None],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """`advance(next_button)` continues the run as a click on that Next button would.

        `on_change()`, when given, is called instead of setting Next's `disabled` when the
        gate opens or closes: the runner then combines the gate with the stage's requirements.
        """
        self.button = button
        self._advance = advance
        self._on_change = on_change
        self.next_button: widgets.Button | None = None
        self._open_on_arrival = False

    @property
    def label(self) -> str:
        """What the person presses to continue (the button's description, else Next)."""
        return str(self.button.description or "Next")

    def arm(self, next_button: widgets.Button) -> None:
        """The stage waits: Next follows the gate, and a click on the gate presses Next."""
        self.release()
        self.next_button = next_button
        self._follow({"new": self.button.disabled})
        # ipywidgets calls click handlers in order and has no public way to go first; the
        # arrival state must be read before the author's handlers can change it.
        handlers = self.button._click_handlers
        handlers.callbacks = [self._on_arrival, *handlers.callbacks, self._on_click]
        self.button.observe(self._follow, names="disabled")

    def release(self) -> None:
        """The run moved on (or is moving on): stop following and listening."""
        if self.next_button is None:
            return
        self.next_button = None
        # A new list, not an edit: release() runs inside the dispatch loop of this very list.
        handlers = self.button._click_handlers
        ours = (self._on_arrival, self._on_click)
        handlers.callbacks = [c for c in handlers.callbacks if c not in ours]
        self.button.unobserve(self._follow, names="disabled")

    def _on_arrival(self, button: widgets.Button) -> None:
        self._open_on_arrival = not button.disabled

    def _on_click(self, button: widgets.Button) -> None:
        if self.next_button is not None and self._open_on_arrival:
            self._advance(self.next_button)

    @property
    def is_open(self) -> bool:
        """Whether the gate button lets the person continue."""
        return not self.button.disabled

    def _follow(self, change: dict[str, Any]) -> None:
        if self.next_button is None:
            return
        if self._on_change is not None:
            self._on_change()
        else:
            self.next_button.disabled = bool(change["new"])
