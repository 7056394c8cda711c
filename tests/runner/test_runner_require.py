"""`require(check, reason)` in real kernels: Next waits for the person, with the reason shown;
and a last stage with live inputs waits for Finish."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from runner.conftest import BOOTSTRAP, code, configure, stage
from tests.support.frontend import Frontend

StartApp = Callable[[Path], Awaitable[Frontend]]
MakeApp = Callable[..., Path]

TICK = (
    "from ipywidgets import Checkbox, Text\n"
    "from runtime.kernel import require\n"
    "agree = Checkbox(description='agree')\n"
    "name = Text(description='name')\n"
    "require(lambda: agree.value, 'Tick the box first.')\n"
    "require(lambda: name.value[0].isupper(), 'Start the name with a capital.')\n"
    "display(agree, name)"
)


async def started(make_app: MakeApp, start_app: StartApp, stages: list, saved: bool) -> Frontend:
    fe = await start_app(make_app(stages))
    if saved:
        await fe.execute_ok(configure())
    await fe.execute_ok(BOOTSTRAP)
    await fe.wait_for(lambda: fe.has_event("stage_ready") or "ready" in fe.status().lower()
                      or fe.next_button())
    return fe


def enabled(fe: Frontend) -> bool:
    button = fe.next_button()
    return button is not None and fe.models[button]["disabled"] is False


async def test_require_outside_an_app_does_nothing(make_app: MakeApp, start_app: StartApp) -> None:
    fe = await start_app(make_app([stage(0, "Only", [code("pass")])]))
    text = await fe.execute_text(
        "from runtime.kernel import require\n"
        "print(require(lambda: False, 'never met'), require(lambda: 1 / 0, 'raises'))"
    )
    assert text == "None None\n"


async def test_next_waits_for_every_requirement_in_an_unsaved_app(
    make_app: MakeApp, start_app: StartApp
) -> None:
    # No configure(): the runner as under plain Voila, nothing saved.
    fe = await started(make_app, start_app, [
        stage(0, "Agree", [code(TICK)], waits_on=["agree", "name"]),
        stage(1, "Thanks", [code("print('thanks', name.value)")]),
    ], saved=False)
    await fe.wait_for(lambda: "Tick the box first." in fe.status())
    assert not enabled(fe) and "Progress is not saved" in fe.status()
    fe.click(fe.next_button() or "")  # a message still reaches a disabled button: ignored
    fe.set_state(fe.one("CheckboxModel", "agree"), value=True)
    # The second check raises on the empty name: not met, its reason shown.
    await fe.wait_for(lambda: "Start the name with a capital." in fe.status())
    assert not enabled(fe)
    fe.set_state(fe.one("TextModel", "name"), value="anna")
    await fe.execute_idle("1")
    assert not enabled(fe) and "capital" in fe.status()
    fe.set_state(fe.one("TextModel", "name"), value="Anna")
    await fe.wait_for(lambda: enabled(fe) and "press Next" in fe.status())
    fe.click(fe.next_button() or "")
    await fe.wait_for(lambda: "thanks Anna" in fe.stage_text(1))
    assert fe.event_kinds() == []  # unsaved: no comm to the server


async def test_requirements_are_rechecked_after_callbacks_and_dropped_at_next(
    make_app: MakeApp, start_app: StartApp
) -> None:
    clicker = (
        "from ipywidgets import Button\n"
        "from runtime.kernel import require\n"
        "done = []\n"
        "more = Button(description='More')\n"
        "more.on_click(lambda b: done.append(1))  # a callback that changes no widget value\n"
        "require(lambda: len(done) >= 2, 'Press More twice.')\n"
        "more"
    )
    fe = await started(make_app, start_app, [
        stage(0, "Press", [code(clicker)], waits_on=[("done", "callback")]),
        stage(1, "Again", [code("done.clear()\nprint('cleared')")]),
        stage(2, "End", [code("print('end')")]),
    ], saved=True)
    await fe.wait_for(lambda: "Press More twice." in fe.status())
    more = fe.one("ButtonModel", "More")
    fe.click(more)
    await fe.execute_idle("1")
    assert not enabled(fe)
    fe.click(more)
    await fe.wait_for(lambda: enabled(fe))
    fe.click(fe.next_button() or "")
    # Stage 1 empties `done`: the requirement of stage 0 no longer applies.
    await fe.wait_for(lambda: fe.has_event("stage_ready", stage=1))
    await fe.wait_for(lambda: enabled(fe) and "Press More" not in fe.status())


async def test_a_gate_and_a_requirement_must_both_allow(
    make_app: MakeApp, start_app: StartApp
) -> None:
    gated = (
        "from ipywidgets import Text, Button, Checkbox, VBox\n"
        "from runtime.kernel import require\n"
        "t = Text(description='name')\n"
        "ok = Checkbox(description='ok')\n"
        "go = Button(description='Run', disabled=True)\n"
        "t.observe(lambda change: setattr(go, 'disabled', not change['new']), 'value')\n"
        "require(lambda: ok.value, 'Tick ok first.')\n"
        "VBox([t, ok, go])"
    )
    fe = await started(make_app, start_app, [
        replace(stage(0, "Name", [code(gated)], waits_on=["t", "ok"]), gate="go"),
        stage(1, "Greet", [code("print('hello', t.value)")]),
    ], saved=True)
    await fe.wait_for(lambda: "Tick ok first." in fe.status())
    t, ok, go = (fe.one("TextModel", "name"), fe.one("CheckboxModel", "ok"),
                 fe.one("ButtonModel", "Run"))
    fe.set_state(t, value="anna")  # the gate opens, the requirement still holds Next
    await fe.wait_for(lambda: fe.models[go]["disabled"] is False)
    await fe.execute_idle("1")
    assert not enabled(fe)
    fe.click(go)  # the gate's click does not get past the requirement either
    await fe.execute_idle("1")
    assert not fe.has_event("stage_finished")
    fe.set_state(ok, value=True)
    await fe.wait_for(lambda: enabled(fe))
    fe.set_state(t, value="")  # the gate closes again
    await fe.wait_for(lambda: not enabled(fe))
    fe.set_state(t, value="bo")
    await fe.wait_for(lambda: enabled(fe))
    fe.click(go)
    await fe.wait_for(lambda: "hello bo" in fe.stage_text(1))


async def test_a_last_stage_with_an_input_finishes_when_finish_is_pressed(
    make_app: MakeApp, start_app: StartApp
) -> None:
    fe = await started(make_app, start_app, [
        stage(0, "Start", [code("print('start')")]),
        stage(1, "Comment", [code(
            "from ipywidgets import Textarea\n"
            "note = Textarea(description='note')\n"
            "note"
        )]),
    ], saved=True)
    fe.click(fe.next_button() or "")
    await fe.wait_for(lambda: fe.has_event("stage_ready", stage=1))
    await fe.execute_idle("1")
    finish = fe.next_button() or ""
    assert fe.models[finish]["description"] == "Finish" and enabled(fe)
    assert "press Finish" in fe.status()
    assert not fe.has_event("finished")
    fe.set_state(fe.one("TextareaModel", "note"), value="all good")
    fe.click(finish)
    await fe.wait_for(lambda: fe.has_event("finished"))
    assert fe.event_kinds()[-2:] == ["stage_finished", "finished"]
    assert fe.has_event("stage_finished", stage=1)["snapshot"] == {"note": "all good"}
    assert fe.status() == "Done: your work is saved."
    assert fe.next_button() is None
    assert fe.models[fe.one("TextareaModel", "note")]["disabled"] is True
    stepper = fe.models[fe.ref((fe.root() or {})["children"][0])]["value"]
    assert stepper.count("✓") == 2 and "○" not in stepper and "●" not in stepper


async def test_requirements_are_rechecked_after_a_cell_the_kernel_runs(
    make_app: MakeApp, start_app: StartApp
) -> None:
    fe = await started(make_app, start_app, [
        stage(0, "Wait", [code(
            "from runtime.kernel import require\n"
            "flag = [False]\n"
            "require(lambda: flag[0], 'Waiting for the flag.')"
        )]),
        stage(1, "End", [code("print('end')")]),
    ], saved=True)
    await fe.wait_for(lambda: "Waiting for the flag." in fe.status())
    await fe.execute_idle("flag[0] = True  # as a person in JupyterLab would")
    await fe.wait_for(lambda: enabled(fe) and "press Next" in fe.status())
