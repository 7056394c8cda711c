"""Examples frozen and served: a person steps through them over the real protocol.

`freezer build` compiles the notebook, `freezer serve` serves it (real kernels, a real SQLite
file), and `tests.support.person.Person` acts as the browser: it sets widget values, clicks
buttons and presses Next between stages. The results the runner collected are then read from
the store. One server per example, started when its test runs and stopped right after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from example_runs import EXAMPLES

from freezer.commands import build_main
from runtime.store.store import Store
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_freezer
from tests.support.session import PageSession

TIMEOUT = 60.0
SERVER_START_TIMEOUT = 90.0


@contextmanager
def serve_example(name: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    """Build `examples/<name>.ipynb` and serve it with `freezer serve` (auth none, pool 1)."""
    app = tmp_path / name
    assert build_main([str(EXAMPLES / f"{name}.ipynb"), "-o", str(app)]) == 0
    server = start_freezer(app, cwd=app, name=name, extra_args=("--pool-size", "1"))
    try:
        yield server.wait_ready_sync(SERVER_START_TIMEOUT), app
    finally:
        server.stop()


async def finished_results(app: Path, run_id: str) -> dict[str, Any]:
    """The collected results of a run, once the server has recorded that it finished."""
    store = await Store.open(f"sqlite:///{app / 'freezer.db'}")
    try:
        async def finished() -> bool:
            run = await store.get_run(run_id)
            return run is not None and run.status == "finished"

        # The runner's events reach the store a moment after the page shows the last stage.
        await eventually(finished, f"run {run_id} to be recorded as finished", TIMEOUT)
        return {result.name: result.value for result in await store.results(run_id)}
    finally:
        await store.close()


def run_id_of(page: PageSession) -> str:
    return page.page.url.rsplit("/", 1)[-1]


def page_text(page: PageSession) -> str:
    return "\n".join(page.output_text(m) for m in page.find_all(model_name="OutputModel"))


async def act(page: PageSession, msg_id: str) -> None:
    """Wait until the kernel has handled one message from the page."""
    await page.wait_idle(msg_id, TIMEOUT)


def next_buttons(page: PageSession) -> list[str]:
    """The Next button on offer (each stage offers a fresh one; used ones are disabled)."""
    return page.find_all(model_name="ButtonModel", description="Next", disabled=False)


async def next_stage(page: PageSession) -> None:
    await page.wait_for(lambda p: len(next_buttons(p)) == 1, TIMEOUT, "a Next button")
    await act(page, await page.click(next_buttons(page)[0]))


async def wait_for_widget(page: PageSession, what: str, **state: Any) -> str:
    await page.wait_for(lambda p: len(p.find_all(**state)) == 1, TIMEOUT, what)
    return page.find(**state)


async def test_a_labeler_steps_through_the_labeling_app(tmp_path: Path) -> None:
    with serve_example("labeling", tmp_path) as (server, app):
        async with Person(server.base_url) as labeler:
            page = await labeler.open("")
            picker = await wait_for_widget(page, "the person picker of stage 1",
                                           model_name="ToggleButtonsModel", description="Person:")
            assert len(page.find_all(model_name="ImageModel")) == 6, "one portrait per person"
            await act(page, await page.set_state(picker, {"index": 2}))  # Alan
            await next_stage(page)

            slider = await wait_for_widget(page, "the threshold slider of stage 2",
                                           model_name="FloatSliderModel", description="threshold")
            await act(page, await page.set_value(slider, 0.2))
            await next_stage(page)

            def answer_buttons(p: PageSession) -> list[str]:
                return p.find_all(model_name="ToggleButtonsModel",
                                  _options_labels=["same", "different"])

            await page.wait_for(lambda p: len(answer_buttons(p)) == 12, TIMEOUT,
                                "twelve borderline photos with same/different buttons")
            for buttons in answer_buttons(page)[:3]:
                await act(page, await page.set_state(buttons, {"index": 0}))  # same
            await next_stage(page)
            await page.wait_for(lambda p: "3 of 12 photos labeled" in page_text(p), TIMEOUT,
                                "the saved labels")
            results = await finished_results(app, run_id_of(page))

    summary = results["summary"]
    assert (summary["person"], summary["threshold"]) == ("Alan", 0.2)
    assert (summary["labeled"], summary["same"], summary["different"]) == (3, 3, 0)
    assert [item["label"] for item in results["labels"]] == ["same"] * 3 + [None] * 9


async def test_a_reviewer_clicks_through_the_review_app(tmp_path: Path) -> None:
    with serve_example("review", tmp_path) as (server, app):
        async with Person(server.base_url) as reviewer:
            page = await reviewer.open("")
            progress = await wait_for_widget(page, "the review buttons",
                                             model_name="IntProgressModel")
            buttons = {name: page.find(model_name="ButtonModel", description=name)
                       for name in ("Yes", "No", "Skip")}
            for name in ("Yes", "Yes", "No", "Skip", "Yes"):
                await act(page, await page.click(buttons[name]))
            assert page.value(progress) == 5
            await next_stage(page)
            await page.wait_for(lambda p: "reviewed" in page_text(p), TIMEOUT, "the summary")
            results = await finished_results(app, run_id_of(page))

    answers = [entry["answer"] for entry in results["labels"]]
    assert answers == ["yes", "yes", "no", "skip", "yes"]
    assert results["summary"]["reviewed"] == 5 and results["summary"]["remaining"] == 235


async def test_a_person_fills_in_the_form_app(tmp_path: Path) -> None:
    with serve_example("forms", tmp_path) as (server, app):
        async with Person(server.base_url) as person:
            page = await person.open("")
            run = await wait_for_widget(page, "the Run button",
                                        model_name="ButtonModel", description="Run")
            assert page.widgets[run]["disabled"], "no name yet: Run is disabled"
            name = page.find(model_name="TextModel", description="Scenario name")
            await act(page, await page.set_value(name, "baseline"))
            assert not page.widgets[run]["disabled"]
            await act(page, await page.click(run))
            capacity = page.find(model_name="IntTextModel", description="Capacity")
            await act(page, await page.set_value(name, "crowded"))
            await act(page, await page.set_value(capacity, 10))
            assert page.widgets[run]["disabled"], "capacity below the start is invalid"
            await act(page, await page.set_value(capacity, 500))
            await act(page, await page.click(run))
            await next_stage(page)
            await page.wait_for(lambda p: "2 scenario(s) submitted" in page_text(p), TIMEOUT,
                                "the comparison")
            results = await finished_results(app, run_id_of(page))

    assert [s["name"] for s in results["submitted"]] == ["baseline", "crowded"]
    assert [s["capacity"] for s in results["submitted"]] == [10_000, 500]
    assert [o["name"] for o in results["outcomes"]] == ["baseline", "crowded"]


async def test_200_review_clicks_survive_a_server_kill(tmp_path: Path) -> None:
    from tests.faults.harness import restart
    from tests.support.processes import kill_hard

    clicked = [("Yes", "No", "Skip", "Yes")[i % 4] for i in range(200)]
    with serve_example("review", tmp_path) as (server, app):
        async with Person(server.base_url) as reviewer:
            page = await reviewer.open("")
            progress = await wait_for_widget(page, "the review buttons",
                                             model_name="IntProgressModel")
            buttons = {name: page.find(model_name="ButtonModel", description=name)
                       for name in ("Yes", "No", "Skip")}
            for name in clicked:
                await act(page, await page.click(buttons[name]))
            assert page.value(progress) == 200
            run_id = run_id_of(page)
            await page.close()

            kill_hard(server)  # server and kernels at once
            again = await restart(server, app, "--pool-size", "1")
            try:
                page = await reviewer.open(f"run/{run_id}")  # rebuilt by replay
                progress = await wait_for_widget(page, "the review buttons",
                                                 model_name="IntProgressModel")
                assert page.value(progress) == 200
                await next_stage(page)
                results = await finished_results(app, run_id)
            finally:
                again.stop()

    assert [entry["answer"] for entry in results["labels"]] == [n.lower() for n in clicked]
    assert results["summary"]["reviewed"] == 200


SENTIMENTS = ["positive", "negative", "neutral"]


async def sentiment_batch(page: PageSession) -> dict[str, str]:
    """Item id -> the model id of its answer buttons, for each card the page shows."""
    def cards(p: PageSession) -> dict[str, str]:
        found: dict[str, str] = {}
        for box in p.find_all(model_name="VBoxModel"):
            children = [c.removeprefix("IPY_MODEL_") for c in p.widgets[box]["children"]]
            html = [c for c in children if p.widgets[c]["_model_name"] == "HTMLModel"]
            buttons = [c for c in children
                       if p.widgets[c]["_model_name"] == "ToggleButtonsModel"]
            if len(html) == 1 and len(buttons) == 1:
                item = str(p.widgets[html[0]]["value"]).split("<b>", 1)[1].split("</b>", 1)[0]
                found[item] = buttons[0]
        return found

    await page.wait_for(lambda p: len(cards(p)) == 6, TIMEOUT, "a batch of six sentences")
    return cards(page)


async def test_three_labelers_share_each_sentence_and_agree_as_counted(tmp_path: Path) -> None:
    from runtime.store.queue_export import queue_report

    # overlap 3: the first three labelers get the same six sentences, the fourth the next six
    given = {
        "s00": "ppp", "s01": "ppp", "s02": "ppn", "s03": "nnn", "s04": "nnn", "s05": "upu",
    }
    letters = {"p": 0, "n": 1, "u": 2}
    with serve_example("sentiment", tmp_path) as (server, app):
        people = [Person(server.base_url) for _ in range(4)]
        try:
            pages = [await person.open("") for person in people]
            batches = [await sentiment_batch(page) for page in pages]
            assert [sorted(b) for b in batches[:3]] == [sorted(given)] * 3
            assert sorted(batches[3]) == [f"s{i:02d}" for i in range(6, 12)]
            for who, (page, batch) in enumerate(zip(pages[:3], batches[:3], strict=True)):
                for item, buttons in batch.items():
                    await act(page, await page.set_state(buttons,
                                                         {"index": letters[given[item][who]]}))
                await next_stage(page)
                await page.wait_for(lambda p: "6 answers submitted" in page_text(p), TIMEOUT,
                                    "the submitted batch")
        finally:
            for person in people:
                await person.close()
        store = await Store.open(f"sqlite:///{app / 'freezer.db'}")
        try:
            report = await queue_report(store, "sentiment")
        finally:
            await store.close()
    assert (report["items"], report["done"], report["overlap"]) == (60, 6, 3)
    assert report["claimed"] == 6  # the fourth labeler's batch, still leased
    # Fleiss' kappa by hand: P_i = 1, 1, 1/3, 1, 1, 1/3 -> mean 7/9; category shares
    # positive 9/18, negative 7/18, neutral 2/18 -> P_e = 134/324; kappa = 59/95
    agreement = report["agreement"]
    assert agreement["method"] == "fleiss" and agreement["items"] == 6
    assert agreement["kappa"] == pytest.approx(59 / 95)
    assert agreement["observed"] == pytest.approx(7 / 9)
    assert [d["item"] for d in agreement["disagreements"]] == ["s02", "s05"]
