"""The example notebooks run top to bottom in a real kernel, as Jupyter runs them.

Each example runs once untouched (every widget at its default, nobody clicks) and once with a
person's actions injected after the cells where the app would wait for them: widget values set
and buttons clicked in the kernel, as the widget front-end's messages would. The values of the
`collect:NAME` cells are read back as JSON.
"""

from __future__ import annotations

import ast
from functools import cache
from typing import Any

import nbformat
import pytest
from example_runs import (
    NAMES,
    PNG_SIGNATURE,
    cell_pngs,
    collect_names,
    execute,
    image_bytes,
    output_widget_pngs,
    outputs,
    read_example,
    tags_of,
    widget_models,
    with_actions,
)

Run = tuple[nbformat.NotebookNode, dict[str, Any]]

# What a person does in each example, keyed by the id of the cell after which they do it.
PERSON_ACTIONS: dict[str, dict[str, str]] = {
    "labeling": {
        "labeling-7": 'picker.value = "Alan"',
        "labeling-10": """
slider = show_threshold.widget.children[0]
slider.value = 0.2
assert threshold == 0.2, threshold
""",
        "labeling-12": """
assert len(cards) == borderline_count
for card in cards[:4]:
    card.answer.value = "same"
cards[-1].answer.value = "different"
""",
    },
    "regression": {
        "regression-4": """
controls = {child.description: child for child in data_controls.children[:-1]}
controls["function"].value = "cubic"
controls["samples"].value = 120
""",
        "regression-7": """
controls = {child.description: child for child in model_controls.children[:-1]}
controls["degree"].value = 9
controls["penalty"].value = "lasso"
controls["alpha"].value = 1e-3
assert model_controls.result["test_r2"] > 0.5, model_controls.result
""",
    },
    "gradient_descent": {
        "gradient_descent-4": "learning_rate.value = 1.2\nsteps.value = 20",
    },
    "review": {
        "review-4": """
for button in (yes_button, no_button, skip_button, yes_button):
    button.click()
assert progress.value == 4 and "Item 5 of" in item_view.value
while not yes_button.disabled:
    yes_button.click()
assert "All items reviewed" in item_view.value
""",
    },
    "experiments": {
        # What the runtime injects after `parameters` for `/new?model=perceptron&epochs=30`.
        "experiments-2": 'model = "perceptron"\nepochs = 30',
        "experiments-9": 'verdict.value = "discard"\nnotes.value = "  too few epochs  "',
    },
    "sentiment": {
        "sentiment-4": """
assert [card.item for card in cards] == ["s00", "s01", "s02", "s03", "s04", "s05"]
for card, answer in zip(cards, ["positive", "negative", "neutral"] * 2):
    card.answer.value = answer
""",
    },
    "forms": {
        "forms-4": """
assert run_button.disabled, "the form starts without a name"
scenario_name.value = "baseline"
assert not run_button.disabled, problems.value
run_button.click()
assert run_button.disabled and scenario_name.value == "", "the form is cleared after Run"
scenario_name.value = "baseline"
assert run_button.disabled and "already a scenario" in problems.value
scenario_name.value = "fast growth"
rate.value = 20.0
run_button.click()
scenario_name.value = "<script>alert(1)</script>"
assert run_button.disabled
scenario_name.value = "Smith's plan"
capacity.value = 50
assert run_button.disabled and "capacity must be larger" in problems.value
run_button.click()  # a click on a disabled button (a stale page) records nothing
capacity.value = 5000
run_button.click()
assert "Smith&#x27;s plan" in receipt.value, receipt.value
""",
    },
    "face_grid": {
        # What the grid's front-end sends: trait updates, and a custom message for the button.
        "face_grid-5": "grid.selected = [0, 2, 3, 4, 10]",
        "face_grid-9": """
assert [face["id"] for face in others.faces][:8] == [1, 5, 6, 7, 8, 9, 11, 12]
others.selected = [1, 5]
others._handle_custom_msg({"action": "ignore", "ids": [5, 6, 7, 8, 9, 11, 12, 99]}, [])
assert others.ignored == [5, 6, 7, 8, 9, 11, 12] and others.selected == [1], others.selected
others.disabled = True
others._handle_custom_msg({"action": "ignore", "ids": [1]}, [])
assert others.ignored == [5, 6, 7, 8, 9, 11, 12], "a disabled grid takes no messages"
""",
    },
}


