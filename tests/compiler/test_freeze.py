"""`freezer.freeze_notebook`: the compiler as a library call, without the command line."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import freezer
from freezer import syntax
from freezer.commands import plan_main
from freezer.errors import IncludeError, NotebookError, OutputError, PlanError
from runtime import manifest as mf


def write_nb(path: Path, cells: list[Any]) -> Path:
    nbformat.write(new_notebook(cells=cells), str(path))
    return path


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    (tmp_path / "names.txt").write_text("ann\nbob\n")
    return write_nb(tmp_path / "pick.ipynb", [
        new_markdown_cell("# Pick a name"),
        new_code_cell("import ipywidgets as w\nnames = open('names.txt').read().split()"),
        new_code_cell("picker = w.Dropdown(options=names)\npicker"),
        new_code_cell("print(picker.value)"),
    ])


def test_returns_the_manifest_it_wrote(notebook: Path, tmp_path: Path) -> None:
    out = tmp_path / "app"
    report = freezer.BuildReport()
    manifest = freezer.freeze_notebook(notebook, out, include=[notebook.parent / "names.txt"],
                                       title="Names", report=report)
    assert manifest == mf.load(out)
    assert manifest.title == "Names"
    assert [w.name for w in manifest.stages[0].waits_on] == ["picker"]
    assert (out / mf.FILES_DIR / "names.txt").read_text() == "ann\nbob\n"
    assert report.plan is not None and len(report.plan.stages) == len(manifest.stages) == 2
    assert report.warnings == []


def test_warnings_go_to_the_report_or_are_issued(notebook: Path, tmp_path: Path) -> None:
    report = freezer.BuildReport()
    freezer.freeze_notebook(notebook, tmp_path / "app", report=report)  # names.txt left out
    assert len(report.warnings) == 1 and "missing-include" in report.warnings[0]
    assert report.warnings[0].startswith(f"{notebook}: cell 2, line 2: warning")

    with pytest.warns(freezer.FreezeWarning, match="missing-include: 'names.txt'"):
        manifest = freezer.freeze_notebook(notebook, tmp_path / "app")
    assert mf.load(tmp_path / "app") == manifest


def test_unusable_input_raises_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "app"
    with pytest.raises(NotebookError, match="no such file"):
        freezer.freeze_notebook(tmp_path / "missing.ipynb", out)

    broken = write_nb(tmp_path / "broken.ipynb", [
        new_code_cell("x = 1"), new_code_cell("def f(:\n    pass"), new_code_cell("input()"),
    ])
    with pytest.raises(PlanError) as info:
        freezer.freeze_notebook(broken, out)
    assert info.value.lines == [
        f"{broken}: cell 2, line 1: error syntax-error: cannot parse this cell: invalid syntax",
        f"{broken}: cell 3, line 1: error stdin-input: input() waits for typed input, which an "
        "app cannot give; ask with a widget (ipywidgets.Text) instead",
    ]
    assert isinstance(info.value, freezer.FreezeError)

    with pytest.raises(IncludeError, match="--include nope.txt: no such file"):
        freezer.freeze_notebook(broken, out, include=["nope.txt"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a Freezer app"):
        freezer.freeze_notebook(broken, tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.ipynb", "other"]


# One marker per cell, on a line that is plain Python in the cell (so it is in the text that
# `ast.parse` gets whether or not IPython transforms the cell first) and not inside the argument
# of a line magic such as `%time`, which the analysis parses apart.
PARSE_ONCE_CELLS = [
    "import ipywidgets as w  # cell-A",
    "%pip install requests\nimport requests  # cell-B",  # the app comments the %pip line out
    "s = w.IntSlider()  # cell-C\ns",
    "t = s.value  # cell-D\n%block s",  # and the %block marker
    "%%time\nu = t + 1  # cell-E",
    "rows = !ls\nv = len(rows)  # cell-F",
    "%time x = 1\ny = 2  # cell-G",
]


def count_parses(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """Every text `ast.parse` is given, and every cell IPython's transformation is run on."""
    parsed: list[str] = []
    transformed: list[str] = []
    real_parse, real_transform = ast.parse, syntax.transform_cell

    def parse(source: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(source, str):
            parsed.append(source)
        return real_parse(source, *args, **kwargs)

    def transform(source: str) -> str:
        transformed.append(source)
        return real_transform(source)

    monkeypatch.setattr(ast, "parse", parse)
    monkeypatch.setattr(syntax, "transform_cell", transform)
    return parsed, transformed


@pytest.mark.parametrize("how", ["freeze_notebook", "freezer plan"])
def test_each_cell_is_parsed_once(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_nb(tmp_path / "nb.ipynb", [new_code_cell(c) for c in PARSE_ONCE_CELLS])
    parsed, transformed = count_parses(monkeypatch)
    if how == "freeze_notebook":
        manifest = freezer.freeze_notebook(path, tmp_path / "app", report=freezer.BuildReport())
        assert "# %pip install requests" in manifest.stages[0].cells[1].source
    else:
        assert plan_main([str(path)]) == 0
    for n, cell in enumerate(PARSE_ONCE_CELLS):
        marker = f"# cell-{'ABCDEFG'[n]}"
        assert sum(marker in text for text in parsed) == 1, (cell, parsed)
        assert sum(marker in text for text in transformed) <= 1, (cell, transformed)
