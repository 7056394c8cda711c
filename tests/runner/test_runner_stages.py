"""The runner in real kernels: stage 0 after show(), Next, snapshots, failures and retries."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from runner.conftest import BOOTSTRAP, code, configure, md, stage
from runtime.kernel.digest import DIGEST_VERSION
from tests.support.frontend import Frontend

StartApp = Callable[[Path], Awaitable[Frontend]]
MakeApp = Callable[..., Path]



async def test_stage0_runs_after_the_bootstrap_cell_replied(
    make_app: MakeApp, start_app: StartApp
) -> None:
    app = make_app([
        stage(0, "Start", [
            md("# Start"),
            code("print('stage zero begins')"),
            code("gate = open('gate').read()\nprint('gate said', gate)"),
        ]),
    ])
    os.mkfifo(app / "gate")
    fe = await start_app(app)
    await fe.execute_ok(configure())
    reply = await fe.execute_ok(BOOTSTRAP)
    # Stage 0 blocks on the gate: a reply at all proves it did not run inside the cell.
    assert "gate said" not in fe.stage_text(0)
    bootstrap_id = reply["parent_header"]["msg_id"]
    await fe.wait_for(lambda: fe.has_event("stage_started", stage=0))
    idle_at = next(
        i for i, m in enumerate(fe.iopub)
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
        and m["parent_header"].get("msg_id") == bootstrap_id
    )
    started_at = next(
        i for i, m in enumerate(fe.iopub)
        if m["msg_type"] == "comm_msg" and m["content"]["data"].get("event") == "stage_started"
    )
    assert idle_at < started_at
    # The root widget was displayed by the bootstrap cell itself, before stage 0 ran.
    shown = [m for m in fe.iopub_outputs(bootstrap_id) if m["msg_type"] == "display_data"]
    assert len(shown) == 1

    def open_gate() -> None:
        with open(app / "gate", "w") as fifo:
            fifo.write("go")

    await asyncio.wait_for(asyncio.to_thread(open_gate), 30)
    await fe.wait_for(lambda: fe.has_event("finished"))
    text = fe.stage_text(0)
    assert "<h1>Start</h1>" in text
    assert text.index("stage zero begins") < text.index("gate said go")
    assert fe.event_kinds() == ["hello", "stage_started", "stage_ready", "finished"]
    assert fe.events[0] == {"event": "hello", "run_id": "run-1", "stages": 1}
    assert fe.next_button() is None  # hidden after the last stage


async def test_next_runs_the_next_stage_on_the_new_values(
    make_app: MakeApp, start_app: StartApp
) -> None:
    app = make_app([
        stage(0, "Pick", [
            code(
                "import datetime, ipywidgets as w\n"
                "pick = w.Dropdown(options=['a', 'b', 'c'], value='a', description='Pick')\n"
                "boxes = [w.Checkbox(description=f'box{i}') for i in range(2)]\n"
                "labels = []\n"
                "add = w.Button(description='Add')\n"
                "add.on_click(lambda _: labels.append('x'))\n"
                "when = datetime.date(2024, 1, 2)\n"
                "display(pick, *boxes, add)"
            ),
        ], waits_on=["pick", "boxes", ("labels", "callback"), ("when", "callback")]),
        stage(1, "Use", [code("print('picked', pick.value.upper(), len(labels))")],
              waits_on=[("labels", "callback")]),
        stage(2, "End", [code("print('the end')")]),
    ])
    fe = await start_app(app)
    await fe.execute_ok(configure())
    await fe.execute_ok(BOOTSTRAP)
    await fe.wait_for(lambda: fe.has_event("stage_ready", stage=0))
    assert "not saved" not in fe.status()
    pick = fe.one("DropdownModel", "Pick")
    fe.set_state(pick, index=2)
    fe.set_state(fe.one("CheckboxModel", "box1"), value=True)
    fe.click(fe.one("ButtonModel", "Add"))
    button = fe.next_button()
    assert button is not None
    fe.click(button)
    fe.click(button)  # a double click: the second one must not run stage 2
    await fe.wait_for(lambda: fe.has_event("stage_ready", stage=1))
    assert "picked C 1" in fe.stage_text(1)
    finished = fe.has_event("stage_finished", stage=0)
    assert finished is not None and finished.pop("digest")["v"] == DIGEST_VERSION
    assert finished == {
        "event": "stage_finished", "stage": 0,
        "snapshot": {
            "pick": "c", "boxes": [False, True], "labels": ["x"],
            "when": "datetime.date(2024, 1, 2)",
        },
    }
    # The inputs stage 1 used are frozen; the clicked button was disabled, a new one offered.
    assert fe.models[pick]["disabled"] is True
    assert fe.models[button]["disabled"] is True
    await fe.execute_idle("1")  # the stale second click has been handled by now
    assert fe.event_kinds().count("stage_started") == 2
    assert fe.next_button() not in (None, button)
    fe.click(fe.next_button() or "")
    await fe.wait_for(lambda: fe.has_event("finished"))
    assert fe.event_kinds() == [
        "hello", "stage_started", "stage_ready", "stage_finished", "stage_started",
        "stage_ready", "stage_finished", "stage_started", "stage_ready", "finished",
    ]
    finished = fe.has_event("stage_finished", stage=1)
    assert finished is not None and finished.pop("digest")["v"] == DIGEST_VERSION
    assert finished == {
        "event": "stage_finished", "stage": 1, "snapshot": {"labels": ["x"]},
    }
    assert fe.next_button() is None
    assert "the end" in fe.stage_text(2)


async def test_failed_stage_keeps_inputs_and_next_retries(
    make_app: MakeApp, start_app: StartApp
) -> None:
    app = make_app([
        stage(0, "Count", [
            code("import ipywidgets as w\nn = w.IntText(value=0, description='N')\nn"),
        ], waits_on=["n"]),
        stage(1, "Check", [
            code("print('checking')"),
            code("assert n.value > 0, 'N must be positive'\nprint('ok', n.value)"),
        ]),
    ])
    fe = await start_app(app)
    await fe.execute_ok(configure(tb=False))
    await fe.execute_ok(BOOTSTRAP)
    await fe.wait_for(lambda: fe.has_event("stage_ready", stage=0))
    fe.set_state(fe.one("IntTextModel", "N"), value=-3)  # acted, wrongly: a real failure
    fe.click(fe.next_button() or "")
    failed = await fe.wait_for(lambda: fe.has_event("stage_failed", stage=1))
    assert failed["error"] == "AssertionError: N must be positive"
    assert "assert n.value > 0" in failed["traceback"]
    assert "\x1b[" not in failed["traceback"]
    text = fe.stage_text(1)
    assert "This step failed: AssertionError: N must be positive" in text
    assert all(o["output_type"] != "error" for o in fe.stage_outputs(1))  # no traceback shown
    assert not [m for m in fe.iopub if m["msg_type"] == "error"]  # kernel's own error suppressed
    assert "failed" in fe.status()
    n = fe.one("IntTextModel", "N")
    assert fe.models[n]["disabled"] is False
    retry = fe.next_button()
    assert retry is not None
    fe.set_state(n, value=5)
    fe.click(retry)
    await fe.wait_for(lambda: fe.has_event("stage_ready", stage=1))
    assert fe.event_kinds()[-3:] == ["stage_finished", "stage_started", "stage_ready"]
    assert fe.events[-3]["snapshot"] == {"n": 5}
    text = fe.stage_text(1)
    assert "ok 5" in text and "failed" not in text
    assert text.count("checking") == 1  # re-run from the first cell, into a cleared output
    assert fe.models[n]["disabled"] is True


async def test_timeout_stops_a_stage_and_tracebacks_show_when_asked(
    make_app: MakeApp, start_app: StartApp
) -> None:
    app = make_app([
        stage(0, "Slow", [
            code("import time\nprint('working')\n"
                 "while not globals().get('fast'):\n    time.sleep(0.05)"),
        ]),
    ])
    fe = await start_app(app)
    await fe.execute_ok(configure(tb=True, timeout=0.5))
    await fe.execute_ok(BOOTSTRAP)
    failed = await fe.wait_for(lambda: fe.has_event("stage_failed", stage=0))
    assert failed["error"].startswith("StageTimeout: the step ran longer than 0.5 s")
    text = fe.stage_text(0)
    assert "took longer than 0.5 seconds" in text
    assert "working" in text
    errors = [o for o in fe.stage_outputs(0) if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "KeyboardInterrupt"
    # The kernel is healthy afterwards and the interrupt did not leak out of the stage.
    assert await fe.execute_text("print('still here')") == "still here\n"
    # Next re-runs a failed stage 0 (nothing to finish before it).
    await fe.execute_idle("fast = True")
    fe.click(fe.next_button() or "")
    await fe.wait_for(lambda: fe.has_event("finished"))
    assert fe.event_kinds() == [
        "hello", "stage_started", "stage_failed", "stage_started", "stage_ready", "finished",
    ]
    assert "took longer" not in fe.stage_text(0)


async def test_show_twice_redisplays_without_running_again(
    make_app: MakeApp, start_app: StartApp
) -> None:
    app = make_app([
        stage(0, "Warm", [
            md("# Warm"),
            code("warm_runs = globals().get('warm_runs', 0) + 1\nprint('warm', warm_runs)",
                 "freeze:warm"),
            code("runs = globals().get('runs', 0) + 1\nprint('runs', runs)"),
        ]),
    ])
    fe = await start_app(app)
    prepared = await fe.execute_idle("from runtime.kernel import runner\nrunner.prepare()")
    assert fe.iopub_outputs(prepared["parent_header"]["msg_id"]) == []  # prepare() shows nothing
    assert fe.root() is not None and "not saved" in fe.status()  # built, ready to show
    await fe.execute_idle(configure())
    assert "not saved" not in fe.status()
    first = await fe.execute_idle(BOOTSTRAP)
    await fe.wait_for(lambda: fe.has_event("finished"))
    second = await fe.execute_idle(BOOTSTRAP)
    assert await fe.execute_text("print(warm_runs, runs)") == "1 1\n"
    views = [
        [m["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
         for m in fe.iopub_outputs(r["parent_header"]["msg_id"])]
        for r in (first, second)
    ]
    assert views[0] == views[1] and len(views[0]) == 1
    assert fe.event_kinds().count("stage_started") == 1
    text = fe.stage_text(0)
    assert text.count("warm 1") == 1 and "runs 1" in text
    assert text.index("<h1>Warm</h1>") < text.index("warm 1") < text.index("runs 1")


async def test_prepare_runs_ahead_what_the_manifest_says_not_what_the_tags_say(
    make_app: MakeApp, start_app: StartApp
) -> None:
    app = make_app([
        replace(stage(0, "Start", [
            code("ahead = globals().get('ahead', 0) + 1\nprint('ahead', ahead)"),
            code("tagged = globals().get('tagged', 0) + 1", "freeze:warm"),
            code("print('stage', ahead, tagged)"),
        ]), warm_cells=1),
    ])
    fe = await start_app(app)
    await fe.execute_idle("from runtime.kernel import runner\nrunner.prepare()")
    assert await fe.execute_text("print(ahead, 'tagged' in globals())") == "1 False\n"
    await fe.execute_idle(configure())
    await fe.execute_idle(BOOTSTRAP)
    await fe.wait_for(lambda: fe.has_event("finished"))
    text = fe.stage_text(0)
    assert text.count("ahead 1") == 1 and "stage 1 1" in text
