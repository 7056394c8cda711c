"""The compiler gives the runner what the runner's tests assume: the server tests of
tests/server/test_fidelity_runner.py write their app directories by hand (the `waits_on` and
`gate` of each stage); here the same cells, as a notebook, go through the planner, and each
stage must end the way those hand-written apps say."""

from __future__ import annotations

import nbformat
import pytest

from freezer.plan import plan_notebook
from runtime.manifest import Stage
from tests.server.test_fidelity_runner import GATED, REBOUND, SEVERAL


def notebook_of(stages: list[Stage]) -> nbformat.NotebookNode:
    """The notebook the app came from: each stage's code cells, and a `%blockrun NAME` cell
    after a gated stage (the compiler leaves the marker out of the app)."""
    cells = []
    for stage in stages:
        cells += [nbformat.v4.new_code_cell(cell.source) for cell in stage.cells]
        if stage.gate is not None:
            cells.append(nbformat.v4.new_code_cell(f"%blockrun {stage.gate}"))
    return nbformat.v4.new_notebook(cells=cells)


@pytest.mark.parametrize("stages", [REBOUND, GATED, SEVERAL], ids=["rebound", "gated", "several"])
def test_planned_stages_end_as_the_runner_tests_assume(stages: list[Stage]) -> None:
    plan = plan_notebook(notebook_of(stages), resolve_imports=False)
    planned = [
        (
            [] if s.ends_with is None else sorted(w.name for w in s.ends_with.waits_on
                                                  if w.kind != "marker"),
            None if s.ends_with is None else s.ends_with.gate,
        )
        for s in plan.stages
    ]
    expected = [(sorted(w.name for w in s.waits_on), s.gate) for s in stages]
    assert planned == expected
