"""Reading the source notebook: every way a file can fail to be a notebook, as one line.

:func:`read_notebook` returns a :class:`SourceNotebook`: the notebook as an nbformat 4.5 node
with outputs and saved widget state dropped and every cell given a stable id, plus what the
rest of the compiler needs to know about it (name, sha256 of the bytes, the kernel the app runs
on) and warnings worth showing the author.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# nbformat validates with jsonschema, whose format checkers import `rfc3987_syntax` when it is
# installed (jupyter_events' extras pull it in) to check "iri" strings; building its grammar
# takes seconds on import (measured here: `import nbformat` 4.8 s with it, 0.4 s without),
# and no notebook schema uses that format. Without the module jsonschema skips that checker.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

import nbformat  # noqa: E402
from nbformat.v4.rwbase import rejoin_lines  # noqa: E402

from freezer.errors import NotebookError  # noqa: E402

MAX_NOTEBOOK_BYTES = 256 * 1024 * 1024
"""Largest notebook file read (bytes). Outputs make notebooks big and are dropped anyway."""

DEFAULT_KERNEL = "python3"
WIDGET_STATE_KEY = "widgets"
UPGRADE_HINT = "jupyter nbconvert --to notebook --nbformat 4 --inplace"

_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class SourceNotebook:
    """A notebook read and cleaned for compiling."""

    nb: nbformat.NotebookNode
    path: Path  # as given on the command line
    name: str  # file name, e.g. "labeling.ipynb"
    sha256: str  # of the file's bytes
    kernel_name: str  # after mapping: installed here, python3 otherwise
    kernel_language: str
    warnings: tuple[str, ...] = ()

    @property
    def directory(self) -> Path:
        """The notebook's directory: its relative paths (data files, imports) start there."""
        return self.path.resolve().parent

    @property
    def stem(self) -> str:
        """The file name without `.ipynb`."""
        return self.path.stem if self.path.suffix == ".ipynb" else self.path.name


def read_notebook(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_NOTEBOOK_BYTES
) -> SourceNotebook:
    """Read, check and clean the notebook at `path`; raise :class:`NotebookError` if unusable."""
    path = Path(path)
    where = str(path)
    raw = _read_bytes(path, where, max_bytes)
    data = _parse_json(raw, where)
    _check_version(data, where)
    nb = nbformat.from_dict(data)  # type: ignore[no-untyped-call]
    _drop_saved_state(nb)
    _assign_cell_ids(nb)
    _validate(nb, where)
    rejoin_lines(nb)  # type: ignore[no-untyped-call]  # sources saved as lists of lines
    _check_has_code(nb, where)
    kernel_name, language, warnings = map_kernel(nb, where)
    nb.metadata["kernelspec"] = kernelspec(kernel_name, language)
    return SourceNotebook(
        nb=nb,
        path=path,
        name=path.name,
        sha256=hashlib.sha256(raw).hexdigest(),
        kernel_name=kernel_name,
        kernel_language=language,
        warnings=tuple(warnings),
    )


def _read_bytes(path: Path, where: str, max_bytes: int) -> bytes:
    if path.is_dir():
        raise NotebookError(where, "is a directory; give the path of a .ipynb notebook file")
    if not path.exists():
        raise NotebookError(where, "no such file")
    if not path.is_file():
        raise NotebookError(where, "is not a regular file; give the path of a .ipynb notebook")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise NotebookError(
                where,
                f"is {size / 1e6:.0f} MB; Freezer reads notebooks up to {max_bytes / 1e6:.0f} MB "
                f"- clear its outputs (jupyter nbconvert --clear-output --inplace {where}) "
                "and build again",
            )
        return path.read_bytes()
    except OSError as exc:
        raise NotebookError(where, f"cannot read: {exc.strerror or exc}") from None


def _parse_json(raw: bytes, where: str) -> Any:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        bad = raw[exc.start : exc.start + 1].hex()
        raise NotebookError(
            where,
            f"is not UTF-8 text (byte 0x{bad} on line {line}); notebooks are UTF-8 JSON - "
            "re-save it as UTF-8",
        ) from None
    if not text.strip():
        raise NotebookError(where, "is an empty file, not a notebook")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            where,
            f"is not a notebook: invalid JSON on line {exc.lineno}, column {exc.colno} "
            f"({exc.msg})",
        ) from None
    except RecursionError:
        raise NotebookError(where, "is not a notebook: JSON nested too deeply") from None


