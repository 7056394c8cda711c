"""What a stage waited on, held from the moment it became ready until the next stage succeeded.

A stage ends where the next one reads names the person sets (its `waits_on`). The runner keeps
one :class:`Boundary` per such hand-over:

- when the stage is **ready**, the JSON values of those names are its *defaults* (what the
  person was shown before acting);
- when the person presses **Next**, the *objects* the names are bound to are captured, and
  their JSON values are the stage's snapshot;
- when the next stage **succeeds**, those captured objects are disabled, not whatever the names
  point to by then: a later stage may bind the same name to a new widget (a second
  `s = IntSlider(...)`), and that one is the person's next input;
- when it **fails**, the inputs stay editable. If none of them differs from its default, the
  person has not acted yet, and the failure says so instead of asking them to fix anything.
  Next then retries with the captured objects bound to their names again, as they were at the
  boundary (unless a callback rebound a name since the failure: then the new object is the
  person's input).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from runtime.kernel.stepper import disable_widgets
from runtime.kernel.values import json_value

Namespace = MutableMapping[str, Any]
_UNBOUND = object()


class Boundary:
    """The hand-over from a ready stage to the next one: its waited-on names and objects."""

    def __init__(self, names: Iterable[str], user_ns: Namespace, gate: Any = None) -> None:
        """Called when the stage is ready: record the defaults of `names` in `user_ns`.

        `gate` is the author's `%blockrun` button, if any: disabled with the inputs.
        """
        self.names = tuple(dict.fromkeys(names))
        self.gate = gate
        self.defaults = {name: json_value(user_ns.get(name)) for name in self.names}
        self.objects: dict[str, Any] = {}
        self.snapshot: dict[str, Any] = {}
        self._after_failure: dict[str, Any] = {}

    def capture(self, user_ns: Namespace) -> dict[str, Any]:
        """Next was pressed: hold the objects the names are bound to; return the snapshot.

        A retry after a failed next stage keeps the objects of the first press, rebinds them
        to their names, and takes their values again (the person may have changed them).
        """
        if not self.objects:
            self.objects = {name: user_ns.get(name, _UNBOUND) for name in self.names}
        else:
            for name in self.names:
                now = user_ns.get(name, _UNBOUND)
                if now is not self._after_failure.get(name, _UNBOUND):
                    self.objects[name] = now  # a callback rebound it after the failure
                elif self.objects[name] is not _UNBOUND:
                    user_ns[name] = self.objects[name]  # the failed stage rebound it
        self.snapshot = {
            name: json_value(None if value is _UNBOUND else value)
            for name, value in self.objects.items()
        }
        return self.snapshot

    def failed(self, user_ns: Namespace) -> None:
        """The next stage failed: note what the names are bound to now (see :meth:`capture`)."""
        self._after_failure = {name: user_ns.get(name, _UNBOUND) for name in self.names}

    def untouched(self) -> bool:
        """Whether every waited-on value at Next was still its default (nothing was done)."""
        return bool(self.names) and self.snapshot == self.defaults

    def disable(self) -> None:
        """The next stage succeeded: disable the captured widgets (and the gate button)."""
        for value in self.objects.values():
            if value is not _UNBOUND:
                disable_widgets(value)
        if self.gate is not None:
            disable_widgets(self.gate)
