"""Going back in Chromium: a labeler in stage 3 of the labeling example goes back to stage 1,
picks another person, and the later stages follow; the export keeps both passes."""

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
    sign_in,
    stage_output,
    wait_stage,
)
from playwright.sync_api import Page, expect

from tests.support.offline import OfflineGuard


@pytest.fixture(scope="module")
def example(serve_example: Callable[[str], ServedExample]) -> ServedExample:
    return serve_example("labeling")


def test_a_labeler_goes_back_to_the_first_step_and_picks_another_person(
    example: ServedExample, person: Page, admin: Page, offline: OfflineGuard
) -> None:
    run_id = sign_in(person, example, "noor", "new")
    wait_stage(person, 0)
    pick = stage_output(person, 0)
    photo_set = pick.get_by_text(re.compile(r"photo set \d+: 240 photos"))
    see(photo_set)
    claimed = photo_set.inner_text()
    pick.get_by_role("button", name="Alan", exact=True).click()
    press_next(person, 1)
    see(stage_output(person, 1).get_by_text(re.compile(r"distances of 240 photos to Alan: ")))
    alan_histogram = image_sources(stage_output(person, 1))
    press_next(person, 2)
    see(stage_output(person, 2).get_by_text("Reference photos of Alan:"))
    back = person.get_by_role("button", name="Back to: Pick the person to label")
    threshold_back = person.get_by_role("button", name="Back to: Choose a distance threshold")
    expect(threshold_back).to_have_count(1)
    expect(back).to_be_visible()
    back.click()
    dialog = person.get_by_role("dialog")
    see(dialog.get_by_text(
        "The later steps will run again with your new choice; what you did there is kept in "
        "the history."))
    dialog.get_by_role("button", name="Go back").click()

    person.wait_for_url(re.compile(f"/run/{run_id}$"))
    wait_stage(person, 0)
    expect(person.get_by_role("button", name=re.compile("^Back to:"))).to_have_count(0)
    expect(stage_output(person, 1)).to_be_hidden()
    expect(stage_output(person, 2)).to_be_hidden()
    pick = stage_output(person, 0)
    expect(pick.get_by_text(claimed)).to_be_visible()  # the same photo set: the claim is kept
    grace = pick.get_by_role("button", name="Grace", exact=True)
    expect(grace).to_be_enabled()
    grace.click()
    expect(grace).to_have_class(re.compile("mod-active"))
    press_next(person, 1)

    threshold = stage_output(person, 1)
    see(threshold.get_by_text(re.compile(r"distances of 240 photos to Grace: ")))
    expect(threshold.get_by_text("to Alan")).to_have_count(0)
    see(threshold.locator("img"))
    assert image_sources(threshold) != alan_histogram
    press_next(person, 2)
    labeling = stage_output(person, 2)
    see(labeling.get_by_text("Reference photos of Grace:"))
    labeling.get_by_role("button", name="same", exact=True).first.click()
    press_next(person, 3)
    see(person.get_by_text("Done: every step has run."))

    row = exported_runs(admin, example, finished=1)[run_id]
    assert row["snapshots"]["0"] == {"picker": "Grace"}
    assert row["results"]["summary"]["person"] == "Grace"
    assert row["passes"] == 2
    first, final = row["history"]
    assert first["snapshots"]["0"] == {"picker": "Alan"} and first["reached"] == 2
    assert first["went_back"]["stage"] == 0 and first["went_back"]["from_stage"] == 2
    assert final["back_to"] == 0 and final["snapshots"]["0"] == {"picker": "Grace"}
    admin.goto(example.url("admin"))
    history = admin.locator("table.went-back td.history")
    expect(history).to_contain_text("pass 1: reached step 3 · Label the borderline photos; "
                                     "went back to step 1 · Pick the person to label")
    offline.check()
