"""The regression example in Chromium: generate data, fit a model with live plots, report."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from gallery import (
    ServedExample,
    exported_runs,
    image_sources,
    press_next,
    see,
    set_slider,
    shot,
    sign_in,
    slider,
    stage_output,
    wait_stage,
)
from playwright.sync_api import Locator, Page, expect

from tests.support.offline import OfflineGuard


@pytest.fixture(scope="module")
def example(serve_example: Callable[[str], ServedExample]) -> ServedExample:
    return serve_example("regression")


def redrawn(area: Locator, before: list[str]) -> None:
    """The area's one figure is drawn again (after a control changed)."""
    figure = area.locator("img")
    expect(figure).to_have_count(1)
    expect(figure).not_to_have_attribute("src", before[0])


def test_a_person_generates_data_fits_a_model_and_gets_a_report(
    example: ServedExample, person: Page, admin: Page, offline: OfflineGuard
) -> None:
    run_id = sign_in(person, example, "ravi")
    wait_stage(person, 0)
    data = stage_output(person, 0)
    see(data.locator("img"))
    sine = image_sources(data)
    data.locator(".widget-dropdown select").select_option("cubic")
    redrawn(data, sine)
    cubic = image_sources(data)
    set_slider(slider(person, "samples"), "120")
    redrawn(data, cubic)
    press_next(person, 1)

    model = stage_output(person, 1)
    see(model.get_by_text("120 samples of the cubic function, noise 0.25"))
    see(model.locator("img"))
    degree_3 = image_sources(model)
    set_slider(slider(person, "degree"), "9")
    redrawn(model, degree_3)
    ridge = image_sources(model)
    model.get_by_role("button", name="lasso", exact=True).click()
    redrawn(model, ridge)
    shot(person, "regression")
    press_next(person, 2)

    report = stage_output(person, 2)
    see(report.get_by_text(re.compile(r"'function': 'cubic'.*'degree': 9,\s+'penalty': 'lasso'",
                                      re.DOTALL)))
    see(report.get_by_text(re.compile(r"weight of z\^9 ")))
    expect(report.get_by_text(re.compile(r"weight of z\^10 "))).to_have_count(0)
    see(person.get_by_text("Done: every step has run."))

    row = exported_runs(admin, example, finished=1)[run_id]
    assert (row["user"], row["status"]) == ("ravi", "finished")
    assert row["snapshots"]["0"] == {
        "data_controls": {"n": 120, "noise": 0.25, "function": "cubic"}
    }
    settings = row["results"]["settings"]
    assert settings == {"n": 120, "noise": 0.25, "function": "cubic", "degree": 9,
                        "penalty": "lasso", "alpha": pytest.approx(1e-4), "test_fraction": 0.3}
    scores = row["results"]["scores"]
    assert 1 <= scores["nonzero_weights"] <= 9
    assert scores["train_r2"] > 0.5, "a degree-9 fit of a cubic explains most of the data"
    offline.check()
