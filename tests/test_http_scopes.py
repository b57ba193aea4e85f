"""Every route of the app refuses every token without its scope (issue 7).

The routes come from ``app.routes``, not from a list kept here, so a route added tomorrow is tested tomorrow:
an API route either declares its scope (``dependencies=[contract.needs(...)]``, which is also what the OpenAPI
document publishes) or is on :data:`PUBLIC` with the reason it needs no token. For each guarded route:

- no token, a malformed header, a token that expired, one signed with another key, one claiming another issuer,
  one with ``alg: none`` and one missing its expiry: 401, an ``application/problem+json`` body and an RFC 6750
  ``WWW-Authenticate: Bearer realm="quipu", error="invalid_request"|"invalid_token"`` challenge;
- a token for each scope the route does not need, and one with no scope at all: 403 with
  ``error="insufficient_scope"`` and ``scope="<the route's scope>"`` in the challenge;
- a token for the route's scope, and an ``admin`` token: neither 401 nor 403;
- the console's session cookie, even an admin's, is not a bearer token: 401.

The requests carry an invalid body and invalid query parameters on purpose: the token is checked before
anything else, so a stranger learns nothing about what the route accepts.

The console (``/console``) signs people in with a session cookie holding the same JWT, not a bearer header.
Its pages are covered the same way with cookies: no session, or an expired or forged one, is sent to the
sign-in page (303); a session without the page's scope gets the 403 page naming the scope; the page's scope and
``admin`` pass. The scope a console page needs is found by trying each one: exactly one may pass, and for the
pages in the navigation it must be the one the navigation shows. Sign-in, sign-out, the locale form, the
redirect from ``/console`` and the stylesheet are :data:`CONSOLE_PUBLIC`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any, Final

import httpx
import jwt
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from adapters.bootstrap import open_ledger
from adapters.console.routes import NAV
from adapters.console.session import SESSION_COOKIE, csrf_token
from adapters.http import contract
from adapters.http.app import create_app
from adapters.http.auth import SCOPES, add_client

SECRET: Final = "scope-matrix-signing-secret-0123456789-abcdefgh"
#: Routes that need no token, and why.
PUBLIC: Final = {
    ("POST", "/oauth/token"): "the token endpoint: the client's id and secret are its authentication",
    ("GET", "/metrics"): "Prometheus scrapes without a token, like any target; counts and latencies only",
    ("GET", "/openapi.json"): "the published contract",
    ("GET", "/docs"): "the contract's page",
    ("GET", "/docs/oauth2-redirect"): "the contract page's OAuth helper",
    ("GET", "/redoc"): "the contract's page",
}
#: Console routes that need a session but no scope, or no session at all, and why.
CONSOLE_PUBLIC: Final = {
    ("GET", "/console"): "redirects to /console/, which is guarded",
    ("GET", "/console/login"): "the sign-in form",
    ("POST", "/console/login"): "signing in: the client's id and secret are its authentication",
    ("POST", "/console/logout"): "signing out (its form is CSRF-checked when signed in)",
    ("POST", "/console/locale"): "any signed-in person may choose how numbers are written (CSRF-checked)",
    ("MOUNT", "/console/static"): "the stylesheet",
}
#: Invalid on every route that reads them: the token must be checked first.
JUNK_QUERY: Final = {"after": "-1", "limit": "0", "as_of": "yesterday", "from": "13/13", "position": "x"}
JUNK_BODY: Final = b'{"not": "what any route takes"'  # not even JSON


def _routes() -> list[tuple[str, str, Any]]:
    """(method, path, route) for every route of the app; a mount is one ("MOUNT", path)."""
    app = create_app("sqlite:///never-opened.db")
    found: list[tuple[str, str, Any]] = []
    for route in app.routes:
        if isinstance(route, Mount):
            found.append(("MOUNT", route.path, route))
        elif isinstance(route, (APIRoute, Route)):
            found.extend((m, route.path, route) for m in sorted((route.methods or set()) - {"HEAD"}))
        else:
            found.append(("OTHER", str(getattr(route, "path", route)), route))
    return found


ROUTES: Final = _routes()
API: Final = [(m, p, r) for m, p, r in ROUTES if not p.startswith("/console")]
CONSOLE: Final = [(m, p, r) for m, p, r in ROUTES if p.startswith("/console")]
GUARDED_API: Final = [(m, p, r) for m, p, r in API if (m, p) not in PUBLIC]
GUARDED_CONSOLE: Final = [(m, p, r) for m, p, r in CONSOLE if (m, p) not in CONSOLE_PUBLIC]


def _url(path: str) -> str:
    """A concrete URL for a route path: every parameter given a plausible value."""
    return re.sub(r"\{[^}]+\}", lambda m: "seller:S1:available:BRL" if ":path" in m.group() else "1", path)


def _token(scope: str, key: str = SECRET, **changes: Any) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {"iss": "quipu", "sub": f"probe-{scope or 'none'}", "scope": scope, "iat": now,
              "exp": now + dt.timedelta(minutes=10), **changes}  # fmt: skip
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="HS256")


def _unsigned(scope: str) -> str:
    """An ``alg: none`` token: the JWT attack that needs no key."""
    now = dt.datetime.now(dt.UTC)
    # "" is PyJWT's typed spelling of "no key" for alg none (NoneAlgorithm.prepare_key turns it into None).
    return jwt.encode({"iss": "quipu", "sub": "x", "scope": scope, "exp": now + dt.timedelta(minutes=5)}, "",
                      algorithm="none")  # fmt: skip


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The app over an empty SQLite ledger, and a token from the real grant for each scope alone."""
    url = f"sqlite:///{tmp_path_factory.mktemp('scopes')}/ledger.db"
    with open_ledger(url) as ledger:
        secrets = {scope: add_client(ledger, scope.replace(":", "-"), [scope]) for scope in SCOPES}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("QUIPU_API_SECRET", SECRET)
        env.setenv("QUIPU_RATE_BURST", "100000")
        with TestClient(create_app(url), follow_redirects=False) as client:
            tokens = {}
            for scope, secret in secrets.items():
                granted = client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                            "client_id": scope.replace(":", "-"),
                                                            "client_secret": secret})  # fmt: skip
                assert granted.status_code == 200, granted.text
                assert granted.json()["scope"] == scope
                tokens[scope] = granted.json()["access_token"]
            yield {"client": client, "tokens": tokens}


