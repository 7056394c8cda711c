"""The hand-over between stages in real kernels: which objects are frozen, the author's
`%blockrun` gate, and a failure that only means the person has not acted yet."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from runner.conftest import BOOTSTRAP, code, configure, stage
from runtime.manifest import Stage
from tests.support.frontend import Frontend

StartApp = Callable[[Path], Awaitable[Frontend]]
MakeApp = Callable[..., Path]
VIEW = "application/vnd.jupyter.widget-view+json"


async def started(make_app: MakeApp, start_app: StartApp, stages: list[Stage]) -> Frontend:
    fe = await start_app(make_app(stages))
    await fe.execute_ok(configure())
    await fe.execute_ok(BOOTSTRAP)
    await fe.wait_for(lambda: fe.has_event("stage_ready", stage=0))
    return fe


async def press_next(fe: Frontend, stage_index: int, event: str = "stage_ready") -> None:
    fe.click(fe.next_button() or "")
    await fe.wait_for(lambda: fe.has_event(event, stage=stage_index))


async def test_a_name_rebound_by_the_next_stage_freezes_the_old_widget_not_the_new(
    make_app: MakeApp, start_app: StartApp
) -> None:
    fe = await started(make_app, start_app, [
        stage(0, "First", [
            code("from ipywidgets import IntSlider\ns = IntSlider(description='first')\ns"),
        ], waits_on=["s"]),
        stage(1, "Second", [
            code("print('first was', s.value)\ns = IntSlider(description='second')\ns"),
        ], waits_on=["s"]),
        stage(2, "End", [code("print('second was', s.value)")]),
    ])
    first = fe.one("IntSliderModel", "first")
    fe.set_state(first, value=3)
    await press_next(fe, 1)
    second = fe.one("IntSliderModel", "second")
    assert "first was 3" in fe.stage_text(1)
    assert fe.models[first]["disabled"] is True
    assert fe.models[second]["disabled"] is False  # the person's next input
    fe.set_state(second, value=7)
    await press_next(fe, 2)
    assert "second was 7" in fe.stage_text(2)
    assert fe.models[second]["disabled"] is True
    snapshots = [e["snapshot"] for e in fe.events if e["event"] == "stage_finished"]
    assert snapshots == [{"s": 3}, {"s": 7}]


async def test_every_waited_on_name_is_snapshot_and_every_widget_in_it_frozen(
    make_app: MakeApp, start_app: StartApp
) -> None:
    fe = await started(make_app, start_app, [
        stage(0, "Choose", [
            code(
                "import ipywidgets as w\n"
                "a = w.Dropdown(options=['x', 'y'], description='a')\n"
                "b = w.IntSlider(description='b')\n"
                "boxes = [w.Checkbox(description=f'box{i}') for i in range(2)]\n"
                "form = {'size': w.IntText(description='size'),\n"
                "        'more': [w.Text(description='note'), [w.Checkbox(description='deep')]]}\n"
                "labels = []\n"
                "add = w.Button(description='Add')\n"
                "add.on_click(lambda _: labels.append('y'))\n"
                "display(a, b, *boxes, form['size'], *form['more'][:1], *form['more'][1], add)"
            ),
        ], waits_on=["a", "b", "boxes", "form", ("labels", "callback")]),
        stage(1, "Use", [code("print(a.value, b.value, len(labels), form['size'].value)")]),
    ])
    fe.set_state(fe.one("DropdownModel", "a"), index=1)
    fe.set_state(fe.one("IntSliderModel", "b"), value=9)
    fe.set_state(fe.one("CheckboxModel", "box1"), value=True)
    fe.set_state(fe.one("IntTextModel", "size"), value=4)
    fe.set_state(fe.one("TextModel", "note"), value="hi")
    fe.click(fe.one("ButtonModel", "Add"))
    await press_next(fe, 1)
    assert "y 9 1 4" in fe.stage_text(1)
    assert fe.has_event("stage_finished", stage=0)["snapshot"] == {
        "a": "y", "b": 9, "boxes": [False, True],
        "form": {"size": 4, "more": ["hi", [False]]}, "labels": ["y"],
    }
    frozen = [("DropdownModel", "a"), ("IntSliderModel", "b"), ("CheckboxModel", "box0"),
              ("CheckboxModel", "box1"), ("IntTextModel", "size"), ("TextModel", "note"),
              ("CheckboxModel", "deep")]
    assert {d: fe.models[fe.one(m, d)]["disabled"] for m, d in frozen} == {
        d: True for _, d in frozen
    }
    assert fe.models[fe.one("ButtonModel", "Add")]["disabled"] is False  # not waited on


GATED = (
    "from ipywidgets import Text, Button, VBox\n"
    "t = Text(description='name')\n"
    "go = Button(description='Run', disabled=True)\n"
    "clicks = []\n"
    "def on_go(button):\n"
    "    clicks.append(t.value)\n"
    "    button.disabled = True  # the author's guard against a second click\n"
    "go.on_click(on_go)\n"
    "def check(change):\n"
    "    go.disabled = len(change['new']) < 4\n"
    "t.observe(check, 'value')\n"
    "VBox([t, go])"
)


async def test_the_blockrun_button_gates_next_and_continues_the_run_once(
    make_app: MakeApp, start_app: StartApp
) -> None:
    fe = await started(make_app, start_app, [
        replace(stage(0, "Name", [code(GATED)], waits_on=["t"]), gate="go"),
        stage(1, "Greet", [code("print('hello', t.value, clicks)")]),
        stage(2, "End", [code("print('the end')")]),
    ])
    t, go = fe.one("TextModel", "name"), fe.one("ButtonModel", "Run")
    nxt = fe.next_button() or ""
    assert fe.models[nxt]["disabled"] is True
    assert "press Run" in fe.status()
    fe.click(nxt)  # a message can still reach a disabled button: it is ignored
    fe.click(go)
    fe.set_state(t, value="abc")
    await fe.execute_idle("1")
    assert fe.models[nxt]["disabled"] is True
    assert not fe.has_event("stage_finished")
    fe.set_state(t, value="abcd")
    await fe.wait_for(lambda: fe.models[nxt]["disabled"] is False)
    fe.set_state(t, value="ab")
    await fe.wait_for(lambda: fe.models[nxt]["disabled"] is True)
    fe.set_state(t, value="anna")
    await fe.wait_for(lambda: fe.models[nxt]["disabled"] is False)
    fe.click(go)
    fe.click(nxt)  # both at once: the run goes on once
    fe.click(go)
    await fe.wait_for(lambda: fe.has_event("stage_ready", stage=1))
    await fe.execute_idle("1")
    assert fe.event_kinds().count("stage_started") == 2
    assert fe.event_kinds().count("stage_finished") == 1
    assert fe.has_event("stage_finished")["snapshot"] == {"t": "anna"}
    # The author's handler ran before the stage (ipywidgets also passed it the message-level
    # click on the disabled button, which did not continue the run).
    assert "hello anna ['', 'anna']" in fe.stage_text(1)
    assert fe.models[t]["disabled"] is True and fe.models[go]["disabled"] is True


async def test_a_failure_on_untouched_inputs_asks_for_input(
    make_app: MakeApp, start_app: StartApp
) -> None:
    fe = await started(make_app, start_app, [
        stage(0, "Pick", [
            code(
                "import ipywidgets as w\n"
                "picked = w.SelectMultiple(options=[1, 2, 3], description='pick')\n"
                "notes = []\n"
                "note = w.Button(description='Note')\n"
                "note.on_click(lambda _: notes.append(1))\n"
                "display(picked, note)"
            ),
        ], waits_on=["picked", ("notes", "callback")]),
        stage(1, "Sum", [
            code("from functools import reduce\n"
                 "print('sum', reduce(lambda x, y: x + y, picked.value))"),
        ]),
    ])
    await press_next(fe, 1, "stage_failed")
    text = fe.stage_text(1)
    assert "This step needs your input above." in text
    assert "failed" not in text
    assert fe.status() == (
        "This step needs your input above. Make your choices, then press Next."
    )
    assert fe.has_event("stage_failed", stage=1)["error"].startswith("TypeError: reduce()")
    picked = fe.one("SelectMultipleModel", "pick")
    assert fe.models[picked]["disabled"] is False
    fe.set_state(picked, index=[0, 1])
    await press_next(fe, 1)
    assert "sum 3" in fe.stage_text(1) and "needs your input" not in fe.stage_text(1)


async def test_a_retry_reads_the_objects_of_the_boundary_not_what_the_failed_run_bound(
    make_app: MakeApp, start_app: StartApp
) -> None:
    fe = await started(make_app, start_app, [
        stage(0, "First", [
            code("from ipywidgets import IntSlider\n"
                 "s = IntSlider(value=5, min=-10, description='first')\ns"),
        ], waits_on=["s"]),
        stage(1, "Second", [
            code("print('first is', s.value)\nkept = s\n"
                 "s = IntSlider(description='second')\ns"),
            code("assert kept.value >= 0, 'first must not be negative'"),
        ], waits_on=["s"]),
        stage(2, "End", [code("print('second is', s.value)")]),
    ])
    first = fe.one("IntSliderModel", "first")
    fe.set_state(first, value=-2)
    await press_next(fe, 1, "stage_failed")
    assert "This step failed: AssertionError: first must not be negative" in fe.stage_text(1)
    assert fe.models[first]["disabled"] is False
    fe.set_state(first, value=4)
    await press_next(fe, 1)
    assert "first is 4" in fe.stage_text(1)
    finished = [e["snapshot"] for e in fe.events if e["event"] == "stage_finished"]
    assert finished == [{"s": -2}, {"s": 4}]
    assert fe.models[first]["disabled"] is True
    views = [o["data"][VIEW]["model_id"] for o in fe.stage_outputs(1) if VIEW in o.get("data", {})]
    assert len(views) == 1  # the retry's slider; the failed run's one is gone with its output
    shown = views[0]
    assert fe.models[shown]["description"] == "second"
    assert fe.models[shown]["disabled"] is False
    fe.set_state(shown, value=6)
    await press_next(fe, 2)
    assert "second is 6" in fe.stage_text(2)
