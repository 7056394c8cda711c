"""The hand-over between stages on a real server: what is frozen, the `%blockrun` gate, and a
failure that only means the person has not acted yet.

App directories are written by hand with the `waits_on` and `gate` the compiler gives these
notebooks. What a person clicks runs in headless Chromium; what the server stores is read from
its SQLite file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.faults.harness import act, click_next, journal
from tests.runner.conftest import code, stage, write_app
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, kill_hard, start_server

TIMEOUT = 60.0
TIMEOUT_MS = 60_000

REBOUND = [
    stage(0, "First", [
        code("from ipywidgets import IntSlider\ns = IntSlider(description='first')\ns"),
    ], waits_on=["s"]),
    stage(1, "Second", [
        code("print('first was', s.value)\ns = IntSlider(description='second')\ns"),
    ], waits_on=["s"]),
    stage(2, "End", [code("print('second was', s.value)")]),
]

GATED = [
    replace(stage(0, "Your name", [
        code(
            "from ipywidgets import Text, Button, VBox, IntSlider\n"
            "t = Text(description='name')\n"
            "go = Button(description='Run', disabled=True)\n"
            "def check(change):\n"
            "    go.disabled = len(change['new']) < 4\n"
            "t.observe(check, 'value')\n"
            "VBox([t, go])"
        ),
    ], waits_on=["t"]), gate="go"),
    # `%blockrun go` ended the first stage; the compiler leaves the magic out of the app.
    stage(1, "Greeting", [
        code("print('hello', t.value)\nn = IntSlider(description='n')\nn"),
    ], waits_on=["n"]),
    stage(2, "End", [code("print('n is', n.value)")]),
]

EMPTY_SELECTION = [
    stage(0, "Pick", [
        code(
            "import ipywidgets as w\n"
            "picked = w.SelectMultiple(options=[1, 2, 3], description='pick')\n"
            "picked"
        ),
    ], waits_on=["picked"]),
    stage(1, "Sum", [
        code("from functools import reduce\n"
             "print('sum', reduce(lambda x, y: x + y, picked.value))"),
    ]),
]

SEVERAL = [
    stage(0, "Choose", [
        code(
            "import ipywidgets as w\n"
            "a = w.IntSlider(description='a')\n"
            "b = w.Dropdown(options=['x', 'y'], description='b')\n"
            "sizes = {'w': w.IntText(description='width'), 'h': w.IntText(description='height')}\n"
            "labels = []\n"
            "add = w.Button(description='Add')\n"
            "add.on_click(lambda _: labels.append(b.value))\n"
            "display(a, b, *sizes.values(), add)"
        ),
    ], waits_on=["a", "b", "sizes", ("labels", "callback")]),
    stage(1, "Use", [code("print('use', a.value, b.value, labels, sizes['h'].value)")]),
]


def slider(page: Page, label: str) -> Locator:
    """The IntSlider whose label is `label`."""
    return page.locator(".widget-slider").filter(
        has=page.locator("label.widget-label", has_text=label)
    )


def move(widget: Locator, steps: int, readout: str) -> None:
    """Press the right arrow on a slider's handle `steps` times and wait for its readout."""
    handle = widget.locator(".noUi-handle")
    handle.focus()
    for _ in range(steps):
        handle.press("ArrowRight")
    expect(widget.locator(".widget-readout")).to_have_text(readout)


def expect_frozen(widget: Locator, frozen: bool) -> None:
    """A slider's page state: disabled (the noUiSlider and its readout) or editable."""
    target = widget.locator(".noUi-target")
    readout = widget.locator(".widget-readout")
    if frozen:
        expect(target).to_have_attribute("disabled", "true")
        expect(readout).to_have_attribute("contenteditable", "false")
    else:
        expect(target).not_to_have_attribute("disabled", "true")
        expect(readout).to_have_attribute("contenteditable", "true")


def test_a_later_stage_rebinding_a_name_leaves_its_new_widget_editable(
    tmp_path: Path, serve: Callable[..., ServerProcess], page: Page
) -> None:
    server = serve(write_app(tmp_path / "app", REBOUND), "--pool-size", "0")
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.base_url)
    page.get_by_role("button", name="Start").click()  # starting a run is a POST
    first = slider(page, "first")
    move(first, 3, "3")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("first was 3")).to_be_visible()
    second = slider(page, "second")
    expect_frozen(first, True)
    expect_frozen(second, False)
    move(second, 2, "2")  # the person can use it
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("second was 2")).to_be_visible()
    expect_frozen(second, True)
    expect(first.locator(".widget-readout")).to_have_text("3")


