"""`freezer export APP --queue NAME` and the admin's queue report, from a real SQLite file."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.store.queue_export import queue_report
from runtime.store.store import Store
from tests.server.conftest import write_app
from tests.store.conftest import make_manifest

pytestmark = pytest.mark.timeout(120)


async def labelled(app_dir: Path) -> Store:
    """Three people answer a queue with overlap 2; one skips; `=1+1` is a hostile answer."""
    store = await Store.open(f"sqlite:///{app_dir / 'freezer.db'}")
    manifest = make_manifest()
    await store.ensure_app(manifest)
    await store.queue_open("faces", ["a", "b", "c"], batch=3, overlap=2)
    answers = {"ada": {"a": "cat", "b": "dog", "c": "cat"}, "bob": {"a": "cat", "b": "cat"},
               "cy": {"c": "=1+1"}}
    for name, given in answers.items():
        user = await store.get_or_create_user(name)
        run = await store.create_run(manifest.app_id, user.id, 1, {})
        await store.queue_claim("faces", run.id)
        await store.queue_answer("faces", run.id, list(given.items()))
        if name == "bob":
            await store.queue_answer("faces", run.id, [("c", None)], skipped=True)
    return store


def export(app_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "freezer", "export", str(app_dir), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_export_queue_writes_one_row_per_item_person_answer_and_time(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path / "app")
    store = asyncio.run(labelled(app_dir))
    asyncio.run(store.close())
    done = export(app_dir, "--queue", "faces")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["item"], r["user"], r["answer"], r["skipped"]) for r in rows] == [
        ("a", "ada", "cat", "false"), ("a", "bob", "cat", "false"),
        ("b", "ada", "dog", "false"), ("b", "bob", "cat", "false"),
        ("c", "ada", "cat", "false"), ("c", "bob", "", "true"), ("c", "cy", "'=1+1", "false"),
    ]
    assert all(r["at"].endswith("+00:00") and r["run_id"] for r in rows)
    as_json = json.loads(export(app_dir, "--queue", "faces", "--format", "json").stdout)
    assert as_json[0]["item"] == "a" and as_json[5]["skipped"] is True
    both = export(app_dir, "--queue", "faces", "--files", str(tmp_path / "files"))
    assert both.returncode == 2
    assert both.stderr.splitlines() == [
        "freezer export: --files copies runs' files; it does not go with --queue"
    ]
    missing = export(app_dir, "--queue", "nope")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        "freezer export: there is no work queue named 'nope' (queues: faces)"
    ]


async def test_the_report_counts_items_labelers_and_agreement(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path / "app")
    store = await labelled(app_dir)
    try:
        report = await queue_report(store, "faces")
    finally:
        await store.close()
    assert (report["items"], report["done"], report["claimed"], report["waiting"]) == (3, 3, 0, 0)
    assert report["labelers"] == {
        "ada": {"answers": 3, "skips": 0, "claimed": 0},
        "bob": {"answers": 2, "skips": 1, "claimed": 0},
        "cy": {"answers": 1, "skips": 0, "claimed": 0},
    }
    # pairs (first, second): a cat/cat, b dog/cat, c cat/=1+1: p_o = 1/3;
    # A: cat 2, dog 1; B: cat 2, =1+1 1 -> p_e = (2*2)/9 = 4/9; kappa = (3/9-4/9)/(5/9) = -0.2
    agreement = report["agreement"]
    assert agreement["method"] == "cohen" and agreement["items"] == 3
    assert agreement["kappa"] == pytest.approx(-0.2)
    assert agreement["observed"] == pytest.approx(1 / 3)
    assert agreement["disagreements"] == [
        {"item": "b", "answers": ["dog", "cat"]}, {"item": "c", "answers": ["cat", "=1+1"]},
    ]


async def test_the_admin_page_shows_each_queue(tmp_path: Path) -> None:
    from runtime.web.admin_data import load_page, render_page

    app_dir = write_app(tmp_path / "app")
    store = await labelled(app_dir)
    try:
        html = render_page(await load_page(store, "Labeling"), "/admin/export")
    finally:
        await store.close()
    assert "<h3>faces</h3>" in html
    assert "3 items: 3 done · 0 claimed · 0 waiting (batch 3, overlap 2)" in html
    assert "Cohen&#39;s kappa -0.200, observed agreement 33.3% over 3 done items." in html
    assert "<tr><td>bob</td><td>2</td><td>1</td><td>0</td></tr>" in html
    assert "=1+1" in html and "<script" not in html
