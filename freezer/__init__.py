"""Freezer: compile an interactive notebook pipeline into a multi-user web app.

:func:`freeze_notebook` is the compiler as a library call (:mod:`freezer.freeze`); bad input
raises :class:`FreezeError`, warnings are :class:`FreezeWarning` (or go into a
:class:`BuildReport`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from freezer.errors import FreezeError, FreezeWarning

if TYPE_CHECKING:
    from freezer.freeze import BuildReport, freeze_notebook

__version__ = "0.1.0"
__all__ = ["BuildReport", "FreezeError", "FreezeWarning", "__version__", "freeze_notebook"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the `freezer` command imports this package for its version, and
    # `freezer serve`, `export` or `db` should not load the compiler (nbformat, the analysis).
    if name in ("BuildReport", "freeze_notebook"):
        from freezer import freeze

        return getattr(freeze, name)
    raise AttributeError(f"module 'freezer' has no attribute {name!r}")
