"""The labeling example in Chromium: a labeler picks a person, a threshold and labels photos."""

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
from playwright.sync_api import Page, expect

from tests.support.offline import OfflineGuard


@pytest.fixture(scope="module")
def example(serve_example: Callable[[str], ServedExample]) -> ServedExample:
    return serve_example("labeling")


def test_a_labeler_picks_a_person_a_threshold_and_labels_photos(
    example: ServedExample, person: Page, admin: Page, offline: OfflineGuard
) -> None:
    # The first labeler of this server: the work queue gives them photo set 0.
    run_id = sign_in(person, example, "maya", "new")
    wait_stage(person, 0)
    pick = stage_output(person, 0)
    see(pick.get_by_text("photo set 0: 240 photos of 6 people"))
    expect(pick.locator("img.widget-image")).to_have_count(6)  # one portrait per person
    pick.get_by_role("button", name="Alan", exact=True).click()
    expect(pick.get_by_role("button", name="Alan", exact=True)).to_have_class(
        re.compile("mod-active")
    )
    press_next(person, 1)

    threshold = stage_output(person, 1)
    see(threshold.get_by_text(re.compile(r"distances of 240 photos to Alan: ")))
    histogram = threshold.locator("img")
    see(histogram)
    first_histogram = image_sources(threshold)
    set_slider(slider(person, "threshold"), "0.20")
    # The live histogram is drawn again with the new threshold line.
    expect(histogram).to_have_count(1)
    expect(histogram).not_to_have_attribute("src", first_histogram[0])
    press_next(person, 2)

    borderline = stage_output(person, 2)
    see(borderline.get_by_text("Reference photos of Alan:"))
    caption = person.locator(".widget-label", has_text=re.compile(r"^photo \d+, distance"))
    captions = borderline.locator(caption)
    expect(captions).to_have_count(12)
    distances = [float(text.rsplit(" ", 1)[1]) for text in captions.all_inner_texts()]
    # The twelve photos nearest the chosen threshold, closest to Alan first.
    assert distances == sorted(distances)
    assert distances[0] <= 0.21 and distances[-1] >= 0.19, distances
    cards = borderline.locator(".widget-vbox").filter(has=caption)
    # The notebook requires one answer at least: until then Next is disabled and says why.
    next_button = person.locator("button.freezer-next").filter(visible=True)
    reason = person.get_by_text("Label at least one photo first.")
    expect(next_button).to_be_disabled()
    see(reason)
    shot(person, "labeling-require")
    for index, answer in enumerate(["same", "same", "same", "different"]):
        button = cards.nth(index).get_by_role("button", name=answer, exact=True)
        button.click()
        expect(button).to_have_class(re.compile("mod-active"))
        if index == 0:
            expect(next_button).to_be_enabled()
            expect(reason).to_have_count(0)
            see(person.get_by_text("Step 3 of 4: make your choices, then press Next."))
    shot(person, "labeling")
    press_next(person, 3)

    saved = stage_output(person, 3)
    see(saved.get_by_text("4 of 12 photos labeled"))
    see(saved.get_by_text(re.compile(r"'person': 'Alan',\s+'threshold': 0.2,")))
    see(person.get_by_text("Done: every step has run."))

    row = exported_runs(admin, example, finished=1)[run_id]
    assert (row["user"], row["status"], row["params"]) == ("maya", "finished", {})
    assert row["snapshots"]["0"] == {"picker": "Alan"}
    assert row["snapshots"]["1"] == {"threshold": 0.2}
    summary = row["results"]["summary"]
    assert (summary["person"], summary["threshold"]) == ("Alan", 0.2)
    assert (summary["labeled"], summary["same"], summary["different"]) == (4, 3, 1)
    labels = row["results"]["labels"]
    assert [item["label"] for item in labels] == ["same"] * 3 + ["different"] + [None] * 8
    assert [item["distance"] for item in labels] == pytest.approx(distances, abs=0.006)
    offline.check()
