"""The app manifest (`app.json`) and the other names the compiler and the runtime agree on.

The compiler builds a :class:`Manifest` and writes it with :func:`dump`; the runtime reads it
with :func:`load`. The cell tags both act on (:class:`Tag`), the bootstrap cell of `app.ipynb`,
the files a served app keeps in its directory and the parameters the runtime sets for each run
are defined here too. This is the only module both packages share.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from runtime.manifest_schema import SCHEMA as SCHEMA
from runtime.manifest_schema import CellKind as CellKind
from runtime.manifest_schema import WaitKind as WaitKind
from runtime.manifest_schema import schema_errors as schema_errors

FORMAT = 1
"""Bumped on any incompatible change; :func:`load` refuses a newer format."""

MANIFEST_NAME = "app.json"
NOTEBOOK_NAME = "app.ipynb"
FILES_DIR = "files"
BOOTSTRAP_SOURCE = "from runtime.kernel import runner\nrunner.show()"
"""The code cell of `app.ipynb`: it runs the app's stages, under Freezer or plain Voila."""

DATABASE_NAME = "freezer.db"
COOKIE_SECRET_FILE = ".freezer_cookie_secret"
CONFIG_NAME = "freezer_config"
RUNS_DIR = "runs"
KEPT_GLOBS = (
    f"{DATABASE_NAME}*", COOKIE_SECRET_FILE, f"{CONFIG_NAME}.py", f"{CONFIG_NAME}.json", RUNS_DIR,
)
"""What a served app keeps in its directory (the default SQLite database and its journal files,
the secret signing identity cookies, its config file, the runs' working directories); a rebuild
moves these into the new build."""

RUN_PARAMETERS = ("freezer_user", "freezer_run")
"""Parameters the runtime sets for each run, in this order: the person's name, the run's id."""
RESERVED_PARAMETERS = frozenset(RUN_PARAMETERS)



class Tag(str, Enum):
    """Cell tags the compiler and the runtime act on; a member equals its text, as tags are
    plain strings in a notebook and in `app.json`."""

    BREAK = "freeze:break"
    JOIN = "freeze:join"
    SKIP = "freeze:skip"
    WARM = "freeze:warm"
    PARAMETERS = "parameters"
    INJECTED_PARAMETERS = "injected-parameters"  # papermill's; it would override the run's

    def __str__(self) -> str:
        return str(self.value)


COLLECT_PREFIX = "collect:"
"""`collect:NAME` tags: the value of NAME after the cell's stage is kept with the run."""


class ManifestError(Exception):
    """`app.json` is missing, unreadable, of a newer format, or does not match the schema."""


@dataclass(frozen=True)
class Parameter:
    """A name declared in the notebook's `parameters` cell, with its literal default."""

    name: str
    default: Any
    type: str  # "int", "float", "str", "bool", "list", "dict", "NoneType"


@dataclass(frozen=True)
class Cell:
    """One notebook cell as it runs in the app."""

    id: str
    kind: CellKind
    source: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class WaitsOn:
    """Why a stage ends: a name the next stage reads that a person sets in a widget."""

    name: str
    kind: WaitKind
    bound_in_cell: int  # index of the cell in the source notebook (0-based, all cell types)


@dataclass(frozen=True)
class Stage:
    """Consecutive cells that run without waiting for a person."""

    index: int
    title: str
    cells: tuple[Cell, ...]
    waits_on: tuple[WaitsOn, ...] = ()
    collect: tuple[str, ...] = ()
    warm: bool = False  # every code cell of the stage is tagged freeze:warm
    gate: str | None = None
    """The button named by a `%blockrun NAME` ending this stage: the run goes on only through it
    (Next follows its `disabled` state, so the author's validation holds). Absent in `app.json`
    when None, so manifests without a gate keep their app_id."""
    warm_cells: int | None = None
    """How many leading cells a kernel runs before the person is known (`runner.prepare()`):
    the `freeze:warm` code cells at the very start of stage 0, with markdown among them; 0 in
    later stages. None (absent, as in apps built before it): derived, see :meth:`warm_leading`."""

    def warm_leading(self) -> tuple[Cell, ...]:
        """The leading cells a kernel runs ahead (see :attr:`warm_cells`)."""
        count = self.warm_cells
        if count is None:
            count = leading_warm_cells(self.cells) if self.index == 0 else 0
        return self.cells[:count]


