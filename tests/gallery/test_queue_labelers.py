"""Three labelers in Chromium on the work-queue examples, the admin page, the export.

- labeling (overlap 1): three browser contexts get three different photo sets from the queue;
  two finish, one is still at the first stage. The admin page shows 2 done, 1 claimed and the
  rest waiting, and says there is no agreement to measure with one answer per item;
  `freezer export APP --queue "photo sets"` writes the two finished sets' answers.
- sentiment (overlap 3): the three get the same six sentences; once they answered, the admin
  page shows Fleiss' kappa (worked out by hand below) and the sentences they disagree on.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from gallery import (
    ADMIN_TOKEN,
    TIMEOUT_MS,
    VIEWPORT,
    ServedExample,
    press_next,
    see,
    set_slider,
    sign_in,
    slider,
    stage_output,
    wait_stage,
)
from playwright.sync_api import Browser, Page, expect

from tests.support.offline import OfflineGuard


@pytest.fixture
def third(browser: Browser, person: Page, offline: OfflineGuard) -> Iterator[Page]:
    """A third person's page, in a browser context of its own (inside the person's turn of
    Playwright's loop, like `admin`)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.route("**/*", offline)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def admin_queue(admin: Page, example: ServedExample, name: str) -> str:
    """The admin page's section of queue `name`, as text."""
    admin.goto(example.url(f"login?token={ADMIN_TOKEN}&next=/admin"))
    expect(admin.get_by_role("heading", name="Work queues")).to_be_visible()
    section = admin.locator("section.queue").filter(
        has=admin.get_by_role("heading", name=name, exact=True)
    )
    return section.inner_text()


def export_queue(example: ServedExample, name: str) -> list[dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-m", "freezer", "export", str(example.app), "--db", example.db_url,
         "--queue", name, "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows: list[dict[str, object]] = json.loads(proc.stdout)
    return rows


def label_a_photo_set(page: Page) -> None:
    """Pick Alan, keep the first threshold, label the first photo `same`, save."""
    button = stage_output(page, 0).get_by_role("button", name="Alan", exact=True)
    button.click()
    expect(button).to_have_class(re.compile("mod-active"))
    press_next(page, 1)
    set_slider(slider(page, "threshold"), "0.20")
    press_next(page, 2)
    caption = page.locator(".widget-label", has_text=re.compile(r"^photo \d+, distance"))
    cards = stage_output(page, 2).locator(".widget-vbox").filter(has=caption)
    same = cards.nth(0).get_by_role("button", name="same", exact=True)
    same.click()
    expect(same).to_have_class(re.compile("mod-active"))
    press_next(page, 3)
    see(stage_output(page, 3).get_by_text("1 of 12 photos labeled"))


def test_three_labelers_get_disjoint_photo_sets(
    serve_example: Callable[[str], ServedExample], person: Page, admin: Page, third: Page,
    offline: OfflineGuard,
) -> None:
    example = serve_example("labeling")
    labelers = {"ann": person, "ben": third, "cy": admin}
    for number, (name, page) in enumerate(labelers.items()):
        sign_in(page, example, name, "new")
        wait_stage(page, 0)
        see(stage_output(page, 0).get_by_text(f"photo set {number}: 240 photos of 6 people"))
    label_a_photo_set(person)
    label_a_photo_set(third)

    # cy leaves at the first stage (her page becomes the admin's): her set stays claimed
    text = admin_queue(admin, example, "photo sets")
    assert "100 items: 2 done · 1 claimed · 97 waiting (batch 1, overlap 1)" in text
    assert "One answer per item: no agreement to measure." in text
    rows = [line.split("\t") for line in text.splitlines() if line.count("\t") == 3]
    assert rows[1:] == [["ann", "1", "0", "0"], ["ben", "1", "0", "0"], ["cy", "0", "0", "1"]]

    exported = export_queue(example, "photo sets")
    assert [(row["item"], row["user"], row["skipped"]) for row in exported] == [
        (0, "ann", False), (1, "ben", False),
    ]
    answers = [row["answer"] for row in exported]
    assert all(isinstance(a, dict) and a["person"] == "Alan" and a["same"] == 1 for a in answers)
    offline.check()


SENTIMENTS = {"p": "positive", "n": "negative", "u": "neutral"}
GIVEN = {"s00": "ppp", "s01": "ppp", "s02": "ppn", "s03": "nnn", "s04": "nnn", "s05": "upu"}
"""Per sentence, the answers of the first, second and third labeler."""


def answer_sentences(page: Page, who: int) -> None:
    output = stage_output(page, 0)
    for item, answers in GIVEN.items():
        # the innermost box holding the sentence: its card (the outer box holds them all)
        card = output.locator(".widget-vbox").filter(has=page.locator("b", has_text=item)).last
        button = card.get_by_role("button", name=SENTIMENTS[answers[who]], exact=True)
        button.click()
        expect(button).to_have_class(re.compile("mod-active"))
    press_next(page, 1)
    see(stage_output(page, 1).get_by_text(re.compile(r"^6 answers submitted")))


def test_three_labelers_on_each_sentence_and_their_agreement(
    serve_example: Callable[[str], ServedExample], person: Page, admin: Page, third: Page,
    offline: OfflineGuard,
) -> None:
    example = serve_example("sentiment")
    pages = [person, third, admin]
    for who, page in enumerate(pages):
        sign_in(page, example, f"rater{who}", "new")
        wait_stage(page, 0)
        expect(stage_output(page, 0).locator("b", has_text=re.compile(r"^s0[0-5]$"))
               ).to_have_count(6)  # overlap 3: the same six sentences for all three
    for who, page in enumerate(pages):
        answer_sentences(page, who)

    text = admin_queue(admin, example, "sentiment")
    assert "60 items: 6 done · 0 claimed · 54 waiting (batch 6, overlap 3)" in text
    # by hand: P_i = 1, 1, 1/3, 1, 1, 1/3 -> mean 7/9 (77.8%); shares positive 9/18,
    # negative 7/18, neutral 2/18 -> P_e = 134/324; kappa = (7/9 - 134/324) / (1 - 134/324)
    # = 59/95 = 0.621
    assert "Fleiss' kappa 0.621, observed agreement 77.8% over 6 done items." in text
    disputes = [line for line in text.splitlines() if line.startswith("s0")]
    assert disputes == ["s02\tpositive · positive · negative",
                        "s05\tneutral · positive · neutral"]
    exported = export_queue(example, "sentiment")
    assert len(exported) == 18 and {row["user"] for row in exported} == {
        "rater0", "rater1", "rater2"
    }
    offline.check()
