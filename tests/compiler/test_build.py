"""`freezer build` end to end: the app directory, its manifest, rebuilds and --include."""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from freezer import __version__
from freezer import emit as emit_module
from freezer.commands import build_main, plan_main
from freezer.notebook import read_notebook
from freezer.plan import plan_notebook
from runtime import manifest as mf
from runtime.manifest import CONFIG_NAME, COOKIE_SECRET_FILE


def write_nb(path: Path, cells: list[Any], **metadata: Any) -> Path:
    """Write an nbformat 4 notebook with `cells` and notebook `metadata`."""
    nb = new_notebook(cells=cells, metadata=metadata)
    nbformat.write(nb, str(path))
    return path


def two_stage_cells() -> list[Any]:
    return [
        new_markdown_cell("# Pick a person\nChoose who to label."),
        new_code_cell("import json\nimport ipywidgets as widgets\nimport numpy as np"),
        new_code_cell("picker = widgets.Dropdown(options=['ann', 'bob'])\npicker"),
        new_markdown_cell("## Label"),
        new_code_cell("person = picker.value\nprint(person)", metadata={"tags": ["freeze:break"]}),
    ]


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return write_nb(tmp_path / "labeling.ipynb", two_stage_cells())


def listing(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def test_build_writes_the_app_directory(
    notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "app"
    assert build_main([str(notebook), "-o", str(out)]) == 0

    assert listing(out) == {"app.json", "app.ipynb", "requirements.txt"}
    manifest = mf.load(out)
    assert manifest.app_id == manifest.with_app_id().app_id
    assert manifest.title == "Pick a person"
    assert manifest.source_name == "labeling.ipynb"
    assert manifest.source_sha256 == hashlib.sha256(notebook.read_bytes()).hexdigest()
    assert (manifest.kernel_name, manifest.kernel_language) == ("python3", "python")
    assert manifest.freezer_version == __version__
    # The stages are the planner's, cell for cell.
    plan = plan_notebook(read_notebook(notebook).nb)
    assert len(manifest.stages) == len(plan.stages) == 2
    for stage, planned in zip(manifest.stages, plan.stages, strict=True):
        assert (stage.index, stage.title, stage.collect, stage.warm) == (
            planned.index, planned.title, planned.collect, planned.warm)
        assert [(c.id, c.kind, c.source, c.tags) for c in stage.cells] == [
            (c.id, c.kind, c.source, c.tags) for c in planned.cells]
    assert plan.stages[0].ends_with is not None
    assert manifest.stages[0].waits_on == plan.stages[0].ends_with.waits_on
    assert manifest.stages[1].waits_on == ()
    assert manifest.stages[1].cells[-1].source == "person = picker.value\nprint(person)"
    assert manifest.stages[1].cells[-1].tags == ("freeze:break",)

    app_nb = nbformat.read(str(out / "app.ipynb"), as_version=nbformat.NO_CONVERT)
    nbformat.validate(app_nb)
    assert [c.cell_type for c in app_nb.cells] == ["markdown", "code"]
    assert app_nb.cells[0].source == "# Pick a person"
    assert app_nb.cells[1].source == mf.BOOTSTRAP_SOURCE
    assert app_nb.metadata.kernelspec.name == "python3"

    printed = capsys.readouterr()
    assert "2 stages" in printed.out
    assert "1. " in printed.out and "2. " in printed.out
    assert "freeze:break" in printed.out  # what the first stage waits on
    assert printed.err == ""
    # The app directory is readable like anything else written here, not private temp modes.
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == 0o777 & ~umask
    assert ((out / "app.json").stat().st_mode & 0o777) == 0o666 & ~umask


def test_default_output_is_beside_the_notebook(
    notebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert build_main([str(notebook)]) == 0
    assert (tmp_path / "labeling_app" / "app.json").is_file()
    assert list(elsewhere.iterdir()) == []


def test_rebuilding_gives_the_same_app_id_and_replaces_the_app(
    notebook: Path, tmp_path: Path
) -> None:
    out = tmp_path / "app"
    assert build_main([str(notebook), "-o", str(out)]) == 0
    first = mf.load(out).app_id
    assert build_main([str(notebook), "-o", str(out)]) == 0
    assert mf.load(out).app_id == first

    cells = two_stage_cells()
    cells[2].source += "\n# changed"
    write_nb(notebook, cells)
    assert build_main([str(notebook), "-o", str(out)]) == 0
    assert mf.load(out).app_id != first
    # Nothing is left beside the app: no temporary or old directories.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "labeling.ipynb"]


def test_rebuild_keeps_the_database_of_a_served_app(notebook: Path, tmp_path: Path) -> None:
    out = tmp_path / "app"
    assert build_main([str(notebook), "-o", str(out)]) == 0
    databases = {"freezer.db": b"SQLite format 3\x00rows", "freezer.db-wal": b"wal",
                 "freezer.db-shm": b"shm"}
    for name, data in databases.items():
        (out / name).write_bytes(data)
    inode = (out / "freezer.db").stat().st_ino
    (out / "stale.txt").write_text("from an older build")

    assert build_main([str(notebook), "-o", str(out), "--title", "Second"]) == 0
    assert mf.load(out).title == "Second"
    for name, data in databases.items():
        assert (out / name).read_bytes() == data
    # Moved, not copied: a server holding the database open keeps writing the same file.
    assert (out / "freezer.db").stat().st_ino == inode
    assert not (out / "stale.txt").exists()


def test_rebuild_keeps_the_cookie_secret_and_the_config_of_a_served_app(
    notebook: Path, tmp_path: Path
) -> None:
    out = tmp_path / "app"
    assert build_main([str(notebook), "-o", str(out)]) == 0
    # The names the server uses: a rebuild must keep exactly these.
    kept = {COOKIE_SECRET_FILE: b"\x01secret", "freezer.db": b"runs",
            f"{CONFIG_NAME}.py": b"c.FreezerApp.auth = 'token'\n",
            f"{CONFIG_NAME}.json": b'{"FreezerApp": {"auth": "token"}}'}
    for name, data in kept.items():
        (out / name).write_bytes(data)
    (out / COOKIE_SECRET_FILE).chmod(0o600)

    assert build_main([str(notebook), "-o", str(out), "--title", "Second"]) == 0
    assert mf.load(out).title == "Second"
    for name, data in kept.items():
        assert (out / name).read_bytes() == data, name
    assert (out / COOKIE_SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "labeling.ipynb"]


def test_existing_directory_that_is_not_an_app_needs_force(
    notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")

    assert build_main([str(notebook), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("freezer: ")
    assert "not a Freezer app" in err and "--force" in err
    assert listing(out) == {"thesis.tex"}

    assert build_main([str(notebook), "-o", str(out), "--force"]) == 0
    assert listing(out) == {"app.json", "app.ipynb", "requirements.txt"}


def test_an_empty_existing_directory_is_used(notebook: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert build_main([str(notebook), "-o", str(out)]) == 0
    assert (out / "app.json").is_file()


def test_force_never_replaces_the_notebooks_own_directory(
    notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert build_main([str(notebook), "-o", str(tmp_path), "--force"]) == 2
    assert "choose another -o" in capsys.readouterr().err
    assert notebook.is_file()


def test_a_failed_write_leaves_no_directory(
    notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(emit_module, "write_app_notebook", disk_full)
    out = tmp_path / "new" / "deeper" / "app"
    assert build_main([str(notebook), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labeling.ipynb"]


def test_a_failed_rebuild_keeps_the_old_app_and_its_database(
    notebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "app"
    assert build_main([str(notebook), "-o", str(out)]) == 0
    before = (out / "app.json").read_text()
    (out / "freezer.db").write_bytes(b"runs")

    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:
        if Path(src).name.startswith(".app.building-") and Path(dst) == out:
            raise OSError(5, "Input/output error", str(dst))
        real_rename(src, dst)

    monkeypatch.setattr(emit_module.os, "rename", rename)
    assert build_main([str(notebook), "-o", str(out), "--title", "New"]) == 2
    assert (out / "app.json").read_text() == before
    assert (out / "freezer.db").read_bytes() == b"runs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "labeling.ipynb"]


def test_include_copies_files_keeping_their_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "data" / "raw").mkdir(parents=True)
    (project / "data" / "raw" / "faces.csv").write_text("id,name\n1,ann\n")
    (project / "data" / ".ipynb_checkpoints").mkdir()
    (project / "lookup.json").write_text("{}")
    notebook = write_nb(project / "nb.ipynb", two_stage_cells())
    monkeypatch.chdir(tmp_path)  # paths as typed, relative to here

    out = project / "nb_app"
    args = ["project/nb.ipynb", "--include", "project/data", "--include", "project/lookup.json"]
    assert build_main(args) == 0
    assert listing(out / "files") == {
        "data", "data/raw", "data/raw/faces.csv", "lookup.json"
    }
    assert (out / "files" / "data" / "raw" / "faces.csv").read_text() == "id,name\n1,ann\n"

    # Including the notebook's whole directory never copies the app into itself.
    assert build_main([str(notebook), "--include", "project"]) == 0
    copied = listing(out / "files")
    assert "nb.ipynb" in copied and "data/raw/faces.csv" in copied
    assert not any(name.startswith("nb_app") for name in copied)


@pytest.mark.parametrize(
    ("include", "expected"),
    [("missing.csv", "no such file"), ("../outside.csv", "outside the notebook's directory")],
)
def test_include_errors(
    tmp_path: Path, include: str, expected: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "outside.csv").write_text("x")
    write_nb(project / "nb.ipynb", two_stage_cells())
    monkeypatch.chdir(project)
    assert build_main(["nb.ipynb", "--include", include]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--include {include}" in err and expected in err
    assert sorted(p.name for p in project.iterdir()) == ["nb.ipynb"]


def test_requirements_pin_what_the_notebook_imports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "helpers.py").write_text("X = 1\n")
    cells = [
        new_code_cell("import os, json\nimport numpy as np\nfrom ipywidgets import IntSlider"),
        new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt\n!echo hi"),
        new_code_cell("def later():\n    import nosuchdistribution_xyz\n    from . import rel"),
        new_code_cell("from helpers import X"),
        new_code_cell("import pandas_never", metadata={"tags": ["freeze:skip"]}),
        new_code_cell("%pip install -q 'labelkit-extras>=2.1' numpy\nimport os"),
    ]
    notebook = write_nb(tmp_path / "nb.ipynb", cells)
    assert build_main([str(notebook), "-o", str(tmp_path / "app")]) == 0

    text = (tmp_path / "app" / "requirements.txt").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == sorted(lines, key=str.lower)
    assert f"freezer=={__version__}" in lines
    assert f"numpy=={metadata.version('numpy')}" in lines
    assert f"ipywidgets=={metadata.version('ipywidgets')}" in lines
    assert f"matplotlib=={metadata.version('matplotlib')}" in lines
    assert "labelkit-extras>=2.1" in lines  # installed by the notebook itself, as written
    assert sum(line.startswith("numpy") for line in lines) == 1  # the import's pin wins
    assert not any(name in text for name in ("os==", "json==", "pandas_never", "helpers"))

    err = capsys.readouterr().err.splitlines()
    unknown = [line for line in err if "nosuchdistribution_xyz" in line]
    assert unknown == [f"{notebook}: cell 3, line 2: warning unknown-import: no installed "
                       "distribution provides 'nosuchdistribution_xyz'; add it to "
                       "requirements.txt by hand"]
    assert any("cell 4" in line and "--include helpers.py" in line for line in err)


def test_reading_drops_outputs_and_saved_widget_state(tmp_path: Path) -> None:
    cell = new_code_cell("print('hi')", execution_count=3)
    cell.outputs = [new_output("stream", name="stdout", text="hi\n")]
    state = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    notebook = write_nb(tmp_path / "nb.ipynb", [cell], widgets=state)
    source = read_notebook(notebook)
    assert "widgets" not in source.nb.metadata
    assert source.nb.cells[0].outputs == []
    assert source.nb.cells[0].execution_count is None


def test_cell_ids_are_kept_or_made_up_deterministically(tmp_path: Path) -> None:
    raw = {
        "nbformat": 4, "nbformat_minor": 4, "metadata": {},
        "cells": [
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": ["x = 1\n", "y = 2"]},
            {"cell_type": "markdown", "metadata": {}, "source": "# hi"},
        ],
    }
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(raw))
    source = read_notebook(path)
    assert [c.id for c in source.nb.cells] == ["cell-0", "cell-1"]
    assert source.nb.cells[0].source == "x = 1\ny = 2"
    assert build_main([str(path), "-o", str(tmp_path / "a")]) == 0
    assert build_main([str(path), "-o", str(tmp_path / "b")]) == 0
    assert mf.load(tmp_path / "a").app_id == mf.load(tmp_path / "b").app_id


@pytest.mark.parametrize(
    ("kernelspec", "warned"),
    [(None, False), ({"name": "python3", "language": "python", "display_name": "P"}, False),
     ({"name": "python2", "language": "python", "display_name": "Python 2"}, True),
     ({"name": "conda-env-x-py", "language": "python", "display_name": "x"}, True)],
)
def test_kernelspec_maps_to_an_installed_python_kernel(
    tmp_path: Path, kernelspec: dict[str, str] | None, warned: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    meta = {} if kernelspec is None else {"kernelspec": kernelspec}
    notebook = write_nb(tmp_path / "nb.ipynb", two_stage_cells(), **meta)
    assert build_main([str(notebook), "-o", str(tmp_path / "app")]) == 0
    assert mf.load(tmp_path / "app").kernel_name == "python3"
    err = capsys.readouterr().err
    assert ("warning unknown-kernel" in err) == warned
    if warned:
        assert kernelspec is not None and repr(kernelspec["name"]) in err


def test_plan_prints_the_stages_and_writes_nothing(
    notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = listing(tmp_path)
    assert plan_main([str(notebook)]) == 0
    text = capsys.readouterr().out
    assert "freeze:break" in text and "2 stages" in text

    assert plan_main([str(notebook), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["stages"]) == 2 and data["has_errors"] is False
    assert listing(tmp_path) == before


def test_help_explains_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_main(["--help"]) == 0
    text = capsys.readouterr().out
    for option in ("-o DIR", "--title", "--include PATH", "--force", "--trace",
                   "--trace-timeout", "requirements.txt", "freezer.db"):
        assert option in text
    assert plan_main(["--help"]) == 0
    assert "--json" in capsys.readouterr().out
    assert build_main([]) == 2


def test_data_files_the_notebook_names_but_the_app_lacks_are_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "faces.csv").write_text("id\n")
    (tmp_path / "model.bin").write_bytes(b"\0")
    cells = [
        new_code_cell("import os\nrows = open('data/faces.csv').read()"),
        new_code_cell("size = os.path.getsize(\n    'model.bin')\nlabel = 'not a file'"),
    ]
    notebook = write_nb(tmp_path / "nb.ipynb", cells)
    assert build_main([str(notebook), "-o", str(tmp_path / "app")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "missing-include" in line]
    assert err == [
        f"{notebook}: cell 1, line 2: warning missing-include: 'data/faces.csv' is beside the "
        "notebook but not in the app; build with --include data/faces.csv",
        f"{notebook}: cell 2, line 2: warning missing-include: 'model.bin' is beside the "
        "notebook but not in the app; build with --include model.bin",
    ]

    args = [str(notebook), "-o", str(tmp_path / "app"), "--include", str(tmp_path / "data"),
            "--include", str(tmp_path / "model.bin")]
    assert build_main(args) == 0
    assert "missing-include" not in capsys.readouterr().err


def test_blockrun_gates_the_stage_in_the_manifest_and_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = Path(__file__).resolve().parent / "fixtures" / "blockrun_gate.ipynb"
    assert build_main([str(fixture), "-o", str(tmp_path / "app")]) == 0
    assert "the run continues through button go" in capsys.readouterr().out
    data = json.loads((tmp_path / "app" / "app.json").read_text())
    assert data["stages"][0]["gate"] == "go"
    assert [w["name"] for w in data["stages"][0]["waits_on"]] == ["go", "t"]
    assert "gate" not in data["stages"][1]
    assert mf.load(tmp_path / "app").stages[0].gate == "go"
    assert plan_main([str(fixture), "--json"]) == 0
    ends_with = json.loads(capsys.readouterr().out)["stages"][0]["ends_with"]
    assert ends_with["gate"] == "go"
    assert "continues through button go" in ends_with["reason"]
