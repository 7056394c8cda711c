"""A custom widget without a `value` (an anywidget) in snapshots and stage digests: its synced
traits, not its repr; and a journal whose digests are of the version before is not compared.

Pure unit tests: the widgets are made here, with no kernel and no front-end.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import anywidget
import ipywidgets as widgets
import traitlets

from runtime.kernel.boundary import Boundary
from runtime.kernel.digest import DIGEST_VERSION, differences, stage_digest, widget_state
from runtime.kernel.values import is_custom, json_value, media_reference
from runtime.runs.replay import DigestCheck
from runtime.store.models import Event

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 40
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Picker(anywidget.AnyWidget):
    """A labeling widget as docs/custom-widgets.md describes one, without a `value`."""

    _esm = "export default { render({ model, el }) { el.textContent = 'pick'; } };"
    _css = ".pick { color: red; }"
    items = traitlets.List(["a", "b", "c"]).tag(sync=True)
    selected = traitlets.List([]).tag(sync=True)
    columns = traitlets.Int(3).tag(sync=True)
    ratio = traitlets.Float(0.5).tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)
    thumbnail = traitlets.Bytes(PNG).tag(sync=True)
    odd = traitlets.Any(None).tag(sync=True)
    helper = traitlets.Instance(widgets.IntSlider, args=()).tag(
        sync=True, **widgets.widget_serialization
    )
    cursor = traitlets.Int(0)  # not synced: the kernel's own


class Valued(anywidget.AnyWidget):
    """A custom widget whose class gives a `value`: that is what is recorded."""

    _esm = "export default {};"
    selected = traitlets.List([]).tag(sync=True)

    @property
    def value(self) -> list[Any]:
        return list(self.selected)


class PlainCustom(widgets.DOMWidget):
    """A notebook's own widget class on ipywidgets' base, without a `value`."""

    _view_name = traitlets.Unicode("PlainView").tag(sync=True)
    answer = traitlets.Unicode("yes").tag(sync=True)


def test_a_custom_widget_without_value_is_recorded_as_its_synced_traits() -> None:
    picker = Picker(selected=[0, 2], odd=object())
    picker.helper.value = 7
    assert json_value(picker) == {
        "columns": 3,
        "helper": 7,  # a widget, as its own value
        "items": ["a", "b", "c"],
        "ratio": 0.5,
        "selected": [0, 2],
        "thumbnail": media_reference(PNG),  # binary data as a reference, not its bytes
    }  # not `_esm`, `_css`, `layout`, `disabled`, `tooltip`, `_model_*`; not `odd`, `cursor`
    picker.ratio = math.nan
    assert "ratio" not in json_value(picker)  # not JSON: left out, never a repr
    assert json_value(PlainCustom()) == {"answer": "yes"}
    assert json_value([picker])[0]["selected"] == [0, 2]


def test_widgets_with_a_value_and_ipywidgets_own_keep_what_they_had() -> None:
    assert json_value(Valued(selected=[1])) == [1]
    assert not is_custom(Valued())
    button = widgets.Button(description="Go")
    assert json_value(button) == repr(button) and not is_custom(button)
    assert json_value(widgets.Output()) == "Output()"
    assert json_value(widgets.VBox([Picker(selected=[1])])) == [
        {**json_value(Picker()), "selected": [1]}
    ]


def test_a_choice_made_on_a_custom_widget_is_not_untouched() -> None:
    left = {"picker": Picker()}
    untouched = Boundary(["picker"], left)
    untouched.capture(left)
    assert untouched.untouched()
    namespace: dict[str, Any] = {"picker": Picker()}
    boundary = Boundary(["picker"], namespace)
    namespace["picker"].selected = [1]
    assert boundary.capture(namespace)["picker"]["selected"] == [1]
    assert not boundary.untouched()  # a failing next stage asks to fix, not to act first


def test_the_digest_covers_a_custom_widgets_synced_traits() -> None:
    picker = Picker(selected=[0, 2])
    state = widget_state(picker)
    assert state["type"] == "Picker"
    assert state["traits"]["selected"] == [0, 2]
    assert state["traits"]["helper"]["type"] == "IntSlider"  # a widget, by its state
    assert "thumbnail" not in state["traits"]  # images are not compared
    assert not {"_esm", "_css", "layout", "disabled", "_model_name"} & set(state["traits"])
    shown = stage_digest({"p": picker}, ["p"], [])
    assert shown["v"] == DIGEST_VERSION
    # another object with the same traits (another address): the same digest
    assert differences(shown, stage_digest({"p": Picker(selected=[0, 2])}, ["p"], [])) == []
    other = stage_digest({"p": Picker(selected=[1])}, ["p"], [])
    (line,) = differences(shown, other)
    assert line.startswith("p: expected Picker") and "selected=[0, 2]" in line
    assert "selected=[1]" in line
    # volatile text in a trait is masked like any other
    clocked = Picker(items=[f"shown at {datetime.now()}"])
    assert widget_state(clocked)["traits"]["items"] == ["shown at <time>"]
    # ipywidgets' own widgets without a value have no `traits`
    assert "traits" not in widget_state(widgets.Button(description="Go"))


def event(seq: int, kind: str, **payload: Any) -> Event:
    return Event("run", seq, NOW, kind, None, {"event": kind, **payload}, b"")


def test_digests_of_the_version_before_are_not_compared() -> None:
    today = stage_digest({"p": Picker(selected=[3])}, ["p"], [])
    before = {**stage_digest({"p": Picker(selected=[1])}, ["p"], []), "v": DIGEST_VERSION - 1}
    assert DIGEST_VERSION == 2 and before["widgets"] != today["widgets"]
    recorded = [
        event(3, "stage_ready", stage=0, digest=before),
        event(5, "stage_finished", stage=0, digest=before),
    ]
    check = DigestCheck("run", recorded)
    assert check.filter({"event": "stage_ready", "stage": 0, "digest": today}) is None
    assert check.filter({"event": "stage_finished", "stage": 0, "digest": today}) is None
    check.finish()
    assert check.divergence is None
    # the same journal with today's version is a divergence: the check can fail
    current = DigestCheck("run", [event(3, "stage_ready", stage=0, digest={**before, "v": 2})])
    current.filter({"event": "stage_ready", "stage": 0, "digest": today})
    assert current.divergence is not None
