"""The stage planner against a table of fixture notebooks, each with its expected plan."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import ipywidgets
import nbformat
import pytest

from freezer import libwidgets
from freezer.plan import Diagnostic, Plan, plan_notebook, render_text, to_json

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FAKELIB = FIXTURES / "fakelib"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.ipynb"))


def plan_fixture(name: str, **kwargs: Any) -> tuple[Plan, dict[str, Any]]:
    nb = nbformat.read(FIXTURES / f"{name}.ipynb", as_version=4)
    expected = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    traced = frozenset(expected.get("plan_args", {}).get("traced_cells", []))
    kwargs.setdefault("library_path", [str(FAKELIB)])
    return plan_notebook(nb, traced_cells=traced, **kwargs), expected


def summary(plan: Plan) -> dict[str, Any]:
    """The plan in the shape of the expected-plan files."""
    return {
        "stages": [[c.index for c in s.cells] for s in plan.stages],
        "boundaries": [
            [s.ends_with.before_cell, s.ends_with.method,
             [[w.name, w.kind, w.bound_in_cell] for w in s.ends_with.waits_on]]
            for s in plan.stages if s.ends_with is not None
        ],
        "diagnostics": sorted([[d.code, d.cell, d.line] for d in plan.diagnostics], key=repr),
        "gates": [s.ends_with.gate for s in plan.stages if s.ends_with is not None],
        "titles": [s.title for s in plan.stages],
        "skipped_cells": list(plan.skipped_cells),
        "parameters": [[p.name, p.default, p.type] for p in plan.parameters],
        "collect": [list(s.collect) for s in plan.stages],
        "warm": [s.warm for s in plan.stages],
        "pip_installs": [list(p) for p in plan.pip_installs],
        "sources": {str(c.index): c.source for s in plan.stages for c in s.cells},
    }


def test_there_are_enough_fixtures() -> None:
    assert len(NAMES) >= 25


@pytest.mark.parametrize("name", NAMES)
def test_fixture_plan(name: str) -> None:
    plan, expected = plan_fixture(name)
    actual = summary(plan)
    for key, want in expected.items():
        if key == "plan_args":
            continue
        if key == "sources":
            assert {k: actual["sources"][k] for k in want} == want
            continue
        assert actual[key] == want, f"{name}: {key}\n{render_text(plan, name + '.ipynb')}"


def test_fixture_files_match_their_script(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.write_all(tmp_path)
    assert {p.name for p in written} == {
        p.name for p in FIXTURES.iterdir() if p.suffix in (".ipynb", ".json")
    }
    for path in written:
        assert path.read_text() == (FIXTURES / path.name).read_text(), (
            f"{path.name} is stale: run python tests/compiler/fixtures/make_fixtures.py"
        )


def test_boundary_reason_names_cell_and_widget() -> None:
    plan, _ = plan_fixture("dropdown_then_read")
    boundary = plan.stages[0].ends_with
    assert boundary is not None
    assert boundary.reason == "cell 3 reads picker (widget, bound in cell 2)"
    text = render_text(plan, "dropdown_then_read.ipynb")
    assert "Next: cell 3 reads picker (widget, bound in cell 2)" in text


def test_callback_reason_says_how_it_was_registered() -> None:
    plan, _ = plan_fixture("callback_appends_to_list")
    boundary = plan.stages[0].ends_with
    assert boundary is not None
    assert boundary.reason == "cell 3 reads results (callback, on_click registered in cell 2)"


def test_diagnostic_describe_is_one_line_for_people() -> None:
    diagnostic = Diagnostic("same-cell-read", "warning", 3, 2, "s is read too early")
    assert diagnostic.describe("labeling.ipynb") == (
        "labeling.ipynb: cell 4, line 2: warning same-cell-read: s is read too early"
    )
    assert Diagnostic("no-code-cells", "warning", None, None, "empty").describe("a.ipynb") == (
        "a.ipynb: warning no-code-cells: empty"
    )


def test_errors_mark_the_plan() -> None:
    assert plan_fixture("syntax_error_cell")[0].has_errors
    assert plan_fixture("stdin_input")[0].has_errors
    assert not plan_fixture("dropdown_then_read")[0].has_errors


def test_json_is_plain_data_with_the_documented_keys() -> None:
    plan, _ = plan_fixture("block_magic")
    data = json.loads(json.dumps(to_json(plan, "block_magic.ipynb")))
    assert set(data) == {
        "source", "stages", "diagnostics", "parameters", "pip_installs", "skipped_cells",
        "has_errors",
    }
    stage = data["stages"][0]
    assert set(stage) == {"index", "title", "cells", "ends_with", "collect", "warm"}
    assert set(stage["cells"][0]) == {"index", "id", "kind", "source", "tags"}
    assert stage["ends_with"] == {
        "before_cell": 3, "method": "magic", "reason": "cell 3 has %blockrun dd",
        "waits_on": [{"name": "dd", "kind": "marker", "bound_in_cell": 1}], "gate": None,
    }
    assert data["stages"][-1]["ends_with"] is None
    assert [d["code"] for d in data["diagnostics"]] == ["blockrun-not-button", "block-not-last"]


def test_text_lists_every_stage_cell_and_diagnostic() -> None:
    plan, _ = plan_fixture("markdown_titles")
    text = render_text(plan, "markdown_titles.ipynb")
    assert "Stage 1: The labeling app" in text
    assert "Stage 2: Done" in text
    for stage in plan.stages:
        for cell in stage.cells:
            assert f"cell {cell.index + 1} " in text
    plan, _ = plan_fixture("stdin_input")
    text = render_text(plan, "stdin_input.ipynb")
    for diagnostic in plan.diagnostics:
        assert diagnostic.describe("stdin_input.ipynb") in text


def test_without_resolving_imports_library_widgets_are_plain() -> None:
    plan, _ = plan_fixture("library_widget_subclass", resolve_imports=False)
    assert len(plan.stages) == 1


def test_library_that_hangs_on_import_times_out_alone() -> None:
    resolution = libwidgets.resolve_widget_classes(
        [("hangwidgets", "Grid"), ("facewidgets", "LabelGrid"), ("facewidgets", "annotate")],
        path=[str(FAKELIB)], timeout=3,
    )
    assert resolution.widgets == {("facewidgets", "LabelGrid")}
    assert [module for module, _ in resolution.failures] == ["hangwidgets"]
    assert "did not finish" in resolution.failures[0][1]


def test_standard_library_and_known_packages_are_never_imported() -> None:
    assert not libwidgets.is_resolvable("os.path")
    assert not libwidgets.is_resolvable("numpy")
    assert libwidgets.is_resolvable("facewidgets")


def test_widget_tables_match_installed_ipywidgets() -> None:
    classes = {
        name for name in dir(ipywidgets)
        if inspect.isclass(getattr(ipywidgets, name))
        and issubclass(getattr(ipywidgets, name), ipywidgets.DOMWidget)
    }
    assert libwidgets.WIDGET_CLASSES == classes
    assert not libwidgets.INPUT_CLASSES & libwidgets.DISPLAY_CLASSES
    for name in libwidgets.WIDGET_FUNCTIONS:
        assert callable(getattr(ipywidgets, name))


def test_library_that_ends_the_process_is_blamed_alone() -> None:
    resolution = libwidgets.resolve_widget_classes(
        [("exitwidgets", "Grid"), ("facewidgets", "LabelGrid"), ("brokenwidgets", "Panel")],
        path=[str(FAKELIB)],
    )
    assert resolution.widgets == {("facewidgets", "LabelGrid")}
    failures = dict(resolution.failures)
    assert failures["exitwidgets"] == "importing it ended the process (exit status 3)"
    assert failures["brokenwidgets"] == "ImportError: brokenwidgets needs a GPU"
