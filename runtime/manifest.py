"""The app manifest (`app.json`): the contract between the compiler and the runtime.

The compiler builds a :class:`Manifest` and writes it with :func:`dump`; the runtime reads it
with :func:`load`. This is the only module both packages share.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

FORMAT = 1
"""Bumped on any incompatible change; :func:`load` refuses a newer format."""

MANIFEST_NAME = "app.json"
NOTEBOOK_NAME = "app.ipynb"
FILES_DIR = "files"

CellKind = Literal["code", "markdown"]
WaitKind = Literal["widget", "callback", "traced", "library", "marker", "tag"]


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
            if "freeze:warm" not in cell.tags:
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


_CELL = {
    "type": "object",
    "required": ["id", "kind", "source", "tags"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"enum": ["code", "markdown"]},
        "source": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Freezer app manifest",
    "type": "object",
    "required": [
        "format", "app_id", "title", "source", "freezer_version", "created",
        "kernel", "parameters", "stages",
    ],
    "properties": {
        "format": {"type": "integer", "minimum": 1},
        "app_id": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "title": {"type": "string"},
        "source": {
            "type": "object",
            "required": ["name", "sha256"],
            "properties": {"name": {"type": "string"}, "sha256": {"type": "string"}},
        },
        "freezer_version": {"type": "string"},
        "created": {"type": "string"},
        "kernel": {
            "type": "object",
            "required": ["name", "language"],
            "properties": {"name": {"type": "string"}, "language": {"type": "string"}},
        },
        "parameters": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "default", "type"],
                "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
            },
        },
        "stages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["index", "title", "cells", "waits_on", "collect", "warm"],
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "title": {"type": "string"},
                    "cells": {"type": "array", "items": _CELL},
                    "waits_on": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "kind", "bound_in_cell"],
                            "properties": {
                                "name": {"type": "string"},
                                "kind": {
                                    "enum": [
                                        "widget", "callback", "traced", "library", "marker",
                                        "tag",
                                    ]
                                },
                                "bound_in_cell": {"type": "integer"},
                            },
                        },
                    },
                    "collect": {"type": "array", "items": {"type": "string"}},
                    "warm": {"type": "boolean"},
                    "gate": {"type": "string"},
                    "warm_cells": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}


_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict, "array": list, "string": str, "integer": int, "boolean": bool,
}


def schema_errors(data: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Check `data` against the subset of JSON Schema that :data:`SCHEMA` uses.

    The runtime validates every manifest it loads, in every kernel it starts; importing the
    `jsonschema` package costs seconds there (its format checkers build grammars on import), so
    this small checker interprets the schema instead. The tests compare it with `jsonschema`.
    """
    where = path or "(top level)"
    expected = schema.get("type")
    if expected is not None:
        ok = isinstance(data, _TYPES[expected])
        if expected in ("integer", "object", "array", "string") and isinstance(data, bool):
            ok = False
        if not ok:
            return [f"{where}: {data!r} is not of type {expected!r}"]
    if "enum" in schema and data not in schema["enum"]:
        return [f"{where}: {data!r} is not one of {schema['enum']!r}"]
    if "minimum" in schema and data < schema["minimum"]:
        return [f"{where}: {data!r} is less than the minimum of {schema['minimum']}"]
    if "pattern" in schema and not re.search(schema["pattern"], data):
        return [f"{where}: {data!r} does not match {schema['pattern']!r}"]
    errors: list[str] = []
    if isinstance(data, dict):
        for name in schema.get("required", ()):
            if name not in data:
                errors.append(f"{where}: {name!r} is a required property")
        properties = schema.get("properties", {})
        for name, value in data.items():
            if name in properties:
                errors += schema_errors(value, properties[name], f"{path}/{name}".lstrip("/"))
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: additional property {name!r} is not allowed")
    if isinstance(data, list):
        if len(data) < schema.get("minItems", 0):
            errors.append(f"{where}: should have at least {schema['minItems']} item(s)")
        if "items" in schema:
            for i, item in enumerate(data):
                errors += schema_errors(item, schema["items"], f"{path}/{i}".lstrip("/"))
    return errors


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
