"""The HTTP API's request envelope: request id, server span, latency histogram and one log line.

A pure ASGI middleware (no extra task per request). For every HTTP request it:

- takes the caller's ``X-Request-ID`` when it is a sane id, else makes one, and echoes it in the
  response's ``X-Request-ID`` header and as ``request_id`` in every ``application/problem+json`` body;
- opens a ``SERVER`` span named ``METHOD /route``, parented by an incoming W3C ``traceparent``;
- observes ``quipu_http_request_seconds{route, method, status}``;
- writes one ``quipu.http`` log line: request id, method, route, path, status, duration, client id.
  Headers are never logged, so neither are tokens.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Final

import orjson
from opentelemetry import propagate
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http.metrics import ApiMetrics
from adapters.observability.logs import (
    CLEAN_EXTRA,
    REQUEST_ID_HEADER,
    RequestInfo,
    begin_request,
    end_request,
    redact,
    request_id_from,
)
from adapters.observability.tracing import tracer, tracing_active

PROBLEM: Final = "application/problem+json"
log = logging.getLogger("quipu.http")


_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_clean_clients: dict[str, str] = {}


def _access_log(
    level: int, info: RequestInfo, method: str, route: str | None, path: str, status: int, elapsed: float,
    error: BaseException | None,
) -> None:  # fmt: skip
    """The request's log line. Built as a record and handed to the logger's handlers directly: ``log.log`` would
    walk the stack for the caller's file and line, which no line prints, and the formatter would search every
    field for secrets again; here each field is safe already (the id and path were checked or redacted when the
    request came in, the route is the app's own template), and a client's redacted id is kept."""
    client = info.client_id
    if client is not None and (safe := _clean_clients.get(client)) is None:
        if len(_clean_clients) >= 10_000:  # ids come from tokens; a flood of distinct ones must not grow this
            _clean_clients.clear()
        safe = _clean_clients[client] = redact(client)
    fields: dict[str, Any] = {
        "request_id": info.request_id, "method": method if method in _METHODS else redact(method),
        "route": route or "unmatched", "path": path, "status": status, "duration_ms": round(elapsed * 1000, 3),
        "client_id": safe if client is not None else None,
    }  # fmt: skip
    if error is not None:
        fields["error"] = type(error).__name__
    log.handle(log.makeRecord(log.name, level, __file__, 0, "request", (), None, extra={CLEAN_EXTRA: fields}))


def _with_request_id(body: bytes, request_id: str) -> bytes:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(doc, dict) or "request_id" in doc:
        return body
    doc["request_id"] = request_id
    return orjson.dumps(doc)


class ObservabilityMiddleware:
    """Request id, span, latency and the access log for every HTTP request of the app it wraps."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        info = RequestInfo(request_id_from(headers.get(REQUEST_ID_HEADER)))
        method = str(scope.get("method", ""))
        # A path can hold what a caller should not have put there (a card number, a token): the log record and the
        # span get it redacted, not only the formatted line, so no other handler or exporter sees it raw.
        path = redact(str(scope.get("path", "")))
        status = 0
        held: list[Message] = []  # a problem document's start and body parts, until the body is complete
        started = time.perf_counter()
        token = begin_request(info)
        span_cm: AbstractContextManager[Span] = (
            tracer().start_as_current_span(
                method, context=propagate.extract(dict(headers)), kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": path,
                            "url.scheme": str(scope.get("scheme", "http")), "quipu.request_id": info.request_id},
            )
            if tracing_active()
            else nullcontext(INVALID_SPAN)  # nothing would record it: its setters below do nothing
        )  # fmt: skip

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                out = MutableHeaders(scope=message)
                out[REQUEST_ID_HEADER] = info.request_id
                if out.get("content-type", "").startswith(PROBLEM):
                    held.append(message)
                    return
            elif message["type"] == "http.response.body" and held:
                held.append(message)
                if message.get("more_body", False):
                    return
                start, *parts = held
                held.clear()
                body = _with_request_id(b"".join(p.get("body", b"") for p in parts), info.request_id)
                MutableHeaders(scope=start)["content-length"] = str(len(body))
                await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        error: BaseException | None = None
        with span_cm as span:
            try:
                await self.app(scope, receive, send_with_id)
            except BaseException as exc:
                error = exc
                raise
            finally:
                elapsed = time.perf_counter() - started
                if error is not None and status == 0:
                    status = 500  # what the server-error middleware outside this one answers
                route = getattr(scope.get("route"), "path", None)
                self.metrics.observe_request(route or "unmatched", method, str(status), elapsed)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if info.client_id:
                    span.set_attribute("enduser.id", info.client_id)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                level = logging.ERROR if status >= 500 else logging.INFO
                if log.isEnabledFor(level):
                    _access_log(level, info, method, route, path, status, elapsed, error)
                end_request(token)
