"""Who is signed in to the console, the CSRF tokens of its forms, and the viewer's locale.

A person is an OAuth client (``quipu clients add ana --scope ledger:read …``). Signing in runs the
same client-credentials grant as ``POST /oauth/token`` and keeps the JWT it issues in a cookie
that scripts cannot read (HttpOnly), that no other site's page can send (SameSite=Strict), and
that travels only over TLS when the console is served over https (Secure). The token is checked
on every request exactly as a bearer token would be, so revoking a client or narrowing its
scopes works the same for people as for services (within the token's lifetime).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

import jwt
from babel import Locale, UnknownLocaleError
from fastapi import Request
from fastapi.responses import Response

from adapters.http.auth import ISSUER, TOKEN_SECONDS, Caller, authenticate

SESSION_COOKIE: Final = "quipu_console"
#: The login form's CSRF value before anyone is signed in (double-submit: cookie and field must agree).
LOGIN_COOKIE: Final = "quipu_console_login"
LOCALE_COOKIE: Final = "quipu_console_locale"
#: The locales a person may pick; Accept-Language is matched against these.
LOCALES: Final = ("es_MX", "pt_BR", "es_AR", "es_CL", "es_CO", "en_US")
PATH: Final = "/console"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person: who, what they may do, and the token their forms are bound to."""

    caller: Caller
    token: str

    @property
    def client_id(self) -> str:
        return self.caller.client_id

    def may(self, scope: str) -> bool:
        return scope in self.caller.scopes or "admin" in self.caller.scopes


def viewer(request: Request, secret: bytes, needed: str) -> Viewer:
    """The signed-in person holding ``needed``; :class:`AuthError` 401 (not signed in) or 403 (no scope)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    caller = authenticate(f"Bearer {token}" if token else None, secret, needed)
    return Viewer(caller, token)


def signed_in(request: Request, secret: bytes) -> Viewer | None:
    """The signed-in person whatever their scopes (for the navigation and the refusal page), or None."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER,
                            options={"require": ["exp", "iss", "sub"]})  # fmt: skip
    except jwt.InvalidTokenError:
        return None
    return Viewer(Caller(str(claims["sub"]), frozenset(str(claims.get("scope", "")).split())), token)


def csrf_token(secret: bytes, session_token: str) -> str:
    """The token every form of a session carries: bound to that session, so another session's is useless."""
    return hmac.new(secret, b"console-csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, session_token: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(secret, session_token), sent or "")


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def _secure(request: Request) -> bool:
    # Behind a TLS-terminating proxy the scheme arrives in X-Forwarded-Proto (uvicorn's proxy headers).
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="strict",
                        secure=_secure(request))  # fmt: skip


def start_session(response: Response, request: Request, token: str) -> None:
    set_cookie(response, request, SESSION_COOKIE, token, TOKEN_SECONDS)
    set_cookie(response, request, LOGIN_COOKIE, "", 0)


def end_session(response: Response, request: Request) -> None:
    # Expire it with the same attributes it was set with, so every browser drops it.
    set_cookie(response, request, SESSION_COOKIE, "", 0)


def locale_of(request: Request) -> str | None:
    """The viewer's locale: their setting, else their browser's Accept-Language; None for each currency's own."""
    chosen = request.cookies.get(LOCALE_COOKIE, "")
    if chosen in LOCALES:
        return chosen
    if chosen == "auto":
        return None
    header = request.headers.get("accept-language", "")
    preferred = [part.split(";")[0].strip().replace("-", "_") for part in header.split(",") if part.strip()]
    try:
        found = Locale.negotiate(preferred, LOCALES, sep="_")
    except (ValueError, UnknownLocaleError):
        return None
    return str(found) if found is not None else None
