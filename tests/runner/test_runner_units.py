"""The runner's pure parts, without a kernel: the output sink and JSON values."""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import numpy as np

from runtime.kernel.capture import OutputSink, apply_carriage_returns
from runtime.kernel.runner import declared_names
from runtime.kernel.stepper import render_stepper
from runtime.kernel.values import json_value


class FakeOutput:
    """Stands in for an `ipywidgets.Output`: remembers every state pushed to it."""

    def __init__(self) -> None:
        self.pushes: list[tuple[Any, ...]] = []

    @property
    def outputs(self) -> tuple[Any, ...]:
        return self.pushes[-1] if self.pushes else ()

    @outputs.setter
    def outputs(self, value: tuple[Any, ...]) -> None:
        self.pushes.append(value)


def test_carriage_returns_overwrite_the_line() -> None:
    assert apply_carriage_returns("10%\r50%\r100%\ndone\r\n") == "100%\ndone\n"
    assert apply_carriage_returns("a\rb") == "b"
    assert apply_carriage_returns("plain\n") == "plain\n"


def test_sink_merges_streams_and_clears_only_the_current_cell() -> None:
    widget = FakeOutput()
    sink = OutputSink()
    sink.attach(widget)
    sink.begin_cell()
    sink.add({"output_type": "display_data", "data": {"text/html": "<h1>T</h1>"}, "metadata": {}})
    sink.begin_cell()
    for part in ("progress 1%", "\rprogress 99%", "\r", "progress 100%\n"):
        sink.add_stream("stdout", part)
    sink.add_stream("stderr", "warn\n")
    sink.push()
    assert [o.get("text") for o in widget.outputs] == [None, "progress 100%\n", "warn\n"]
    sink.clear()
    sink.push()
    assert len(widget.outputs) == 1  # the previous cell's output stays
    sink.add_stream("stdout", "kept")
    sink.clear(wait=True)
    sink.push()
    assert widget.outputs[-1]["text"] == "kept"  # cleared only when the next output comes
    sink.add_stream("stdout", "new")
    sink.push()
    assert [o.get("text") for o in widget.outputs] == [None, "new"]


def test_sink_updates_displays_by_id_and_resets() -> None:
    widget = FakeOutput()
    sink = OutputSink()
    sink.attach(widget)
    sink.add({"output_type": "display_data", "data": {"text/plain": "one"}, "metadata": {}}, "d1")
    assert sink.update_display("d1", {"text/plain": "two"}, {})
    assert not sink.update_display("other", {"text/plain": "x"}, {})
    sink.push()
    assert widget.outputs[0]["data"] == {"text/plain": "two"}
    sink.reset()
    sink.push()
    assert widget.outputs == ()


def test_json_values_of_widgets_and_data() -> None:
    boxes = [w.Checkbox(value=True), w.Checkbox(value=False)]
    assert json_value(w.Dropdown(options=["a", "b"], value="b")) == "b"
    assert json_value(boxes) == [True, False]
    assert json_value({"ids": np.arange(2), 3: np.float64(0.5)}) == {"ids": [0, 1], "3": 0.5}
    assert json_value(float("inf")) == "inf"
    assert json_value(w.VBox([w.IntSlider(value=4), w.Text(value="t")])) == [4, "t"]
    assert json_value(object()).startswith("<object object")


def test_parameters_cell_names_and_stepper_markup() -> None:
    assert declared_names("a = 1\nb: int = 2\nc, d = 3, 4\n%magic") == set()
    assert declared_names("a = 1\nb: int = 2\nfreezer_user = ''") == {"a", "b", "freezer_user"}
    markup = render_stepper(["<Pick>", "Use"], ["done", "ready"], 1)
    assert "&lt;Pick&gt;" in markup and "<Pick>" not in markup
    assert markup.count('aria-current="step"') == 1 and 'data-stage="1"' in markup
