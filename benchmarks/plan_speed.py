"""How long `plan_notebook` takes on a large notebook (2,000 cells by default).

    .venv/bin/python benchmarks/plan_speed.py [--cells 2000] [--repeat 5]

The generated notebook is a labeling pipeline repeated: headings, widgets shown and read later,
callbacks writing lists, comprehensions of widgets, magics, and widget classes from a small
library (the planner tests' fake `facewidgets`), so every part of the analysis runs. Prints the
best and median time of each mode: without resolving imports, with resolving imports the first
time in a process (one subprocess imports the library), and with the answer cached.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import nbformat
from nbformat import v4

ROOT = Path(__file__).resolve().parent.parent
FAKELIB = ROOT / "tests" / "compiler" / "fixtures" / "fakelib"
sys.path.insert(0, str(ROOT))

from freezer import libwidgets  # noqa: E402
from freezer.plan import plan_notebook  # noqa: E402

BLOCK = [
    ("markdown", "## Step {n}\nPick the sample for round {n}."),
    ("code", "picker_{n} = w.Dropdown(options=names, description='round {n}')\npicker_{n}"),
    ("code", "chosen_{n} = picker_{n}.value\nprint(chosen_{n})"),
    (
        "code",
        "toggles_{n} = [w.ToggleButton(description=s) for s in names]\n"
        "display(w.HBox(toggles_{n}))",
    ),
    (
        "code",
        "labels_{n} = []\n\ndef save_{n}(button):\n    global last_{n}\n"
        "    labels_{n}.append([t.value for t in toggles_{n}])\n"
        "    last_{n} = len(labels_{n})\n\n"
        "button_{n} = w.Button(description='Save')\nbutton_{n}.on_click(save_{n})\n"
        "display(button_{n})",
    ),
    (
        "code",
        "%time summary_{n} = {{k: v for k, v in zip(names, labels_{n})}}\nprint(len(summary_{n}))",
    ),
    ("code", "grid_{n} = LabelGrid(names)\ndisplay(grid_{n})\nfiles_{n} = !ls"),
    ("code", "result_{n} = sum(grid_{n}.value)\n# a comment line\nprint(result_{n})"),
    ("markdown", "Some notes about round {n}, with `code` and a [link](https://example.org)."),
    (
        "code",
        "def helper_{n}(x):\n    return x * {n}\n\nvalues_{n} = [helper_{n}(i) for i in range(10)]",
    ),
]
HEADER = (
    "import ipywidgets as w\nfrom IPython.display import display\n"
    "from facewidgets import LabelGrid\nnames = ['a', 'b', 'c']"
)


def make_notebook(cells: int) -> nbformat.NotebookNode:
    """A notebook of about `cells` cells: a header cell, then the block repeated."""
    out = [v4.new_code_cell(HEADER)]
    n = 0
    while len(out) < cells:
        for kind, template in BLOCK:
            text = template.format(n=n)
            out.append(v4.new_markdown_cell(text) if kind == "markdown" else v4.new_code_cell(text))
        n += 1
    return v4.new_notebook(cells=out[:cells])


def timed(nb: nbformat.NotebookNode, resolve: bool) -> tuple[float, float, int]:
    """(wall seconds, this process's CPU seconds, stages) of one plan."""
    start, cpu = time.perf_counter(), time.process_time()
    plan = plan_notebook(nb, resolve_imports=resolve, library_path=[str(FAKELIB)])
    return time.perf_counter() - start, time.process_time() - cpu, len(plan.stages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000, help="cells in the notebook")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per mode")
    args = parser.parse_args()
    nb = make_notebook(args.cells)
    timed(nb, resolve=False)  # warm up: imports of the analysis, IPython's transformer
    rows: list[tuple[str, list[tuple[float, float, int]]]] = []
    rows.append(("resolve_imports=False", [timed(nb, False) for _ in range(args.repeat)]))
    libwidgets._cache.clear()
    rows.append(("resolve_imports=True, first (subprocess)", [timed(nb, True)]))
    rows.append(("resolve_imports=True, cached", [timed(nb, True) for _ in range(args.repeat)]))
    print(
        f"plan_notebook on {len(nb.cells)} cells (python {sys.version.split()[0]}); "
        "wall time includes the resolving subprocess, CPU time is this process only"
    )
    for label, runs in rows:
        wall = [r[0] * 1000 for r in runs]
        cpu = [r[1] * 1000 for r in runs]
        print(
            f"  {label:<42} wall best {min(wall):7.1f} ms, median {statistics.median(wall):7.1f}"
            f" ms | CPU median {statistics.median(cpu):7.1f} ms | {runs[0][2]} stages"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
