"""Who is asking: Freezer's identity provider, and the sign-in and sign-out pages.

A person's identity is a signed cookie holding their user id (HttpOnly, SameSite=Lax), set by
`/login`. What `/login` asks for depends on `--auth`:

- `none`: nothing; each browser gets an anonymous user of its own the first time it comes.
- `name`: a name typed into a form (people are trusted to pick their own).
- `token`: an invite token (`/login?token=T` links, or the form); `--admin-token` signs in the
  admin.

The provider plugs into jupyter_server's `IdentityProvider` interface, so Voila's and
jupyter_server's own handlers (`@authenticated`, the kernel websocket) see the same user.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.base.handlers import JupyterHandler
from tornado import httputil, web

from runtime.errors import StoreError
from runtime.runs.ratelimit import FailureLimiter
from runtime.web.xsrf import IdentityBoundXsrf

if TYPE_CHECKING:
    from runtime.store.store import Store
    from runtime.web.handlers import Pages

AuthMode = Literal["none", "name", "token"]
AUTH_MODES: tuple[AuthMode, ...] = ("none", "name", "token")
COOKIE_NAME = "freezer-user"
COOKIE_DAYS = 365
ADMIN_NAME = "admin"
NAME_MAX = 80
STORE_RETRY_SECONDS = 5
SIGN_IN_NOT_SAVED = (
    "The server could not save your sign-in just now (its database refused the write). "
    "Nothing was lost: try again in a moment."
)


@dataclass
class FreezerUser(User):
    """A signed-in person: jupyter_server's `User` plus the database id and the admin flag."""

    user_id: int = 0
    is_admin: bool = False


def cookie_path(handler: web.RequestHandler) -> str:
    """The server's base URL: two apps under two prefixes of one host keep their own people."""
    return str(handler.settings.get("base_url") or "/")


def identity_cookie_values(handler: web.RequestHandler) -> list[str]:
    """Every identity cookie the request carries, in the browser's order (longest path first).

    Another app on the same host name at an enclosing base URL (`/` around `/labeling/`) sends
    its own cookie of the same name to this app's pages; Tornado's cookie parsing keeps only the
    last of the two, which is that other app's.
    """
    values: list[str] = []
    for header in handler.request.headers.get_list("Cookie"):
        for pair in header.split(";"):
            values += [v for k, v in httputil.parse_cookie(pair).items() if k == COOKIE_NAME]
    return values


def signed_user_id(handler: web.RequestHandler) -> str | None:
    """The user id of the first identity cookie signed with this server's secret, or None."""
    for value in identity_cookie_values(handler):
        decoded = handler.get_signed_cookie(COOKIE_NAME, value, max_age_days=COOKIE_DAYS)
        if decoded:
            return decoded.decode("utf-8", "replace")
    return None


def cookie_options(handler: web.RequestHandler) -> dict[str, Any]:
    """Keyword arguments of every identity cookie Freezer sets."""
    return {
        "httponly": True,
        "samesite": "Lax",
        "secure": handler.request.protocol == "https",
        "path": cookie_path(handler),
    }


