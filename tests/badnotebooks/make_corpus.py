"""Write the bad-notebook corpus: `python tests/badnotebooks/make_corpus.py` (idempotent).

Each case is `corpus/NAME.ipynb.bad` (the `.bad` suffix keeps linters that read notebooks
away); `CASES` says what each must do: `build` — `freezer build` refuses it with exit status 2
and one line naming the file and containing the fragment; `stage` — it builds, and its first
stage fails at run time with a one-line error containing the fragment, the kernel alive after;
`ok` — it builds and runs (hostile content the app must simply carry: markup, huge outputs).
The test (`test_badnotebooks.py`) checks the committed files match this script.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "corpus"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def cell(kind: str, source: Any, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        base.update(execution_count=None, outputs=[])
    base.update(extra)
    return base


def notebook(*cells: dict[str, Any], nbformat: int = 4, minor: int = 5,
             metadata: dict[str, Any] | None = None) -> str:
    meta = {"kernelspec": KERNELSPEC} if metadata is None else metadata
    for i, c in enumerate(cells):
        c.setdefault("id", f"c{i}")
    return json.dumps({"cells": list(cells), "metadata": meta, "nbformat": nbformat,
                       "nbformat_minor": minor}, indent=1)


def code(source: str, **extra: Any) -> dict[str, Any]:
    return cell("code", source, **extra)


def md(source: str) -> dict[str, Any]:
    return cell("markdown", source)


WIDGET = "import ipywidgets as w\nx = w.IntSlider(description='x')\nx"

# name -> (expectation, fragment, content: str or bytes)
CASES: dict[str, tuple[str, str, str | bytes]] = {
    # --- refused at build time ---------------------------------------------------------------
    "empty_file": ("build", "", b""),
    "whitespace_only": ("build", "", b"   \n\t\n"),
    "not_json": ("build", "JSON", b"{this is not json"),
    "truncated_json": ("build", "JSON", notebook(code("print(1)"))[:60].encode()),
    "json_array": ("build", "", b"[1, 2, 3]"),
    "json_string": ("build", "", b'"a notebook"'),
    "json_null": ("build", "", b"null"),
    "json_number": ("build", "", b"42"),
    "nul_bytes": ("build", "", b"\x00\x00\x00\x00"),
    "binary_garbage": ("build", "", bytes(range(256)) * 4),
    "latin1_bytes": ("build", "UTF-8", notebook(code("s = 'caf\u00e9'")).replace(
        "\\u00e9", "\u00e9").encode("latin-1")),
    "nbformat3": ("build", "nbformat 3", json.dumps(
        {"metadata": {}, "nbformat": 3, "nbformat_minor": 0, "worksheets": []}).encode()),
    "nbformat99": ("build", "nbformat 99", notebook(code("1"), nbformat=99).encode()),
    "nbformat_string": ("build", "", notebook(code("1"), nbformat="4").encode()),  # type: ignore[arg-type]
    "no_cells": ("build", "no cells", notebook().encode()),
    "cells_not_list": ("build", "", json.dumps(
        {"cells": {"a": 1}, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()),
    "markdown_only": ("build", "no code cells", notebook(md("# Title"), md("text")).encode()),
    "raw_only": ("build", "", notebook(cell("raw", "raw text")).encode()),
    "empty_code_cells": ("build", "empty", notebook(code(""), code("   \n")).encode()),
    "syntax_error": ("build", "syntax-error",
                     notebook(code("x = 1"), code("def f(:\n  pass")).encode()),
    "indentation_error": ("build", "cell 1", notebook(code("if True:\nprint(1)")).encode()),
    "unterminated_string": ("build", "cell 1", notebook(code("s = 'abc")).encode()),
    "missing_source": ("build", "source", notebook(
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}).encode()),
    "source_is_number": ("build", "", notebook(code(12345)).encode()),  # type: ignore[arg-type]
    "unknown_cell_type": ("build", "", notebook(cell("heading", "# old"), code("1")).encode()),
    "cell_not_object": ("build", "", json.dumps(
        {"cells": ["print(1)"], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()),
    "r_kernel": ("build", "Python", notebook(code("x <- 1"), metadata={
        "kernelspec": {"name": "ir", "display_name": "R", "language": "R"}}).encode()),
    "deep_nesting": ("build", "", (b'{"cells": ' + b"[" * 5000 + b"]" * 5000 + b"}")),
    "metadata_not_object": ("build", "", json.dumps(
        {"cells": [code("1")], "metadata": [], "nbformat": 4, "nbformat_minor": 5}).encode()),
    "tags_not_list": ("build", "", notebook(
        code("1", metadata={"tags": "freeze:break"})).encode()),
    "input_call": ("build", "stdin-input", notebook(code("name = input('name? ')")).encode()),
    # --- builds; the first stage fails at run time, clearly --------------------------------
    "raises_zero_division": ("stage", "ZeroDivisionError", notebook(code("1 / 0")).encode()),
    "undefined_name": ("stage", "NameError", notebook(code("print(undefined_thing)")).encode()),
    "missing_module": ("stage", "ModuleNotFoundError",
                       notebook(code("import module_that_does_not_exist_here")).encode()),
    "sys_exit": ("stage", "SystemExit", notebook(code("import sys\nsys.exit(3)")).encode()),
    "raise_keyboard_interrupt": ("stage", "KeyboardInterrupt",
                                 notebook(code("raise KeyboardInterrupt")).encode()),
    "recursion": ("stage", "RecursionError",
                  notebook(code("def f(n):\n    return f(n + 1)\nf(0)")).encode()),
    "html_in_error": ("stage", "<script>", notebook(
        code("raise ValueError('<script>alert(1)</script>')")).encode()),
    "multiline_error": ("stage", "first line", notebook(
        code("raise RuntimeError('first line\\nsecond line\\nthird line')")).encode()),
    "huge_error_message": ("stage", "ValueError", notebook(
        code("raise ValueError('x' * 1_000_000)")).encode()),
    "error_str_raises": ("stage", "", notebook(code(
        "class Bad(Exception):\n    def __str__(self):\n        raise TypeError('no str')\n"
        "raise Bad()")).encode()),
    "file_not_found": ("stage", "FileNotFoundError",
                       notebook(code("open('data/missing.csv').read()")).encode()),
    "widget_bad_value": ("stage", "TraitError", notebook(
        code("import ipywidgets as w\nw.IntSlider(value='not a number')")).encode()),
    "assertion_error": ("stage", "AssertionError", notebook(
        code("x = 1"), code("assert x > 1000, 'x too small'")).encode()),
    # --- builds and runs: hostile content carried as content ---------------------------------
    "markup_in_markdown": ("ok", "", notebook(
        md("# Title <script>alert(1)</script>"), code("print('<b>not bold</b>')")).encode()),
    "huge_output": ("ok", "", notebook(code("print('y' * 2_000_000)")).encode()),
    "outputs_not_list": ("ok", "", notebook(code("1", outputs={"x": 1})).encode()),
    "many_cells": ("ok", "", notebook(*[code(f"v{i} = {i}") for i in range(300)]).encode()),
}


def write_corpus(directory: Path = CORPUS) -> list[Path]:
    """Write every case; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (_, _, content) in CASES.items():
        path = directory / f"{name}.ipynb.bad"
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        written.append(path)
    return written


if __name__ == "__main__":
    print(f"wrote {len(write_corpus())} notebooks to {CORPUS}")
