"""`freezer build` on a notebook with one very long code cell (100,000 lines by default).

    .venv/bin/python benchmarks/big_cell.py [--lines 100000] [--shape statements] [--out DIR]
    /usr/bin/time -v .venv/bin/freezer build DIR/big_cell.ipynb -o /tmp/big_app --force

Writes the notebook and prints the `/usr/bin/time -v` command that measures a build of it (wall
time and peak memory, the figures the build must keep linear in the cell's size). Shapes:
`statements` (one assignment per line, ~30 bytes a line: a 3 MB notebook), `literal` (one list
literal spanning every line, as pasted data), `magics` (statements with a `%time` line every 100
lines, so the cell goes through IPython's input transformation). The cell is followed by a slider
and a cell that reads it, so the build has a boundary to find.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat import v4

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ("statements", "literal", "magics")


def big_cell(lines: int, shape: str) -> str:
    """The source of the long cell: `lines` lines of the given shape."""
    if shape == "literal":
        return "rows = [\n" + "".join(f"    ({n}, 'r{n}'),\n" for n in range(lines - 2)) + "]"
    out = []
    for n in range(lines):
        if shape == "magics" and n % 100 == 99:
            out.append(f"%time t{n} = v{n - 1} + 1")
        else:
            out.append(f"v{n} = {n} * 3 + len('r{n}')")
    return "\n".join(out)


def make_notebook(lines: int, shape: str) -> nbformat.NotebookNode:
    """The long cell, then a slider shown, then a cell that reads it."""
    return v4.new_notebook(cells=[
        v4.new_code_cell("import ipywidgets as w\n" + big_cell(lines, shape)),
        v4.new_code_cell("s = w.IntSlider()\ns"),
        v4.new_code_cell("print(s.value)"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines in the long cell")
    parser.add_argument("--shape", choices=SHAPES, default="statements")
    parser.add_argument("--out", type=Path, default=Path("/tmp"), help="directory to write to")
    args = parser.parse_args()
    path = args.out / "big_cell.ipynb"
    nbformat.write(make_notebook(args.lines, args.shape), str(path))
    size = path.stat().st_size / 1e6
    print(f"wrote {path} ({size:.1f} MB, one cell of {args.lines} lines, {args.shape})")
    print(f"/usr/bin/time -v {ROOT / '.venv/bin/freezer'} build {path} -o /tmp/big_app --force")
    return 0


if __name__ == "__main__":
    sys.exit(main())
