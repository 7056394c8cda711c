"""Freezer's runtime: the multi-user server and the kernel-side runner of a frozen app.

`manifest` (app.json) and `protocol` (kernel <-> server) are the contract shared by the parts;
`kernel/` runs inside a person's kernel, `store/` is the database, `runs/` the run service and
`web/` the Tornado, jupyter_server and Voila side (docs/internals.md).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # App directories built before the runner moved to runtime.kernel start with
    # `from runtime import runner`; they keep serving.
    if name == "runner":
        from runtime.kernel import runner

        return runner
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
