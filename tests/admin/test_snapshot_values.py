"""Snapshot values are what a person chose: media become references, long values fold."""

from __future__ import annotations

import hashlib
import html
import json
import re

import ipywidgets as w
from playwright.sync_api import Page, expect

from runtime.kernel.values import is_media_reference, json_value, media_reference
from runtime.web.admin_data import (
    VALUE_LIMIT,
    build_page,
    fmt_inputs,
    fmt_pairs,
    fmt_value,
    render_page,
    show_value,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 160  # 40 KB that look like a PNG


class Card(w.VBox):
    """A notebook's own widget: a photo, a caption and an answer; `.value` is the answer."""

    def __init__(self, answer: str | None) -> None:
        self.answer = w.ToggleButtons(options=["same", "different"], value=answer)
        super().__init__([w.Image(value=PNG, format="png"), w.Label("photo 3"), self.answer])

    @property
    def value(self) -> str | None:
        return self.answer.value


def test_an_image_widget_is_a_reference_not_its_bytes() -> None:
    reference = json_value(w.Image(value=PNG, format="png"))
    assert reference == {
        "media": "image/png", "sha256": hashlib.sha256(PNG).hexdigest(), "bytes": len(PNG)
    }
    assert is_media_reference(reference)
    assert json_value(w.Video(value=b"\x00\x01", format="mp4"))["media"] == "video/mp4"


def test_bytes_and_memoryview_values_are_references() -> None:
    assert json_value(PNG) == media_reference(PNG)
    assert json_value(memoryview(PNG))["media"] == "image/png"
    assert json_value(bytearray(b"\xff\xd8\xff\xe0"))["media"] == "image/jpeg"
    assert json_value(b"plain")["media"] == "application/octet-stream"
    upload = [{"name": "a.png", "content": memoryview(PNG)}]
    assert json_value(upload)[0]["content"]["bytes"] == len(PNG)


def test_a_widget_class_with_a_value_property_gives_the_value() -> None:
    cards = [Card("same"), Card(None), Card("different")]
    assert json_value(cards) == ["same", None, "different"]
    # A container without a value of its own: its children, photos as references.
    box = w.HBox([w.Image(value=PNG, format="png"), w.Checkbox(value=True)])
    photo, ticked = json_value(box)
    assert is_media_reference(photo) and ticked is True


def test_a_failing_value_property_falls_back_to_the_children() -> None:
    class Broken(w.VBox):
        @property
        def value(self) -> object:
            raise RuntimeError("not ready")

    assert json_value(Broken([w.IntSlider(value=3)])) == [3]


def test_the_admin_page_shows_media_briefly_and_folds_long_values() -> None:
    reference = media_reference(PNG)
    assert re.fullmatch(r"image/png, 41\.0 KB, sha256 [0-9a-f]{8}…", fmt_value(reference))
    short = show_value({"picker": "Alan"})
    assert "<details" not in short and "&#34;picker&#34;" in short
    labels = [{"photo": i, "label": "<same>"} for i in range(100)]
    folded = show_value(labels)
    summary = re.search(r"<summary>(.*?)</summary>", folded)
    assert summary is not None and summary.group(1).endswith("…")
    assert len(html.unescape(summary.group(1))) == VALUE_LIMIT
    whole = re.search(r'<div class="whole">(.*?)</div>', folded)
    assert whole is not None and whole.group(1).count("&lt;same&gt;") == 100  # one click away
    assert "<same>" not in folded  # what people typed stays escaped


def test_inputs_of_a_run_fold_per_value() -> None:
    row = {"snapshots": {"1": {"cards": ["same"] * 200}, "0": {"picker": "<b>Alan</b>"}}}
    text = str(fmt_inputs(row))
    assert text.startswith("picker = &lt;b&gt;Alan&lt;/b&gt;; cards = <details")
    assert str(fmt_pairs({"t": 0.25})) == "t = 0.25"


def test_the_whole_long_value_is_one_click_away_in_a_browser(page: Page) -> None:
    labels = [{"photo": i, "label": "same"} for i in range(60)]
    row = {
        "run_id": "r1", "app_id": "a1", "user": "maya", "status": "finished", "stage": 1,
        "stages": 2, "created_at": None, "updated_at": None, "finished_at": None,
        "params": {}, "results": {"labels": labels},
        "snapshots": {"0": {"photo": media_reference(PNG), "cards": ["same"] * 80}},
        "stage_0_status": "finished", "stage_1_status": "ready",
    }
    page.set_content(render_page(build_page("Labeling", [row], {"a1": ["Pick", "Save"]}), "x"))
    inputs = page.locator("table.runs td.value.inputs").first
    expect(inputs).to_contain_text("photo = image/png, 41.0 KB, sha256 ")
    whole = inputs.locator("details .whole")
    expect(whole).to_be_hidden()
    inputs.locator("details summary").click()
    expect(whole).to_be_visible()
    expect(whole).to_have_text(json.dumps(["same"] * 80, separators=(", ", ": ")))
    result = page.locator("table.results td.value")
    expect(result.locator("details .whole")).to_be_hidden()
    result.locator("summary").click()
    expect(result.locator("details .whole")).to_contain_text('{"label": "same", "photo": 59}')