class FreezerIdentityProvider(IdentityProvider):
    """Reads the signed user cookie; the login handler (below) is the only place that sets it.

    Voila makes the provider; the server then gives it the store that holds the users
    (:meth:`use_store`), before it serves any request.
    """

    cookie_name = COOKIE_NAME

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("token", None)  # Voila passes its own token settings; Freezer has none
        super().__init__(**kwargs)
        self.token = ""
        self.store: Store | None = None
        self._users: dict[int, FreezerUser] = {}

    def use_store(self, store: Store) -> None:
        """Read the users from `store` (called once, at server setup)."""
        self.store = store

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    def get_handlers(self) -> list[tuple[str, object]]:
        return []  # the server mounts LoginHandler and LogoutHandler under its base URL

    async def get_user(self, handler: web.RequestHandler) -> FreezerUser | None:
        """The user of the signed cookie, or None (then `@authenticated` sends them to /login)."""
        raw = signed_user_id(handler)
        if not raw:
            return None
        try:
            user_id = int(raw)
        except ValueError:
            return None
        cached = self._users.get(user_id)
        if cached is not None:
            return cached
        if self.store is None:
            raise RuntimeError("FreezerIdentityProvider.use_store was not called")
        row = await self.store.get_user(user_id)
        if row is None:
            return None
        user = FreezerUser(
            username=str(row.id), name=row.name, display_name=row.name,
            user_id=row.id, is_admin=bool(row.is_admin),
        )
        self._users[user_id] = user
        return user

    def sign_in(self, handler: web.RequestHandler, user_id: int, name: str) -> None:
        """Set the identity cookie for `user_id` (whose name is `name`) on the response."""
        self.log.info("sign-in: %s (user %s) from %s", name, user_id, handler.request.remote_ip)
        handler.set_signed_cookie(
            COOKIE_NAME, str(user_id), expires_days=COOKIE_DAYS, **cookie_options(handler)
        )

    def sign_out(self, handler: web.RequestHandler) -> None:
        """Clear the identity cookie."""
        handler.clear_cookie(COOKIE_NAME, path=cookie_path(handler))


NEXT_SAFE_CHARACTERS = "/?&=%:@!$'()*+,;~-._#"
"""Left as they are when a `next` target is percent-encoded (anything else gets %XX)."""


def safe_next(base_url: str, target: str | None) -> str:
    """Where to go after signing in: a path under `base_url` on this server, else `base_url`.

    Browsers drop tabs and newlines inside a URL and read `\\` as `/`, so `/\\t/evil.example`
    or `/\\evil.example` would leave for `evil.example`: any control character, whitespace or
    backslash refuses the target. What is left must be a path (no scheme, no host, not `//`)
    under the base URL with no `.`/`..` segments; non-ASCII is percent-encoded.
    """
    if not target or "\\" in target:
        return base_url
    if any(not ch.isprintable() or ch.isspace() for ch in target):
        return base_url
    quoted = quote(target, safe=NEXT_SAFE_CHARACTERS)
    parts = urlsplit(quoted)
    if parts.scheme or parts.netloc or quoted.startswith("//") or parts.path.startswith("//"):
        return base_url
    if not parts.path.startswith(base_url):
        return base_url
    if {".", ".."} & set(unquote(parts.path).split("/")):
        return base_url
    return quoted


SIGN_IN_FAILURES = FailureLimiter(limit=10, window=60.0)
"""Wrong tokens per client address: past ten a minute, wrong tokens get 429 (right ones never)."""


