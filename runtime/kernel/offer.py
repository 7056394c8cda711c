"""What the person presses to go on, and whether they can press it now.

A stage that waits for the person (ready, or failed and waiting for a retry) offers one fresh
button: **Next**, or **Finish** on a last stage the person still works in (:mod:`.finish`).
When the stage ends in a `%blockrun NAME`, the author's button stands for it (:mod:`.gate`):
Next follows that button's `disabled` state and a click on it presses Next. A ready stage's
Next is disabled, too, while one of its requirements does not hold (:mod:`.requirements`), and
the status line then says which; otherwise it shows the stage's own status.
"""

from __future__ import annotations

from runtime.kernel.finish import FINISH_LABEL
from runtime.kernel.gate import Gate
from runtime.kernel.stepper import AppView

NEXT_LABEL = "Next"


class Offer:
    """The button offered to the waiting stage, its gate, and the stage's status line."""

    def __init__(self) -> None:
        self.view: AppView | None = None
        self.gate: Gate | None = None  # the `%blockrun` button of the waiting stage, if any
        self.status = ""  # the status line of the ready stage, requirements met

    def label(self, finish: bool) -> str:
        """The button the person presses to go on: Next (or Finish), or the stage's gate."""
        if self.gate is not None:
            return self.gate.label
        return FINISH_LABEL if finish else NEXT_LABEL

    def present(self, finish: bool) -> None:
        """A fresh Next (or Finish) button; the stage's gate, if any, stands for it."""
        assert self.view is not None
        button = self.view.offer_next(FINISH_LABEL if finish else NEXT_LABEL)
        if self.gate is not None:
            self.gate.arm(button)

    def withdraw_gate(self) -> None:
        """The run moves on: the gate no longer stands for Next."""
        if self.gate is not None:
            self.gate.release()

    def update(self, ready: bool, unmet: str | None) -> None:
        """Enable the offered button only while the gate (if any) and the requirements allow.

        `ready`: the stage is ready (not failed); `unmet`: why a requirement does not hold.
        """
        view = self.view
        if view is None or view.button is None:
            return
        gate_closed = self.gate is not None and not self.gate.is_open
        view.button.disabled = gate_closed or unmet is not None
        if ready:
            view.say(unmet or self.status)
