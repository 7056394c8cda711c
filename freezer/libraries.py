"""The widget classes of the other packages a notebook builds objects from (DESIGN §1, rule 5b).

:func:`library_widgets` gathers the names a notebook calls or subclasses from other packages
(:func:`freezer.widgetnames.library_candidates`), imports those packages in a subprocess to see
which names are ipywidgets classes (:mod:`freezer.libwidgets`), and reports the packages that
would not import and the widgets whose JavaScript front-end the page cannot load
(:mod:`freezer.frontends`). Custom widgets (anywidget `AnyWidget` subclasses) are told apart,
with whether they have a `disabled` trait: anywidget's own base class is known without importing
it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from freezer.cellchecks import Note
from freezer.frontends import frontend_problem, installed_extensions, serving_base_major
from freezer.libwidgets import CUSTOM_BASES, resolve_widget_classes
from freezer.syntax import ParsedCell
from freezer.widgetnames import library_candidates


@dataclass(frozen=True)
class LibraryWidgets:
    """The widget classes of other packages that a notebook uses."""

    widgets: frozenset[tuple[str, str]] = frozenset()  # (module, qualname)
    custom: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    """The custom widgets among them (anywidget), each with whether it has a `disabled` trait."""


def library_widgets(cells: Iterable[tuple[int, ParsedCell]], library_path: Sequence[str],
                    note: Note) -> LibraryWidgets:
    """Every library widget class the code `cells` use, as (module, qualname).

    `library_path` goes in front of the resolving subprocess's `sys.path` (e.g. the notebook's
    directory, for its own widget modules).
    """
    candidates, where = library_candidates(cells)
    known = candidates & CUSTOM_BASES
    candidates -= known
    check_frontends([(module, qualname, module) for module, qualname in sorted(known)], where,
                    note)  # anywidget's front-end is its own package's labextension
    if not candidates:
        return LibraryWidgets(frozenset(known), dict.fromkeys(known, False))
    found = resolve_widget_classes(candidates, path=library_path)
    for module, why in found.failures:
        cell, line = where.get(module, (None, None))
        note("library-import-failed", "warning", cell, line,
             f"could not import {module} to look for widget classes ({why}); "
             "its objects count as plain values")
    check_frontends(found.frontends, where, note)
    custom = dict.fromkeys(known, False)
    custom.update({(module, qualname): has for module, qualname, has in found.custom})
    return LibraryWidgets(found.widgets | known, custom)


def check_frontends(frontends: Sequence[tuple[str, str, str]],
                    where: dict[str, tuple[int, int]], note: Note) -> None:
    """Library widgets whose JavaScript front-end the page cannot load."""
    if not frontends:
        return
    extensions, base_major = installed_extensions(), serving_base_major()
    for module, qualname, frontend in frontends:
        problem = frontend_problem(frontend, extensions, base_major)
        if problem is not None:
            cell, line = where.get(module, (None, None))
            note("widget-frontend-missing", "warning", cell, line,
                 f"{module}.{qualname}: {problem}, so the page shows only \"Click to "
                 "show javascript error\" where it should be; install the package's "
                 "JupyterLab extension (for ipywidgets 8) where the app is served")
