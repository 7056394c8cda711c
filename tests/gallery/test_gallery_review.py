"""The review example in Chromium: Yes / No / Skip on twenty items, then the summary."""

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

from tests.support.offline import OfflineGuard

ANSWERS = ["Yes", "No", "Yes", "Skip"] * 5


@pytest.fixture(scope="module")
def example(serve_example: Callable[[str], ServedExample]) -> ServedExample:
    return serve_example("review")


def test_a_reviewer_answers_twenty_items_and_sees_the_summary(
    example: ServedExample, person: Page, admin: Page, offline: OfflineGuard
) -> None:
    run_id = sign_in(person, example, "omar")
    wait_stage(person, 0)
    queue = stage_output(person, 0)
    item = queue.locator(".widget-html-content")
    see(queue.get_by_text("Item 1 of 240: is this review positive?"))
    shown = [item.inner_text()]
    for done, answer in enumerate(ANSWERS, start=1):
        queue.get_by_role("button", name=answer, exact=True).click()
        # The callback shows the next item: wait for it before the next click, as a reader does.
        expect(item).to_contain_text(f"Item {done + 1} of 240")
        shown.append(item.inner_text())
    see(queue.get_by_text("20 done", exact=True))
    expect(queue.locator("progress, .progress-bar, .widget-progress")).not_to_have_count(0)
    assert len(set(shown)) == len(shown), "every answer brought a new review"
    press_next(person, 1)

    summary = stage_output(person, 1)
    see(summary.get_by_text(re.compile(
        r"'reviewed': 20,\s+'yes': 10,\s+'no': 5,\s+'skip': 5,\s+'remaining': 220"
    )))
    see(summary.locator("img"))  # the bar chart of the answers
    see(person.get_by_text("Done: every step has run."))
    shot(person, "review")

    row = exported_runs(admin, example, finished=1)[run_id]
    assert (row["user"], row["status"]) == ("omar", "finished")
    labels = row["results"]["labels"]
    assert [entry["answer"] for entry in labels] == [answer.lower() for answer in ANSWERS]
    assert [entry["item"] for entry in labels] == list(range(20))
    result = row["results"]["summary"]
    assert (result["reviewed"], result["yes"], result["no"], result["skip"]) == (20, 10, 5, 5)
    offline.check()
