"""``POST /v1/events`` answered by its shortcut (ADR 0040) is the route the framework would have run.

The shortcut and the FastAPI route call the same function; what could differ is the framing around it: which
requests the shortcut takes, how it reads the body and the token, the names it gives the request, what it does
when the caller leaves or the database is lost. Each is checked here, the first against the framework's answer
to the very same requests (a query string sends a request the framework's way).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from adapters.http.app import create_app
from adapters.http.contract import BodyLimit
from adapters.http.single_post import PATH, SinglePostShortcut
from adapters.observability.http import ObservabilityMiddleware
from domain.catalog import MAX_EVENT_BYTES
from tests.factories import authorized, captured

SECRET = "single-post-test-secret-0123456789-abcdefghij"


def _token(scope: str = "events:write") -> str:
    exp = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    return jwt.encode({"iss": "quipu", "sub": "svc-a", "scope": scope, "exp": exp}, SECRET, algorithm="HS256")


@pytest.fixture
def apis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, TestClient]]:
    monkeypatch.setenv("QUIPU_API_SECRET", SECRET)
    monkeypatch.delenv("QUIPU_JWKS_URL", raising=False)
    with (
        TestClient(create_app(f"sqlite:///{tmp_path}/a.db")) as a,
        TestClient(create_app(f"sqlite:///{tmp_path}/b.db")) as b,
    ):
        yield a, b


def _requests() -> list[tuple[str, dict[str, str], bytes]]:
    """(what it tests, headers, body): every kind of answer the route gives."""
    auth = {"Authorization": f"Bearer {_token()}", "Content-Type": "application/json"}
    first = authorized("p1", "10.00")
    changed = copy.deepcopy(first)
    changed["payload"]["amount"]["amount"] = "11.00"
    floated = captured("p1", "10.00")
    floated["payload"]["amount"]["amount"] = 10.0
    return [
        ("appended", auth, orjson.dumps(first)),
        ("duplicate", auth, orjson.dumps(first)),
        ("conflict", auth, orjson.dumps(changed)),
        ("refused by a rule", auth, orjson.dumps(captured("p1", "99.00"))),
        ("invalid field", auth, orjson.dumps(floated)),
        ("not JSON", auth, b"{not json"),
        ("empty body", auth, b""),
        ("too large", auth, b"x" * (MAX_EVENT_BYTES + 1)),
        ("no token", {"Content-Type": "application/json"}, orjson.dumps(captured("p1", "1.00"))),
        ("wrong scope", {"Authorization": f"Bearer {_token('ledger:read')}"}, orjson.dumps(captured("p1", "1.00"))),
        ("bad token", {"Authorization": "Bearer not.a.jwt"}, orjson.dumps(captured("p1", "1.00"))),
        ("captured", auth, orjson.dumps(captured("p1", "10.00"))),
    ]


def _answer(response: Any) -> tuple[int, str, str | None, dict[str, Any] | None]:
    document = response.json() if response.content else None
    if isinstance(document, dict):
        document.pop("request_id", None)  # each request gets its own
    return response.status_code, response.headers["content-type"], response.headers.get("www-authenticate"), document


def test_the_shortcut_answers_every_request_as_the_framework_route_does(apis: tuple[TestClient, TestClient]) -> None:
    shortcut, framework = apis
    layers = [m.cls for m in shortcut.app.user_middleware]  # type: ignore[attr-defined]
    # Innermost of the app's own layers: the body limit and the request id, span and log apply to it too.
    assert layers[-1] is SinglePostShortcut and ObservabilityMiddleware in layers and BodyLimit in layers
    seen = []
    for what, headers, body in _requests():
        mine = shortcut.post(PATH, content=body, headers=headers)
        theirs = framework.post(f"{PATH}?via=framework", content=body, headers=headers)
        assert _answer(mine) == _answer(theirs), what
        assert int(mine.headers["content-length"]) == len(mine.content), what
        seen.append(mine.status_code)
    assert seen == [201, 200, 409, 422, 422, 422, 422, 413, 401, 403, 401, 201]  # every kind of answer was met


def test_requests_it_does_not_take_go_to_the_framework() -> None:
    reached: list[str] = []

    async def framework(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(f"{scope['method']} {scope['path']}?{scope['query_string'].decode()}")
        await Response(b"framework")(scope, receive, send)

    async def handle(authorization: str | None, body: bytes) -> Response:
        reached.append(f"shortcut {authorization} {body!r}")
        return Response(b"shortcut", 201)

    shortcut = _shortcut(framework, handle)
    for method, path, query in [("POST", PATH, b""), ("GET", PATH, b""), ("POST", PATH, b"a=1"),
                                ("POST", "/v1/events/batch", b""), ("PUT", PATH, b"")]:  # fmt: skip
        sent = _call(shortcut, method, path, query, [b'{"a":', b"1}"], [(b"authorization", b"Bearer t")])
        assert sent[0]["status"] in (200, 201)
    assert reached == [
        "shortcut Bearer t b'{\"a\":1}'",  # the body from both of its parts, the header as sent
        f"GET {PATH}?",
        f"POST {PATH}?a=1",
        "POST /v1/events/batch?",
        f"PUT {PATH}?",
    ]


def test_a_caller_that_leaves_mid_body_posts_nothing_and_a_lost_database_answers_503() -> None:
    handled: list[bytes] = []

    async def handle(authorization: str | None, body: bytes) -> Response:
        handled.append(body)
        raise ConnectionError("the database went away")

    shortcut = _shortcut(_unreachable, handle, lost=(ConnectionError,))
    assert _call(shortcut, "POST", PATH, b"", [b'{"a":'], [], disconnect=True) == []
    assert handled == []
    sent = _call(shortcut, "POST", PATH, b"", [b"{}"], [])
    assert handled == [b"{}"] and sent[0]["status"] == 503
    assert (b"retry-after", b"1") in sent[0]["headers"]

    async def broken(authorization: str | None, body: bytes) -> Response:
        raise ValueError("a bug, not a lost database")

    with pytest.raises(ValueError, match="a bug"):  # left to the server-error middleware outside, as elsewhere
        _call(_shortcut(_unreachable, broken, lost=(ConnectionError,)), "POST", PATH, b"", [b"{}"], [])


def test_the_request_is_named_by_the_route_it_stands_for() -> None:
    scopes: list[Scope] = []

    async def handle(authorization: str | None, body: bytes) -> Response:
        return Response(b"{}", 201)

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await shortcut(scope, receive, send)

    shortcut = _shortcut(_unreachable, handle)
    _call(outer, "POST", PATH, b"", [b"{}"], [])
    route = scopes[0]["route"]
    assert route.path == PATH and "POST" in route.methods and route.name == "post_event"


# ---- helpers ---------------------------------------------------------------------------------------------------


async def _unreachable(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the framework was not to be reached")


def _shortcut(
    app: Callable[[Scope, Receive, Send], Any],
    handle: Callable[[str | None, bytes], Any],
    lost: tuple[type[BaseException], ...] = (),
) -> SinglePostShortcut:
    api = FastAPI()

    @api.post(PATH)
    async def post_event() -> None:  # only declared: the shortcut names requests by it
        raise AssertionError("not called")

    return SinglePostShortcut(
        app, api=api, handle=handle, lost=lost,
        unavailable=lambda: Response(json.dumps({"status": 503}), 503, headers={"Retry-After": "1"}),
    )  # fmt: skip


def _call(
    app: Callable[[Scope, Receive, Send], Any], method: str, path: str, query: bytes, parts: list[bytes],
    headers: list[tuple[bytes, bytes]], disconnect: bool = False,
) -> list[Message]:  # fmt: skip
    scope: Scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": headers}
    incoming: list[Message] = [
        {"type": "http.request", "body": part, "more_body": disconnect or i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    if disconnect:
        incoming.append({"type": "http.disconnect"})
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent
