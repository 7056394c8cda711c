"""Widget updates above the per-message size limit are refused before the journal: the page is
told, the kernel never sees them, the database does not grow with them; smaller ones go on.
One real server with `--max-message-size` lowered to 100 kB (the default is 512 KiB)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.web.app import FreezerApp
from tests.faults.harness import TIMEOUT, act, click_next, journal, shows, write_app
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_server
from tests.support.session import PageSession

LIMIT = 100_000
NOTE_STAGES = (
    (
        "Write a note",
        "import ipywidgets as widgets\n"
        "note = widgets.Textarea(value='', description='note')\n"
        "note",
        ("note",),
    ),
    ("Done", "typed = note.value\nprint('typed', len(typed), 'characters')", ()),
)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("message_size") / "app", NOTE_STAGES)


@pytest.fixture(scope="module")
def server(app_dir: Path) -> Iterator[ServerProcess]:
    process = start_server(app_dir, "--pool-size", "1", "--max-message-size", str(LIMIT))
    try:
        yield process
    finally:
        process.stop()


def told_too_large(page: PageSession) -> bool:
    return any("too large to save" in str(o.get("text", "")) for o in page.stray_outputs)


async def test_a_too_large_update_is_refused_before_the_journal(
    server: ServerProcess, app_dir: Path
) -> None:
    database = app_dir / "freezer.db"
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        page = await person.open("new")
        await page.wait_for(lambda p: bool(p.find_all(_model_name="TextareaModel")), TIMEOUT)
        note = page.find(_model_name="TextareaModel")
        run_id = page.page.url.rsplit("/", 1)[-1]
        size_before = database.stat().st_size + wal_size(database)

        for _ in range(20):  # 20 updates of 2 MB each: 40 MB if they were journaled
            await page.set_value(note, "x" * 2_000_000)
        await page.wait_for(told_too_large, TIMEOUT, "the 'too large' message")
        await act(page, await page.set_value(note, "y" * (LIMIT // 2)))  # below: applied
        await click_next(page)
        await page.wait_for(shows(f"typed {LIMIT // 2} characters"), TIMEOUT)

    values = [e["payload"].get("state", {}).get("value")
              for e in journal(app_dir, run_id, ("comm_msg",))]
    assert [len(v) if isinstance(v, str) else v for v in values] == [LIMIT // 2, None]
    grown = database.stat().st_size + wal_size(database) - size_before
    assert grown < 20 * 2_000_000 // 10, grown  # what was saved is the small change
    await eventually(lambda: "refused a 2000" in server.log_tail(400),
                     "the server to log the refused message")


def wal_size(database: Path) -> int:
    wal = database.with_name(database.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_limit_is_a_documented_option_with_a_default() -> None:
    trait = FreezerApp.class_traits()["max_message_size"]
    assert trait.default_value == 512 * 1024
    assert "0: no limit" in (trait.help or "")
    assert FreezerApp.aliases["max-message-size"] == "FreezerApp.max_message_size"
