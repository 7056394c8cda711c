"""The manifest contract: round trip, app_id, schema checks and format refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime import manifest as mf


def sample() -> mf.Manifest:
    cells = (
        mf.Cell(id="c0", kind="markdown", source="# Pick", tags=()),
        mf.Cell(id="c1", kind="code", source="w = Dropdown()\nw", tags=("freeze:warm",)),
    )
    return mf.Manifest(
        title="Sample",
        source_name="sample.ipynb",
        source_sha256="0" * 64,
        freezer_version="0.1.0",
        created="2026-01-01T00:00:00Z",
        kernel_name="python3",
        kernel_language="python",
        parameters=(mf.Parameter(name="shard", default=0, type="int"),),
        stages=(
            mf.Stage(
                index=0,
                title="Pick",
                cells=cells,
                waits_on=(mf.WaitsOn(name="w", kind="widget", bound_in_cell=1),),
                collect=("labels",),
            ),
        ),
    ).with_app_id()


def test_round_trip_through_app_directory(tmp_path: Path) -> None:
    original = sample()
    mf.dump(original, tmp_path)
    assert mf.load(tmp_path) == original
    assert original.collect_names() == ("labels",)


def test_app_id_ignores_creation_time_but_not_content() -> None:
    a = sample()
    later = mf.Manifest(**{**a.__dict__, "created": "2027-01-01T00:00:00Z"}).with_app_id()
    retitled = mf.Manifest(**{**a.__dict__, "title": "Other"}).with_app_id()
    assert later.app_id == a.app_id
    assert retitled.app_id != a.app_id


def test_newer_format_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    data = sample().to_json()
    data["format"] = mf.FORMAT + 1
    (tmp_path / "app.json").write_text(json.dumps(data))
    with pytest.raises(mf.ManifestError, match="newer than this Freezer"):
        mf.load(tmp_path)


def test_schema_violation_names_the_path(tmp_path: Path) -> None:
    data = sample().to_json()
    data["stages"][0]["cells"][0]["kind"] = "raw"
    (tmp_path / "app.json").write_text(json.dumps(data))
    with pytest.raises(mf.ManifestError, match="stages/0/cells/0/kind"):
        mf.load(tmp_path)


def test_missing_manifest_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(mf.ManifestError, match="Freezer app directory"):
        mf.load(tmp_path)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d,
        lambda d: d.pop("title"),
        lambda d: d.update(format="1"),
        lambda d: d.update(format=True),
        lambda d: d.update(app_id="not-hex"),
        lambda d: d.update(stages=[]),
        lambda d: d["stages"][0].update(index=-1),
        lambda d: d["stages"][0]["cells"][0].update(extra=1),
        lambda d: d["stages"][0]["waits_on"][0].update(kind="guess"),
        lambda d: d["stages"][0].update(collect=[1]),
        lambda d: d["kernel"].pop("language"),
    ],
)
def test_builtin_checker_agrees_with_jsonschema(mutate: object) -> None:
    import jsonschema

    data = sample().to_json()
    mutate(data)  # type: ignore[operator]
    reference = list(jsonschema.Draft202012Validator(mf.SCHEMA).iter_errors(data))
    assert bool(mf.schema_errors(data, mf.SCHEMA)) == bool(reference)


def test_a_tag_is_its_text() -> None:
    """Tags are plain strings in notebooks and in `app.json`; a member compares, hashes,
    formats and serialises as its text."""
    tags = ("freeze:skip", "collect:labels")
    assert mf.Tag.SKIP in tags and mf.Tag.WARM not in tags
    assert "freeze:break" in frozenset({mf.Tag.BREAK})
    assert f"{mf.Tag.PARAMETERS} / {mf.Tag.INJECTED_PARAMETERS}" == (
        "parameters / injected-parameters")
    assert json.dumps([mf.Tag.JOIN]) == '["freeze:join"]'
    assert mf.Tag("freeze:warm") is mf.Tag.WARM


def test_the_runtime_uses_the_names_the_manifest_module_gives() -> None:
    """The database and run-file locations and the reserved run parameters are the names the
    server, the store and the kernel use."""
    from runtime.runs.runfiles import run_files_root
    from runtime.store.exporting import default_db_url

    app = Path("/srv/app")
    assert default_db_url(app) == f"sqlite:///{app / mf.DATABASE_NAME}"
    assert run_files_root(app, "postgresql://db/x") == app / mf.RUNS_DIR
    assert mf.RESERVED_PARAMETERS == {"freezer_user", "freezer_run"}
