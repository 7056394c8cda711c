"""Long cells: a build parses each cell once, and IPython's transformation stays linear.

Times are measured by `benchmarks/big_cell.py`, never here; these tests pin the properties that
keep the build linear in the size of a cell.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbformat.v4 import new_code_cell, new_notebook

from freezer import syntax
from freezer.commands import build_main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from big_cell import big_cell  # noqa: E402

SOURCES = [
    big_cell(400, "magics"),
    "import os\n" + "".join(f"%time x{i} = {i}\nfiles{i} = !ls\ny = %pwd\nos?\n" for i in range(5)),
    "if True:\n    %time a = 1\n    b = !ls\nelse:\n    %pwd\n" * 5
    + "s = '''\n%not a magic\n!nor this\n'''\n",
    "@dec\n%time x = 1\ndef f():\n    return 1\n" * 6 + "f?\nf??\n!echo hi\n",
    "x = (1,\n%2)\n" + "%time y = 2\n" * 10,
]


@pytest.mark.parametrize("source", SOURCES)
def test_a_cell_cut_in_pieces_transforms_as_ipython_does(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(syntax, "WHOLE_CELL_SPECIALS", 0)
    assert syntax.transform_cell(source) == TransformerManager().transform_cell(source)


def test_each_piece_is_tokenized_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """IPython re-tokenizes after every rewrite; pieces keep that to about two passes of
    every line, however many magics the cell holds (the whole cell: one pass per magic)."""
    import IPython.core.inputtransformer2 as it

    tokenized: list[int] = []
    real = it.make_tokens_by_line

    def counting(lines: list[str]) -> Any:
        tokenized.append(len(lines))
        return real(lines)

    monkeypatch.setattr(it, "make_tokens_by_line", counting)
    source = big_cell(2000, "magics")  # 20 magics
    syntax.transform_cell(source)
    assert sum(tokenized) <= 3 * source.count("\n") + 3


def test_a_build_parses_each_cell_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = ["import ipywidgets as w\n" + big_cell(300, "statements"),
             "s = w.IntSlider()\ns", "%time print(s.value)\nrows = !ls"]
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]),
                   str(tmp_path / "nb.ipynb"))
    parsed: list[str] = []
    real = ast.parse

    def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(source, str):
            parsed.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counting)
    assert build_main([str(tmp_path / "nb.ipynb"), "-o", str(tmp_path / "app")]) == 0
    assert sum("v299 = " in s for s in parsed) == 1
    assert sum("IntSlider()" in s for s in parsed) == 1
    assert sum("rows = " in s for s in parsed) == 1  # (`%time` parses its argument apart)
