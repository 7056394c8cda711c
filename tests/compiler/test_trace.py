"""`--trace`: a real throw-away kernel finds cells whose library calls display widgets."""

from __future__ import annotations

import io
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from freezer.commands import build_main, plan_main
from freezer.errors import TraceError
from freezer.trace import trace_notebook
from runtime import manifest as mf

# A library the static analysis cannot see into: `annotate` is a plain function that builds
# and displays widgets, and returns them.
WIDGET_LIBRARY = '''
import ipywidgets
from IPython.display import display


def annotate(items):
    boxes = [ipywidgets.Checkbox(description=str(item)) for item in items]
    display(ipywidgets.VBox(boxes))
    return boxes
'''


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`labelkit` on the kernel's PYTHONPATH (not beside the notebook)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "labelkit.py").write_text(WIDGET_LIBRARY)
    monkeypatch.setenv("PYTHONPATH", str(lib))
    return lib


@pytest.fixture
def notebook(tmp_path: Path, library: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "items.txt").write_text("a\nb\nc\n")
    nb = new_notebook(cells=[
        new_markdown_cell("# Annotate"),
        new_code_cell("from labelkit import annotate\nitems = open('items.txt').read().split()"),
        new_code_cell("annotations = annotate(items)"),
        new_markdown_cell("## Results"),
        new_code_cell("chosen = [b.description for b in annotations if b.value]\nprint(chosen)"),
        new_code_cell("input('never asked')", metadata={"tags": ["freeze:skip"]}),
    ])
    path = project / "annotate.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_trace_finds_the_cell_that_shows_widgets(
    notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb = nbformat.read(str(notebook), as_version=4)
    assert trace_notebook(nb, cwd=notebook.parent, cell_timeout=60) == frozenset({2})
    progress = capsys.readouterr().err.splitlines()
    assert progress == [
        "trace: cell 2 (1/3): ok" + progress[0].split("ok", 1)[1],
        "trace: cell 3 (2/3): shows widgets" + progress[1].split("widgets", 1)[1],
        "trace: cell 5 (3/3): ok" + progress[2].split("ok", 1)[1],
    ]


def test_build_with_trace_waits_on_the_traced_names(
    notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    untraced = tmp_path / "untraced"
    assert build_main([str(notebook), "-o", str(untraced)]) == 0
    assert len(mf.load(untraced).stages) == 1

    traced = tmp_path / "traced"
    assert build_main([str(notebook), "-o", str(traced), "--trace"]) == 0
    stages = mf.load(traced).stages
    assert len(stages) == 2
    assert [w.name for w in stages[0].waits_on] == ["annotations"]
    assert stages[0].waits_on[0].kind == "traced"
    assert stages[0].waits_on[0].bound_in_cell == 2
    assert "trace: cell 3 (2/3): shows widgets" in capsys.readouterr().err

    assert plan_main([str(notebook), "--trace"]) == 0
    assert "annotations" in capsys.readouterr().out


def test_a_cell_that_hangs_ends_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb = new_notebook(cells=[
        new_code_cell("x = 1"),
        new_code_cell("import threading\nthreading.Event().wait()"),
    ])
    path = tmp_path / "hangs.ipynb"
    nbformat.write(nb, str(path))
    with pytest.raises(TraceError) as info:
        trace_notebook(nb, cwd=tmp_path, cell_timeout=1, progress=io.StringIO(), where=str(path))
    assert "cell 2" in info.value.message and "--trace-timeout" in info.value.message

    assert build_main([str(path), "--trace", "--trace-timeout", "1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"freezer: {path}: cell 2: still running after 1 s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hangs.ipynb"]


def test_a_kernel_that_dies_ends_the_trace(tmp_path: Path) -> None:
    nb = new_notebook(cells=[new_code_cell("import os\nos._exit(3)")])
    with pytest.raises(TraceError) as info:
        trace_notebook(nb, cwd=tmp_path, cell_timeout=0, progress=io.StringIO(), where="nb")
    assert info.value.message.startswith("nb: cell 1: the kernel died")


def test_a_view_cleared_is_still_shown_and_a_cell_that_raises_is_reported(
    tmp_path: Path
) -> None:
    nb = new_notebook(cells=[
        new_code_cell("import ipywidgets as w\nfrom IPython.display import clear_output, display"
                      "\nshown = w.IntSlider()\ndisplay(shown)\nclear_output()"),
        new_code_cell("1 / 0"),
        new_code_cell("%block shown"),
        new_code_cell("print('after')"),
    ])
    progress = io.StringIO()
    assert trace_notebook(nb, cwd=tmp_path, cell_timeout=0, progress=progress) == {0}
    lines = [re.sub(r" \(\d+\.\d s\)$", "", line)  # the time each cell took
             for line in progress.getvalue().splitlines()]
    assert lines == [
        "trace: cell 1 (1/3): shows widgets",
        "trace: cell 2 (2/3): raised ZeroDivisionError: division by zero",
        "trace: cell 4 (3/3): ok",
    ]
    assert all(cell.get("outputs", []) == [] for cell in nb.cells)  # the notebook is untouched
