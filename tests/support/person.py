"""A simulated person: one browser's cookies and HTTP requests against one server.

:class:`Person` signs in through forms, follows redirects keeping cookies, clicks Freezer's
Start button, waits out "busy, retrying" pages as they ask, and opens Voila pages as a
:class:`~tests.support.session.PageSession` (connected to the page's kernel, with the widget
states a browser would hold). Server tests, replay checks, benchmarks and load tests act
through it.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlencode, urljoin, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from tests.support.errors import ClientError
from tests.support.pages import CookieJar, Page, parse_page
from tests.support.session import PageSession


class Person:
    """One person with a browser's cookie jar, opening pages on one server.

    `Person(base_url)`, then `await person.login(name=...)` on Freezer's server (not needed on
    plain Voila), then `session = await person.open(path)`. Close with `await person.close()`
    or use `async with Person(...) as person:`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        cookies: dict[str, str] | None = None,
        request_timeout: float = 300.0,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.cookies = CookieJar(cookies)
        self.request_timeout = request_timeout
        self.sessions: list[PageSession] = []
        self.busy_retries = 0  # "busy, retrying" answers waited out
        # One client per person, like one browser: Tornado's shared client queues requests
        # beyond 10 at a time, which would distort load tests.
        self._http = AsyncHTTPClient(force_instance=True, max_clients=4)

    async def __aenter__(self) -> Person:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def url(self, path: str) -> str:
        """An absolute URL for a path relative to the server's base URL."""
        return urljoin(self.base_url, path.lstrip("/"))

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    async def fetch(
        self,
        path: str,
        *,
        method: str = "GET",
        form: dict[str, str] | None = None,
        follow_redirects: bool = True,
    ) -> HTTPResponse:
        """An HTTP request with this person's cookies; follows redirects keeping new cookies.

        Returns the final response whatever its status; `response.effective_url` is its URL.
        """
        url = self.url(path)
        body = urlencode(form) if form is not None else None
        for _ in range(10):
            headers = {"Cookie": self.cookies.header()} if self.cookies.header() else {}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                headers["Origin"] = self.origin
                headers["Referer"] = url
            request = HTTPRequest(
                url,
                method=method,
                body=body,
                headers=headers,
                follow_redirects=False,
                request_timeout=self.request_timeout,
            )
            response = await self._http.fetch(request, raise_error=False)
            if response.code == 599 and response.error is not None:
                raise ClientError(f"{method} {url} failed: {response.error}")
            self.cookies.update(response)
            location = response.headers.get("Location")
            if not follow_redirects or response.code not in (301, 302, 303, 307, 308):
                return response
            if not location:
                return response
            url = urljoin(url, location)
            if response.code in (301, 302, 303):
                method, body = "GET", None
        raise ClientError(f"too many redirects from {self.url(path)}")

    async def start(self, query: str = "") -> HTTPResponse:
        """Start a run like a person with the start link `new?QUERY`: open it, click Start.

        Returns the final response (the run page, or whatever refused to start it); a start
        link that shows no Start button (400: a wrong parameter) is returned as it is.
        """
        return await self.click_start(await self.fetch("new" + (f"?{query}" if query else "")))

    async def click_start(self, response: HTTPResponse) -> HTTPResponse:
        """On Freezer's start page, click Start (POST its form); any other page as it is."""
        if response.code != 200 or b"data-freezer-start" not in (response.body or b""):
            return response
        page = parse_page(response.effective_url, response.code,
                          response.body.decode("utf-8", errors="replace"))
        if page.start_form is None:
            return response
        action = urljoin(response.effective_url, page.start_action)
        return await self.fetch(action, method="POST", form=page.start_form)

    async def get_page(
        self, path: str = "", *, busy_timeout: float = 300.0, click_start: bool = True
    ) -> Page:
        """GET an HTML page (after redirects) and read it; an error status raises.

        A 503 with `Retry-After` (Freezer's "busy, retrying" page) is requested again after the
        seconds it asks for, as that page does, for at most `busy_timeout` seconds. Freezer's
        start page (`new?...`, or `/` for a person without runs) is clicked through, as a person
        would, unless `click_start` is false.
        """
        deadline = time.monotonic() + busy_timeout
        while True:
            response = await self.fetch(path)
            if click_start:
                started = await self.click_start(response)
                if started is not response:
                    response = started
                    path = response.effective_url  # a busy run page is retried, not restarted
            retry_after = _seconds(response.headers.get("Retry-After"))
            remaining = deadline - time.monotonic()
            if response.code != 503 or retry_after is None or remaining <= 0:
                break
            self.busy_retries += 1
            await asyncio.sleep(min(retry_after, remaining))
        html = response.body.decode("utf-8", errors="replace") if response.body else ""
        if response.code >= 400:
            raise ClientError(
                f"GET {response.effective_url} answered {response.code}: {html[:300]!r}"
            )
        return parse_page(response.effective_url, response.code, html)

    async def login(
        self,
        name: str | None = None,
        path: str = "login",
        *,
        follow_redirects: bool = True,
        **fields: str,
    ) -> Page:
        """Sign in through a form like a person: GET it for `_xsrf`, POST `name` and fields.

        Returns the page the sign-in led to (or the redirect itself without
        `follow_redirects`); a status >= 400 raises :class:`ClientError`.
        """
        form_page = await self.get_page(path)
        form = dict(fields)
        if name is not None:
            form["name"] = name
        xsrf = form_page.xsrf or self.cookies.get("_xsrf")
        if xsrf:
            form["_xsrf"] = xsrf
        response = await self.fetch(
            path, method="POST", form=form, follow_redirects=follow_redirects
        )
        html = response.body.decode("utf-8", errors="replace") if response.body else ""
        if response.code >= 400:
            raise ClientError(f"sign-in at {path} answered {response.code}: {html[:300]!r}")
        return parse_page(response.effective_url, response.code, html)

    async def open(
        self, path: str = "", *, timeout: float = 300.0, load_widgets: bool = True
    ) -> PageSession:
        """Open a Voila page like a browser: GET it, connect to its kernel, load widget states.

        The steps and their times are in :attr:`PageSession.timings` (seconds from the request).
        """
        started = time.perf_counter()
        page = await self.get_page(path)
        page_loaded = time.perf_counter() - started
        kernel_id = page.kernel_id
        if kernel_id is None:
            raise ClientError(f"{page.url} carries no kernel id: is it a Voila page?")
        base_path = str(page.config.get("baseUrl") or urlsplit(self.base_url).path)
        # The widget manager asks for the kernel's model before it connects.
        model_url = urljoin(self.origin, f"{base_path.rstrip('/')}/api/kernels/{kernel_id}")
        response = await self.fetch(model_url)
        if response.code != 200:
            raise ClientError(f"GET {model_url} answered {response.code}")
        session = PageSession(self, page, kernel_id, base_path, started)
        session.timings["page"] = page_loaded
        self.sessions.append(session)
        try:
            await asyncio.wait_for(session.connect(), timeout)
            if load_widgets:
                await asyncio.wait_for(session.load_widgets(), timeout)
        except BaseException:
            await session.close()
            raise
        return session

    async def close(self) -> None:
        """Close every page this person opened and the HTTP client."""
        for session in list(self.sessions):
            await session.close()
        self._http.close()


def _seconds(retry_after: str | None) -> float | None:
    """A `Retry-After` header in seconds (the HTTP-date form counts as one second)."""
    if retry_after is None:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        return 1.0
