"""A built app directory is servable by plain `voila DIR/app.ipynb`: the page shows the app."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from freezer.commands import build_main
from tests.support.pages import parse_page
from tests.support.person import Person
from tests.support.processes import ServerProcess

PAGE_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serves")
    (root / "data").mkdir()
    (root / "data" / "names.txt").write_text("ann\nbob\n")
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Name picker"),
            new_code_cell(
                "import ipywidgets as widgets\n"
                "names = open('data/names.txt').read().split()\n"
                "picker = widgets.Dropdown(options=names)\npicker"
            ),
            new_code_cell("chosen = picker.value\nprint('chose', chosen)"),
        ],
        metadata={"kernelspec": {"name": "py36", "language": "python", "display_name": "x"}},
    )
    nbformat.write(nb, str(root / "picker.ipynb"))
    assert build_main([str(root / "picker.ipynb"), "--include", str(root / "data")]) == 0
    return root / "picker_app"


def test_plain_voila_serves_the_built_app(
    app_dir: Path, voila_server: Callable[..., ServerProcess]
) -> None:
    server = voila_server(app_dir / "app.ipynb")
    with urllib.request.urlopen(server.base_url, timeout=PAGE_TIMEOUT) as response:
        page = parse_page(server.base_url, response.status, response.read().decode())
    assert page.status == 200
    assert "Name picker" in page.html
    # The bootstrap cell ran in the app's kernel and displayed the app's root widget.
    assert len(page.shown_model_ids) == 1, page.outputs
    errors = [o for o in page.outputs if o.get("output_type") == "error"]
    assert errors == []


async def test_the_app_runs_its_stages_with_the_included_files(
    app_dir: Path, voila_server: Callable[..., ServerProcess]
) -> None:
    server = voila_server(app_dir / "app.ipynb")
    async with Person(server.base_url) as person:
        session = await person.open(timeout=PAGE_TIMEOUT)
        # Stage 0 read data/names.txt from files/ and showed the picker.
        await session.wait_for(
            lambda s: bool(s.find_all("DropdownModel", _options_labels=["ann", "bob"])),
            timeout=PAGE_TIMEOUT, what="the picker of stage 1",
        )
        picker = session.find("DropdownModel")
        await session.set_state(picker, {"index": 1})  # Dropdown syncs its index: "bob"
        next_button = session.find("ButtonModel", description="Next")
        await session.click(next_button)

        def printed_choice(s: object) -> bool:
            return any("chose bob" in session.output_text(m)
                       for m in session.find_all("OutputModel"))

        await session.wait_for(printed_choice, timeout=PAGE_TIMEOUT, what="stage 2's output")