def _check_version(data: Any, where: str) -> None:
    if not isinstance(data, dict) or "nbformat" not in data:
        raise NotebookError(
            where, "is JSON but not a Jupyter notebook (no top-level \"nbformat\" field)"
        )
    version = data["nbformat"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise NotebookError(where, f"is not a Jupyter notebook (\"nbformat\": {version!r})")
    if version < 4:
        raise NotebookError(
            where,
            f"is an nbformat {version} notebook; Freezer reads nbformat 4 - upgrade it with "
            f"`{UPGRADE_HINT} {where}`",
        )
    if version > 4:
        raise NotebookError(
            where, f"is an nbformat {version} notebook, newer than Freezer reads (nbformat 4)"
        )
    if not isinstance(data.get("cells"), list):
        raise NotebookError(where, "is not a valid notebook: \"cells\" is missing or not a list")


def _drop_saved_state(nb: nbformat.NotebookNode) -> None:
    """Outputs and saved widget state belong to the author's session, not to the app."""
    metadata = nb.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop(WIDGET_STATE_KEY, None)
    for cell in nb.cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None


def _assign_cell_ids(nb: nbformat.NotebookNode) -> None:
    """Give each cell a valid, unique, deterministic id (nbformat 4.5), keeping good ones."""
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        if not isinstance(cell, dict):
            continue
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not _CELL_ID.match(cell_id) or cell_id in seen:
            cell_id = f"cell-{index}"
            suffix = 0
            while cell_id in seen:
                suffix += 1
                cell_id = f"cell-{index}-{suffix}"
            cell["id"] = cell_id
        seen.add(cell_id)
    if nb.get("nbformat_minor", 0) < 5:
        nb["nbformat_minor"] = 5


def _validate(nb: nbformat.NotebookNode, where: str) -> None:
    # The schema's own message for a bad cell is the whole cell dumped; say what is wrong.
    for index, cell in enumerate(nb.cells):
        if not isinstance(cell, dict):
            raise NotebookError(where, f"cell {index + 1}: not a JSON object")
        kind = cell.get("cell_type")
        if kind not in ("code", "markdown", "raw"):
            raise NotebookError(
                where,
                f"cell {index + 1}: unknown cell_type {kind!r}; nbformat 4 has code, markdown "
                "and raw cells - change or delete the cell",
            )
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        location = list(getattr(exc, "absolute_path", []) or [])
        at = ""
        if len(location) >= 2 and location[0] == "cells" and isinstance(location[1], int):
            at = f"cell {location[1] + 1}: "
        path = "/".join(str(p) for p in location) or "top level"
        problem = exc.message if len(exc.message) <= 160 else exc.message[:160] + "..."
        raise NotebookError(
            where, f"{at}not a valid nbformat 4 notebook at {path}: {problem}"
        ) from None


def _check_has_code(nb: nbformat.NotebookNode, where: str) -> None:
    if not nb.cells:
        raise NotebookError(where, "has no cells; there is nothing to build")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code:
        raise NotebookError(where, "has no code cells; there is nothing for the app to run")
    if not any(c.source.strip() for c in code):
        raise NotebookError(where, "every code cell is empty; there is nothing for the app to run")


def kernelspec(name: str, language: str) -> dict[str, str]:
    """The `kernelspec` metadata of a notebook that runs on kernel `name`."""
    display = "Python 3 (ipykernel)" if name == DEFAULT_KERNEL else name
    return {"name": name, "language": language, "display_name": display}


def installed_kernels() -> dict[str, str]:
    """Installed kernelspecs here: name -> language."""
    from jupyter_client.kernelspec import KernelSpecManager

    manager = KernelSpecManager()
    kernels: dict[str, str] = {}
    for name in manager.find_kernel_specs():
        try:
            kernels[name] = str(manager.get_kernel_spec(name).language or "python").lower()
        except Exception:  # a broken kernelspec on this machine is not the notebook's fault
            continue
    return kernels


def map_kernel(nb: nbformat.NotebookNode, where: str) -> tuple[str, str, list[str]]:
    """The kernel the app runs on: (name, language, warnings).

    A missing kernelspec means python3; one not installed here (python2, py36, conda-env-x)
    maps to python3 with a warning. A notebook in another language cannot become an app: the
    runner is Python.
    """
    spec = nb.metadata.get("kernelspec")
    spec = spec if isinstance(spec, dict) else {}
    info = nb.metadata.get("language_info")
    info = info if isinstance(info, dict) else {}
    declared = str(spec.get("language") or info.get("name") or "python")
    if declared.lower() != "python":
        raise NotebookError(
            where,
            f"runs on kernel {spec.get('name', '?')!r} (language {declared}); Freezer apps "
            "run Python notebooks",
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        return DEFAULT_KERNEL, "python", []
    kernels = installed_kernels()
    if kernels.get(name) == "python":
        return name, "python", []
    return DEFAULT_KERNEL, "python", [
        f"{where}: warning unknown-kernel: kernel {name!r} is not installed here; "
        f"the app runs on {DEFAULT_KERNEL}"
    ]