@cache
def plain_run(name: str) -> Run:
    """The example run untouched; shared by the tests of this module."""
    return execute(read_example(name))


@cache
def person_run(name: str) -> Run:
    """The example run with PERSON_ACTIONS injected; shared by the tests of this module."""
    return execute(with_actions(read_example(name), PERSON_ACTIONS[name]))


def bound_names(source: str) -> set[str]:
    """Names a cell binds when it runs (its own functions' locals included: an over-estimate)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
    return names


@pytest.mark.parametrize("name", NAMES)
def test_example_is_a_clean_source(name: str) -> None:
    nb = read_example(name)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) >= (4, 5)
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.cells[0].cell_type == "markdown", "an example starts with an introduction"
    assert any(c.cell_type == "markdown" and c.source.startswith("## ") for c in nb.cells)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "stored without outputs"
    assert len({c.id for c in nb.cells}) == len(nb.cells)
    bound: set[str] = set()
    for cell in code:
        bound |= bound_names(cell.source)
        for tag in tags_of(cell):
            assert tag in ("freeze:warm", "parameters") or tag.startswith("collect:"), tag
            if tag.startswith("collect:"):
                assert tag.removeprefix("collect:") in bound, f"{tag} before its name is bound"
    warm = [("freeze:warm" in tags_of(c)) for c in code]
    assert warm == sorted(warm, reverse=True), "freeze:warm cells lead, so pool kernels run them"


@pytest.mark.parametrize("name", ["labeling", "experiments"])
def test_parameters_cell_declares_literals(name: str) -> None:
    (cell,) = [c for c in read_example(name).cells if "parameters" in tags_of(c)]
    for statement in ast.parse(cell.source).body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1
        assert isinstance(statement.targets[0], ast.Name)
        ast.literal_eval(statement.value)


@pytest.mark.parametrize("name", NAMES)
def test_example_runs_top_to_bottom(name: str) -> None:
    nb, collected = plain_run(name)
    errors = [out for _, out in outputs(nb) if out.output_type == "error"]
    assert not errors
    assert list(collected) == collect_names(nb)
    assert all(png.startswith(PNG_SIGNATURE) for png in cell_pngs(nb) + output_widget_pngs(nb))


def test_labeling_shows_pngs_and_label_buttons() -> None:
    nb, collected = plain_run("labeling")
    images = [image_bytes(model) for model in widget_models(nb, "ImageModel")]
    assert len(images) == 6 + 3 + 12, "portraits, the chosen reference photos, borderline photos"
    assert all(image.startswith(PNG_SIGNATURE) for image in images)
    toggles = [model["state"] for model in widget_models(nb, "ToggleButtonsModel")]
    people = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken"]
    assert [t["_options_labels"] for t in toggles].count(people) == 1
    answers = [t for t in toggles if t["_options_labels"] == ["same", "different"]]
    assert len(answers) == 12 and all(t["index"] is None for t in answers)
    assert len(output_widget_pngs(nb)) == 1, "the live histogram, drawn by interact"
    summary = collected["summary"]
    assert summary["person"] == "Ada" and summary["labeled"] == 0
    assert [item["label"] for item in collected["labels"]] == [None] * 12


def test_labeling_records_what_the_person_chose() -> None:
    _, collected = person_run("labeling")
    labels = collected["labels"]
    assert [item["label"] for item in labels] == ["same"] * 4 + [None] * 7 + ["different"]
    distances = [item["distance"] for item in labels]
    assert distances == sorted(distances)
    assert sum(abs(d - 0.2) <= 0.05 for d in distances) >= 6, "borderline means near 0.2"
    summary = collected["summary"]
    assert summary["person"] == "Alan" and summary["threshold"] == 0.2
    assert (summary["labeled"], summary["same"], summary["different"]) == (5, 4, 1)


def test_sentiment_submits_the_batch_to_the_in_memory_queue() -> None:
    nb, collected = plain_run("sentiment")
    toggles = [model["state"] for model in widget_models(nb, "ToggleButtonsModel")]
    assert len(toggles) == 6 and all(t["index"] is None for t in toggles)
    assert collected["answers"] == {f"s0{i}": None for i in range(6)}
    _, collected = person_run("sentiment")
    assert collected["answers"] == dict(zip(
        [f"s0{i}" for i in range(6)], ["positive", "negative", "neutral"] * 2, strict=True
    ))


def test_regression_report_uses_the_chosen_settings() -> None:
    nb, collected = plain_run("regression")
    assert len(output_widget_pngs(nb)) == 2, "the data plot and the fit plot"
    assert collected["settings"]["degree"] == 3
    _, collected = person_run("regression")
    assert collected["settings"] == {
        "n": 120, "noise": 0.25, "function": "cubic",
        "degree": 9, "penalty": "lasso", "alpha": 1e-3, "test_fraction": 0.3,
    }
    scores = collected["scores"]
    assert scores["test_r2"] > 0.5 and scores["nonzero_weights"] <= 9


def test_gradient_descent_animates_and_collects_the_loss() -> None:
    nb, collected = plain_run("gradient_descent")
    html = [out.data["text/html"] for _, out in outputs(nb) if "text/html" in out.get("data", {})]
    assert len(html) == 1 and "<script" in html[0]
    assert html[0].count("data:image/png;base64") >= 2, "the frames are embedded PNGs"
    assert "<link" not in html[0] and "https://" not in html[0], "the player stays offline"
    loss = collected["loss_curve"]
    assert len(loss) == 41 and loss[-1] < loss[0]
    assert collected["final"]["learning_rate"] == 0.1
    _, collected = person_run("gradient_descent")
    loss = collected["loss_curve"]
    assert len(loss) == 21 and loss[-1] > loss[0], "a learning rate of 1.2 diverges"


def test_review_records_every_click() -> None:
    _, collected = plain_run("review")
    assert collected["summary"]["reviewed"] == 0
    assert collected["summary"]["remaining"] >= 200
    _, collected = person_run("review")
    labels = collected["labels"]
    assert labels[:4] == [
        {"item": 0, "answer": "yes"}, {"item": 1, "answer": "no"},
        {"item": 2, "answer": "skip"}, {"item": 3, "answer": "yes"},
    ]
    assert [entry["item"] for entry in labels] == list(range(len(labels)))
    summary = collected["summary"]
    assert summary["remaining"] == 0 and summary["reviewed"] == len(labels) >= 200
    assert (summary["no"], summary["skip"]) == (1, 1)


def test_experiments_metrics_follow_the_parameters() -> None:
    _, collected = plain_run("experiments")
    assert collected["metrics"]["model"] == "logistic"
    assert collected["metrics"]["test_accuracy"] > 0.7
    assert collected["test_accuracy"] == collected["metrics"]["test_accuracy"]
    assert len(collected["losses"]) == 100
    assert collected["record"]["verdict"] == "keep"
    _, collected = person_run("experiments")
    assert collected["metrics"]["model"] == "perceptron" and collected["metrics"]["epochs"] == 30
    assert len(collected["losses"]) == 30
    assert collected["record"]["verdict"] == "discard"
    assert collected["record"]["notes"] == "too few epochs"


def test_forms_records_valid_submissions_only() -> None:
    _, collected = plain_run("forms")
    assert collected == {"submitted": [], "outcomes": []}
    _, collected = person_run("forms")
    assert collected["submitted"] == [
        {"name": "baseline", "start": 100, "rate": 5.0, "capacity": 10_000, "years": 50},
        {"name": "fast growth", "start": 100, "rate": 20.0, "capacity": 10_000, "years": 50},
        {"name": "Smith's plan", "start": 100, "rate": 20.0, "capacity": 5000, "years": 50},
    ]
    outcomes = {o["name"]: o for o in collected["outcomes"]}
    assert outcomes["baseline"]["years_to_90_percent"] is None
    assert outcomes["fast growth"]["years_to_90_percent"] is not None
    assert (outcomes["Smith's plan"]["years_to_90_percent"]
            < outcomes["fast growth"]["years_to_90_percent"])


def test_face_grid_records_the_selection_and_the_ignored_faces() -> None:
    nb, collected = person_run("face_grid")
    printed = "".join(out.get("text", "") for _, out in outputs(nb))
    assert "You picked 5 faces: 0, 2, 3, 4, 10" in printed
    summary = collected["summary"]
    assert summary["picked"] == [0, 2, 3, 4, 10] and summary["picked_later"] == [1]
    assert summary["ignored"] == [5, 6, 7, 8, 9, 11, 12]
    grids = [model["state"] for model in widget_models(nb, "AnyModel")]
    assert sorted(len(state["faces"]) for state in grids) == [5, 19, 24]
