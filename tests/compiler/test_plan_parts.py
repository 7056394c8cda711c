"""Pieces of the planner on their own: parsing cells, pip lines, headings, the manifest shape."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from freezer.analysis import NotebookAnalyzer, Read, is_pip_install, parse_cell
from freezer.plan import markdown_heading, plan_notebook
from freezer.syntax import comment_out, drop_lines
from runtime import manifest as mf

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize(("source", "error_line"), [
    ("x = 1", None),
    ("%matplotlib inline\nx = 1", None),
    ("files = !ls\n!echo hi", None),
    ("  x = 1\n  y = 2", None),
    ("%%time\nx = 1", None),
    ("%%html\n<b>not python</b>", None),
    ("x = (1,\ny = 2", 1),
    ("%%time\nx = 1\ndef broken(:\n    pass", 3),
    ("print(1)\nelse:\n    pass", 2),
])
def test_cells_parse_as_ipython_runs_them(source: str, error_line: int | None) -> None:
    parsed = parse_cell(source)
    assert (parsed.error[0] if parsed.error else None) == error_line


def test_cell_magic_body_keeps_its_line_numbers() -> None:
    facts = NotebookAnalyzer().analyze(0, "%%time\nimport ipywidgets as w\ns = w.IntSlider()\n"
                                          "print(s.value)")
    assert [(e.name, e.line) for e in facts.events if isinstance(e, Read)][-1] == ("s", 4)


@pytest.mark.parametrize("source", [
    "%pip install requests\nimport requests",
    "import ipywidgets as w\ns = w.IntSlider()\ns\n%block s",
    "if True:\n    %pip install x\nelse:\n    !pip install y\n    z = 1\n%blockrun go",
    "%%time\n%pip install x\nfor i in range(2):\n    !pip install y",
    "  %pip install x\n  y = 1",
    "def f():\n    pass\ntry:\n    %pip install x\nfinally:\n    %pip install y",
])
def test_the_app_source_tree_is_the_cell_tree_without_its_commented_lines(source: str) -> None:
    """The planner does not parse a cell again after commenting out its `%pip` and `%block`
    lines: dropping those statements from the tree gives what parsing the new source gives."""
    facts = NotebookAnalyzer().analyze(0, source)
    lines = {ln for ln, _ in facts.pip_lines} | {m.line for m in facts.markers}
    assert facts.source == comment_out(source, lines) != source
    reparsed = parse_cell(facts.source)
    assert facts.parsed is not None and facts.parsed.tree is not None
    assert reparsed.tree is not None
    assert ast.dump(facts.parsed.tree) == ast.dump(reparsed.tree)
    own = parse_cell(source)
    assert own.tree is not None
    before = ast.dump(own.tree)
    drop_lines(own, source, lines)
    assert ast.dump(own.tree) == before  # the cell's own tree is left as it was
    assert drop_lines(own, source, set()) is own


@pytest.mark.parametrize(("kind", "text", "installs"), [
    ("%pip", "install numpy", True),
    ("%pip", "list", False),
    ("%conda", "install -y numpy", True),
    ("!", "pip install -q numpy", True),
    ("!", "pip3 install numpy", True),
    ("!", "python -m pip install numpy", True),
    ("!", "/usr/bin/pip install numpy", True),
    ("!", "pip freeze", False),
    ("!", "ls -la", False),
])
def test_pip_install_lines(kind: str, text: str, installs: bool) -> None:
    assert is_pip_install(kind, text) is installs


def test_commented_lines_keep_the_cell_valid_python() -> None:
    source = "for n in range(2):\n    %pip install numpy\n%blockrun go\nprint(n)"
    facts = NotebookAnalyzer().analyze(0, source)
    assert facts.source == (
        "for n in range(2):\n    pass  # %pip install numpy\n# %blockrun go\nprint(n)"
    )
    compile(facts.source, "cell", "exec")


@pytest.mark.parametrize(("text", "title"), [
    ("# Pick the person", "Pick the person"),
    ("Intro\n\n### Third level ###", "Third level"),
    ("Pick\n====", "Pick"),
    ("Pick\n----\nmore", "Pick"),
    ("#hashtag is not a heading", None),
    ("```\n# code comment\n```", None),
    ("- item\n---", None),
    ("## The **bold** `code` title", "The bold code title"),
    ("plain text", None),
])
def test_markdown_headings(text: str, title: str | None) -> None:
    assert markdown_heading(text) == title


def test_plan_fills_a_valid_manifest() -> None:
    nb = nbformat.read(FIXTURES / "face_labeling_pipeline.ipynb", as_version=4)
    plan = plan_notebook(nb)
    manifest = mf.Manifest(
        title="Face labeling", source_name="face.ipynb", source_sha256="0" * 64,
        freezer_version="0", created="2026-01-01T00:00:00Z", kernel_name="python3",
        kernel_language="python",
        parameters=plan.parameters,
        stages=tuple(
            mf.Stage(
                index=s.index, title=s.title,
                cells=tuple(mf.Cell(c.id, c.kind, c.source, c.tags) for c in s.cells),
                waits_on=s.ends_with.waits_on if s.ends_with else (),
                collect=s.collect, warm=s.warm,
            )
            for s in plan.stages
        ),
    ).with_app_id()
    mf.validate(manifest.to_json())
    assert mf.loads(mf.dumps(manifest)) == manifest


@pytest.mark.parametrize(("terms", "code"), [(1500, "too-deep"), (20000, "syntax-error")])
def test_deeply_nested_cells_are_diagnosed_not_crashed(terms: int, code: str) -> None:
    source = "total = " + " + ".join(["a"] * terms)
    plan = plan_notebook(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]))
    assert [d.code for d in plan.diagnostics] == [code]
