"""The runner's pure parts, without a kernel: the output sink, JSON values, what it reads from
the manifest, the run's parameter values and how a failed stage reads."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import ipywidgets as w
import numpy as np

from runtime import manifest as mf
from runtime.kernel.capture import CellError, OutputSink, apply_carriage_returns
from runtime.kernel.failure import cell_failure, failure_outputs, interrupt_failure
from runtime.kernel.parameters import RunConfig, declared_names, parameter_values
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
    # Back only where a server can rebuild the run (saved), and only on finished stages
    assert "freezer-back" not in markup
    served = render_stepper(["<Pick>", "Use", "Save"], ["done", "ready", "pending"], 1, back=True)
    assert served.count('class="freezer-back"') == 1
    assert 'aria-label="Back to: &lt;Pick&gt;"' in served and ">Back</button>" in served


def _app(stages: list[mf.Stage], parameters: tuple[mf.Parameter, ...] = ()) -> mf.Manifest:
    return mf.Manifest(
        title="t", source_name="t.ipynb", source_sha256="0" * 64, freezer_version="0.1.0",
        created="2026-01-01T00:00:00Z", kernel_name="python3", kernel_language="python",
        stages=tuple(stages), parameters=parameters,
    ).with_app_id()


def _cell(kind: mf.CellKind, *tags: str) -> mf.Cell:
    return mf.Cell(id=f"c{kind}{tags}", kind=kind, source="x = 1", tags=tags)


def test_warm_cells_come_from_the_manifest_and_old_manifests_derive_them() -> None:
    warm, plain, text = _cell("code", "freeze:warm"), _cell("code"), _cell("markdown")
    first = mf.Stage(index=0, title="A", cells=(text, warm, text, warm, plain, warm))
    later = mf.Stage(index=1, title="B", cells=(warm,))
    old = _app([first, later])
    # Written before the field: absent in app.json, derived from the tags; app_id unchanged.
    data = json.loads(mf.dumps(old))
    assert all("warm_cells" not in s for s in data["stages"])
    loaded = mf.loads(mf.dumps(old))
    assert loaded == old and loaded.app_id == mf.compute_app_id(loaded)
    assert loaded.stages[0].warm_leading() == (text, warm, text, warm)
    assert loaded.stages[1].warm_leading() == ()
    # Written by the compiler: the runner takes it as it is, whatever the tags say.
    resolved = _app([replace(first, warm_cells=1), replace(later, warm_cells=0)])
    again = mf.loads(mf.dumps(resolved))
    assert [s.warm_cells for s in again.stages] == [1, 0]
    assert again.stages[0].warm_leading() == (text,)
    assert again.app_id != old.app_id
    assert mf.schema_errors({**data["stages"][0], "warm_cells": -1}, mf.SCHEMA["properties"][
        "stages"]["items"]) == ["warm_cells: -1 is less than the minimum of 0"]


def test_run_values_are_the_declared_parameters_and_run_names() -> None:
    params = (mf.Parameter(name="rows", default=1, type="int"),)
    app = _app([mf.Stage(index=0, title="A", cells=(
        mf.Cell(id="p", kind="code", source="rows = 1\nfreezer_user = ''", tags=("parameters",)),
    ))], params)
    config = RunConfig("run-9", 1, {"rows": 5, "other": 2}, "ann", False, 0.0)
    assert parameter_values(app, config) == {"rows": 5, "freezer_user": "ann"}
    no_cell = _app([mf.Stage(index=0, title="A", cells=(_cell("code"),))], params)
    assert parameter_values(no_cell, config) == {"rows": 5}


def test_a_failed_stage_reads_as_its_cause() -> None:
    error = CellError("ValueError", "bad\nvalue", ["\x1b[31mValueError\x1b[0m: bad"])
    failure = cell_failure(error)
    assert (failure.error, failure.traceback) == ("ValueError: bad", "ValueError: bad")
    assert failure.message == "This step failed: ValueError: bad"
    assert "needs your input" in failure.needing_input().message
    timed_out = interrupt_failure(None, 2.5)
    assert timed_out.error.startswith("StageTimeout") and "2.5 seconds" in timed_out.message
    assert interrupt_failure(error, None).message == "This step was interrupted."
    assert [o["output_type"] for o in failure_outputs(failure, False)] == ["display_data"]
    shown = failure_outputs(failure, True)
    assert [o["output_type"] for o in shown] == ["display_data", "error"]
    assert shown[1]["traceback"] == error.traceback
