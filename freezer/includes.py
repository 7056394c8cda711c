"""The files an app ships (`--include`), and the data files its notebook names but lacks.

The app runs its cells in ``files/``; a data file the notebook reads by relative path and the
build did not ship is a crash there (`missing-include`). A file the notebook writes itself
(`open(p, 'w')`, `df.to_csv(p)`, `%%writefile p`, or one the `--trace` run created or changed)
is made by each run and is not missing.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from freezer.errors import IncludeError
from freezer.syntax import CodeCell, dotted

WRITING_CALLS = frozenset({
    "to_csv", "to_json", "to_parquet", "to_excel", "to_pickle", "to_feather", "to_hdf",
    "to_netcdf", "to_html", "to_markdown", "savefig", "save", "savez", "savez_compressed",
    "savetxt", "imwrite", "imsave", "write_text", "write_bytes", "touch", "mkdir", "makedirs",
    "urlretrieve", "copy", "copyfile", "copy2", "copytree", "move", "rename", "replace",
})
"""Calls whose path argument names a file or directory they create: the first argument
(`df.to_csv(p)`, `np.save(p, a)`, `Path(p).write_text(s)`), or the destination for copies."""
_DESTINATION_LAST = frozenset({"urlretrieve", "copy", "copyfile", "copy2", "copytree", "move",
                               "rename", "replace"})
_WRITE_MODES = frozenset("wax")


@dataclass(frozen=True)
class Include:
    """One ``--include`` path: where it is, and where it goes under ``files/``."""

    source: Path  # absolute
    relative: Path  # relative to the notebook's directory


def resolve_includes(
    paths: Sequence[str | os.PathLike[str]], notebook_dir: Path
) -> list[Include]:
    """Check each ``--include`` path exists beside or below the notebook."""
    includes = []
    for given in paths:
        path = Path(given).resolve()
        if not path.exists():
            raise IncludeError(f"--include {given}: no such file or directory")
        if not (path.is_file() or path.is_dir()):
            raise IncludeError(f"--include {given}: not a regular file or directory")
        try:
            relative = path.relative_to(notebook_dir)
        except ValueError:
            raise IncludeError(
                f"--include {given}: outside the notebook's directory {notebook_dir}; the app "
                "reads files by the notebook's relative paths, so include files beside or "
                "below the notebook"
            ) from None
        includes.append(Include(source=path, relative=relative))
    return includes


def is_included(path: Path, includes: Sequence[Include]) -> bool:
    """Whether `path` (absolute) is an included file or inside an included directory."""
    return any(item.source == path or item.source in path.parents for item in includes)


def path_literals(cells: Iterable[CodeCell]) -> Iterable[tuple[int, int, str]]:
    """(cell, line, text) of every string constant in the cells that could be a relative path."""
    for index, _, parsed in cells:
        if parsed.tree is None:
            continue
        for node in ast.walk(parsed.tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if text and len(text) <= 255 and "\n" not in text and not os.path.isabs(text):
                    yield index, node.lineno + parsed.offset, text


def written_paths(cells: Sequence[CodeCell], notebook_dir: Path) -> set[Path]:
    """Files and directories the notebook creates itself (absolute, resolved)."""
    constants: dict[str, str] = {}  # `OUT = 'labels.csv'` at the top of a cell
    texts: list[str] = []
    for _, source, parsed in cells:
        first = source.split("\n", 1)[0].split()
        if first[:1] == ["%%writefile"] and len(first) > 1:
            texts.append(first[-1])
        if parsed.tree is None:
            continue
        for stmt in parsed.tree.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str):
                constants.update((t.id, stmt.value.value) for t in stmt.targets
                                 if isinstance(t, ast.Name))
        for node in ast.walk(parsed.tree):
            if isinstance(node, ast.Call):
                texts.extend(_written_by(node, constants))
    found: set[Path] = set()
    for text in texts:
        try:
            found.add((notebook_dir / text).resolve())
        except (OSError, ValueError):
            continue
    return found


def _written_by(call: ast.Call, constants: Mapping[str, str]) -> list[str]:
    def text(node: ast.expr | None) -> str | None:  # a path argument's literal text
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Call) and dotted(node.func) in (["Path"], ["pathlib", "Path"]) \
                and node.args:
            return text(node.args[0])
        return constants.get(node.id) if isinstance(node, ast.Name) else None

    parts = dotted(call.func) or []
    name = call.func.attr if isinstance(call.func, ast.Attribute) else (parts[-1:] or [""])[0]
    if name == "open":
        # `open(p, 'w')`, `io.open(p, 'w')`; or `Path(p).open('w')`, whose receiver is the path
        method = isinstance(call.func, ast.Attribute) and text(call.func.value) is not None
        target = call.func.value if method and isinstance(call.func, ast.Attribute) else (
            call.args[0] if call.args else None)
        position = 0 if method else 1
        mode = call.args[position] if len(call.args) > position else next(
            (k.value for k in call.keywords if k.arg == "mode"), None)
        if isinstance(mode, ast.Constant) and isinstance(mode.value, str) \
                and _WRITE_MODES & set(mode.value):
            return [t for t in [text(target)] if t is not None]
        return []
    if name not in WRITING_CALLS:
        return []
    if name in _DESTINATION_LAST and len(call.args) >= 2:
        candidates = [call.args[-1]]
    else:
        candidates = [*call.args[:1], *(k.value for k in call.keywords if k.arg in (
            "path", "fname", "path_or_buf", "file", "filename", "name", "dst"))]
        if isinstance(call.func, ast.Attribute):  # `Path('out.txt').write_text(...)`
            candidates.append(call.func.value)
    return [t for t in map(text, candidates) if t is not None]


def path_states(cells: Iterable[CodeCell], notebook_dir: Path) -> dict[Path, float | None]:
    """The modification time (None: absent) of every path a string constant may name, to
    compare after the `--trace` run: what changed in between, the notebook wrote."""
    states: dict[Path, float | None] = {}
    for _, _, text in path_literals(cells):
        path = notebook_dir / text
        if path not in states:
            states[path] = _mtime(path)
    return states


def changed_paths(before: Mapping[Path, float | None]) -> set[Path]:
    """The paths of `before` (from :func:`path_states`) created or changed since (resolved)."""
    changed: set[Path] = set()
    for path, mtime in before.items():
        now = _mtime(path)
        if now is not None and now != mtime:
            try:
                changed.add(path.resolve())
            except (OSError, ValueError):
                continue
    return changed


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except (OSError, ValueError):
        return None


def missing_includes(
    cells: Sequence[CodeCell], notebook_dir: Path, includes: Sequence[Include],
    *, where: str, written: Iterable[Path] = (),
) -> list[str]:
    """Warnings for string literals in `cells` naming a path beside the notebook that the
    build does not ship and the notebook does not write itself (`written`, absolute)."""
    made = written_paths(cells, notebook_dir) | set(written)
    warnings: list[str] = []
    seen: set[str] = set()
    reported: set[Path] = set()
    for index, line, text in path_literals(cells):
        if text in seen:
            continue
        seen.add(text)
        candidate = notebook_dir / text
        if not os.path.exists(candidate):  # most string constants are no path at all
            continue
        try:
            path = candidate.resolve()
        except (OSError, ValueError):
            continue
        if path == notebook_dir or notebook_dir not in path.parents or path in reported:
            continue
        if is_included(path, includes) or path in made or any(m in path.parents for m in made):
            continue
        reported.add(path)
        warnings.append(
            f"{where}: cell {index + 1}, line {line}: warning missing-include: "
            f"{text!r} is beside the notebook but not in the app; build with "
            f"--include {text}"
        )
    return warnings