class TaggedCell(Protocol):
    """A cell as :func:`leading_warm_cells` reads it: a :class:`Cell` or the compiler's own."""

    @property
    def kind(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...


def leading_warm_cells(cells: Sequence[TaggedCell]) -> int:
    """How many cells lead up to the last `freeze:warm` code cell before the first code cell
    without that tag (the value of :attr:`Stage.warm_cells` for a first stage)."""
    count = 0
    for pos, cell in enumerate(cells):
        if cell.kind == "code":
            if Tag.WARM not in cell.tags:
                break
            count = pos + 1
    return count


@dataclass(frozen=True)
class Manifest:
    """Everything the runtime needs to serve one frozen version of a notebook."""

    title: str
    source_name: str
    source_sha256: str
    freezer_version: str
    created: str  # ISO 8601, UTC
    kernel_name: str
    kernel_language: str
    stages: tuple[Stage, ...]
    parameters: tuple[Parameter, ...] = ()
    format: int = FORMAT
    app_id: str = field(default="")

    def with_app_id(self) -> Manifest:
        """Return a copy whose `app_id` is the sha256 of its canonical JSON."""
        return replace(self, app_id=compute_app_id(self))

    def to_json(self) -> dict[str, Any]:
        """The manifest as the JSON object stored in `app.json`."""
        return {
            "format": self.format,
            "app_id": self.app_id,
            "title": self.title,
            "source": {"name": self.source_name, "sha256": self.source_sha256},
            "freezer_version": self.freezer_version,
            "created": self.created,
            "kernel": {"name": self.kernel_name, "language": self.kernel_language},
            "parameters": [asdict(p) for p in self.parameters],
            "stages": [stage_json(s) for s in self.stages],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Build a manifest from the JSON object of `app.json` (already schema-checked)."""
        return cls(
            format=data["format"],
            app_id=data["app_id"],
            title=data["title"],
            source_name=data["source"]["name"],
            source_sha256=data["source"]["sha256"],
            freezer_version=data["freezer_version"],
            created=data["created"],
            kernel_name=data["kernel"]["name"],
            kernel_language=data["kernel"]["language"],
            parameters=tuple(Parameter(**p) for p in data["parameters"]),
            stages=tuple(
                Stage(
                    index=s["index"],
                    title=s["title"],
                    cells=tuple(
                        Cell(id=c["id"], kind=c["kind"], source=c["source"], tags=tuple(c["tags"]))
                        for c in s["cells"]
                    ),
                    waits_on=tuple(WaitsOn(**w) for w in s["waits_on"]),
                    collect=tuple(s["collect"]),
                    warm=s["warm"],
                    gate=s.get("gate"),
                    warm_cells=s.get("warm_cells"),
                )
                for s in data["stages"]
            ),
        )

    def collect_names(self) -> tuple[str, ...]:
        """Every name collected by any stage, in stage order."""
        return tuple(name for s in self.stages for name in s.collect)


def stage_json(stage: Stage) -> dict[str, Any]:
    """One stage as the JSON object stored in `app.json`."""
    data: dict[str, Any] = {
        "index": stage.index,
        "title": stage.title,
        "cells": [
            {"id": c.id, "kind": c.kind, "source": c.source, "tags": list(c.tags)}
            for c in stage.cells
        ],
        "waits_on": [asdict(w) for w in stage.waits_on],
        "collect": list(stage.collect),
        "warm": stage.warm,
    }
    if stage.gate is not None:
        data["gate"] = stage.gate
    if stage.warm_cells is not None:
        data["warm_cells"] = stage.warm_cells
    return data


def compute_app_id(manifest: Manifest) -> str:
    """sha256 of the canonical manifest (sorted keys, no `app_id`, no `created`)."""
    data = manifest.to_json()
    del data["app_id"]
    del data["created"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def validate(data: Any, where: str = MANIFEST_NAME) -> None:
    """Raise :class:`ManifestError` unless `data` is a manifest this runtime can serve."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: not a Freezer manifest (expected a JSON object)")
    fmt = data.get("format")
    if isinstance(fmt, int) and fmt > FORMAT:
        raise ManifestError(
            f"{where}: manifest format {fmt} is newer than this Freezer understands "
            f"(format {FORMAT}); upgrade Freezer or rebuild the app with this version"
        )
    errors = schema_errors(data, SCHEMA)
    if errors:
        raise ManifestError(f"{where}: invalid manifest at {errors[0]}")


def loads(text: str, where: str = MANIFEST_NAME) -> Manifest:
    """Parse and validate a manifest from JSON text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    validate(data, where)
    return Manifest.from_json(data)


def load(app_dir: str | os.PathLike[str]) -> Manifest:
    """Read `app.json` from an app directory (or a path to `app.json` itself)."""
    path = Path(app_dir)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file; is this a Freezer app directory?") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    return loads(text, str(path))


def dumps(manifest: Manifest) -> str:
    """The manifest as indented JSON text."""
    return json.dumps(manifest.to_json(), indent=1, ensure_ascii=False) + "\n"


def dump(manifest: Manifest, app_dir: str | os.PathLike[str]) -> Path:
    """Write `app.json` into `app_dir` atomically (temp file + rename); return its path."""
    directory = Path(app_dir)
    target = directory / MANIFEST_NAME
    fd, tmp = tempfile.mkstemp(prefix=".app.json.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dumps(manifest))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
