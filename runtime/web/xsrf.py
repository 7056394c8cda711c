"""XSRF tokens bound to the signed-in person.

Tornado's XSRF protection is a double submit: the form's `_xsrf` field must match the `_xsrf`
cookie. Anyone who can set a cookie for the host (a sibling subdomain, a plain-http page of the
same name) can set both halves and forge a form. :class:`IdentityBoundXsrf` derives a signed-in
person's token from their user id and the server's cookie secret instead, so a token is only
good for the identity cookie it was made for, and the `_xsrf` cookie plays no part.

Before sign-in there is no identity to bind to; the sign-in form keeps Tornado's double submit
(the worst a forged sign-in form can do is sign a browser in under a name the forger chose).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import time

from tornado import web
from tornado.escape import utf8
from tornado.util import _websocket_mask

XSRF_PURPOSE = b"freezer-xsrf|"
"""Keeps the XSRF key apart from other uses of the cookie secret."""


class IdentityBoundXsrf(web.RequestHandler):
    """Mixin for handlers with forms: XSRF tokens derived from the signed-in user id.

    List it after `JupyterHandler` (`class H(JupyterHandler, IdentityBoundXsrf)`), so that
    jupyter_server's `check_xsrf_cookie` (origin check, "called too early" guard) runs first
    and calls this one in place of Tornado's.
    """

    sign_in_form = False
    """True for the sign-in form's handler: its form may have been made before the person had
    an identity (another tab, an anonymous identity given by the same request), so Tornado's
    double submit is accepted there as well as the bound token. The worst a forged sign-in can
    do is sign a browser in under a name the forger chose."""

    def bound_xsrf_key(self) -> bytes | None:
        """The raw token of the signed-in person (None: nobody is signed in)."""
        try:
            user = self.current_user
        except RuntimeError:  # jupyter_server has not resolved the user yet (an early error)
            return None
        user_id = getattr(user, "user_id", None)
        if not user_id:
            return None
        secret = utf8(self.application.settings.get("cookie_secret") or b"")
        if not secret:
            return None
        digest = hmac.new(secret, XSRF_PURPOSE + str(user_id).encode(), hashlib.sha256)
        return digest.digest()[:16]

    @property
    def xsrf_token(self) -> bytes:
        """The token forms carry: masked per response, as Tornado's (BREACH)."""
        key = self.bound_xsrf_key()
        if key is None:
            return super().xsrf_token
        mask = os.urandom(4)
        return b"|".join([
            b"2", binascii.b2a_hex(mask), binascii.b2a_hex(_websocket_mask(mask, key)),
            str(int(time.time())).encode(),
        ])

    def check_xsrf_cookie(self) -> None:
        """Refuse (403) a form whose `_xsrf` was not made for the signed-in person."""
        key = self.bound_xsrf_key()
        if key is None:
            super().check_xsrf_cookie()
            return
        given = (
            self.get_argument("_xsrf", None)
            or self.request.headers.get("X-Xsrftoken")
            or self.request.headers.get("X-Csrftoken")
        )
        if not given:
            raise web.HTTPError(403, "'_xsrf' argument missing from POST")
        _, token, _ = self._decode_xsrf_token(given)
        if token and hmac.compare_digest(token, key):
            return
        if self.sign_in_form:
            super().check_xsrf_cookie()
            return
        raise web.HTTPError(403, "XSRF token not made for this person")
