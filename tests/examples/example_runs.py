"""Helpers for the example tests: read, edit and execute the gallery notebooks with nbclient."""

from __future__ import annotations

import base64
import copy
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ("labeling", "regression", "gradient_descent", "review", "experiments", "forms",
         "face_grid", "sentiment")
CELL_TIMEOUT = 60  # seconds; every stage of an example takes well under one
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
COLLECTED_MARK = "collected: "


def read_example(name: str) -> nbformat.NotebookNode:
    """The example notebook `examples/<name>.ipynb`, as stored."""
    return nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)


def tags_of(cell: nbformat.NotebookNode) -> list[str]:
    return [str(tag) for tag in cell.get("metadata", {}).get("tags", [])]


def collect_names(nb: nbformat.NotebookNode) -> list[str]:
    """The NAMEs of every `collect:NAME` tag, in notebook order."""
    return [
        tag.removeprefix("collect:")
        for cell in nb.cells
        for tag in tags_of(cell)
        if tag.startswith("collect:")
    ]


def with_actions(nb: nbformat.NotebookNode, actions: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of `nb` with a code cell after each cell id in `actions`: what a person does there.

    The code runs in the kernel, as the widget front-end's messages would: it sets widget values
    and clicks buttons, and may assert what the person would see.
    """
    edited = copy.deepcopy(nb)
    known = {cell.get("id") for cell in edited.cells}
    missing = set(actions) - known
    assert not missing, f"no cells with ids {sorted(missing)}"
    cells = []
    for cell in edited.cells:
        cells.append(cell)
        if cell.get("id") in actions:
            cells.append(nbformat.v4.new_code_cell(actions[cell.get("id")]))
    edited.cells = cells
    return edited


def execute(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
    """Run a copy of `nb` top to bottom in a fresh python3 kernel with cwd `examples/`.

    Returns the executed notebook and the JSON round trip of every `collect:NAME` value (read by
    one more cell at the end, so a value that is not JSON-serialisable fails the run).
    """
    executed = copy.deepcopy(nb)
    names = collect_names(nb)
    report = ", ".join(f"{name!r}: {name}" for name in names)
    executed.cells.append(nbformat.v4.new_code_cell(
        f"import json as _json\nprint({COLLECTED_MARK!r} + _json.dumps({{{report}}}))"
    ))
    with tempfile.TemporaryDirectory(prefix="freezer-example-") as sockets:
        # Unix sockets, not TCP: no race for free ports with the other kernels of the suite.
        manager = KernelManager(
            kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel")
        )
        client = NotebookClient(
            executed,
            km=manager,
            timeout=CELL_TIMEOUT,
            resources={"metadata": {"path": str(EXAMPLES)}},
        )
        client.execute()
    report_cell = executed.cells.pop()
    text = "".join(out.text for out in report_cell.outputs if out.output_type == "stream")
    assert text.startswith(COLLECTED_MARK), text
    collected: dict[str, Any] = json.loads(text.removeprefix(COLLECTED_MARK))
    return executed, collected


def outputs(nb: nbformat.NotebookNode) -> Iterator[tuple[int, nbformat.NotebookNode]]:
    """(cell index, output) for every output of every code cell."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                yield index, output


def widget_models(nb: nbformat.NotebookNode, model_name: str) -> list[dict[str, Any]]:
    """The saved state of every widget model of one kind (e.g. "ImageModel") after a run."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return [model for model in state.values() if model["model_name"] == model_name]


def image_bytes(model: dict[str, Any]) -> bytes:
    """The `value` of an Image widget model from its saved binary buffer."""
    for buffer in model.get("buffers", []):
        if buffer["path"] == ["value"]:
            return base64.b64decode(buffer["data"])
    raise AssertionError("the Image widget has no value buffer")


def output_widget_pngs(nb: nbformat.NotebookNode) -> list[bytes]:
    """Every PNG shown inside an Output widget (e.g. by `interact`), decoded."""
    return [
        base64.b64decode(out["data"]["image/png"])
        for model in widget_models(nb, "OutputModel")
        for out in model["state"].get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


def cell_pngs(nb: nbformat.NotebookNode) -> list[bytes]:
    """Every PNG a cell displayed directly (matplotlib inline figures), decoded."""
    return [
        base64.b64decode(out.data["image/png"])
        for _, out in outputs(nb)
        if "data" in out and "image/png" in out.data
    ]
