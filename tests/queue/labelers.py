"""Protocol-level labelers of a work-queue app on a real server (the load and kill tests).

The app's one stage opens a `WorkQueue`, claims a batch and shows it as JSON in a Text widget
(`batch`). A person sets the `label` slider, optionally the items to skip (`skips`, JSON),
and clicks `Submit`: the kernel skips those, submits the rest with the slider's value and
claims the next batch, shown in `batch` (or `error: ...` when a call failed). One run, one
kernel, as many batches as the person labels.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.faults.harness import TIMEOUT, act, has_slider, slider
from tests.support.session import PageSession

STAGE = """\
import json
import ipywidgets as widgets
from runtime.kernel import WorkQueue
queue = WorkQueue({name!r}, items=list(range({items})), batch={batch}, overlap={overlap},
                  lease={lease})
mine = queue.claim()
batch = widgets.Text(value=json.dumps(mine), description='batch')
skips = widgets.Text(value='[]', description='skips')
label = widgets.IntSlider(value=1, min=0, max=9, description='label')
go = widgets.Button(description='Submit')

def on_go(_):
    global mine
    try:
        skipped = [i for i in json.loads(skips.value) if i in mine]
        if skipped:
            queue.skip(skipped)
        rest = {{i: label.value for i in mine if i not in skipped}}
        if rest:
            queue.submit(rest)
        mine = queue.claim()
        batch.value = json.dumps(mine)
    except Exception as exc:
        batch.value = f'error: {{exc}}'

go.on_click(on_go)
widgets.VBox([batch, skips, label, go])
"""


def queue_stages(
    name: str, items: int, batch: int, overlap: int, lease: float
) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """The app: a labeling stage on queue `name` (items 0..items-1), then an end stage."""
    source = STAGE.format(name=name, items=items, batch=batch, overlap=overlap, lease=lease)
    return (("Label", source, ("label",)), ("Done", "print('done')", ()))


def text_widget(page: PageSession, description: str) -> str:
    return page.find(_model_name="TextModel", description=description)


def shown_batch(page: PageSession) -> list[Any]:
    """The batch the page shows (raises on an `error: ...` shown instead)."""
    value = str(page.value(text_widget(page, "batch")))
    if value.startswith("error"):
        raise AssertionError(f"the kernel says {value}")
    return list(json.loads(value))


async def ready(page: PageSession) -> list[Any]:
    """Wait for the labeling widgets; the batch the page shows first."""
    await page.wait_for(has_slider("label"), TIMEOUT, "the label slider")
    await page.wait_for(lambda p: bool(p.find_all(_model_name="ButtonModel",
                                                  description="Submit")), TIMEOUT)
    return shown_batch(page)


async def label_batch(page: PageSession, value: int, skipped: list[Any]) -> list[Any]:
    """Answer the shown batch with `value` (skipping `skipped`); returns the next batch.

    Returns only once the kernel has handled the click: the submit was acknowledged.
    """
    skips = text_widget(page, "skips")
    wanted = json.dumps(skipped)
    if page.value(skips) != wanted:
        await act(page, await page.set_value(skips, wanted))
    if page.value(slider(page, "label")) != value:
        await act(page, await page.set_value(slider(page, "label"), value))
    button = page.find(_model_name="ButtonModel", description="Submit")
    await act(page, await page.click(button))
    return shown_batch(page)


def run_id_of(page: PageSession) -> str:
    return page.page.url.rstrip("/").rsplit("/", 1)[-1]


def utc(value: Any) -> datetime:
    """A timestamp column as an aware UTC datetime (SQLite gives naive ISO text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def json_value(value: Any) -> Any:
    """A JSON column's value (SQLite's gives text for strings, numbers as numbers)."""
    return json.loads(value) if isinstance(value, str) else value


@contextlib.contextmanager
def sqlite_reader(app_dir: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{app_dir / 'freezer.db'}?mode=ro", uri=True, timeout=30,
                         isolation_level=None)
    try:
        yield db
    finally:
        db.close()
