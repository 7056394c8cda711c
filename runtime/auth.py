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

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.base.handlers import JupyterHandler
from tornado import httputil, web

from runtime.ratelimit import FailureLimiter

if TYPE_CHECKING:
    from runtime.app import FreezerApp

AuthMode = Literal["none", "name", "token"]
AUTH_MODES: tuple[AuthMode, ...] = ("none", "name", "token")
COOKIE_NAME = "freezer-user"
COOKIE_DAYS = 365
ADMIN_NAME = "admin"
NAME_MAX = 80


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

    `parent` is the :class:`~runtime.app.FreezerApp`, whose store holds the users.
    """

    cookie_name = COOKIE_NAME

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("token", None)  # Voila passes its own token settings; Freezer has none
        super().__init__(**kwargs)
        self.token = ""
        self._users: dict[int, FreezerUser] = {}

    @property
    def app(self) -> FreezerApp:
        """The server application (the traitlets parent)."""
        app: FreezerApp = self.parent  # type: ignore[assignment]
        return app

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
        row = await self.app.store.get_user(user_id)
        if row is None:
            return None
        user = FreezerUser(
            username=str(row.id), name=row.name, display_name=row.name,
            user_id=row.id, is_admin=bool(row.is_admin),
        )
        self._users[user_id] = user
        return user

    def sign_in(self, handler: web.RequestHandler, user_id: int) -> None:
        """Set the identity cookie for `user_id` on the response."""
        self.log.info("sign-in: user %s from %s", user_id, handler.request.remote_ip)
        handler.set_signed_cookie(
            COOKIE_NAME, str(user_id), expires_days=COOKIE_DAYS, **cookie_options(handler)
        )

    def sign_out(self, handler: web.RequestHandler) -> None:
        """Clear the identity cookie."""
        handler.clear_cookie(COOKIE_NAME, path=cookie_path(handler))


def safe_next(app: FreezerApp, target: str | None) -> str:
    """Where to go after signing in: a local path under the base URL, never another site."""
    base = str(app.base_url)
    if target and target.startswith(base) and not target.startswith("//") and "\\" not in target:
        return target
    return base


SIGN_IN_FAILURES = FailureLimiter(limit=10, window=60.0)
"""Wrong tokens per client address: ten a minute, then 429 until the oldest ages out."""


class LoginHandler(JupyterHandler):
    """`/login`: sign in the way `--auth` says (none: at once; name: a form; token: a token)."""

    def initialize(self, freezer: FreezerApp) -> None:
        self.app = freezer

    @property
    def provider(self) -> FreezerIdentityProvider:
        provider: FreezerIdentityProvider = self.identity_provider  # type: ignore[assignment]
        return provider

    def render_form(self, error: str = "", status: int = 200) -> None:
        self.set_status(status)
        self.finish(self.app.pages.render(
            "login.html", handler=self, mode=self.app.auth, error=error,
            next_url=safe_next(self.app, self.get_argument("next", None)),
        ))

    @allow_unauthenticated
    async def get(self) -> None:
        """Anonymous mode signs in at once; `?token=` links sign in; otherwise the form."""
        if self.app.auth == "none":
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
        if self.app.auth == "name":
            await self.sign_in_name(self.get_body_argument("name", "").strip())
        elif self.app.auth == "token":
            await self.sign_in_token(self.get_body_argument("token", "").strip())
        else:
            await self.sign_in_anonymous()

    async def sign_in_anonymous(self) -> None:
        current = await self.provider.get_user(self)
        if current is None:
            row = await self.app.store.get_or_create_user(f"anonymous-{secrets.token_hex(6)}")
            self.provider.sign_in(self, row.id)
        self.redirect(safe_next(self.app, self.get_argument("next", None)))

    async def sign_in_name(self, name: str) -> None:
        if not name or len(name) > NAME_MAX or not name.isprintable():
            self.render_form(f"Type a name of 1 to {NAME_MAX} printable characters.", 400)
            return
        if name.lower() == ADMIN_NAME or name.startswith("anonymous-"):
            self.render_form("That name is reserved; pick another one.", 400)
            return
        row = await self.app.store.get_or_create_user(name)
        self.provider.sign_in(self, row.id)
        self.redirect(safe_next(self.app, self.get_argument("next", None)))

    async def sign_in_token(self, token: str) -> None:
        client = str(self.request.remote_ip)
        wait = SIGN_IN_FAILURES.retry_after(client)
        if wait > 0:
            self.set_header("Retry-After", str(int(wait) + 1))
            self.render_form("Too many wrong tokens from here; try again in a minute.", 429)
            return
        admin_token = self.app.admin_token
        if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
            row = await self.app.store.get_or_create_user(ADMIN_NAME, is_admin=True)
        else:
            found = await self.app.store.user_by_token(token) if token else None
            if found is None:
                SIGN_IN_FAILURES.record_failure(client)
                self.render_form("That token is not valid. Ask for a new invite link.", 403)
                return
            row = found
        self.provider.sign_in(self, row.id)
        self.redirect(safe_next(self.app, self.get_argument("next", None)))


class LogoutHandler(JupyterHandler):
    """`/logout`: forget the identity cookie."""

    def initialize(self, freezer: FreezerApp) -> None:
        self.app = freezer

    @allow_unauthenticated
    def get(self) -> None:
        provider: FreezerIdentityProvider = self.identity_provider  # type: ignore[assignment]
        provider.sign_out(self)
        self.redirect(self.app.base_url + "login")
