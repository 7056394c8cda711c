"""A run of 1,000 mixed actions is rebuilt exactly by a pipelined replay.

A person moves sliders, edits text, clicks buttons and changes dropdowns across three stages,
with Next clicks between them; a slider's callback writes into the notebook's own `Output`
widget (so the replay routes outputs of actions sent without waiting). The server and its
kernels are SIGKILLed and restarted; the reopened run must show exactly what the live page
showed (every widget's value and state, every output's text) with the stages and results
stored as the person left them, and the replay must have sent the actions without waiting
for each (the server's log says how many were in flight at most).
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
from pathlib import Path
from typing import Any

from tests.faults.harness import act, click_next, restart
from tests.server.conftest import write_app
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, kill_hard, start_server
from tests.support.session import PageSession

TIMEOUT = 120.0
ACTIONS = 1000
ARGS = ("--pool-size", "0", "--flood-rate", "0")
"""The live run sends its 1,000 actions as fast as the kernel takes them, faster than the flood
limit lets a page (200 a second): the limit is not what this file tests."""


def inputs(stage: int) -> str:
    """Stage `stage`'s slider, text, dropdown and button; the button's clicks are counted."""
    return (
        f"a{stage} = widgets.IntSlider(value=0, min=0, max=1000, description='a{stage}')\n"
        f"t{stage} = widgets.Text(value='', description='t{stage}')\n"
        f"d{stage} = widgets.Dropdown(options=['red', 'green', 'blue'], description='d{stage}')\n"
        f"b{stage} = widgets.Button(description='add{stage}')\n"
        f"n{stage} = widgets.Label(value='clicks=0', description='n{stage}')\n"
        f"def on_click{stage}(_):\n"
        f"    clicks.append(f'{{a{stage}.value}}/{{t{stage}.value}}/{{d{stage}.value}}')\n"
        f"    n{stage}.value = f'clicks={{len(clicks)}} last={{clicks[-1]}}'\n"
        f"b{stage}.on_click(on_click{stage})\n"
    )


STAGES = (
    (
        "First",
        "import ipywidgets as widgets\n"
        "clicks = []\n"
        + inputs(0)
        + "out = widgets.Output()\n"
        "def show(change):\n"
        "    with out:\n"
        "        out.clear_output(wait=True)\n"
        "        print(f'a0={a0.value} t0={t0.value!r} d0={d0.value}')\n"
        "a0.observe(show, 'value')\n"
        "widgets.VBox([a0, t0, d0, b0, n0, out])",
        ("a0", "t0", "d0"),
    ),
    (
        "Second",
        "print(f'first: {a0.value} {t0.value!r} {d0.value} clicks={len(clicks)}')\n"
        + inputs(1)
        + "widgets.VBox([a1, t1, d1, b1, n1])",
        ("a1", "t1", "d1"),
    ),
    (
        "Third",
        "summary = f'{a1.value} {t1.value!r} {d1.value} clicks={len(clicks)}'\n"
        "print('second:', summary)\n"
        + inputs(2)
        + "widgets.VBox([a2, t2, d2, b2, n2])",
        ("a2", "t2", "d2"),
    ),
)


async def act_randomly(page: PageSession, stage: int, rng: random.Random) -> None:
    """One action on stage `stage`'s inputs, acknowledged by the kernel."""
    kind = rng.choice(("slider", "slider", "text", "dropdown", "button"))
    if kind == "slider":
        model = page.find("IntSliderModel", f"a{stage}")
        sent = await page.set_value(model, rng.randrange(1001))
    elif kind == "text":
        model = page.find("TextModel", f"t{stage}")
        sent = await page.set_value(model, f"{rng.choice('xyz')}{rng.randrange(100)}")
    elif kind == "dropdown":
        model = page.find("DropdownModel", f"d{stage}")
        sent = await page.set_state(model, {"index": rng.randrange(3)})
    else:
        sent = await page.click(page.find("ButtonModel", f"add{stage}"))
    await act(page, sent)


def seen(page: PageSession) -> list[str]:
    """What the page shows: each widget's state that a person sees, each output's text."""
    shown = []
    for model_id, state in page.widgets.items():
        name = state.get("_model_name")
        if name in (None, "LayoutModel") or str(name).endswith("StyleModel"):
            continue
        keys = ("description", "value", "index", "disabled", "_options_labels", "tooltip")
        fields = {key: state.get(key) for key in keys if key in state}
        if name == "OutputModel":
            fields["text"] = page.output_text(model_id)
        shown.append(f"{name} {fields}")
    return sorted(shown)


