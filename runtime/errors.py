"""The runtime's exceptions: one base class, subclasses that carry their context."""

from __future__ import annotations


class RuntimeAppError(Exception):
    """Base class of every error the Freezer runtime raises on purpose."""


class StoreError(RuntimeAppError):
    """The database could not do what was asked; the message says what and why."""


class StoreClosedError(StoreError):
    """The store was used after `Store.close()`."""

    def __init__(self) -> None:
        super().__init__("the store is closed; open a new Store to use the database again")


class UnknownRunError(StoreError):
    """A run id that is not in the database."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} in the database")
        self.run_id = run_id


class RunnerEventError(StoreError):
    """A `freezer.run` message from the kernel that is missing a key its event needs."""

    def __init__(self, run_id: str, event: str, problem: str) -> None:
        super().__init__(f"run {run_id}: runner event {event!r}: {problem}")
        self.run_id = run_id
        self.event = event


class JournalError(RuntimeAppError):
    """An event could not be written to the journal; the caller must not forward it."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
