"""`freezer export` and `freezer runs` on a real SQLite database filled through the store."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_seed import (
    FORMULA_NAME,
    FORMULA_NOTE,
    HOSTILE_INPUT,
    HOSTILE_NAME,
    SeededApp,
    make_manifest,
    seed,
    write_app,
)

from runtime.manifest import Parameter
from runtime.store.export_format import (
    FORMULA_PREFIXES,
    csv_columns,
    flatten_row,
    rows_to_csv,
    safe_cell,
)
from runtime.store.exporting import export_main, runs_main
from runtime.store.models import new_run_id
from runtime.store.store import Store


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_has_one_row_per_run_with_snapshots_and_results(
    seeded_app: SeededApp, tmp_path: Path
) -> None:
    out = tmp_path / "runs.csv"
    assert export_main([str(seeded_app.app_dir), "--format", "csv", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == (
        "run_id,app_id,user,status,stage,stages,created_at,updated_at,finished_at,"
        "stage_0_status,stage_0.picker,stage_0.slider,stage_1_status,stage_1.labels,"
        "stage_2_status,param.shard,result.count,result.note,result.threshold"
    )
    rows = {row["run_id"]: row for row in read_csv(text)}
    assert set(rows) == set(seeded_app.run_ids.values())

    alice = rows[seeded_app.run_ids["alice"]]
    assert alice["user"] == "alice"
    assert alice["status"] == "finished"
    assert (alice["stage"], alice["stages"]) == ("2", "3")
    assert alice["finished_at"]
    assert alice["param.shard"] == "1"
    assert alice["stage_0_status"] == "finished"
    assert alice["stage_0.picker"] == "alice's pick"
    assert alice["stage_0.slider"] == "0.7"
    assert alice["stage_1.labels"] == "[1,0,1]"
    assert alice["stage_2_status"] == "ready"
    assert (alice["result.threshold"], alice["result.count"]) == ("0.7", "3")
    assert alice["result.note"] == "all good"

    dave = rows[seeded_app.run_ids["dave"]]
    assert (dave["status"], dave["stage"], dave["stage_0_status"]) == ("active", "0", "running")
    assert dave["result.threshold"] == "" and dave["stage_0.picker"] == ""


def test_csv_guards_against_spreadsheet_formulas(seeded_app: SeededApp, tmp_path: Path) -> None:
    out = tmp_path / "runs.csv"
    assert export_main([str(seeded_app.app_dir), "-o", str(out)]) == 0
    run_id = seeded_app.run_ids[FORMULA_NAME]
    row = next(r for r in read_csv(out.read_text()) if r["run_id"] == run_id)
    assert row["user"] == "'" + FORMULA_NAME
    assert row["result.note"] == "'" + FORMULA_NOTE
    assert row["stage_0.picker"] == "'" + FORMULA_NOTE
    # numbers are written as numbers, a negative one included
    assert row["result.threshold"] == "-0.5"
    assert row["stage_0.slider"] == "-0.5"
    for text in ("+1", "-x", "@SUM(A1)", "\tcmd", "\r=1"):
        assert safe_cell(text) == "'" + text
    assert safe_cell(["=x"]) == '["=x"]'  # JSON text starts with a bracket: inert


def test_csv_keeps_every_store_written_cell_exactly_as_stored() -> None:
    # Run ids are random url-safe text, so about 1 in 64 starts with "-": the formula guard must
    # not touch them (nor app ids, times, statuses), or rows stop matching the database. Every
    # formula prefix is tried at the head of each store-written column; the person-typed columns
    # of the same rows stay guarded.
    random_ids = [new_run_id() for _ in range(500)]
    forced = [prefix + new_run_id() for prefix in FORMULA_PREFIXES if prefix.isprintable()]
    rows = []
    for i, run_id in enumerate(random_ids + forced):
        rows.append({
            "run_id": run_id, "app_id": "-" + run_id[::-1], "user": "=" + run_id,
            "status": "-active", "stage": 0, "stages": 1,
            "created_at": "+2026-12-01T00:00:00", "updated_at": None, "finished_at": None,
            "stage_0_status": "@ready", "snapshots": {"0": {"picker_status": "-" + str(i)}},
            "params": {}, "results": {"note": "+" + run_id},
        })
    parsed = read_csv(rows_to_csv(rows))
    assert any(r.startswith("-") for r in random_ids + forced)
    assert [row["run_id"] for row in parsed] == random_ids + forced
    for row, source in zip(parsed, rows, strict=True):
        assert row["app_id"] == source["app_id"]
        assert row["status"] == "-active" and row["stage_0_status"] == "@ready"
        assert row["created_at"] == "+2026-12-01T00:00:00"
        assert row["user"] == "'" + source["user"]
        assert row["result.note"] == "'" + source["results"]["note"]
        # a notebook name that merely ends in _status is the notebook's text, still guarded
        assert row["stage_0.picker_status"] == "'" + source["snapshots"]["0"]["picker_status"]


def test_json_is_a_list_of_run_objects(
    seeded_app: SeededApp, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export_main([str(seeded_app.app_dir), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and len(rows) == 4
    by_user = {row["user"]: row for row in rows}
    hostile = by_user[HOSTILE_NAME]  # data, not HTML: kept exactly as typed
    assert hostile["snapshots"]["0"] == {"picker": HOSTILE_INPUT, "slider": 0.4}
    assert hostile["results"] == {"threshold": 0.4, "note": HOSTILE_INPUT}
    assert hostile["stage"] == 2 and hostile["status"] == "active"
    assert by_user["alice"]["results"]["count"] == 3


def test_csv_columns_go_stage_by_stage() -> None:
    row = {
        "run_id": "r", "app_id": "a", "user": "u", "status": "active", "stage": 1, "stages": 2,
        "created_at": None, "updated_at": None, "finished_at": None,
        "results": {"r": 3, "a": 1}, "params": {"p": 1},
        "snapshots": {"10": {"z": 1}, "2": {"y": 2, "b": 3}},
        "stage_10_status": "finished", "stage_2_status": "finished",
    }
    assert csv_columns([flatten_row(row)])[9:] == [
        "stage_2_status", "stage_2.b", "stage_2.y", "stage_10_status", "stage_10.z", "param.p",
        "result.a", "result.r",
    ]


def test_runs_prints_one_line_per_run(
    seeded_app: SeededApp, capsys: pytest.CaptureFixture[str]
) -> None:
    assert runs_main([str(seeded_app.app_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    by_id = {line.split()[0]: line for line in lines}
    assert set(by_id) == set(seeded_app.run_ids.values())
    alice = by_id[seeded_app.run_ids["alice"]].split()
    assert alice[1:4] == ["alice", "finished", "3/3"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", " ".join(alice[4:]))
    dave = by_id[seeded_app.run_ids["dave"]].split()
    assert dave[1:4] == ["dave", "active", "1/3"]


def test_db_option_reads_another_database(
    seeded_app: SeededApp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other-app"
    write_app(other, seeded_app.manifest)
    assert runs_main([str(other), "--db", seeded_app.db_url]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


@pytest.mark.parametrize("command", [export_main, runs_main])
def test_bad_input_is_one_line_and_exit_2(
    command: object, seeded_app: SeededApp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert callable(command)
    not_an_app = tmp_path / "empty"
    not_an_app.mkdir()
    no_db = tmp_path / "no-db"
    write_app(no_db, seeded_app.manifest)
    cases = [
        ([str(tmp_path / "missing")], "no such directory"),
        ([str(not_an_app)], "app.json"),
        ([str(no_db)], "no database here"),
        ([str(seeded_app.app_dir), "--db", "nosuchdriver://x"], "cannot open database"),
        (
            [str(seeded_app.app_dir), "--db", "postgresql+psycopg://postgres@127.0.0.1:1/none"],
            "cannot open database",
        ),
    ]
    for argv, expected in cases:
        assert command(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == ""
        assert len(captured.err.strip().splitlines()) == 1, captured.err
        assert expected in captured.err, captured.err
    assert not (no_db / "freezer.db").exists()  # refusing did not create an empty database


def test_unwritable_output_is_exit_2(
    seeded_app: SeededApp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "runs.csv"
    assert export_main([str(seeded_app.app_dir), "-o", str(target)]) == 2
    assert "cannot write" in capsys.readouterr().err


PG_SERVER = os.environ.get("FREEZER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (dropped afterwards), or a skip when the server is not there."""
    psycopg = pytest.importorskip("psycopg")
    try:
        with psycopg.connect(PG_SERVER, connect_timeout=3, autocommit=True) as conn:
            schema = f"admin_test_{uuid.uuid4().hex[:12]}"
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError:
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER}")
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_export_from_postgresql(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = make_manifest()
    write_app(tmp_path / "app", manifest)
    run_ids = asyncio.run(seed(postgres_url, manifest))
    assert export_main([str(tmp_path / "app"), "--db", postgres_url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["run_id"] for row in rows} == set(run_ids.values())
    assert runs_main([str(tmp_path / "app"), "--db", postgres_url]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_csv_export_fills_declared_parameters_and_json_keeps_them_as_stored(
    tmp_path: Path,
) -> None:
    # A run started without a start-link value for `shard` ran with the notebook's default, 3:
    # the CSV (a spreadsheet's columns of each run's settings) says so; the JSON keeps `params`
    # exactly as stored, and the server-set parameters are never filled in.
    manifest = dataclasses.replace(
        make_manifest(),
        parameters=(Parameter("shard", 3, "int"), Parameter("freezer_user", "", "str")),
    ).with_app_id()
    app_dir = tmp_path / "app"
    write_app(app_dir, manifest)

    async def fill() -> tuple[str, str]:
        store = await Store.open(f"sqlite:///{app_dir / 'freezer.db'}")
        try:
            await store.ensure_app(manifest)
            user = await store.get_or_create_user("ann")
            default = await store.create_run(manifest.app_id, user.id, 1, {})
            linked = await store.create_run(manifest.app_id, user.id, 2, {"shard": 7})
            return default.id, linked.id
        finally:
            await store.close()

    default_run, linked_run = asyncio.run(fill())
    out = tmp_path / "runs.csv"
    assert export_main([str(app_dir), "--format", "csv", "-o", str(out)]) == 0
    rows = {row["run_id"]: row for row in read_csv(out.read_text(encoding="utf-8"))}
    assert rows[default_run]["param.shard"] == "3"
    assert rows[linked_run]["param.shard"] == "7"
    assert "param.freezer_user" not in rows[default_run]
    out_json = tmp_path / "runs.json"
    assert export_main([str(app_dir), "--format", "json", "-o", str(out_json)]) == 0
    stored = {row["run_id"]: row["params"] for row in json.loads(out_json.read_text())}
    assert stored == {default_run: {}, linked_run: {"shard": 7}}
