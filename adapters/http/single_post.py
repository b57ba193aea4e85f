"""``POST /v1/events``, the API's busiest route, served without the framework's per-request layers (ADR 0040).

A service posting its events one by one makes this route most of the API's traffic, and a profile of the
server at 1,000 requests/s put a third of the event loop's CPU in what lies between the middlewares and the
route's own work: the router's matching, the exception middleware, the exit stack, FastAPI's dependency
solving and its request and response objects. For this one route none of that decides anything: the route
takes the raw body and the ``Authorization`` header, and answers a document.

So :class:`SinglePostShortcut`, the innermost middleware, answers ``POST /v1/events`` itself by calling the
very function the FastAPI route calls (:data:`SinglePost`), with the same two inputs. Everything outside it
still runs: the body limit, the request id, span, metrics and access log, the server-error handler. The route
stays declared in FastAPI, so the published OpenAPI document, the scope matrix and the fuzzing see it as
before; a request with a query string goes the framework's way (its checks of query parameters apply).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import FastAPI
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

PATH: Final = "/v1/events"

#: ``(the Authorization header or None, the raw body) -> the answer``: the route's whole work.
SinglePost = Callable[[str | None, bytes], Awaitable[Response]]


class SinglePostShortcut:
    """Answers ``POST /v1/events`` (no query string) with ``handle``; passes every other request on."""

    def __init__(
        self, app: ASGIApp, api: FastAPI, handle: SinglePost, lost: tuple[type[BaseException], ...],
        unavailable: Callable[[], Response],
    ) -> None:  # fmt: skip
        self.app = app
        self.handle = handle
        self.lost = lost
        self.unavailable = unavailable
        # The route object the framework would have matched: the access log, the latency histogram and the span
        # name the request by its template, as for every other route.
        self.route: BaseRoute = next(
            r for r in api.routes if getattr(r, "path", None) == PATH and "POST" in (getattr(r, "methods", None) or ())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the caller is gone before its body was complete: nothing was posted, nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":  # servers give header names in lower case (ASGI)
                authorization = value.decode("latin-1")
                break
        try:
            response = await self.handle(authorization, b"".join(chunks))
        except self.lost:  # as the app's exception handler answers them on every other route
            response = self.unavailable()
        await response(scope, receive, send)
