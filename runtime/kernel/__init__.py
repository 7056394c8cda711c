"""What runs inside a person's kernel: the runner, its stepper, output capture, notebook API.

A notebook uses :func:`require` (Next waits for input) and :class:`WorkQueue` (items divided
among people); both work in plain Jupyter too. They load on first use, so importing this package
costs nothing.
"""

from __future__ import annotations

from typing import Any

_PUBLIC = {"require": "requirements", "WorkQueue": "work", "WorkQueueError": "work"}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(f"runtime.kernel.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'runtime.kernel' has no attribute {name!r}")
