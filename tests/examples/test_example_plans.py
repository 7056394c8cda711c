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
    # Cell 0 of every example but forms is the author's note (freeze:skip), so stage 0 starts
    # at cell 1. In labeling it replaced the parameters note, so its later cells kept their
    # indices; the others' moved down by one.
    "labeling": [
        ExpectedStage("Pick the person to label", 1, (("picker", "widget", 7),)),
        ExpectedStage("Choose a distance threshold", 8, (("threshold", "callback", 10),)),
        ExpectedStage("Label the borderline photos", 11, (("cards", "widget", 12),)),
        ExpectedStage("Save the labels", 13, collect=("labels", "summary")),
    ],
    "regression": [
        ExpectedStage("Generate the data", 1, (("data_controls", "widget", 5),)),
        ExpectedStage("Fit a model", 6, (("model_controls", "widget", 8),)),
        ExpectedStage("Report", 9, collect=("settings", "scores")),
    ],
    "gradient_descent": [
        ExpectedStage("Choose the learning rate", 1,
                      (("learning_rate", "widget", 5), ("steps", "widget", 5))),
        ExpectedStage("Watch it learn", 6, collect=("loss_curve", "final")),
    ],
    "review": [
        ExpectedStage("Review the items", 1, (("labels", "callback", 5),)),
        ExpectedStage("Summary", 6, collect=("labels", "summary")),
    ],
    "experiments": [
        ExpectedStage("Train the model", 1, (("verdict", "widget", 10), ("notes", "widget", 10)),
                      collect=("losses", "metrics", "test_accuracy")),
        ExpectedStage("Saved", 11, collect=("record",)),
    ],
    "forms": [
        ExpectedStage("Describe a scenario", 0, (("scenarios", "callback", 4),)),
        ExpectedStage("Compare the scenarios", 5, collect=("submitted", "outcomes")),
    ],
    "face_grid": [
        ExpectedStage("Pick the smiling faces", 1, (("grid", "widget", 6),)),
        ExpectedStage("Check the others", 7, (("others", "widget", 10),)),
        ExpectedStage("Summary", 11, collect=("summary",)),
    ],
    "sentiment": [
        ExpectedStage("Label your batch", 1, (("cards", "widget", 5),)),
        ExpectedStage("Submitted", 6, collect=("answers",)),
    ],
}

EXPECTED_PARAMETERS: dict[str, list[tuple[str, object, str]]] = {
    "labeling": [("borderline_count", 12, "int")],
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
    authors_note = () if name == "forms" else (0,)
    assert plan.skipped_cells == authors_note, "only the author's note is left out of the app"
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
    assert cells == list(range(len(authors_note), len(read_example(name).cells))), (
        "every cell but the author's note, in order"
    )
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
