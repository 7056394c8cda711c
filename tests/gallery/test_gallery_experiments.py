"""The experiments example in Chromium: two runs started from links with different parameters,
each given a verdict, then compared on the admin page."""

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
)
from playwright.sync_api import Page, expect

from runtime.web.admin_data import fmt_number
from tests.support.offline import OfflineGuard


@pytest.fixture(scope="module")
def example(serve_example: Callable[[str], ServedExample]) -> ServedExample:
    return serve_example("experiments")


def give_verdict(page: Page, verdict: str, notes: str) -> None:
    """Pick a verdict, write notes and press Next; the saved record shows them."""
    train = stage_output(page, 0)
    train.get_by_label(verdict, exact=True).check()
    train.locator("textarea").fill(notes)
    press_next(page, 1)
    see(stage_output(page, 1).get_by_text(re.compile(
        rf"'verdict': '{re.escape(verdict)}',\s+'notes': '{re.escape(notes)}'"
    )))


def test_two_runs_with_different_parameters_are_compared_on_the_admin_page(
    example: ServedExample, person: Page, admin: Page, offline: OfflineGuard
) -> None:
    perceptron = sign_in(person, example, "noor", "new?model=perceptron&epochs=50")
    wait_stage(person, 0)
    train = stage_output(person, 0)
    see(train.get_by_text("perceptron: 300 training and 100 test points"))
    see(train.get_by_text(re.compile(r"'model': 'perceptron',.*'epochs': 50,", re.DOTALL)))
    see(train.locator("img"))  # test points and the loss curve
    shot(person, "experiments")
    give_verdict(person, "discard", "stops improving early")

    person.goto(example.url("new?model=logistic&learning_rate=0.1&n_samples=200"))
    person.get_by_role("button", name="Start").click()
    expect(person).to_have_url(re.compile(r"/run/[\w-]+$"))
    logistic = person.url.rsplit("/", 1)[-1]
    assert logistic != perceptron
    wait_stage(person, 0)
    see(stage_output(person, 0).get_by_text("logistic: 150 training and 50 test points"))
    give_verdict(person, "rerun with other settings", "try more epochs")

    rows = exported_runs(admin, example, finished=2)
    first, second = rows[perceptron], rows[logistic]
    assert first["params"] == {"model": "perceptron", "epochs": 50}
    assert second["params"] == {"model": "logistic", "learning_rate": 0.1, "n_samples": 200}
    assert first["snapshots"]["0"] == {"verdict": "discard", "notes": "stops improving early"}
    assert (first["results"]["metrics"]["model"], len(first["results"]["losses"])) == (
        "perceptron", 50)
    assert (second["results"]["metrics"]["learning_rate"], len(second["results"]["losses"])) == (
        0.1, 100)
    assert second["results"]["record"]["verdict"] == "rerun with other settings"
    assert second["results"]["record"]["test_accuracy"] == (
        second["results"]["metrics"]["test_accuracy"])

    # The admin page: both runs side by side in the results table, and the progress chart.
    admin.goto(example.url("admin"))
    results = admin.locator("table.results")
    for run in (first, second):
        model = run["results"]["metrics"]["model"]
        accuracy = run["results"]["metrics"]["test_accuracy"]
        line = results.locator("tr").filter(has_text=f'"model": "{model}"')
        expect(line).to_have_count(1)
        expect(line).to_contain_text(f'"test_accuracy": {accuracy}')
        expect(line).to_contain_text(run["results"]["record"]["verdict"])
    expect(admin.locator("table.runs tr").filter(has_text="noor")).to_have_count(2)
    see(admin.locator("#funnel-1 svg"))  # how far the runs got
    # test_accuracy is collected as a plain number: a chart of it across both runs.
    accuracies = [run["results"]["test_accuracy"] for run in (first, second)]
    assert accuracies == [run["results"]["metrics"]["test_accuracy"] for run in (first, second)]
    chart = admin.locator("figure.result-chart").filter(
        has=admin.locator("svg text", has_text="test_accuracy"))
    expect(chart).to_have_count(1)
    expect(chart.locator("figcaption")).to_have_text(
        f"runs 2 · min {fmt_number(min(accuracies))} · mean {fmt_number(sum(accuracies) / 2)}"
        f" · max {fmt_number(max(accuracies))}")
    expect(admin.locator("table.funnel tr").filter(has_text="Finished")).to_contain_text("2")
    shot(admin, "experiments_admin")
    offline.check()
