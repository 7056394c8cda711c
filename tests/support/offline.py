"""Keeping browser pages on this machine: the app must work offline.

:class:`OfflineGuard` is a Playwright route handler: requests to loopback (or `data:`,
`blob:`, `about:` URLs) go through, any other is aborted and noted in :attr:`foreign` (unless
its host is one of `tolerated`, e.g. the CDN plain Voila's `lab` template links); the fixture or
the test then fails on what was noted (:meth:`check`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Route

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_local_url(url: str) -> bool:
    """Whether a request stays on this machine (loopback host, or a data:/blob:/about: URL)."""
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS


class OfflineGuard:
    """A route handler that lets loopback requests through and aborts the others, noting
    those to hosts not `tolerated` in :attr:`foreign`."""

    def __init__(self, tolerated: set[str] | None = None) -> None:
        self.tolerated = tolerated or set()
        self.foreign: list[str] = []
        self.checked = False

    def __call__(self, route: Route) -> None:
        url = route.request.url
        if is_local_url(url):
            route.continue_()
            return
        if urlsplit(url).hostname not in self.tolerated:
            self.foreign.append(url)
        route.abort()

    def check(self) -> None:
        """Fail unless every request of the pages stayed on this machine (call it last in the
        test, so that a page that goes online fails the test itself, not its teardown)."""
        self.checked = True
        assert not self.foreign, f"the pages requested hosts other than loopback: {self.foreign}"
