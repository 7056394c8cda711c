"""A list a button's callback fills, shown as a later cell's last expression, shows what the
person made: the planner stops before the showing cell (DESIGN §1 rule 4b), so it runs after
the clicks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from freezer.commands import build_main
from runtime import manifest as mf
from tests.support.person import Person
from tests.support.processes import ServerProcess

PAGE_TIMEOUT = 60.0
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "showing_callback_data_is_reading.ipynb"


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shown_data") / "app"
    assert build_main([str(FIXTURE), "-o", str(out)]) == 0
    return out


async def test_the_page_shows_the_labels_the_person_made(
    app_dir: Path, voila_server: Callable[..., ServerProcess]
) -> None:
    manifest = mf.load(app_dir)
    assert [w.name for w in manifest.stages[0].waits_on] == ["labels"]
    server = voila_server(app_dir / "app.ipynb")
    async with Person(server.base_url) as person:
        session = await person.open(timeout=PAGE_TIMEOUT)

        def yes_button(s: object) -> bool:
            return any(session.widgets[m].get("description") == ""
                       for m in session.find_all("ButtonModel"))

        await session.wait_for(yes_button, timeout=PAGE_TIMEOUT, what="the button of stage 1")
        [button] = [m for m in session.find_all("ButtonModel")
                    if session.widgets[m].get("description") == ""]
        await session.click(button)
        await session.click(button)
        await session.click(session.find("ButtonModel", description="Next"))

        def shows_labels(s: object) -> bool:
            return any("['yes', 'yes']" in session.output_text(m)
                       for m in session.find_all("OutputModel"))

        await session.wait_for(shows_labels, timeout=PAGE_TIMEOUT,
                               what="stage 2 showing the two labels")
        assert not any("[]" in session.output_text(m) for m in session.find_all("OutputModel"))
