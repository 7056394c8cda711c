"""Test data of the admin area: an app directory whose SQLite database holds a few runs.

The database is filled through the real :class:`runtime.store.store.Store`, with the same runner
events a kernel sends, so the rows the exports and the admin page read are the store's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime import manifest as manifest_mod
from runtime.manifest import Cell, Manifest, Stage, WaitsOn

store_module = pytest.importorskip("runtime.store.store", reason="no store module yet")
Store = store_module.Store

HOSTILE_NAME = "<script>alert('name')</script>"
"""A user name as a person could type it at sign-in."""
HOSTILE_INPUT = "<img src=x onerror=alert(1)>"
"""A widget value as a person could type it into a Text widget."""
FORMULA_NAME = "=2+5"
FORMULA_NOTE = '=HYPERLINK("http://example.invalid","click")'


@dataclass
class SeededApp:
    """An app directory with `app.json` and a `freezer.db` holding four runs."""

    app_dir: Path
    db_url: str
    manifest: Manifest
    run_ids: dict[str, str]  # user name -> run id


def make_manifest() -> Manifest:
    """A three-stage app: pick a threshold, label samples, save."""

    def code(cell_id: str, source: str, *tags: str) -> Cell:
        return Cell(id=cell_id, kind="code", source=source, tags=tags)

    return Manifest(
        title="Face labels",
        source_name="faces.ipynb",
        source_sha256="0" * 64,
        freezer_version="0.1.0",
        created="2026-11-23T12:00:00+00:00",
        kernel_name="python3",
        kernel_language="python",
        stages=(
            Stage(
                index=0,
                title="Pick the threshold",
                cells=(code("c0", "picker = widgets.Text()\nslider = widgets.FloatSlider()"),),
                waits_on=(WaitsOn("picker", "widget", 0), WaitsOn("slider", "widget", 0)),
            ),
            Stage(
                index=1,
                title="Label samples",
                cells=(code("c1", "threshold = slider.value", "collect:threshold"),),
                waits_on=(WaitsOn("labels", "widget", 1),),
                collect=("threshold",),
            ),
            Stage(
                index=2,
                title="Save",
                cells=(code("c2", "note = picker.value", "collect:note", "collect:count"),),
                collect=("note", "count"),
            ),
        ),
    ).with_app_id()


async def seed(db_url: str, manifest: Manifest) -> dict[str, str]:
    """Four runs: finished, at stage 2, failed in stage 1, just started; returns their ids."""
    store = await Store.open(db_url)
    try:
        await store.ensure_app(manifest)
        run_ids: dict[str, str] = {}

        async def start(name: str, seed_value: int) -> str:
            user = await store.get_or_create_user(name)
            run = await store.create_run(manifest.app_id, user.id, seed_value, {"shard": 1})
            run_ids[name] = run.id
            await store.record_runner_event(run.id, {"event": "hello", "run_id": run.id})
            return str(run.id)

        async def events(run_id: str, *items: dict[str, object]) -> None:
            for item in items:
                await store.record_runner_event(run_id, dict(item))

        def through(stage: int, snapshot: dict[str, object]) -> list[dict[str, object]]:
            return [
                {"event": "stage_started", "stage": stage},
                {"event": "stage_ready", "stage": stage},
                {"event": "stage_finished", "stage": stage, "snapshot": snapshot},
            ]

        alice = await start("alice", 1)
        await events(
            alice,
            *through(0, {"picker": "alice's pick", "slider": 0.7}),
            {"event": "stage_started", "stage": 1},
            {"event": "collected", "stage": 1, "name": "threshold", "value": 0.7},
            {"event": "stage_ready", "stage": 1},
            {"event": "stage_finished", "stage": 1, "snapshot": {"labels": [1, 0, 1]}},
            {"event": "stage_started", "stage": 2},
            {"event": "collected", "stage": 2, "name": "note", "value": "all good"},
            {"event": "collected", "stage": 2, "name": "count", "value": 3},
            {"event": "stage_ready", "stage": 2},
            {"event": "finished"},
        )
        hostile = await start(HOSTILE_NAME, 2)
        await events(
            hostile,
            *through(0, {"picker": HOSTILE_INPUT, "slider": 0.4}),
            {"event": "stage_started", "stage": 1},
            {"event": "collected", "stage": 1, "name": "threshold", "value": 0.4},
            {"event": "stage_ready", "stage": 1},
            {"event": "stage_finished", "stage": 1, "snapshot": {"labels": [0]}},
            {"event": "stage_started", "stage": 2},
            {"event": "collected", "stage": 2, "name": "note", "value": HOSTILE_INPUT},
            {"event": "stage_ready", "stage": 2},
        )
        formula = await start(FORMULA_NAME, 3)
        await events(
            formula,
            *through(0, {"picker": FORMULA_NOTE, "slider": -0.5}),
            {"event": "stage_started", "stage": 1},
            {"event": "collected", "stage": 1, "name": "threshold", "value": -0.5},
            {"event": "collected", "stage": 1, "name": "note", "value": FORMULA_NOTE},
            {"event": "stage_failed", "stage": 1, "error": "ValueError: bad", "traceback": ""},
        )
        await store.set_run_status(formula, "failed")
        newcomer = await start("dave", 4)
        await events(newcomer, {"event": "stage_started", "stage": 0})
        return run_ids
    finally:
        await store.close()


def write_app(app_dir: Path, manifest: Manifest) -> None:
    """An app directory as `freezer build` leaves it (the notebook is a stand-in)."""
    app_dir.mkdir(parents=True, exist_ok=True)
    manifest_mod.dump(manifest, app_dir)
    notebook = {
        "cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }
    (app_dir / manifest_mod.NOTEBOOK_NAME).write_text(json.dumps(notebook), encoding="utf-8")
