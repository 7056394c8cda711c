"""The widget classes of the other packages a notebook builds objects from (DESIGN §1, rule 5b).

:func:`library_widgets` gathers the names a notebook calls or subclasses from other packages
(:func:`freezer.widgetnames.library_candidates`), imports those packages in a subprocess to see
which names are ipywidgets classes (:mod:`freezer.libwidgets`), and reports the packages that
would not import and the widgets whose JavaScript front-end the page cannot load
(:mod:`freezer.frontends`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from freezer.cellchecks import Note
from freezer.frontends import frontend_problem, installed_extensions, serving_base_major
from freezer.libwidgets import resolve_widget_classes
from freezer.syntax import ParsedCell
from freezer.widgetnames import library_candidates


def library_widgets(cells: Iterable[tuple[int, ParsedCell]], library_path: Sequence[str],
                    note: Note) -> frozenset[tuple[str, str]]:
    """(module, qualname) of every library widget class the code `cells` use.

    `library_path` goes in front of the resolving subprocess's `sys.path` (e.g. the notebook's
    directory, for its own widget modules).
    """
    candidates, where = library_candidates(cells)
    if not candidates:
        return frozenset()
    found = resolve_widget_classes(candidates, path=library_path)
    for module, why in found.failures:
        cell, line = where.get(module, (None, None))
        note("library-import-failed", "warning", cell, line,
             f"could not import {module} to look for widget classes ({why}); "
             "its objects count as plain values")
    check_frontends(found.frontends, where, note)
    return found.widgets


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
