"""The same client acts as a person on Freezer's server: sign in, start a run, move a slider,
click Next, reload and find the run where it was.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import nbformat
import pytest

from tests.support.errors import ClientError
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_freezer
from tests.support.session import PageSession

pytest.importorskip("runtime.web.app", reason="freezer serve is not available")

STAGE_0 = """import ipywidgets as widgets
threshold = widgets.IntSlider(value=5, max=100, description="Threshold")
label = widgets.Label(value="threshold is 5")
threshold.observe(lambda change: setattr(label, "value", f"threshold is {change['new']}"), "value")
display(threshold, label)"""
STAGE_1 = """chosen = threshold.value
done = widgets.Label(value=f"chose {chosen}")
display(done)"""


@pytest.fixture(scope="module")
def freezer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("freezer-client")
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(STAGE_0), nbformat.v4.new_code_cell(STAGE_1)]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, root / "two_stages.ipynb")
    build = subprocess.run(
        [sys.executable, "-m", "freezer", "build", "two_stages.ipynb", "-o", "app"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    server = start_freezer(root / "app", extra_args=["--auth", "name", "--pool-size=0"])
    try:
        yield server.wait_ready_sync(120)
    finally:
        server.stop()


async def enabled_next(page: PageSession) -> str:
    await page.wait_for(
        lambda p: any(
            not p.widgets[b].get("disabled")
            for b in p.find_all(model_name="ButtonModel", description="Next")
        ),
        timeout=60,
        what="an enabled Next button",
    )
    buttons = page.find_all(model_name="ButtonModel", description="Next")
    return [b for b in buttons if not page.widgets[b].get("disabled")][-1]


async def test_a_person_steps_through_a_run_and_finds_it_again_after_a_reload(
    freezer: ServerProcess,
) -> None:
    async with Person(freezer.base_url) as person:
        await person.login(name="ada", follow_redirects=False)
        page = await person.open("new")
        assert "/run/" in page.page.url
        await page.wait_for(
            lambda p: bool(p.find_all(model_name="LabelModel", value="threshold is 5")),
            timeout=60,
            what="stage 0",
        )
        slider = page.find(model_name="IntSliderModel", description="Threshold")
        await page.set_value(slider, 42)
        await page.wait_for(
            lambda p: bool(p.find_all(model_name="LabelModel", value="threshold is 42")),
            timeout=30,
        )
        await page.click(await enabled_next(page))
        await page.wait_for(
            lambda p: bool(p.find_all(model_name="LabelModel", value="chose 42")),
            timeout=60,
            what="stage 1",
        )
        run_url, kernel_id = page.page.url, page.kernel_id
        await page.close(unload=True)

        again = await person.open(run_url)
        assert again.kernel_id == kernel_id  # re-attached to the run's live kernel
        assert again.find_all(model_name="LabelModel", value="chose 42")
        assert again.value(again.find(description="Threshold")) == 42
        await again.close()


async def test_another_person_can_open_neither_the_run_nor_its_kernel(
    freezer: ServerProcess,
) -> None:
    async with Person(freezer.base_url) as owner, Person(freezer.base_url) as other:
        await owner.login(name="grace", follow_redirects=False)
        page = await owner.open("new")
        await other.login(name="mallory", follow_redirects=False)
        with pytest.raises(ClientError, match="40[34]"):
            await other.open(page.page.url)
        intruder = PageSession(other, page.page, page.kernel_id, "/", time.perf_counter())
        with pytest.raises(ClientError, match="refused"):
            await intruder.connect()
        await page.close(unload=True)