class LoginHandler(JupyterHandler, IdentityBoundXsrf):
    """`/login`: sign in the way `--auth` says (none: at once; name: a form; token: a token)."""

    sign_in_form = True

    def initialize(
        self, store: Store, pages: Pages, auth: AuthMode, admin_token: str, base_url: str
    ) -> None:
        self.store = store
        self.pages = pages
        self.auth = auth
        self.admin_token = admin_token
        self.base_path = base_url

    @property
    def provider(self) -> FreezerIdentityProvider:
        provider: FreezerIdentityProvider = self.identity_provider  # type: ignore[assignment]
        return provider

    @property
    def next_url(self) -> str:
        """The page to go to after signing in (`?next=`, checked by :func:`safe_next`)."""
        return safe_next(self.base_path, self.get_argument("next", None))

    def render_form(self, error: str = "", status: int = 200) -> None:
        self.set_status(status)
        self.finish(self.pages.render(
            "login.html", handler=self, mode=self.auth, error=error, next_url=self.next_url,
        ))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A plain page (the form again where it helps); the detail went to the log."""
        exc_info = kwargs.get("exc_info")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        if exc_info is not None and isinstance(exc_info[1], StoreError):
            # A full disk or a read-only database: nothing was saved, so the person can retry.
            self.set_header("Retry-After", str(STORE_RETRY_SECONDS))
            if self.auth != "none":
                self.render_form(SIGN_IN_NOT_SAVED, 503)
                return
            self.set_status(503)
            headline, detail = "Signing in failed.", SIGN_IN_NOT_SAVED
        else:
            headline = f"Signing in failed (error {status_code})."
            detail = "Go back to the sign-in page and try again."
        self.finish(self.pages.render("message.html", self, headline=headline, detail=detail))

    @allow_unauthenticated
    async def get(self) -> None:
        """Anonymous mode signs in at once; `?token=` links sign in; otherwise the form."""
        if self.auth == "none":
            await self.sign_in_anonymous()
            return
        token = self.get_argument("token", "")
        if token:
            await self.sign_in_token(token)
            return
        self.render_form()

    @allow_unauthenticated
    async def post(self) -> None:
        """The sign-in form (XSRF-checked by jupyter_server before this runs)."""
        if self.auth == "name":
            await self.sign_in_name(self.get_body_argument("name", "").strip())
        elif self.auth == "token":
            await self.sign_in_token(self.get_body_argument("token", "").strip())
        else:
            await self.sign_in_anonymous()

    async def sign_in_anonymous(self) -> None:
        current = await self.provider.get_user(self)
        if current is None:
            row = await self.store.get_or_create_user(f"anonymous-{secrets.token_hex(6)}")
            self.provider.sign_in(self, row.id, row.name)
        self.redirect(self.next_url)

    async def sign_in_name(self, name: str) -> None:
        if not name or len(name) > NAME_MAX or not name.isprintable():
            self.render_form(f"Type a name of 1 to {NAME_MAX} printable characters.", 400)
            return
        if name.lower() == ADMIN_NAME or name.startswith("anonymous-"):
            self.render_form("That name is reserved; pick another one.", 400)
            return
        row = await self.store.get_or_create_user(name)
        self.provider.sign_in(self, row.id, row.name)
        self.redirect(self.next_url)

    async def sign_in_token(self, token: str) -> None:
        """Check the token first: a right token signs in even from an address past the limit
        (a colleague's typos behind the same NAT must not lock the admin out); only wrong
        tokens are counted, and past the limit they are answered 429."""
        admin_token = self.admin_token
        if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
            row = await self.store.get_or_create_user(ADMIN_NAME, is_admin=True)
        else:
            found = await self.store.user_by_token(token) if token else None
            if found is None:
                self.refuse_token()
                return
            row = found
        self.provider.sign_in(self, row.id, row.name)
        self.redirect(self.next_url)

    def refuse_token(self) -> None:
        """A wrong token: 403, or 429 once the address had `limit` wrong ones in the window."""
        client = str(self.request.remote_ip)
        limited = SIGN_IN_FAILURES.retry_after(client) > 0
        if SIGN_IN_FAILURES.record_failure(client):
            self.log.warning("sign-in: %d wrong tokens in %g s from %s; answering 429 to more",
                             SIGN_IN_FAILURES.limit, SIGN_IN_FAILURES.window, client)
        if limited:
            wait = SIGN_IN_FAILURES.retry_after(client)
            self.set_header("Retry-After", str(int(wait) + 1))
            self.render_form("Too many wrong tokens from here; try again in a minute.", 429)
            return
        self.render_form("That token is not valid. Ask for a new invite link.", 403)


class LogoutHandler(JupyterHandler):
    """`/logout`: forget the identity cookie."""

    def initialize(self, base_url: str) -> None:
        self.base_path = base_url

    @allow_unauthenticated
    def get(self) -> None:
        provider: FreezerIdentityProvider = self.identity_provider  # type: ignore[assignment]
        provider.sign_out(self)
        self.redirect(self.base_path + "login")
