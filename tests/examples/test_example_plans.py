"""How the planner splits the example notebooks: pinned stage by stage.

The examples are written so the splitting rules (DESIGN §1) put a boundary wherever a person
must act and nowhere else. This table is what the planner must find on these real notebooks;
a change in the planner or in an example that moves a boundary fails here first.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest
from example_runs import EXAMPLES, NAMES, read_example

plan_module = pytest.importorskip(
    "freezer.plan", reason="freezer.plan (plan_notebook) is not importable yet"
)


@dataclass(frozen=True)
class ExpectedStage:
    title: str
    first_cell: int  # 0-based index of the stage's first cell in the notebook
    waits_on: tuple[tuple[str, str, int], ...] = ()  # (name, kind, bound_in_cell) before Next
    collect: tuple[str, ...] = ()


EXPECTED: dict[str, list[ExpectedStage]] = {
    "labeling": [
        ExpectedStage("Pick the person to label", 0, (("picker", "widget", 7),)),
        ExpectedStage("Choose a distance threshold", 8, (("threshold", "callback", 10),)),
        ExpectedStage("Label the borderline photos", 11, (("cards", "widget", 12),)),
        ExpectedStage("Save the labels", 13, collect=("labels", "summary")),
    ],
    "regression": [
        ExpectedStage("Generate the data", 0, (("data_controls", "widget", 4),)),
        ExpectedStage("Fit a model", 5, (("model_controls", "widget", 7),)),
        ExpectedStage("Report", 8, collect=("settings", "scores")),
    ],
    "gradient_descent": [
        ExpectedStage("Choose the learning rate", 0,
                      (("learning_rate", "widget", 4), ("steps", "widget", 4))),
        ExpectedStage("Watch it learn", 5, collect=("loss_curve", "final")),
    ],
    "review": [
        ExpectedStage("Review the items", 0, (("labels", "callback", 4),)),
        ExpectedStage("Summary", 5, collect=("labels", "summary")),
    ],
    "experiments": [
        ExpectedStage("Train the model", 0, (("verdict", "widget", 9), ("notes", "widget", 9)),
                      collect=("losses", "metrics", "test_accuracy")),
        ExpectedStage("Saved", 10, collect=("record",)),
    ],
    "forms": [
        ExpectedStage("Describe a scenario", 0, (("scenarios", "callback", 4),)),
        ExpectedStage("Compare the scenarios", 5, collect=("submitted", "outcomes")),
    ],
}

EXPECTED_PARAMETERS: dict[str, list[tuple[str, object, str]]] = {
    "labeling": [("batch", 0, "int"), ("borderline_count", 12, "int")],
    "experiments": [
        ("model", "logistic", "str"), ("learning_rate", 0.5, "float"), ("epochs", 100, "int"),
        ("l2", 0.001, "float"), ("n_samples", 400, "int"), ("seed", 0, "int"),
    ],
}


def test_every_example_is_pinned() -> None:
    assert sorted(EXPECTED) == sorted(NAMES)
    assert sorted(path.stem for path in EXAMPLES.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_example_plan(name: str) -> None:
    plan = plan_module.plan_notebook(read_example(name))
    # No warnings either: registering a callback on a widget is not reading it, and every
    # widget is shown.
    assert [d.describe(f"{name}.ipynb") for d in plan.diagnostics] == []
    assert plan.skipped_cells == ()
    found = [
        ExpectedStage(
            stage.title,
            stage.cells[0].index,
            () if stage.ends_with is None else tuple(
                (w.name, w.kind, w.bound_in_cell) for w in stage.ends_with.waits_on
            ),
            tuple(stage.collect),
        )
        for stage in plan.stages
    ]
    assert found == EXPECTED[name]
    for stage, following in itertools.pairwise(plan.stages):
        assert stage.ends_with is not None
        assert stage.ends_with.before_cell == following.cells[0].index
    assert not any(stage.warm for stage in plan.stages), "warm setup shares stage 0 with a widget"
    cells = [cell.index for stage in plan.stages for cell in stage.cells]
    assert cells == list(range(len(read_example(name).cells))), "every cell, in order"
    parameters = [(p.name, p.default, p.type) for p in plan.parameters]
    assert parameters == EXPECTED_PARAMETERS.get(name, [])


@pytest.mark.parametrize("name", NAMES)
def test_example_builds_into_an_app(name: str, tmp_path: Path) -> None:
    commands = pytest.importorskip("freezer.commands", reason="freezer build is not available")
    manifest = pytest.importorskip("runtime.manifest")
    app = tmp_path / name
    assert commands.build_main([str(EXAMPLES / f"{name}.ipynb"), "-o", str(app)]) == 0
    built = manifest.load(app)
    assert [stage.title for stage in built.stages] == [s.title for s in EXPECTED[name]]
    assert [stage.collect for stage in built.stages] == [s.collect for s in EXPECTED[name]]
    assert built.title == read_example(name).metadata.title
