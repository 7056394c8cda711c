"""Two labelers at once on the labeling example: two browser contexts, two runs, two kernels;
each sees what follows from their own choices, and `freezer export` shows both runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gallery import (
    TIMEOUT_MS,
    ServedExample,
    press_next,
    see,
    set_slider,
    sign_in,
    slider,
    stage_output,
    wait_stage,
)
from playwright.sync_api import Page, expect

from tests.support.eventually import eventually_sync
from tests.support.offline import OfflineGuard


@pytest.fixture(scope="module")
def example(serve_example: Callable[[str], ServedExample]) -> ServedExample:
    return serve_example("labeling")


def pick(page: Page, name: str) -> None:
    button = stage_output(page, 0).get_by_role("button", name=name, exact=True)
    button.click()
    expect(button).to_have_class(re.compile("mod-active"))


def label(page: Page, answers: list[str]) -> None:
    caption = page.locator(".widget-label", has_text=re.compile(r"^photo \d+, distance"))
    cards = stage_output(page, 2).locator(".widget-vbox").filter(has=caption)
    expect(cards).to_have_count(12)
    for index, answer in enumerate(answers):
        button = cards.nth(index).get_by_role("button", name=answer, exact=True)
        button.click()
        expect(button).to_have_class(re.compile("mod-active"))


def exported(example: ServedExample, out: Path) -> dict[str, dict[str, Any]]:
    """`freezer export APP --db URL --format json` until two runs are finished (the runner
    reports `finished` a moment after the page shows the last stage)."""
    rows: dict[str, dict[str, Any]] = {}

    def two_finished() -> bool:
        command = [sys.executable, "-m", "freezer", "export", str(example.app),
                   "--db", example.db_url, "--format", "json", "-o", str(out)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        rows.clear()
        rows.update({row["run_id"]: row for row in json.loads(out.read_text())})
        return sum(row["status"] == "finished" for row in rows.values()) >= 2

    eventually_sync(two_finished, lambda: f"two finished runs: {rows}", TIMEOUT_MS / 1000)
    return rows


def test_two_labelers_get_their_own_runs_and_results(
    example: ServedExample, person: Page, admin: Page, offline: OfflineGuard, tmp_path: Path
) -> None:
    alice, bob = person, admin  # two browser contexts: two people
    alice_run = sign_in(alice, example, "alice", "new")
    bob_run = sign_in(bob, example, "bob", "new")
    assert alice_run != bob_run
    wait_stage(alice, 0)
    wait_stage(bob, 0)
    # the work queue gives each labeler a photo set of their own
    see(stage_output(alice, 0).get_by_text("photo set 0: 240 photos of 6 people"))
    see(stage_output(bob, 0).get_by_text("photo set 1: 240 photos of 6 people"))

    pick(alice, "Alan")
    pick(bob, "Grace")
    press_next(alice, 1)
    press_next(bob, 1)
    see(stage_output(alice, 1).get_by_text(re.compile(r"distances of 240 photos to Alan: ")))
    see(stage_output(bob, 1).get_by_text(re.compile(r"distances of 240 photos to Grace: ")))
    expect(stage_output(alice, 1).get_by_text("Grace")).to_have_count(0)

    set_slider(slider(alice, "threshold"), "0.20")
    set_slider(slider(bob, "threshold"), "0.30")
    press_next(alice, 2)
    press_next(bob, 2)
    see(stage_output(alice, 2).get_by_text("Reference photos of Alan:"))
    see(stage_output(bob, 2).get_by_text("Reference photos of Grace:"))

    label(alice, ["same", "same"])
    label(bob, ["different"])
    press_next(alice, 3)
    press_next(bob, 3)
    see(stage_output(alice, 3).get_by_text("2 of 12 photos labeled"))
    see(stage_output(bob, 3).get_by_text("1 of 12 photos labeled"))

    rows = exported(example, tmp_path / "export.json")
    a, b = rows[alice_run], rows[bob_run]
    assert (a["user"], a["status"], b["user"], b["status"]) == (
        "alice", "finished", "bob", "finished"
    )
    assert a["snapshots"]["0"] == {"picker": "Alan"} and b["snapshots"]["0"] == {"picker": "Grace"}
    assert a["snapshots"]["1"] == {"threshold": 0.2} and b["snapshots"]["1"] == {"threshold": 0.3}
    assert [x["label"] for x in a["results"]["labels"]][:3] == ["same", "same", None]
    assert [x["label"] for x in b["results"]["labels"]][:2] == ["different", None]
    assert (a["results"]["summary"]["same"], b["results"]["summary"]["different"]) == (2, 1)
    offline.check()
