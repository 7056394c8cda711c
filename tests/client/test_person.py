"""The protocol-level client acts as a person on a plain Voila page: read, drag, click."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.errors import ClientError
from tests.support.person import Person
from tests.support.processes import ServerProcess
from tests.support.session import PageSession

NOTEBOOK = Path(__file__).with_name("widgets.ipynb")


@pytest.fixture(scope="module")
def voila(voila_server: Callable[..., ServerProcess]) -> ServerProcess:
    return voila_server(NOTEBOOK)


@pytest.fixture
async def page(voila: ServerProcess) -> AsyncIterator[PageSession]:
    async with Person(voila.base_url) as person:
        session = await person.open()
        try:
            yield session
        finally:
            await session.close(unload=True)


async def test_open_reads_the_kernel_id_and_every_widget_the_page_shows(
    page: PageSession,
) -> None:
    assert page.kernel_id
    assert len(page.page.shown_model_ids) == 1
    assert page.shows_all_widgets()
    box = page.page.shown_model_ids[0]
    assert page.widgets[box]["_model_name"] == "VBoxModel"
    slider = page.find(model_name="IntSliderModel", description="Threshold")
    assert slider in page.descendants(box)
    assert page.value(slider) == 3
    label = page.find(model_name="LabelModel")
    assert page.value(label) == "threshold is 3"
    assert page.timings["page"] <= page.timings["connected"] <= page.timings["widgets"]


async def test_moving_the_slider_runs_the_callback_and_fills_the_output(
    page: PageSession,
) -> None:
    slider = page.find(description="Threshold")
    label = page.find(model_name="LabelModel")
    out = page.find(model_name="OutputModel")
    msg_id = await page.set_value(slider, 42)
    await page.wait_for(lambda p: p.value(label) == "threshold is 42", timeout=30)
    await page.wait_for(lambda p: "slider moved to 42" in p.output_text(out), timeout=30)
    await page.wait_idle(msg_id)
    assert page.value(slider) == 42
    assert page.output_text(out) == "slider moved to 42\n"
    assert page.kernel_errors == []


async def test_clicking_the_button_runs_its_handler_each_time(page: PageSession) -> None:
    button = page.find(model_name="ButtonModel", description="Count")
    clicks = page.find(description="Clicks")
    await page.click(button)
    await page.wait_for(lambda p: p.value(clicks) == 1, timeout=30)
    seconds = await page.round_trip(
        lambda: page.click(button), until=lambda p: p.value(clicks) == 2, timeout=30
    )
    assert seconds > 0


async def test_each_person_gets_a_kernel_of_their_own(voila: ServerProcess) -> None:
    async with Person(voila.base_url) as first, Person(voila.base_url) as second:
        a, b = await first.open(), await second.open()
        assert a.kernel_id != b.kernel_id
        await a.set_value(a.find(description="Threshold"), 7)
        await a.wait_for(lambda p: p.value(p.find(model_name="LabelModel")) == "threshold is 7")
        # The other person's page is untouched, also in their kernel.
        await b.load_widgets()
        assert b.value(b.find(description="Threshold")) == 3
        for session in (a, b):
            await session.close(unload=True)


async def test_widget_states_also_load_one_comm_at_a_time(voila: ServerProcess) -> None:
    # The fallback of ipywidgets' manager when the control comm does not answer in time.
    async with Person(voila.base_url) as person:
        session = await person.open(load_widgets=False)
        assert session.widgets == {}
        await session._load_widgets_one_by_one()
        assert session.shows_all_widgets()
        assert session.value(session.find(description="Threshold")) == 3
        await session.close(unload=True)


async def test_find_names_the_widgets_when_nothing_or_several_match(page: PageSession) -> None:
    with pytest.raises(ClientError, match="0 widgets match"):
        page.find(description="No such widget")
    with pytest.raises(ClientError, match="widgets match"):
        page.find(model_name="LayoutModel")


async def test_waiting_for_what_never_happens_times_out_with_the_page_state(
    page: PageSession,
) -> None:
    with pytest.raises(ClientError, match="IntSliderModel"):
        await page.wait_for(lambda p: False, timeout=0.2, what="nothing")


async def test_a_closed_page_refuses_to_send(page: PageSession) -> None:
    slider = page.find(description="Threshold")
    await page.close()
    with pytest.raises(ClientError, match="not connected"):
        await page.set_value(slider, 1)


async def test_unloading_the_page_shuts_its_kernel_down_on_plain_voila(
    voila: ServerProcess,
) -> None:
    async with Person(voila.base_url) as person:
        session = await person.open()
        assert (await person.fetch(f"api/kernels/{session.kernel_id}")).code == 200
        assert await session.unload() == 204
        assert (await person.fetch(f"api/kernels/{session.kernel_id}")).code == 404
        await session.close()
