"""Bad input: each case is one line on stderr naming the file, exit status 2, nothing written.

The corpus of bad notebooks lives in `tests/compiler/bad/` as `NAME.ipynb.bad` (so that linters
that read notebooks leave them alone); each test copies one to `NAME.ipynb`. Cases that are not
a committed file (a directory, a missing path, a 50 MB notebook, an output directory that
cannot be written) are made in the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from freezer.commands import build_main, plan_main
from freezer.errors import NotebookError
from freezer.notebook import read_notebook

BAD = Path(__file__).parent / "bad"

# corpus file -> fragments the one line must contain (besides the file name)
CORPUS: dict[str, tuple[str, ...]] = {
    "not_json.ipynb": ("invalid JSON", "line 5", "column 24"),
    "package_json.ipynb": ("not a Jupyter notebook",),
    "json_list.ipynb": ("not a Jupyter notebook",),
    "empty_file.ipynb": ("empty file",),
    "nbformat3.ipynb": ("nbformat 3", "jupyter nbconvert --to notebook --nbformat 4"),
    "nbformat5.ipynb": ("nbformat 5", "newer"),
    "no_cells.ipynb": ("no cells",),
    "markdown_only.ipynb": ("no code cells",),
    "blank_code.ipynb": ("every code cell is empty",),
    "syntax_error.ipynb": ("cell 2, line 3", "syntax-error"),
    "missing_source.ipynb": ("cell 2", "'source' is a required property"),
    "heading_cell.ipynb": ("cell 1", "unknown cell_type 'heading'"),
    "r_kernel.ipynb": ("kernel 'ir'", "Python"),
    "latin1.ipynb": ("not UTF-8", "0xe9", "line 4"),
}


def test_every_corpus_file_has_an_expectation() -> None:
    assert sorted(p.name.removesuffix(".bad") for p in BAD.iterdir()) == sorted(CORPUS)


def assert_one_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("freezer: ")
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def snapshot(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


@pytest.mark.parametrize("main", [build_main, plan_main], ids=["build", "plan"])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_notebook(
    name: str, main: Callable[[list[str]], int], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    shutil.copy(BAD / f"{name}.bad", tmp_path / name)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert main([name]) == 2
    assert_one_line(capsys.readouterr().err, f"freezer: {name}: ", *CORPUS[name])
    assert snapshot(tmp_path) == before


def test_the_freezer_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "freezer", "build", str(BAD / "not_json.ipynb.bad"),
         "-o", str(tmp_path / "app")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert_one_line(proc.stderr, str(BAD / "not_json.ipynb.bad"), "invalid JSON")
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


def notebook_with(code: str) -> str:
    return nbformat.writes(new_notebook(cells=[new_code_cell(code)]))


def test_a_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_main([str(tmp_path / "nope.ipynb")]) == 2
    assert_one_line(capsys.readouterr().err, "nope.ipynb", "no such file")
    assert list(tmp_path.iterdir()) == []


def test_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "looks_like.ipynb"
    folder.mkdir()
    assert build_main([str(folder)]) == 2
    assert_one_line(capsys.readouterr().err, "looks_like.ipynb", "is a directory")
    assert snapshot(tmp_path) == {"looks_like.ipynb"}


def test_an_output_directory_that_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(notebook_with("x = 1"))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    before = snapshot(tmp_path)

    assert build_main([str(notebook), "-o", str(blocker / "app")]) == 2
    assert_one_line(capsys.readouterr().err, str(blocker), "cannot")
    assert build_main([str(notebook), "-o", str(blocker)]) == 2
    assert_one_line(capsys.readouterr().err, str(blocker), "not a directory")
    assert snapshot(tmp_path) == before


def test_a_50_mb_notebook_builds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Big notebooks are big because of outputs (images as base64); the app drops them.
    image = "iVBORw0KGgo" * (50 * 1024 * 1024 // 11)
    nb = new_notebook(cells=[new_code_cell("import ipywidgets\nx = 1")])
    data = json.loads(nbformat.writes(nb))
    data["cells"][0]["outputs"] = [
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": image}}
    ]
    notebook = tmp_path / "big.ipynb"
    notebook.write_text(json.dumps(data))
    assert notebook.stat().st_size > 50 * 1024 * 1024

    assert build_main([str(notebook), "-o", str(tmp_path / "app")]) == 0
    assert (tmp_path / "app" / "app.json").stat().st_size < 10_000
    capsys.readouterr()


def test_a_notebook_over_the_limit_says_so(tmp_path: Path) -> None:
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(notebook_with("x = 1") + " " * 2_000_000)
    with pytest.raises(NotebookError) as info:
        read_notebook(notebook, max_bytes=1_000_000)
    assert "up to 1 MB" in info.value.message
    assert "--clear-output" in info.value.message


MALFORMED = {
    "cell-not-object": ('"metadata": {}, "cells": [1]', "cell 1: not a JSON object"),
    "source-not-text": ('"metadata": {}, "cells": [{"cell_type": "code", "source": ["a", 3], '
                        '"metadata": {}, "outputs": []}]', "cell 1"),
    "tag-not-text": ('"metadata": {}, "cells": [{"cell_type": "code", "source": "x", '
                     '"metadata": {"tags": [1]}, "outputs": []}]', "cells/0/metadata/tags/0"),
    "cell-metadata-list": ('"metadata": {}, "cells": [{"cell_type": "code", "source": "x", '
                           '"metadata": [], "outputs": []}]', "cell 1"),
    "cells-object": ('"metadata": {}, "cells": {}', '"cells"'),
    "metadata-missing": ('"cells": [{"cell_type": "code", "source": "x", "metadata": {}, '
                         '"outputs": []}]', "'metadata' is a required property"),
    "kernelspec-text": ('"metadata": {"kernelspec": "python3"}, "cells": []', "kernelspec"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_notebooks_are_one_line_too(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body, fragment = MALFORMED[case]
    path = tmp_path / "m.ipynb"
    path.write_text(f'{{"nbformat": 4, "nbformat_minor": 5, {body}}}')
    assert build_main([str(path)]) == 2
    assert_one_line(capsys.readouterr().err, f"{path}: ", fragment)
    assert snapshot(tmp_path) == {"m.ipynb"}
