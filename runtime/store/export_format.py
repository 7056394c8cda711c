"""The export rows as text: the CSV (flattened, guarded against formulas) and the JSON.

The rows are :meth:`runtime.store.store.Store.export_rows`: one JSON-serialisable dict per run,
newest first, with at least

```
run_id, app_id, user, status          str
stage                                 int, 0-based index of the run's current stage
stages                                int, how many stages the run's app version has (0 if unknown)
created_at, updated_at, finished_at   ISO 8601 text (UTC) or None
params                                {name: value}       per-run parameters
snapshots                             {"0": {name: value}, ...}  what each finished stage waited on
results                               {name: value}       the run's `collect:NAME` values
stage_N_status                        per stage: its status
```

A snapshot holds what the person chose, never media bytes (:mod:`runtime.kernel.values`): an image
is a reference `{"media": "image/png", "sha256": ..., "bytes": ...}`. Each snapshot is in the
row once, under `snapshots`.

The JSON export is the list of these rows as they are. The CSV export flattens them (see
:func:`flatten_row`), and prefixes text that people or notebooks produced (user names, snapshots,
parameters, results) with a quote where a spreadsheet would read it as a formula. Columns the
store itself writes (ids, times, statuses, stage numbers) are never altered, so every row still
matches `freezer runs` and the database: a run id may start with `-`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

FIXED_COLUMNS = (
    "run_id", "app_id", "user", "status", "stage", "stages",
    "created_at", "updated_at", "finished_at",
)
NESTED_KEYS = ("params", "snapshots", "results", "history")  # history: JSON only
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is read as a formula by spreadsheet apps."""
STORE_COLUMNS = frozenset(FIXED_COLUMNS) - {"user"}
"""Columns whose text the store writes (ids, times, statuses): exported exactly as stored."""



def stage_position(row: dict[str, Any]) -> str:
    """A run's current stage, 1-based, out of its app version's stages: `2/3`."""
    current = row["stage"] + 1
    return f"{current}/{row['stages']}" if row["stages"] else str(current)


def safe_cell(value: Any) -> str:
    """One CSV cell: numbers as written, text guarded against spreadsheet formulas."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = value if isinstance(value, str) else compact_json(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def plain_cell(value: Any) -> str:
    """One CSV cell of a column the store writes: its text exactly as stored."""
    return "" if value is None else str(value)


def is_store_column(name: str) -> bool:
    """Whether the store, not a person or a notebook, wrote this column's text."""
    if name in STORE_COLUMNS:
        return True
    index = name.removeprefix("stage_").removesuffix("_status")
    return name == f"stage_{index}_status" and index.isdigit()


def compact_json(value: Any) -> str:
    """A JSON value as short text (non-ASCII kept readable)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """An export row as flat CSV columns (values not yet made safe; order: :func:`csv_columns`).

    Each stage's snapshot becomes one `stage_N.NAME` column per name; params and results
    become `param.NAME` and `result.NAME`.
    """
    flat = {name: row.get(name) for name in FIXED_COLUMNS}
    for key, value in row.items():
        if key not in flat and key not in NESTED_KEYS:
            flat[key] = value  # stage_N_status, and whatever the store adds later
    for index, snapshot in (row.get("snapshots") or {}).items():
        for name, snapped in snapshot.items():
            flat[f"stage_{index}.{name}"] = snapped
    for name, value in (row.get("params") or {}).items():
        flat[f"param.{name}"] = value
    for name, value in (row.get("results") or {}).items():
        flat[f"result.{name}"] = value
    return flat


def csv_columns(flat_rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every column of the flat rows: fixed ones, then stage by stage, params, results.

    Within a group names are sorted, so the header does not depend on the order of the rows.
    """
    names = set(FIXED_COLUMNS)
    for flat in flat_rows:
        names.update(flat)
    fixed = {name: i for i, name in enumerate(FIXED_COLUMNS)}
    return sorted(names, key=lambda name: (column_group(name), fixed.get(name, 0), name))


def column_group(name: str) -> tuple[int, int, int]:
    """Where a column goes: fixed, stage N (status first), params, results, anything else."""
    if name in FIXED_COLUMNS:
        return (0, 0, 0)
    if name.startswith("stage_"):
        index, _, rest = name.removeprefix("stage_").partition("_")
        if "." in index:  # stage_N.NAME
            index, rest = index.split(".", 1)[0], "."
        if index.isdigit():
            return (1, int(index), 0 if rest == "status" else 1)
    if name.startswith("param."):
        return (2, 0, 0)
    if name.startswith("result."):
        return (3, 0, 0)
    return (4, 0, 0)


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The export rows as CSV text with a header line."""
    flat_rows = [flatten_row(row) for row in rows]
    columns = csv_columns(flat_rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(c) for c in columns])
    cell_writers = [plain_cell if is_store_column(c) else safe_cell for c in columns]
    for flat in flat_rows:
        cells = zip(cell_writers, columns, strict=True)
        writer.writerow([write(flat.get(column)) for write, column in cells])
    return buffer.getvalue()


def rows_to_json(rows: Sequence[dict[str, Any]]) -> str:
    """The export rows as a JSON list of objects."""
    return json.dumps(list(rows), ensure_ascii=False, indent=1, default=str) + "\n"