def stored(app_dir: Path, run_id: str) -> dict[str, Any]:
    """The run's stage and result rows, straight from the SQLite file."""
    with sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro", uri=True) as db:
        return {
            "stages": db.execute(
                'SELECT * FROM stages WHERE run_id = ? ORDER BY "index"', (run_id,)
            ).fetchall(),
            "results": db.execute(
                "SELECT * FROM results WHERE run_id = ? ORDER BY name", (run_id,)
            ).fetchall(),
            "status": db.execute("SELECT status, stage FROM runs WHERE id = ?",
                                 (run_id,)).fetchall(),
        }


def stage_two_stored(app_dir: Path, run_id: str) -> bool:
    rows = stored(app_dir, run_id)
    return (2, "ready") in [(row[1], row[2]) for row in rows["stages"]] and bool(rows["results"])


async def test_a_thousand_mixed_actions_replay_exactly(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", STAGES, collect={2: ("summary",)})
    server = await asyncio.to_thread(start_server, app, *ARGS)
    restarted: ServerProcess | None = None
    rng = random.Random(7)
    try:
        async with Person(server.base_url) as person:
            page = await person.open("new")
            await page.wait_for(lambda p: bool(p.find_all("IntSliderModel", "a0")), TIMEOUT)
            run_id = page.page.url.rsplit("/", 1)[-1]
            plan = (400, 400, ACTIONS - 2 - 800)  # 1,000 actions with the two Next clicks
            for stage, count in enumerate(plan):
                for _ in range(count):
                    await act_randomly(page, stage, rng)
                if stage < 2:
                    await click_next(page)
                    await page.wait_for(
                        lambda p, s=stage + 1: bool(p.find_all("IntSliderModel", f"a{s}")),
                        TIMEOUT, f"stage {stage + 1}",
                    )
            live = seen(page)
            assert any("a0=" in line for line in live)  # the Output widget shows the last a0
            await eventually(lambda: stage_two_stored(app, run_id), "stage 2 stored")
            before = stored(app, run_id)
            kill_hard(server)
            await page.close()

            restarted = await restart(server, app, *ARGS)
            again = await person.open(f"run/{run_id}")
            try:
                await again.wait_for(lambda p: seen(p) == live, TIMEOUT, "the live page")
            finally:
                assert seen(again) == live
            assert stored(app, run_id) == before
        log = restarted.log_path.read_text(errors="replace")
        replayed = re.search(r"replayed (\d+) actions, at most (\d+) in flight, settled (\d+)", log)
        assert replayed is not None, log[-2000:]
        actions, most, settles = map(int, replayed.groups())
        assert actions == ACTIONS
        assert most > 1  # sent without waiting for each
        # before the first action, at most twice per Next (the first action on a new stage
        # may be journaled before the stage's report), at the end: not once per action
        assert settles <= 6
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()


def dying_stages(flag: Path) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """A slider whose callback ends its kernel's process at 13 once `flag` exists."""
    return (
        (
            "Pick",
            "import os\n"
            "from pathlib import Path\n"
            "import ipywidgets as widgets\n"
            "x = widgets.IntSlider(value=0, min=0, max=100, description='x')\n"
            "def die(change):\n"
            f"    if change['new'] == 13 and Path({str(flag)!r}).exists():\n"
            "        os._exit(1)\n"
            "x.observe(die, 'value')\n"
            "x",
            ("x",),
        ),
        ("Done", "print('done', x.value)", ()),
    )


async def test_a_kernel_that_dies_mid_replay_ends_in_the_error_page(tmp_path: Path) -> None:
    flag = tmp_path / "outside" / "die"
    flag.parent.mkdir()
    app = write_app(tmp_path / "app", dying_stages(flag))
    args = (*ARGS, "--kernel-timeout", "10")
    server = await asyncio.to_thread(start_server, app, *args)
    restarted: ServerProcess | None = None
    try:
        async with Person(server.base_url) as person:
            page = await person.open("new")
            await page.wait_for(lambda p: bool(p.find_all("IntSliderModel", "x")), TIMEOUT)
            run_id = page.page.url.rsplit("/", 1)[-1]
            for value in range(1, 41):
                await act(page, await page.set_value(page.find("IntSliderModel", "x"), value))
            kill_hard(server)
            await page.close()

            flag.write_text("")  # the rebuilt kernel dies at the 13th of 40 actions
            restarted = await restart(server, app, *args)
            response = await asyncio.wait_for(person.fetch(f"run/{run_id}"), TIMEOUT)
            assert response.code == 500, response.body[:500]
            assert b"Try again in a moment" in response.body

            flag.unlink()  # the next attempt rebuilds the run in a new kernel
            again = await person.open(f"run/{run_id}")
            assert again.value(again.find("IntSliderModel", "x")) == 40
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
