"""The end of a run: a last stage the person still works in waits for **Finish**.

A last stage that shows live inputs (widgets it created that a person can change or press and
that are not disabled), or that declared a requirement (:mod:`.requirements`), offers a
Finish button in place of Next. The run is finished when the person presses it: the stage's
snapshot is taken (the names bound to those inputs, as at any Next), the inputs are disabled,
every stage shows ✓, and the status line says the work is saved. Finish is a widget click like
Next, so the server journals it and a replay presses it again.

A last stage without live inputs finishes as soon as its cells ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets as widgets
from ipywidgets.widgets.widget_media import _Media

FINISH_LABEL = "Finish"
DONE_SAVED = "Done: your work is saved."
DONE_UNSAVED = "Done: every step has run."
_SHOWN_ONLY = (widgets.Label, widgets.HTML, widgets.HTMLMath, widgets.Valid, _Media)
"""Value widgets that show something rather than take a person's input."""


def is_live_input(widget: widgets.Widget) -> bool:
    """Whether a person can change or press `widget` now."""
    if isinstance(widget, _SHOWN_ONLY) or getattr(widget, "disabled", False):
        return False
    return isinstance(widget, (widgets.ValueWidget, widgets.Button))


def live_inputs(candidates: Iterable[widgets.Widget]) -> list[widgets.Widget]:
    """The live inputs among `candidates` (the widgets the last stage created)."""
    return [widget for widget in candidates if is_live_input(widget)]


def input_names(user_ns: Mapping[str, Any], inputs: Iterable[widgets.Widget]) -> list[str]:
    """The global names bound to one of `inputs`, or to a list, tuple or dict holding one."""
    ids = {id(widget) for widget in inputs}
    names = []
    for name, value in list(user_ns.items()):
        if name.startswith("_") or name in ("In", "Out"):
            continue
        items = value.values() if isinstance(value, dict) else value
        if id(value) in ids or (
            isinstance(value, (list, tuple, dict)) and any(id(item) in ids for item in items)
        ):
            names.append(name)
    return names
