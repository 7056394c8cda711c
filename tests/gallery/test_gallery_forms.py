"""The forms example in Chromium: a validated form submitted twice, then the comparison."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from gallery import (
    ServedExample,
    exported_runs,
    press_next,
    see,
    shot,
    sign_in,
    stage_output,
    wait_stage,
    widget,
)
from playwright.sync_api import Locator, Page, expect

from tests.support.offline import OfflineGuard


@pytest.fixture(scope="module")
def example(serve_example: Callable[[str], ServedExample]) -> ServedExample:
    return serve_example("forms")


def field(page: Page, description: str) -> Locator:
    """The text box labelled `description`."""
    return widget(page, "widget-text", description).locator("input")


def enter(box: Locator, value: str) -> None:
    """Type a value and press Enter (number boxes send their value on Enter or leaving them)."""
    box.fill(value)
    box.press("Enter")


def test_a_person_fills_in_the_form_twice_and_compares_the_scenarios(
    example: ServedExample, person: Page, admin: Page, offline: OfflineGuard
) -> None:
    run_id = sign_in(person, example, "ines")
    wait_stage(person, 0)
    form = stage_output(person, 0)
    run = form.get_by_role("button", name="Run", exact=True)
    see(form.get_by_text("Give the scenario a name."))
    expect(run).to_be_disabled()

    field(person, "Scenario name").fill("baseline")
    expect(run).to_be_enabled()
    expect(form.get_by_text("Give the scenario a name.")).to_have_count(0)
    run.click()
    see(form.get_by_text("Recorded “baseline”: 1 scenario(s) so far."))
    expect(field(person, "Scenario name")).to_have_value("")

    field(person, "Scenario name").fill("baseline")
    see(form.get_by_text("There is already a scenario called “baseline”."))
    expect(run).to_be_disabled()
    field(person, "Scenario name").fill("crowded")
    enter(field(person, "Capacity"), "10")
    see(form.get_by_text("The capacity must be larger than the starting population."))
    expect(run).to_be_disabled()
    enter(field(person, "Capacity"), "500")
    enter(field(person, "Growth rate (%/year)"), "20")
    expect(run).to_be_enabled()
    run.click()
    see(form.get_by_text("Recorded “crowded”: 2 scenario(s) so far."))
    press_next(person, 1)

    compare = stage_output(person, 1)
    see(compare.get_by_text("2 scenario(s) submitted"))
    see(compare.get_by_text(re.compile(r"'name': 'baseline'.*'name': 'crowded'", re.DOTALL)))
    see(compare.locator("img"))  # population by scenario
    see(person.get_by_text("Done: every step has run."))
    shot(person, "forms")

    row = exported_runs(admin, example, finished=1)[run_id]
    assert (row["user"], row["status"]) == ("ines", "finished")
    submitted = row["results"]["submitted"]
    assert [(s["name"], s["capacity"], s["rate"]) for s in submitted] == [
        ("baseline", 10_000, 5.0), ("crowded", 500, 20.0),
    ]
    outcomes = {o["name"]: o for o in row["results"]["outcomes"]}
    assert outcomes["crowded"]["final_population"] == pytest.approx(500, abs=5)
    assert outcomes["baseline"]["final_population"] < 10_000
    offline.check()
