"""Python syntax as IPython runs it: parsing a cell, and reading names out of the tree.

A notebook cell is parsed with `ast` after IPython's input transformation, so magics and `!cmd`
lines parse; the helpers below read names out of the resulting expressions for the analysis
(:mod:`freezer.analysis`) and the modules it builds on.
"""

from __future__ import annotations

import ast
import builtins
import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from IPython.core.inputtransformer2 import TransformerManager

PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})
BLOCK_MAGICS = frozenset({"block", "blockrun"})
BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass(frozen=True)
class ParsedCell:
    """A code cell parsed as IPython runs it."""

    tree: ast.Module | None  # None: a syntax error, or a cell magic that is not Python
    offset: int = 0  # add to tree line numbers to get source line numbers
    error: tuple[int, str] | None = None  # (source line, message)


CodeCell = tuple[int, str, ParsedCell]
"""(cell index, source as the app runs it, the source parsed)."""


def cell_source(cell: Mapping[str, Any]) -> str:
    """The text of a notebook cell (nbformat keeps it as a string or as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def parse_code_cells(cells: Sequence[Mapping[str, Any]]) -> list[CodeCell]:
    """(index, source, parsed) of every code cell: the one parse of each cell in a build."""
    return [(index, text, parse_cell(text)) for index, cell in enumerate(cells)
            if cell.get("cell_type") == "code" for text in [cell_source(cell)]]


def parse_cell(source: str) -> ParsedCell:
    """Parse a cell as IPython runs it.

    Plain Python is parsed as is (IPython leaves it unchanged); anything else goes through
    IPython's own transformation first. A Python cell magic (`%%time`) is parsed from its body,
    with line offset 1; other cell magics (`%%bash`, `%%html`) have no tree and no error.
    """
    first, _, body = source.partition("\n")
    offset = 0
    if first.startswith("%%"):
        words = first[2:].split(maxsplit=1)
        if not words or words[0] not in PYTHON_CELL_MAGICS:
            return ParsedCell(None)
        source, offset = body, 1
    if not _looks_like_ipython(source):
        try:
            return ParsedCell(ast.parse(source), offset)
        except (SyntaxError, ValueError):
            pass
        except (RecursionError, MemoryError):
            return ParsedCell(None, offset, (1 + offset, "too deeply nested for Python to parse"))
    try:
        return ParsedCell(ast.parse(transform_cell(source)), offset)
    except SyntaxError as exc:
        return ParsedCell(None, offset, ((exc.lineno or 1) + offset, exc.msg or "invalid syntax"))
    except Exception as exc:  # IPython's transformer can fail on odd input; report, not crash
        return ParsedCell(None, offset, (1 + offset, str(exc) or type(exc).__name__))


def _looks_like_ipython(source: str) -> bool:
    """A quick guess that saves a failed `ast.parse`; a wrong guess only costs time."""
    for line in source.split("\n"):
        text = line.lstrip()
        if text[:1] in ("%", "!") or text.endswith("?") or "!" in text and "=" in text \
                and text.split("=", 1)[1].lstrip().startswith("!"):
            return True
    return False


_transformer = None
WHOLE_CELL_SPECIALS = 8
"""A cell with at most this many IPython lines is transformed in one piece (see below)."""
_ESCAPES = ("%", "!", "?", ",", ";", "/")


def transform_cell(source: str) -> str:
    """IPython's transformation of a cell into plain Python (`%magic` -> `get_ipython()...`).

    IPython re-tokenizes the whole cell after each `%magic`, `!cmd` or `x?` it rewrites, so a
    long cell with many of them costs cells x magics (and fails past 500 magics). A cell with
    more than :data:`WHOLE_CELL_SPECIALS` such lines is cut, at the start of top-level
    statements, into pieces that each end with the statement holding the next special line,
    and each piece is transformed on its own: the same text, in linear time. (Each rewrite
    concerns one logical line and keeps the line count, which is what makes this exact.)
    """
    manager = _manager()
    lines = (source if source.endswith("\n") else source + "\n").splitlines(keepends=True)
    if sum(map(_special, lines)) <= WHOLE_CELL_SPECIALS:
        text: str = manager.transform_cell(source)
        return text
    transforms: list[Callable[[list[str]], list[str]]] = [
        *manager.cleanup_transforms, *manager.line_transforms]  # type: ignore[list-item]
    for transform in transforms:
        lines = transform(lines)
    out: list[str] = []
    for start, end in _pieces(lines):
        out.extend(manager.do_token_transforms(lines[start:end]))  # type: ignore[no-untyped-call]
    return "".join(out)


def _manager() -> TransformerManager:
    global _transformer
    if _transformer is None:
        from IPython.core.inputtransformer2 import TransformerManager

        _transformer = TransformerManager()  # type: ignore[no-untyped-call]
    return _transformer


def _special(line: str) -> bool:
    """Whether IPython may rewrite this line: an escape first, `= %`/`= !`, or a final `?`."""
    text = line.strip()
    return text.startswith(_ESCAPES) or text.endswith("?") or "=" in text and text.split(
        "=", 1)[1].lstrip().startswith(("%", "!"))


def _pieces(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) line ranges that cover `lines`, cut before top-level statements, each
    ending with the first statement after its start that holds a special line."""
    import tokenize

    from IPython.core.inputtransformer2 import make_tokens_by_line

    skip = {tokenize.INDENT, tokenize.DEDENT, tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT}
    starts: list[int] = []
    for tokens in make_tokens_by_line(lines):
        first = next((t for t in tokens if t.type not in skip), None)
        if first is not None and first.start[1] == 0 and first.start[0] > 1:
            starts.append(first.start[0] - 1)
    pieces: list[tuple[int, int]] = []
    begin, special = 0, False
    cuts = iter([*starts, len(lines)])
    cut = next(cuts)
    for n, line in enumerate(lines):
        if n == cut:
            if special:
                pieces.append((begin, n))
                begin, special = n, False
            cut = next(cuts, len(lines))
        special = special or _special(line)
    pieces.append((begin, len(lines)))
    return pieces


def dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything but a chain of names."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def root_name(node: ast.expr) -> str | None:
    """The name at the bottom of `a.b[c].d`."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def ipython_call(node: ast.Call) -> tuple[str, str] | None:
    """`get_ipython().run_line_magic('pip', 'install x')` -> ("%pip", "install x")."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)):
        return None
    inner = func.value.func
    if not (isinstance(inner, ast.Name) and inner.id == "get_ipython"):
        return None
    args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if func.attr == "run_line_magic" and len(args) >= 2:
        return "%" + args[0], args[1]
    if func.attr in ("system", "getoutput") and args:
        return "!", args[0]
    return None


def is_pip_install(kind: str, text: str) -> bool:
    """Whether a magic or shell line installs packages."""
    words = text.split()
    if kind in ("%pip", "%conda", "%mamba"):
        return bool(words) and words[0] == "install"
    for n, word in enumerate(words[:4]):
        if word in ("pip", "pip3", "conda", "mamba") or word.endswith(("/pip", "/pip3")):
            return words[n + 1:n + 2] == ["install"]
    return False


def comment_out(source: str, lines: set[int]) -> str:
    """The cell with these lines commented out (a `pass` keeps an indented block valid)."""
    if not lines:
        return source
    out = source.split("\n")
    for ln in sorted(lines):
        if 0 < ln <= len(out):
            text = out[ln - 1]
            body = text.lstrip()
            indent = text[: len(text) - len(body)]
            out[ln - 1] = f"{indent}# {body}" if not indent else f"{indent}pass  # {body}"
    return "\n".join(out)


def drop_lines(parsed: ParsedCell, source: str, lines: set[int]) -> ParsedCell:
    """What parsing :func:`comment_out` of the cell `source` gives, without parsing it again:
    each statement on one of `lines` (source lines) dropped, or made a `pass` where its line is
    indented, as the commented-out text has it."""
    if parsed.tree is None or not lines:
        return parsed
    text = source.split("\n")
    tree = copy.deepcopy(parsed.tree)
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if not isinstance(body, list) or not body or not isinstance(body[0], ast.stmt):
                continue
            kept: list[ast.stmt] = []
            for stmt in body:
                line = stmt.lineno + parsed.offset
                if line not in lines:
                    kept.append(stmt)
                elif line <= len(text) and text[line - 1][:1].isspace():
                    kept.append(ast.copy_location(ast.Pass(), stmt))
            setattr(node, name, kept)
    return ParsedCell(tree, parsed.offset, parsed.error)


def evaluated_calls(node: ast.expr) -> Iterator[ast.Call]:
    """Calls evaluated with `node` (not inside lambdas)."""
    todo: list[ast.AST] = [node]
    while todo:
        current = todo.pop()
        if isinstance(current, ast.Lambda):
            continue
        if isinstance(current, ast.Call):
            yield current
        todo.extend(ast.iter_child_nodes(current))


def literal_names(node: ast.expr) -> list[str]:
    """Names in `x`, `*x`, `[a, b]`, `(a, 'value')`, `{k: a}`, nested."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Starred):
        return literal_names(node.value)
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [n for e in node.elts for n in literal_names(e)]
    if isinstance(node, ast.Dict):
        return [n for e in node.values for n in literal_names(e)]
    return []


def has_non_literal(node: ast.expr) -> bool:
    """Whether a literal collection holds anything but names and constants."""
    if isinstance(node, ast.Name | ast.Constant):
        return False
    if isinstance(node, ast.Starred):
        return has_non_literal(node.value)
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return any(has_non_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return any(k is not None and has_non_literal(k) for k in node.keys) or any(
            has_non_literal(v) for v in node.values)
    return True


def target_names(target: ast.expr, items: bool | None) -> list[str]:
    """Names a loop target binds; with items=True only the value of a `k, v` pair."""
    if items and isinstance(target, ast.Tuple) and len(target.elts) == 2:
        return target_names(target.elts[1], None)
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for e in target.elts for n in target_names(e, None)]
    if isinstance(target, ast.Starred):
        return target_names(target.value, None)
    return []
