"""The export of a served example stays small and readable: snapshots hold choices, not media."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from test_example_apps import (
    TIMEOUT,
    act,
    finished_results,
    next_stage,
    run_id_of,
    serve_example,
    wait_for_widget,
)

from runtime.store.exporting import export_main
from tests.support.person import Person
from tests.support.session import PageSession

CSV_LIMIT_PER_RUN = 20_000  # bytes


def answer_buttons(page: PageSession) -> list[str]:
    return page.find_all(model_name="ToggleButtonsModel", _options_labels=["same", "different"])


async def test_the_labeling_export_holds_answers_not_photos(tmp_path: Path) -> None:
    with serve_example("labeling", tmp_path) as (server, app):
        async with Person(server.base_url) as labeler:
            page = await labeler.open("")
            picker = await wait_for_widget(page, "the person picker",
                                           model_name="ToggleButtonsModel", description="Person:")
            await act(page, await page.set_state(picker, {"index": 2}))  # Alan
            await next_stage(page)
            slider = await wait_for_widget(page, "the threshold slider",
                                           model_name="FloatSliderModel", description="threshold")
            await act(page, await page.set_value(slider, 0.2))
            await next_stage(page)
            await page.wait_for(lambda p: len(answer_buttons(p)) == 12, TIMEOUT, "twelve cards")
            for index, buttons in enumerate(answer_buttons(page)):
                await act(page, await page.set_state(buttons, {"index": index % 2}))
            await next_stage(page)
            run_id = run_id_of(page)
            await finished_results(app, run_id)
        csv_file, json_file = tmp_path / "runs.csv", tmp_path / "runs.json"
        # `freezer export` runs its own event loop: in a thread of its own.
        assert await asyncio.to_thread(export_main, [str(app), "-o", str(csv_file)]) == 0
        argv = [str(app), "--format", "json", "-o", str(json_file)]
        assert await asyncio.to_thread(export_main, argv) == 0

    text = csv_file.read_text(encoding="utf-8")
    assert len(text.encode()) < CSV_LIMIT_PER_RUN, f"{len(text.encode())} bytes for one run"
    rows = list(csv.DictReader(io.StringIO(text, newline="")))  # default field size limit
    assert len(rows) == 1 and rows[0]["run_id"] == run_id
    assert json.loads(rows[0]["stage_2.cards"]) == ["same", "different"] * 6
    assert rows[0]["stage_0.picker"] == "Alan" and rows[0]["stage_1.threshold"] == "0.2"
    [row] = json.loads(json_file.read_text(encoding="utf-8"))
    assert row["snapshots"]["2"] == {"cards": ["same", "different"] * 6}
    assert not [key for key in row if key.endswith("_snapshot")]  # each snapshot once