def _call(client: TestClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    content = JUNK_BODY if method in ("POST", "PUT", "PATCH") else None
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    # Starlette types TestClient against httpx2, which is not installed, so mypy sees its responses as Any.
    response: httpx.Response = client.request(
        method, _url(path), params=JUNK_QUERY, content=content, headers=headers, **kwargs
    )
    return response


def _assert_401(response: httpx.Response, error: str, where: str) -> None:
    assert response.status_code == 401, (where, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), where
    assert response.json()["status"] == 401 and response.json()["detail"], where
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith('Bearer realm="quipu"') and f'error="{error}"' in challenge, (where, challenge)


def test_every_route_is_guarded_or_public_for_a_stated_reason() -> None:
    kinds = {type(r).__name__ for m, _, r in ROUTES if m == "OTHER"}
    assert not kinds, f"routes of a kind this test cannot call: {kinds}"
    for method, path, route in API:
        declared = contract.route_scope(route)
        if (method, path) in PUBLIC:
            assert declared is None, f"{method} {path} is public yet declares {declared}"
        else:
            assert declared in SCOPES, (
                f"{method} {path} declares no scope: give it dependencies=[contract.needs(...)] and guard it, "
                "or add it to PUBLIC with the reason it needs no token"
            )
    for key in [*PUBLIC, *CONSOLE_PUBLIC]:
        assert key in {(m, p) for m, p, _ in ROUTES}, f"{key} is allowed but no longer a route: drop it"
    assert len(GUARDED_API) >= 20 and len(GUARDED_CONSOLE) >= 10  # the enumeration found the app's routes


@pytest.mark.parametrize(("method", "path", "route"), GUARDED_API, ids=[f"{m} {p}" for m, p, _ in GUARDED_API])
def test_an_api_route_refuses_every_token_without_its_scope(
    api: dict[str, Any], method: str, path: str, route: Any
) -> None:
    client: TestClient = api["client"]
    tokens: dict[str, str] = api["tokens"]
    where = f"{method} {path}"
    # Which scope opens it, found by trying each alone: exactly one, and the one the route declares.
    answers = {held: _call(client, method, path, headers={"Authorization": f"Bearer {tokens[held]}"})
               for held in SCOPES}  # fmt: skip
    passed = [held for held, r in answers.items() if r.status_code not in (401, 403) and held != "admin"]
    assert len(passed) == 1, f"{where}: exactly one scope (and admin) may call it; these did: {passed}"
    scope = passed[0]
    assert answers["admin"].status_code not in (401, 403), (where, answers["admin"].text)
    assert contract.route_scope(route) == scope, f"{where} is guarded by {scope} but declares another scope"
    for held, response in [*answers.items(), ("", _call(client, method, path, headers={
            "Authorization": f"Bearer {_token('')}"}))]:  # fmt: skip
        if held in (scope, "admin"):
            continue
        assert response.status_code == 403, (where, held, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"] == f"this route needs the {scope} scope"
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and f'scope="{scope}"' in challenge, (where, challenge)
    _assert_401(_call(client, method, path), "invalid_request", f"{where} without a token")
    _assert_401(_call(client, method, path, headers={"Authorization": "Basic cXVpcHU6cXVpcHU="}), "invalid_request",
                f"{where} with Basic credentials")  # fmt: skip
    bad = {
        "garbage": "not-a-jwt",
        "expired": _token(scope, exp=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)),
        "forged": _token("admin", key="another-secret-of-sufficient-length-0123456789"),
        "other issuer": _token(scope, iss="someone-else"),
        "no expiry": _token(scope, exp=None),
        "no subject": _token(scope, sub=None),
        "alg none": _unsigned("admin"),
    }
    for why, token in bad.items():
        response = _call(client, method, path, headers={"Authorization": f"Bearer {token}"})
        _assert_401(response, "invalid_token", f"{where} with a token: {why}")
        assert token not in response.text
    # The console's session is a cookie for the console's pages only: it never authenticates an API call.
    client.cookies.set(SESSION_COOKIE, tokens["admin"], path="/")
    try:
        _assert_401(_call(client, method, path), "invalid_request", f"{where} with only a console session")
    finally:
        client.cookies.clear()


@pytest.mark.parametrize(("method", "path"), [k for k in PUBLIC if k[1] != "/oauth/token"])
def test_the_public_routes_need_no_token(api: dict[str, Any], method: str, path: str) -> None:
    assert api["client"].request(method, path).status_code == 200


def test_the_token_endpoint_needs_the_clients_secret_and_not_a_token(api: dict[str, Any]) -> None:
    client: TestClient = api["client"]
    admin = {"Authorization": f"Bearer {api['tokens']['admin']}"}
    form = {"grant_type": "client_credentials", "client_id": "admin", "client_secret": "wrong"}
    refused = client.post("/oauth/token", data=form, headers=admin)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def _console(client: TestClient, method: str, path: str, session: str | None) -> httpx.Response:
    client.cookies.clear()
    if session is not None:
        client.cookies.set(SESSION_COOKIE, session, path="/console")
    data = None
    if method == "POST":
        # A form with the session's own CSRF token, so a refusal is about the scope and not the form.
        data = {"csrf": csrf_token(SECRET.encode(), session or ""), "resolution": "nope", "action": "nope"}
    try:
        response: httpx.Response = client.request(method, _url(path), data=data)  # Any to mypy, as in _call
        return response
    finally:
        client.cookies.clear()


def _to_sign_in(response: httpx.Response, where: str) -> None:
    assert response.status_code == 303, (where, response.status_code, response.text[:300])
    assert response.headers["location"].startswith("/console/login?next="), where


@pytest.mark.parametrize(("method", "path", "route"), GUARDED_CONSOLE, ids=[f"{m} {p}" for m, p, _ in GUARDED_CONSOLE])
def test_a_console_page_refuses_every_session_without_its_scope(
    api: dict[str, Any], method: str, path: str, route: Any
) -> None:
    client: TestClient = api["client"]
    tokens: dict[str, str] = api["tokens"]
    where = f"{method} {path}"
    _to_sign_in(_console(client, method, path, None), f"{where} without a session")
    for why, session in {
        "expired": _token("admin", exp=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)),
        "forged": _token("admin", key="another-secret-of-sufficient-length-0123456789"),
        "alg none": _unsigned("admin"),
        "garbage": "not-a-jwt",
    }.items():
        _to_sign_in(_console(client, method, path, session), f"{where} with a session: {why}")
    # A bearer header is not a session.
    client.cookies.clear()
    _to_sign_in(client.request(method, _url(path), headers={"Authorization": f"Bearer {tokens['admin']}"}), where)
    passed = []
    for held in [*SCOPES, ""]:
        response = _console(client, method, path, tokens[held] if held else _token(""))
        refused = response.status_code == 403 and 'id="refused"' in response.text
        if held == "admin":
            assert not refused and response.status_code != 303, (where, response.status_code)
        elif not refused:
            assert response.status_code != 303, (where, held, "a valid session was sent to the sign-in page")
            passed.append(held)
        else:
            assert "scope" in response.text
    assert len(passed) == 1, f"{where}: exactly one scope (and admin) may open it; these did: {passed}"
    shown = {p: s for _, p, s, _ in NAV}
    if method == "GET" and path in shown:
        assert passed == [shown[path]], f"{where} needs {passed}, but the navigation shows it for {shown[path]}"
