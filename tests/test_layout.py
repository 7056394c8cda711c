"""The layout's nevers, read from the source with `ast` (docs/internals.md):

- `runtime/kernel`, `runtime/store` and `runtime/runs` import nothing from `runtime/web`,
  tornado, jupyter_server or Voila;
- only `runtime/web/` imports Voila;
- a private (`_name`) attribute of Voila, jupyter_server or jupyter_client is used (read, or
  overridden in a subclass) only in `runtime/web/voila.py` or `runtime/web/jupyter.py`;
- `freezer/` imports from `runtime` only `runtime.manifest` and `runtime.protocol`;
- no module of `freezer/` or `runtime/` is over 400 lines.

Each rule is also checked against a small module that breaks it, so a checker that finds
nothing cannot pass unnoticed.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("tornado", "jupyter_server", "voila")
PRIVATE_OWNERS = ("voila", "jupyter_server", "jupyter_client")
PRIVATE_FILES = {"runtime/web/voila.py", "runtime/web/jupyter.py"}
INNER = ("runtime/kernel/", "runtime/store/", "runtime/runs/")
FREEZER_MAY_IMPORT = {"runtime", "runtime.manifest", "runtime.protocol"}
MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(p for pkg in ("freezer", "runtime") for p in (ROOT / pkg).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imported(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Every module name an import statement names (`from a import b` gives `a` and `a.b`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno


def is_under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def defined_privates(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, classes, assigned names and attributes."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            found.add(node.attr)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
    return {name for name in found if is_private(name)}


@functools.cache
def library_privates() -> frozenset[str]:
    """Private names Voila, jupyter_server and jupyter_client define (their installed source)."""
    names: set[str] = set()
    for package in PRIVATE_OWNERS:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, package
        for location in spec.submodule_search_locations:
            for path in Path(location).rglob("*.py"):
                try:
                    names |= defined_privates(ast.parse(path.read_text(encoding="utf-8")))
                except (SyntaxError, UnicodeDecodeError):
                    continue
    return frozenset(names)


@functools.cache
def own_privates() -> frozenset[str]:
    names: set[str] = set()
    for path in modules():
        names |= defined_privates(ast.parse(path.read_text(encoding="utf-8")))
    return frozenset(names)


def imports_from_owner(node: ast.AST) -> bool:
    return (isinstance(node, ast.ImportFrom) and node.module is not None
            and is_under(node.module, PRIVATE_OWNERS))


def framework_bases(tree: ast.AST) -> set[str]:
    """Local names bound to classes imported from Voila, jupyter_server or jupyter_client."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and imports_from_owner(node):
            bound |= {alias.asname or alias.name for alias in node.names}
    return bound


def other_modules(tree: ast.AST) -> set[str]:
    """Local names bound by `import x` to modules that are not Voila's or Jupyter's (`os`)."""
    return {
        alias.asname or alias.name.split(".")[0]
        for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names if not is_under(alias.name, PRIVATE_OWNERS)
    }


def private_uses(tree: ast.AST, ours: frozenset[str], theirs: frozenset[str]) -> list[str]:
    """Where a module uses a private of Voila, jupyter_server or jupyter_client."""
    found: list[str] = []
    bases = framework_bases(tree)
    others = other_modules(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and imports_from_owner(node):
            found += [f"line {node.lineno}: imports {node.module}.{a.name}"
                      for a in node.names if is_private(a.name)]
        elif isinstance(node, ast.Attribute) and is_private(node.attr):
            of_other_module = isinstance(node.value, ast.Name) and node.value.id in others
            if node.attr in theirs and node.attr not in ours and not of_other_module:
                found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ClassDef):
            inherited = {b.id for b in node.bases if isinstance(b, ast.Name)} & bases
            if inherited:
                found += [
                    f"line {item.lineno}: {node.name}.{item.name} overrides a private of {base}"
                    for item in node.body
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and is_private(item.name) and item.name in theirs
                    for base in sorted(inherited)
                ]
    return found


def layout_problems(path: str, source: str) -> list[str]:
    """What is wrong with the module at `path` (relative to the project root)."""
    tree = ast.parse(source)
    problems: list[str] = []
    for name, line in imported(tree):
        inner_may_not = is_under(name, FRAMEWORKS) or is_under(name, ("runtime.web",))
        if path.startswith(INNER) and inner_may_not:
            problems.append(f"{path}:{line} imports {name}")
        if is_under(name, ("voila",)) and not path.startswith("runtime/web/"):
            problems.append(f"{path}:{line} imports {name} outside runtime/web/")
        if path.startswith("freezer/") and is_under(name, ("runtime",)):
            allowed = name in FREEZER_MAY_IMPORT or any(
                name.startswith(m + ".") for m in FREEZER_MAY_IMPORT - {"runtime"}
            )
            if not allowed and name != "runtime.__version__":
                problems.append(f"{path}:{line} imports {name} (freezer/ may use runtime.manifest "
                                "and runtime.protocol only)")
    if path not in PRIVATE_FILES:
        problems += [f"{path} {use}" for use in
                     private_uses(tree, own_privates(), library_privates())]
    lines = source.count("\n")
    if lines > MAX_LINES:
        problems.append(f"{path} has {lines} lines (at most {MAX_LINES})")
    return problems


def test_the_tree_keeps_the_layout() -> None:
    problems = [p for path in modules()
                for p in layout_problems(relative(path), path.read_text(encoding="utf-8"))]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("runtime/runs/x.py", "import tornado.web\n", "imports tornado.web"),
        ("runtime/store/x.py", "from jupyter_server.utils import url_path_join\n",
         "imports jupyter_server.utils"),
        ("runtime/kernel/x.py", "from runtime.web.app import FreezerApp\n",
         "imports runtime.web.app"),
        ("runtime/runs/x.py", "from voila.app import Voila\n", "outside runtime/web/"),
        ("freezer/x.py", "from runtime.store.store import Store\n", "may use runtime.manifest"),
        ("runtime/web/app.py", "from voila.app import _x\n", "imports voila.app._x"),
        ("runtime/web/kernels.py",
         "from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager\n"
         "class M(AsyncMappingKernelManager):\n"
         "    async def _async_start_kernel(self):\n        pass\n",
         "overrides a private"),
        ("runtime/web/handlers.py", "def f(km):\n    return km._async_start_kernel\n",
         "._async_start_kernel"),
        ("runtime/x.py", "x = 1\n" * (MAX_LINES + 1), "lines (at most"),
        ("runtime/web/app.py", "def f(manager):\n    return manager._kernels\n", "._kernels"),
    ],
)
def test_each_rule_catches_a_module_that_breaks_it(path: str, source: str, expected: str) -> None:
    problems = layout_problems(path, source)
    assert any(expected in p for p in problems), problems


def test_what_the_rules_allow() -> None:
    allowed = {
        "runtime/runs/x.py": "from jupyter_client.asynchronous.client import AsyncKernelClient\n",
        "freezer/x.py": "from runtime.manifest import Manifest\nfrom runtime import manifest\n",
        "runtime/web/jupyter.py": "def f(km):\n    return km._async_start_kernel\n",
        "runtime/web/voila.py": "from voila.app import Voila\n",
        "runtime/runs/y.py": "import os\nos._exit(3)\n",
    }
    for path, source in allowed.items():
        assert layout_problems(path, source) == [], path
