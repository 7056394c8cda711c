"""What the person sees: the root widget (stepper, one `Output` per stage, Next, status line),
rendered markdown, and the values read from (and the freezing of) the widgets they used.

:mod:`runtime.kernel.runner` decides what happens and when.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable, Sequence
from typing import Any, Literal

import ipywidgets as widgets

from runtime.kernel.outputs import Output
from runtime.kernel.values import json_value as json_value  # still importable from here

StageState = Literal["pending", "running", "ready", "failed", "done"]

UNSAVED_NOTE = "Progress is not saved (this page is not served by Freezer)."

_MARKS: dict[StageState, str] = {
    "pending": "○",
    "running": "◔",
    "ready": "●",
    "failed": "✗",
    "done": "✓",
}
_COLOURS: dict[StageState, str] = {
    "pending": "#888",
    "running": "#1565c0",
    "ready": "#1565c0",
    "failed": "#b00020",
    "done": "#2e7d32",
}


BACK_LABEL = "Back to: {title}"
"""The accessible name of a finished stage's Back control (the page asks to confirm it)."""


def render_stepper(
    titles: Sequence[str], states: Sequence[StageState], current: int, back: bool = False
) -> str:
    """HTML for the row of stage titles; the current stage is bold and `aria-current`.

    With `back` (a Freezer server saves the run, so it can rebuild it as of an earlier stage),
    each finished stage carries a Back button; the run page's script asks the person to
    confirm and posts the go-back (`docs/go-back.md`). Under plain Voila there is no journal to
    rebuild from, so there is no such button."""
    items = []
    for i, (title, state) in enumerate(zip(titles, states, strict=True)):
        attrs = ' aria-current="step"' if i == current else ""
        weight = "bold" if i == current else "normal"
        label = html.escape(title)
        control = ""
        if back and state == "done":
            name = html.escape(BACK_LABEL.format(title=title))
            control = (
                f' <button type="button" class="freezer-back" data-stage="{i}" '
                f'data-title="{label}" aria-label="{name}" title="{name}">Back</button>'
            )
        items.append(
            f'<li class="freezer-step freezer-step-{state}"{attrs} data-stage="{i}" '
            f'style="color:{_COLOURS[state]};font-weight:{weight}">'
            f'{_MARKS[state]} <span class="freezer-step-title">{label}</span>{control}</li>'
        )
    return (
        '<ol class="freezer-stepper" style="display:flex;flex-wrap:wrap;gap:0.4em 1.5em;'
        'list-style:none;padding:0;margin:0 0 0.8em 0">' + "".join(items) + "</ol>"
    )


class AppView:
    """The widgets a person sees. Created once per kernel; `root` is displayed by `show()`."""

    def __init__(
        self, titles: Sequence[str], on_next: Callable[[Any], None], saved: bool
    ) -> None:
        self.titles = list(titles)
        self.states: list[StageState] = ["pending"] * len(self.titles)
        self.current = -1
        self._on_next = on_next
        self.saved = saved
        self._message = "Starting…"
        self.stepper = widgets.HTML(self._stepper_html())
        self.outputs = [
            widgets.Output(layout=widgets.Layout(display="none")) for _ in self.titles
        ]
        self.status = widgets.Label(self._status_text())
        self.footer = widgets.HBox(
            [self.status], layout=widgets.Layout(align_items="center", margin="0.8em 0 0 0")
        )
        self.root = widgets.VBox(
            [self.stepper, widgets.VBox(self.outputs), self.footer],
            layout=widgets.Layout(width="100%"),
        )
        self.root.add_class("freezer-app")
        self.button: widgets.Button | None = None

    def mark(self, index: int, state: StageState, status: str) -> None:
        """Set a stage's state, make it the current one, and say `status` in the status line."""
        self.states[index] = state
        self.current = index
        self.outputs[index].layout.display = None
        self.stepper.value = self._stepper_html()
        self._message = status
        self.status.value = self._status_text()

    def mark_done(self, index: int) -> None:
        """A stage the person moved on from."""
        self.states[index] = "done"
        self.stepper.value = self._stepper_html()

    def say(self, status: str) -> None:
        """Say `status` in the status line (the stages stay as they are)."""
        self._message = status
        self.status.value = self._status_text()

    def offer_next(self, label: str = "Next") -> widgets.Button:
        """Show a fresh Next button (or the last stage's Finish button) and return it.

        Every offer is a new button, so that a click the browser sent before it saw the
        previous button disabled is recognisably stale, in a live page and in a replay alike.
        """
        tooltip = "Run the next step" if label == "Next" else "Finish this run"
        button = widgets.Button(description=label, button_style="primary", tooltip=tooltip)
        button.add_class("freezer-next")
        if label != "Next":
            button.add_class("freezer-finish")
        button.on_click(self._on_next)
        self.button = button
        self.footer.children = (button, self.status)
        return button

    def disable_next(self) -> None:
        """Keep the Next button in place but disabled (a stage runs)."""
        if self.button is not None:
            self.button.disabled = True

    def withdraw_next(self) -> None:
        """No Next button (the run is finished)."""
        self.disable_next()
        self.button = None
        self.footer.children = (self.status,)

    def set_saved(self, saved: bool) -> None:
        """Whether a Freezer server saves the progress (else the status line says it does not)."""
        self.saved = saved
        self.status.value = self._status_text()
        self.stepper.value = self._stepper_html()

    def _stepper_html(self) -> str:
        # Back only while no stage runs: the server refuses a go-back then anyway
        running = "running" in self.states
        return render_stepper(self.titles, self.states, self.current,
                              back=self.saved and not running)

    def _status_text(self) -> str:
        return self._message if self.saved else f"{self._message}  {UNSAVED_NOTE}"


def disable_widgets(value: Any, depth: int = 0) -> None:
    """Disable a widget, the widgets inside a container, or a collection of widgets."""
    if depth > 20:
        return
    if isinstance(value, widgets.Widget):
        if value.has_trait("disabled"):
            value.disabled = True
        if isinstance(value, widgets.Box):
            for child in value.children:
                disable_widgets(child, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            disable_widgets(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            disable_widgets(item, depth + 1)


@functools.cache
def _markdown_renderer() -> Any:
    import mistune

    # escape=False: the notebook's author is trusted, and Jupyter renders their HTML too.
    return mistune.create_markdown(
        escape=False, plugins=["strikethrough", "table", "url", "task_lists", "math"]
    )


def markdown_output(source: str) -> Output:
    """A markdown cell as a rendered-HTML display output."""
    render = _markdown_renderer()
    return {
        "output_type": "display_data",
        "data": {"text/html": str(render(source))},
        "metadata": {},
    }
