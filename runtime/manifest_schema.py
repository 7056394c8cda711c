"""The JSON Schema of `app.json`, and a small checker of it that needs no third-party package.

:mod:`runtime.manifest` re-exports both; `tests/test_manifest.py` checks the checker agrees with
`jsonschema` on every mutation it tries.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

CellKind = Literal["code", "markdown"]
WaitKind = Literal["widget", "callback", "traced", "library", "marker", "tag"]


_CELL = {
    "type": "object",
    "required": ["id", "kind", "source", "tags"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"enum": list(get_args(CellKind))},
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
                                "kind": {"enum": list(get_args(WaitKind))},
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
