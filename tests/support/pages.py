"""What the client reads from HTML pages, and one person's cookies.

- `parse_page(url, status, html)` -> :class:`Page`: Voila's `jupyter-config-data` (the kernel
  id, the base URL), the cell outputs the page carries, the `_xsrf` form field and Freezer's
  Start form.
- :class:`CookieJar`: the cookies one browser holds for one server.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from http.cookies import CookieError, SimpleCookie

from tornado.httpclient import HTTPResponse

from tests.support.protocol import CELL_OUTPUT_TYPE, WIDGET_VIEW_MIME, Json


@dataclass(frozen=True)
class Page:
    """What the client read from an HTML page."""

    url: str
    status: int
    html: str
    config: Json  # Voila's `jupyter-config-data` (kernelId, baseUrl, ...), {} when absent
    outputs: list[Json]  # the cell outputs the page carries
    xsrf: str | None  # the `_xsrf` field of a form on the page, if any
    start_form: dict[str, str] | None = None  # the fields of Freezer's Start button's form
    start_action: str = ""  # where that form posts to

    @property
    def kernel_id(self) -> str | None:
        """The kernel the page is bound to (Voila's `kernelId`)."""
        value = self.config.get("kernelId")
        return str(value) if value else None

    @property
    def shown_model_ids(self) -> list[str]:
        """Model ids of the widget views the page's outputs show, in page order."""
        ids = []
        for output in self.outputs:
            view = (output.get("data") or {}).get(WIDGET_VIEW_MIME)
            if isinstance(view, dict) and view.get("model_id"):
                ids.append(str(view["model_id"]))
        return ids


class _PageParser(HTMLParser):
    """Collects Voila's config script, cell output scripts and an `_xsrf` form field."""

    def __init__(self) -> None:
        super().__init__()
        self.config: Json = {}
        self.outputs: list[Json] = []
        self.xsrf: str | None = None
        self.start_form: dict[str, str] | None = None
        self.start_action = ""
        self._in_start_form = False
        self._script: str | None = None  # which script we are inside: "config" / "output"
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            if attributes.get("id") == "jupyter-config-data":
                self._script = "config"
            elif attributes.get("type") in (CELL_OUTPUT_TYPE, WIDGET_VIEW_MIME):
                self._script = attributes["type"]
            self._text = []
        elif tag == "form" and "data-freezer-start" in attributes:
            self._in_start_form = True
            self.start_form = {}
            self.start_action = attributes.get("action") or ""
        elif tag == "input" and attributes.get("name"):
            if attributes["name"] == "_xsrf":
                self.xsrf = attributes.get("value")
            if self._in_start_form and self.start_form is not None:
                self.start_form[str(attributes["name"])] = attributes.get("value") or ""

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_start_form = False
        if tag != "script" or self._script is None:
            return
        text = "".join(self._text).strip()
        kind, self._script = self._script, None
        if not text:
            return
        value = json.loads(text)
        if kind == "config":
            self.config = value
        elif kind == WIDGET_VIEW_MIME:  # the classic template's bare widget view
            self.outputs.append({"output_type": "display_data", "data": {kind: value}})
        else:
            self.outputs.append(value)


def parse_page(url: str, status: int, html: str) -> Page:
    """Read the parts of an HTML page a Voila front-end uses."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return Page(url, status, html, parser.config, parser.outputs, parser.xsrf, parser.start_form,
                parser.start_action)


class CookieJar:
    """The cookies of one person for one server (no domains or paths: one origin)."""

    def __init__(self, cookies: dict[str, str] | None = None) -> None:
        self._coded: dict[str, str] = dict(cookies or {})

    def update(self, response: HTTPResponse) -> None:
        """Store the cookies a response sets and drop those it expires."""
        for header in response.headers.get_list("Set-Cookie"):
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(header)
            except CookieError:
                continue
            for name, morsel in jar.items():
                if morsel.value == "" or _expired(morsel["expires"], morsel["max-age"]):
                    self._coded.pop(name, None)
                else:
                    self._coded[name] = morsel.coded_value

    def set(self, name: str, value: str) -> None:
        """Set a cookie as a page's script would."""
        self._coded[name] = value

    def get(self, name: str) -> str | None:
        """A cookie's value as the server set it (quotes removed)."""
        coded = self._coded.get(name)
        return coded.strip('"') if coded is not None else None

    def as_dict(self) -> dict[str, str]:
        """Name -> value as sent, to hand the identity to another :class:`Person`."""
        return dict(self._coded)

    def header(self) -> str:
        """The `Cookie` request header."""
        return "; ".join(f"{name}={value}" for name, value in self._coded.items())


def _expired(expires: str, max_age: str) -> bool:
    if max_age:
        with contextlib.suppress(ValueError):
            return int(max_age) <= 0
    if expires:
        with contextlib.suppress(TypeError, ValueError):
            return parsedate_to_datetime(expires) <= datetime.now(timezone.utc)
    return False
