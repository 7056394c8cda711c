"""The one error the test client raises when a server, page or kernel misbehaves."""

from __future__ import annotations

from runtime.errors import RuntimeAppError


class ClientError(RuntimeAppError):
    """The page, the server or the kernel did not behave as a person's browser expects."""
