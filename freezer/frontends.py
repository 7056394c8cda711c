"""Whether the page can draw a library's widgets: their JavaScript front-ends.

A widget's Python class names the npm package of its front-end (`_model_module`). Voila's page
ships ipywidgets' own (`@jupyter-widgets/base`, `controls`, `output`); any other comes from a
JupyterLab extension installed in one of Jupyter's data directories
(`share/jupyter/labextensions/<name>/package.json`). Without one, or with one built for
ipywidgets 7, the page shows only "Click to show javascript error" where the widget should be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

BUNDLED = frozenset({"@jupyter-widgets/base", "@jupyter-widgets/controls",
                     "@jupyter-widgets/output"})
"""Front-end modules Voila's page (and JupyterLab's widget manager) bring themselves."""
BASE = "@jupyter-widgets/base"
BASE_MAJOR = {7: 4, 8: 6}
"""The `@jupyter-widgets/base` major version each ipywidgets major version speaks."""


@dataclass(frozen=True)
class Extension:
    """One installed JupyterLab extension (its package.json)."""

    name: str
    path: Path
    base: str | None  # its `@jupyter-widgets/base` dependency, e.g. "^2 || ^3 || ^4 || ^6"


def installed_extensions(directories: Iterable[Path] | None = None) -> dict[str, Extension]:
    """The labextensions in Jupyter's data directories (first found wins), by package name."""
    if directories is None:
        from jupyter_core.paths import jupyter_path

        directories = [Path(p) for p in jupyter_path("labextensions")]
    found: dict[str, Extension] = {}
    for directory in directories:
        for package in [*directory.glob("*/package.json"), *directory.glob("@*/*/package.json")]:
            try:
                data = json.loads(package.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str) or name in found:
                continue
            shared = data.get("jupyterlab", {}).get("sharedPackages", {})
            base = data.get("dependencies", {}).get(BASE)
            if base is None and isinstance(shared.get(BASE), dict):
                base = shared[BASE].get("requiredVersion")
            found[name] = Extension(name, package.parent, base if isinstance(base, str) else None)
    return found


def serving_base_major() -> int | None:
    """The `@jupyter-widgets/base` major of the installed ipywidgets (8 -> 6)."""
    try:
        major = int(metadata.version("ipywidgets").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None
    return BASE_MAJOR.get(major)


def admits_major(spec: str, major: int) -> bool:
    """Whether an npm range (`^1.1.10 || ^2 || ^3 || ^4`, `>=2`, `*`) admits `major`.x."""
    for alternative in spec.split("||"):
        text = alternative.strip()
        if text in ("", "*", "latest") or text.startswith("x"):
            return True
        first = re.search(r"\d+", text)  # an npm range, not Python: its first number
        if first is None:
            return True
        if int(first.group()) == major or text.startswith(">") and int(first.group()) <= major:
            return True
    return False


def frontend_problem(module: str, extensions: dict[str, Extension],
                     base_major: int | None) -> str | None:
    """Why a widget whose `_model_module` is `module` cannot be drawn here, or None."""
    if module in BUNDLED:
        return None
    extension = extensions.get(module)
    if extension is None:
        return (f"its front-end, the npm package {module!r}, is not installed as a JupyterLab "
                "extension here")
    if base_major is not None and extension.base is not None \
            and not admits_major(extension.base, base_major):
        return (f"its front-end {module!r} (in {extension.path}) is built for ipywidgets 7 "
                f"({BASE} {extension.base}), not for the installed ipywidgets")
    return None
