"""The gradient descent example in Chromium: pick a learning rate and steps, watch it learn."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gallery import (
    ServedExample,
    exported_runs,
    press_next,
    see,
    set_slider,
    shot,
    sign_in,
    slider,
    stage_output,
    wait_stage,
)
from playwright.sync_api import Page

from tests.support.offline import OfflineGuard


@pytest.fixture(scope="module")
def example(serve_example: Callable[[str], ServedExample]) -> ServedExample:
    return serve_example("gradient_descent")


def test_a_person_picks_a_learning_rate_and_watches_the_descent(
    example: ServedExample, person: Page, admin: Page, offline: OfflineGuard
) -> None:
    run_id = sign_in(person, example, "lena")
    wait_stage(person, 0)
    set_slider(slider(person, "learning rate"), "0.300")
    set_slider(slider(person, "steps"), "20")
    press_next(person, 1)

    learn = stage_output(person, 1)
    see(learn.get_by_text("20 steps at learning rate 0.300"))
    see(learn.locator("img"))
    # The player works without Font Awesome: its buttons show characters and step the frames.
    player = learn.locator(".animation")
    icon = player.locator("button[title='Play'] i")
    assert icon.evaluate("i => getComputedStyle(i, '::before').content") == '"\u25b6"'
    frame = player.locator("input[type=range]")
    player.locator("button[title='Pause']").click()
    player.locator("button[title='First frame']").click()
    person.wait_for_function("el => el.value === '0'", arg=frame.element_handle())
    player.locator("button[title='Next frame']").click()
    person.wait_for_function("el => el.value === '1'", arg=frame.element_handle())
    shot(person, "gradient_descent")
    see(person.get_by_text("Done: every step has run."))

    row = exported_runs(admin, example, finished=1)[run_id]
    assert (row["user"], row["status"]) == ("lena", "finished")
    assert row["snapshots"]["0"] == {"learning_rate": pytest.approx(0.3), "steps": 20}
    final = row["results"]["final"]
    assert (final["learning_rate"], final["steps"]) == (pytest.approx(0.3), 20)
    loss_curve = row["results"]["loss_curve"]
    assert len(loss_curve) == 21, "the loss before the first step and after each of 20"
    assert loss_curve[-1] < loss_curve[0] / 10
    assert final["loss"] == pytest.approx(loss_curve[-1], abs=1e-6)
    offline.check()
