"""The stage digest: what it covers, what it leaves out, and how replay compares digests.

The pure parts (masking, output text, widget states, comparing, the replay's check) run
without a kernel; the last tests run the same app in two real kernels, as a replay does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from runtime.kernel.digest import (
    differences,
    mask_volatile,
    output_text,
    stage_digest,
    widget_state,
)
from runtime.runs.replay import DigestCheck
from runtime.store.models import Event
from tests.runner.conftest import BOOTSTRAP, code, configure, stage

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def display(data: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "display_data", "data": data, "metadata": {}}


# --- what a digest covers --------------------------------------------------------------------


def test_volatile_parts_of_the_text_are_masked() -> None:
    assert mask_volatile("<Foo object at 0x7f3a2c1d5e80>") == "<Foo object at 0x…>"
    assert mask_volatile("done in 2.31 s, 12 ms per item, 3.5it/s") == (
        "done in <duration>, <duration> per item, <duration>"
    )
    assert mask_volatile("at 2026-12-01 15:31:46.123456 and 09:12:01") == (
        "at <time> and <time>"
    )
    assert mask_volatile("id 1b4e28ba-2fa1-11d2-883f-0016d3cca427, 9f2c" + "a" * 28) == (
        "id <id>, <id>"
    )
    # what names an item stays
    assert mask_volatile("item 0 6: Titanic (1997-12-19), 3 labels") == (
        "item 0 6: Titanic (1997-12-19), 3 labels"
    )


def test_output_text_is_stdout_plain_text_and_errors_only() -> None:
    outputs = [
        stream("Movie: Titanic\n"),
        stream("100%|#####| 10/10 [00:01<00:00, 9.1it/s]\r", "stderr"),
        display({"text/plain": "<IPython.core.display.HTML object>",
                 "text/html": "<h2>Avatar</h2>"}),
        display({"text/plain": "<Figure size 640x480 with 1 Axes>", "image/png": "iVBOR..."}),
        display({"text/html": "<p>rendered markdown</p>"}),
        {"output_type": "error", "ename": "ValueError", "evalue": "bad",
         "traceback": ["long", "trace"]},
    ]
    assert output_text(outputs) == (
        "Movie: Titanic\n\n<h2>Avatar</h2>\n<Figure size 640x480 with 1 Axes>\nValueError: bad"
    )


def test_widget_state_is_what_the_widget_shows_and_holds() -> None:
    slider = widgets.IntSlider(value=6, min=0, max=10, description="item 0")
    state = widget_state(slider)
    assert state["description"] == "item 0" and state["value"] == 6 and state["max"] == 10
    assert "layout" not in state and "_model_id" not in state
    pick = widgets.Dropdown(options=["a", "b"], value="b")
    assert widget_state(pick)["_options_labels"] == ["a", "b"]
    boxes = widgets.VBox([widgets.Checkbox(description=f"box{i}") for i in range(2)])
    assert [c["description"] for c in widget_state(boxes)["children"]] == ["box0", "box1"]
    assert widget_state([slider, {"k": pick}])[1]["k"]["value"] == "b"
    # plain data a callback writes may hold times or ids: not compared
    assert widget_state(["x", 1.5]) == [None, None]
    assert widget_state(datetime.now()) is None
    clocked = widgets.Label(value=f"started {datetime.now()}", description="took 3.2 s")
    assert widget_state(clocked)["value"] == "started <time>"
    assert widget_state(clocked)["description"] == "took <duration>"


def test_differences_name_the_widget_and_both_states() -> None:
    seen = stage_digest({"s": widgets.IntSlider(description="item 0")}, ["s"], [stream("x\n")])
    other = stage_digest({"s": widgets.IntSlider(description="item 1")}, ["s"], [stream("x\n")])
    assert differences(seen, dict(seen)) == []
    (line,) = differences(seen, other)
    assert line.startswith("s: expected IntSlider 'item 0'") and "found IntSlider 'item 1'" in line
    moved = stage_digest({}, [], [stream("Movie: Avatar\n")])
    (text_line,) = differences(stage_digest({}, [], [stream("Movie: Titanic\n")]), moved)
    assert "Titanic" in text_line and "Avatar" in text_line
    assert differences({"v": 0}, other) == []  # another digest version is not compared


class Unreadable(dict[str, Any]):
    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("a namespace that cannot be read")


def test_a_digest_that_cannot_be_made_is_not_compared() -> None:
    broken = stage_digest(Unreadable(), ["s"], [])
    assert broken["v"] == 0 and "cannot be read" in broken["error"]
    assert differences(broken, stage_digest({}, ["s"], [])) == []


# --- how replay compares ---------------------------------------------------------------------


def event(seq: int, kind: str, **payload: Any) -> Event:
    return Event("run", seq, NOW, kind, None, {"event": kind, **payload}, b"")


def report(kind: str, stage: int, text: str) -> dict[str, Any]:
    return {"event": kind, "stage": stage, "digest": stage_digest({}, [], [stream(text)])}


def test_the_check_stores_only_what_goes_beyond_the_journal() -> None:
    recorded = [
        event(1, "hello"),
        event(2, "stage_started", stage=0),
        event(3, "stage_ready", **report("stage_ready", 0, "item 0")),
        event(5, "stage_finished", **report("stage_finished", 0, "item 0")),
    ]
    check = DigestCheck("run", recorded)
    assert [e.seq for e in check.expected] == [3, 5]
    # copies of recorded reports are compared, not stored again
    assert check.filter({"event": "stage_started", "stage": 0}) is None
    assert check.filter(report("stage_ready", 0, "item 0")) is None
    assert check.filter(report("stage_finished", 0, "item 0")) is None
    # the journal ends here (the server died as stage 1 ran): the rest is new
    beyond = [{"event": "stage_started", "stage": 1}, report("stage_ready", 1, "label")]
    assert [check.filter(data) for data in beyond] == beyond
    check.finish()
    assert check.divergence is None


def test_from_the_first_mismatch_nothing_is_stored() -> None:
    recorded = [
        event(3, "stage_ready", **report("stage_ready", 0, "item 0")),
        event(5, "stage_finished", **report("stage_finished", 0, "item 0")),
        event(7, "stage_ready", **report("stage_ready", 1, "label item 0")),
    ]
    check = DigestCheck("run", recorded)
    assert check.filter(report("stage_ready", 0, "item 0")) is None
    # the Next applies to another item
    assert check.filter(report("stage_finished", 0, "item 1")) is None
    later = [
        {"event": "stage_started", "stage": 1},
        {"event": "collected", "stage": 1, "name": "label", "value": "item 1"},
        report("stage_ready", 1, "label item 1"),
        report("stage_ready", 2, "new"),
    ]
    assert [check.filter(data) for data in later] == [None] * 4
    assert check.divergence is not None
    assert (check.divergence.seq, check.divergence.event, check.divergence.stage) == (
        5, "stage_finished", 0
    )
    assert "Step 1 no longer shows what you saw" in check.divergence.sentence
    assert "'item 0" in check.divergence.differences[0]


def test_the_check_compares_the_order_of_stage_reports() -> None:
    check = DigestCheck("run", [event(2, "stage_ready", **report("stage_ready", 0, "a"))])
    assert check.filter(report("stage_failed", 0, "a")) is None
    assert check.divergence is not None
    assert check.divergence.differences == ["expected step 1 ready, found step 1 failed"]


def test_a_replay_that_does_not_get_as_far_as_the_journal_diverges() -> None:
    recorded = [event(2, "stage_ready", **report("stage_ready", 0, "a")),
                event(4, "stage_finished", **report("stage_finished", 0, "a"))]
    check = DigestCheck("run", recorded)
    assert check.filter(report("stage_ready", 0, "a")) is None
    check.finish()
    assert check.divergence is not None and check.divergence.seq == 4
    assert check.divergence.differences == ["expected step 1 finished (Next), found none"]


def test_an_old_journal_without_digests_is_not_compared() -> None:
    check = DigestCheck("run", [event(2, "stage_ready", stage=0), event(3, "finished")])
    assert check.expected == []
    ready = report("stage_ready", 0, "anything")
    assert check.filter(ready) == ready  # stored as the journal's first digest
    check.finish()
    assert check.divergence is None


# --- two kernels, as a replay ----------------------------------------------------------------


SEEDED = (
    "import random, time, datetime, numpy as np, ipywidgets as w\n"
    "items = [random.randint(0, 10**6) for _ in range(3)]\n"
    "print(items, np.random.rand(2), object())\n"
    "print(f'took {time.perf_counter() % 1:.5f} s at {datetime.datetime.now()}')\n"
    "pick = w.Dropdown(options=[str(i) for i in items], description=f'from {items[0]}')\n"
    "pick"
)


async def ready_digest(start_app: Any, app: Path) -> dict[str, Any]:
    fe = await start_app(app)
    await fe.execute_ok(configure(seed=11))
    await fe.execute_ok(BOOTSTRAP)
    ready = await fe.wait_for(lambda: fe.has_event("stage_ready", stage=0))
    digest: dict[str, Any] = ready["digest"]
    return digest


async def test_two_kernels_with_the_run_seed_report_the_same_digest(
    make_app: Any, start_app: Any
) -> None:
    app = make_app([stage(0, "Pick", [code(SEEDED)], waits_on=["pick"]),
                    stage(1, "End", [code("print(pick.value)")])])
    first = await ready_digest(start_app, app)
    second = await ready_digest(start_app, app)
    assert differences(first, second) == []
    assert first["seen"]["pick"].startswith("Dropdown 'from ")


async def test_state_outside_the_run_gives_another_digest(
    make_app: Any, start_app: Any, tmp_path: Path
) -> None:
    counter = tmp_path / "count.txt"
    source = (
        "import ipywidgets as w\nfrom pathlib import Path\n"
        f"c = Path({str(counter)!r})\n"
        "n = int(c.read_text()) if c.exists() else 0\nc.write_text(str(n + 1))\n"
        "s = w.IntSlider(description=f'item {n}')\ns"
    )
    app = make_app([stage(0, "Pick", [code(source)], waits_on=["s"]),
                    stage(1, "End", [code("print(s.value)")])])
    first = await ready_digest(start_app, app)
    second = await ready_digest(start_app, app)
    lines = differences(first, second)
    assert len(lines) == 2 and "'item 0'" in lines[0] and "'item 1'" in lines[0]
    assert lines[1].startswith("output text:")
