"""The compiler's exceptions.

Every problem the compiler can explain to the notebook's author is a :class:`FreezeError` whose
message is one line: the file, the cell and line where they apply, what is wrong and how to fix
it. The commands print it as ``freezer: <message>`` on stderr and exit with status 2; anything
else that escapes is a bug in Freezer.
"""

from __future__ import annotations


class FreezeError(Exception):
    """A problem with the command's input or output that the user can fix; one line."""

    def __init__(self, message: str) -> None:
        # Keep the promise of one line even when a message embeds text from elsewhere.
        super().__init__(" ".join(message.split("\n")))

    @property
    def message(self) -> str:
        """The one-line message shown after ``freezer:``."""
        return str(self.args[0])


class NotebookError(FreezeError):
    """The notebook file cannot be read as an nbformat 4 notebook Freezer can compile."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class PlanError(FreezeError):
    """The notebook reads but its plan has errors (a cell that does not parse, ...)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0] if lines else "the plan has errors")
        self.lines = lines


class OutputError(FreezeError):
    """The app directory cannot be written where it was asked for."""


class IncludeError(FreezeError):
    """A ``--include`` path is missing or outside the notebook's directory."""


class TraceError(FreezeError):
    """``--trace`` could not run the notebook (kernel did not start, a cell timed out)."""


class FreezeWarning(UserWarning):
    """Something the app may trip over that does not stop the build (a plan diagnostic of
    severity warning, an import that cannot be pinned, ...); the message is one line."""
