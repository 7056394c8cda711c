"""The `parameters` cell (papermill's convention, DESIGN §4): names with literal defaults.

Each top-level statement of the cell should be `name = literal` (or `name: type = literal`).
Anything a start link could not set is a diagnostic with its line rather than silence: a
default that is not a literal, a tuple or chained assignment (`a, b = 1, 2`, `c = d = 5`), a
name declared twice, and a reserved run name (`freezer_user`, `freezer_run`) whose default is not
a string, since the runtime sets those to the person's name and the run's id.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Literal

from freezer.syntax import ParsedCell
from runtime.manifest import RESERVED_PARAMETERS, Parameter

PARAMETER_TYPES = ("bool", "int", "float", "str", "list", "dict", "NoneType")

Note = Callable[[str, Literal["warning", "error"], int, str], None]
"""`note(code, severity, line, message)`: report a diagnostic at a line of the cell."""


def read_parameters(parsed: ParsedCell, note: Note) -> list[Parameter]:
    """The per-run parameters a `parameters` cell declares, reporting what it cannot declare."""
    if parsed.tree is None:
        return []
    declared: dict[str, int] = {}
    parameters: list[Parameter] = []
    for stmt in parsed.tree.body:
        line = stmt.lineno + parsed.offset
        target, value = _assignment(stmt, line, note)
        if target is None or value is None:
            continue
        if target in declared:
            note("parameter-repeated", "warning", line,
                 f"parameter {target} is already declared on line {declared[target]}; "
                 "the first declaration is the parameter, this one overrides its default "
                 "in the app: remove one")
            continue
        declared[target] = line
        try:
            default = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            note("parameter-not-literal", "warning", line,
                 f"parameter {target} needs a literal default (a number, string, bool, None, "
                 "list or dict); it is not a per-run parameter")
            continue
        if isinstance(default, tuple):
            default = list(default)
        kind = type(default).__name__
        if target in RESERVED_PARAMETERS and kind != "str":
            note("reserved-parameter", "error", line,
                 f"{target} is set by Freezer to the "
                 f"{'person' if target == 'freezer_user' else 'run id'} as a string; "
                 f"declare it with a string default ({target} = '') or rename it")
            continue
        if kind not in PARAMETER_TYPES:
            note("parameter-not-literal", "warning", line,
                 f"parameter {target}: a {kind} default cannot come from a link; "
                 "use a number, string, bool, None, list or dict")
            continue
        parameters.append(Parameter(target, default, kind))
    return parameters


def _assignment(stmt: ast.stmt, line: int, note: Note) -> tuple[str | None, ast.expr | None]:
    """`name = value` -> (name, value); other assignments are reported, other statements
    (imports, comments turned docstrings, prints) are left alone."""
    if isinstance(stmt, ast.AnnAssign):
        if isinstance(stmt.target, ast.Name) and stmt.value is not None:
            return stmt.target.id, stmt.value
        return None, None
    if not isinstance(stmt, ast.Assign):
        return None, None
    if len(stmt.targets) > 1:
        names = " = ".join(ast.unparse(t) for t in stmt.targets)
        note("parameter-chained", "warning", line,
             f"{names} = ...: a chained assignment declares no parameter; write one "
             "`name = literal` line per parameter")
        return None, None
    target = stmt.targets[0]
    if isinstance(target, ast.Name):
        return target.id, stmt.value
    if isinstance(target, ast.Tuple | ast.List):
        note("parameter-tuple", "warning", line,
             f"{ast.unparse(target)} = ...: a tuple assignment declares no parameter; write "
             "one `name = literal` line per parameter")
    return None, None