def test_the_blockrun_button_is_the_gate_and_survives_a_restart(
    tmp_path: Path, page: Page
) -> None:
    app = write_app(tmp_path / "app", GATED)
    server = start_server(app, "--pool-size", "0")
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(server.base_url)
        page.get_by_role("button", name="Start").click()  # starting a run is a POST
        name = page.locator(".widget-text input")
        run = page.get_by_role("button", name="Run")
        next_button = page.get_by_role("button", name="Next")
        expect(run).to_be_disabled()
        expect(next_button).to_be_disabled()
        expect(page.get_by_text("then press Run")).to_be_visible()
        name.fill("abcd")  # valid: the author's validator enables Run, and Next with it
        expect(run).to_be_enabled()
        expect(next_button).to_be_enabled()
        name.fill("abc")  # invalid again: Next cannot continue
        expect(run).to_be_disabled()
        expect(next_button).to_be_disabled()
        next_button.click(force=True)  # a click on the disabled button does nothing
        run.click(force=True)
        name.fill("anna")
        expect(run).to_be_enabled()
        run.click()
        expect(page.get_by_text("hello anna")).to_be_visible()
        expect(page.get_by_text("hello abc")).to_have_count(0)
        expect(page.locator('[aria-current="step"]')).to_have_text("● Greeting")
        expect(name).to_be_disabled()
        expect(run).to_be_disabled()
        run_url = page.url
        run_id = run_url.rsplit("/", 1)[-1]

        kill_hard(server)  # the server and every kernel, as a crash would
        server = start_server(app, "--pool-size", "0", port=server.port)
        page.goto(run_url)  # rebuilt by replaying the journal, the Run click included
        expect(page.get_by_text("hello anna")).to_be_visible()
        expect(page.locator('[aria-current="step"]')).to_have_text("● Greeting")
        expect(slider(page, "n")).to_be_visible()
        expect(page.locator(".widget-text input")).to_have_value("anna")
        starts = [e["payload"]["stage"] for e in journal(app, run_id, ("stage_started",))]
        # the replay re-ran both stages (the page shows their outputs) and compared its reports
        # with these; it stores no second copy of what it reproduced
        assert starts == [0, 1]
        clicks = [e for e in journal(app, run_id, ("comm_msg",))
                  if e["payload"].get("method") == "custom"]
        assert len(clicks) == 1  # the browser sent no click while Run and Next were disabled
        move(slider(page, "n"), 1, "1")
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_text("n is 1")).to_be_visible()
    finally:
        server.stop()


def test_a_step_that_fails_on_untouched_inputs_asks_for_them(
    tmp_path: Path, serve: Callable[..., ServerProcess], page: Page
) -> None:
    server = serve(write_app(tmp_path / "app", EMPTY_SELECTION), "--pool-size", "0")
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.base_url)
    page.get_by_role("button", name="Start").click()  # starting a run is a POST
    select = page.locator(".widget-select-multiple select")
    select.wait_for()
    page.get_by_role("button", name="Next").click()
    expect(page.locator(".freezer-error")).to_have_text("This step needs your input above.")
    expect(page.get_by_text("Make your choices, then press Next.")).to_be_visible()
    expect(page.get_by_text("failed")).to_have_count(0)
    expect(page.get_by_text("Fix the inputs")).to_have_count(0)
    select.select_option(["1", "2"])
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("sum 3")).to_be_visible()
    expect(page.locator(".freezer-error")).to_have_count(0)


async def test_every_name_the_next_stage_reads_is_frozen_and_stored(
    tmp_path: Path, open_store: Callable[..., Any]
) -> None:
    app = write_app(tmp_path / "app", SEVERAL)
    server = await asyncio.to_thread(start_server, app, "--pool-size", "0")
    try:
        async with Person(server.base_url) as person:
            page = await person.open("")
            await page.wait_for(lambda p: bool(p.find_all("ButtonModel", "Add")), TIMEOUT)
            await act(page, await page.set_value(page.find("IntSliderModel", "a"), 4))
            await act(page, await page.set_state(page.find("DropdownModel", "b"), {"index": 1}))
            await act(page, await page.set_value(page.find("IntTextModel", "height"), 9))
            await act(page, await page.click(page.find("ButtonModel", "Add")))
            await click_next(page)
            await page.wait_for(
                lambda p: any("use 4 y ['y'] 9" in p.output_text(m)
                              for m in p.find_all("OutputModel")),
                TIMEOUT, "stage 1 output",
            )
            inputs = [("IntSliderModel", "a"), ("DropdownModel", "b"),
                      ("IntTextModel", "width"), ("IntTextModel", "height")]
            assert {d: page.widgets[page.find(m, d)]["disabled"] for m, d in inputs} == {
                d: True for _, d in inputs
            }
            run_id = page.page.url.rsplit("/", 1)[-1]
        store = await open_store(app)

        async def snapshot_stored() -> bool:
            rows = await store.stages(run_id)
            return bool(rows) and rows[0].snapshot is not None

        await eventually(snapshot_stored)
        assert (await store.stages(run_id))[0].snapshot == {
            "a": 4, "b": "y", "sizes": {"w": 0, "h": 9}, "labels": ["y"],
        }
    finally:
        server.stop()
