"""``/v1`` REST API: post events (one or a batch), read the event feed, balances and the trial balance.

Every route parses, calls the application service or a report, and maps domain outcomes to
HTTP: appended 201, duplicate 200, conflict 409, rejected 422 — errors as RFC 9457
``application/problem+json`` naming the field and the reason. Amounts are decimal strings.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import parse_qs

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.bootstrap import open_ledger
from adapters.committer import CommitterProcess, committer_choice
from adapters.console import mount as mount_console
from adapters.http import audit_routes, contract, fx_routes, ledger_routes
from adapters.http.auth import AuthError, ExternalIssuer, ExternalIssuerSettings, api_secret, authenticate, issue_token
from adapters.http.group_commit import GroupCommit
from adapters.http.metrics import ApiMetrics
from adapters.http.settlement_routes import add_routes
from adapters.http.single_post import SinglePostShortcut
from adapters.observability.http import ObservabilityMiddleware
from adapters.observability.logs import configure_logging, note_client, redact
from adapters.observability.tracing import configure_tracing, instrument, shutdown_tracing
from adapters.reports import ReportError, balance_rows, trial_balance_rows
from domain.catalog import MAX_EVENT_BYTES
from domain.service import Outcome, PostResult

#: The most events one batch request may carry (larger bodies get 413).
MAX_BATCH_EVENTS: Final = 1000
PROBLEM: Final = "application/problem+json"
_STATUS: Final = {Outcome.APPENDED: 201, Outcome.DUPLICATE: 200, Outcome.CONFLICT: 409, Outcome.REJECTED: 422}


def problem(status: int, title: str, detail: str, errors: list[str] | None = None) -> JSONResponse:
    """An RFC 9457 problem document. Whatever it quotes of the request, it never repeats a card number, a token or
    a secret (the same redaction as the logs)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": redact(detail)}
    if errors:
        body["errors"] = [redact(e) for e in errors]
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _result(r: PostResult) -> dict[str, Any]:
    out: dict[str, Any] = {"index": r.index, "outcome": r.outcome.value, "event_id": r.event_id}
    if r.position is not None:
        out["position"] = r.position
    if r.reason:
        out["reason"] = r.reason
    return out


class TokenBucket:
    """Per-client request budget: ``rate`` requests a second, bursts up to ``capacity``."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float:
        """0 when the request may go on, else the seconds to wait."""
        now = time.monotonic()
        tokens, last = self.tokens.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.tokens[client] = (tokens, now)
            return (1 - tokens) / self.rate
        self.tokens[client] = (tokens - 1, now)
        return 0.0


def create_app(
    database_url: str | None = None, auth: bool = True, external: ExternalIssuerSettings | None = None,
    committer: str = "thread",
) -> FastAPI:  # fmt: skip
    """The API over the ledger at ``database_url`` (else ``QUIPU_DATABASE_URL``, else the default).

    ``external``: an external token issuer accepted beside the local one (else ``QUIPU_JWKS_URL`` …).
    ``committer``: where posts are decided and appended: ``thread`` (a thread of this process) or ``process``
    (a committer process of its own, ADR 0041: what ``quipu serve`` runs).
    """
    committer = committer_choice(committer)
    state: dict[str, Any] = {}
    issuer_settings = (external or ExternalIssuerSettings.from_env()) if auth else None
    lock = threading.Lock()  # one ledger per process; its service and views are not thread-safe
    limits = TokenBucket(float(os.environ.get("QUIPU_RATE_PER_SECOND", "200")),
                         float(os.environ.get("QUIPU_RATE_BURST", "400")))  # fmt: skip

    def guard(request: Request, scope: str) -> Response | None:
        """None when the caller may use the route; else the 401/403/429 problem to send."""
        return guard_header(request.headers.get("authorization"), scope)

    def guard_header(authorization: str | None, scope: str) -> Response | None:
        """:func:`guard` from the request's ``Authorization`` header alone."""
        if not auth:
            return None
        try:
            caller = authenticate(authorization, state["secret"], scope, state.get("issuer"))
        except AuthError as exc:
            if exc.status == 503:  # the external issuer's keys are out of reach: not the caller's fault
                response = problem(503, "Service unavailable", str(exc))
                response.headers["Retry-After"] = "5"
                return response
            challenge = f'Bearer realm="quipu", error="{exc.error}", error_description="{exc}"'
            if exc.status == 403:
                challenge += f', scope="{scope}"'
            response = problem(exc.status, "Unauthorized" if exc.status == 401 else "Forbidden", str(exc))
            response.headers["WWW-Authenticate"] = challenge
            return response
        note_client(caller.client_id)
        wait = limits.take(caller.client_id)
        if wait:
            response = problem(429, "Too many requests", f"client {caller.client_id} is over its rate limit")
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        return None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["ledger"] = instrument(open_ledger(database_url or os.environ.get("QUIPU_DATABASE_URL")))
        # The server's worker processes post to the same streams: each checks its cached states against
        # the log before deciding instead of colliding and deciding again (ADR 0034).
        state["ledger"].service.shared = True
        state["secret"] = api_secret() if auth else b""
        state["issuer"] = ExternalIssuer(issuer_settings) if issuer_settings is not None else None
        try:
            if committer == "process":
                grouped.process = CommitterProcess(state["ledger"].url)
                await grouped.process.start()
            yield
        finally:
            if grouped.process is not None:
                await grouped.process.close()
                grouped.process = None
            state["ledger"].close()

    def post_locked(raws: Sequence[bytes]) -> list[PostResult]:
        with lock:
            return state["ledger"].service.post(raws)  # type: ignore[no-any-return]

    grouped = GroupCommit(post_locked)
    metrics = ApiMetrics()
    app = FastAPI(
        title="Quipu",
        version="0.1.0",
        lifespan=lifespan,
        description="Event-sourced ledger: post events, read the feed, balances and the trial balance.",
        # The server span, latency histogram and log line are ObservabilityMiddleware's (ADR 0023); FastAPI's own
        # would record each request a second time once a tracer is configured, and checks its settings per request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )

    async def single_post(authorization: str | None, raw: bytes) -> Response:
        """``POST /v1/events``: from the FastAPI route below, or from the shortcut that answers it (ADR 0040)."""
        if (refused := guard_header(authorization, "events:write")) is not None:
            return refused
        if len(raw) > MAX_EVENT_BYTES:
            return problem(413, "Event too large", f"the body is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
        (result,) = await grouped.post([raw])
        metrics.count([result])
        if result.outcome in (Outcome.REJECTED, Outcome.CONFLICT):
            title = "Invalid event" if result.outcome is Outcome.REJECTED else "Conflicting event"
            reasons = list(result.problems) or [result.reason or ""]
            return problem(_STATUS[result.outcome], title, result.reason or "", reasons)
        return Response(orjson.dumps(_result(result)), _STATUS[result.outcome], media_type="application/json")

    # Added first, so innermost: the body limit and everything ObservabilityMiddleware does apply to it too.
    app.add_middleware(
        SinglePostShortcut, api=app, handle=single_post, lost=contract.DATABASE_LOST,
        unavailable=lambda: contract.database_unavailable(problem),
    )  # fmt: skip
    # Request id, server span, latency histogram and the access log line (adapters/observability/http.py).
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    def prometheus() -> Response:
        with lock:
            metrics.observe_projections(state["ledger"])
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/oauth/token",
        summary="OAuth 2.0 client-credentials grant",
        openapi_extra=contract.TOKEN_FORM,
        responses=contract.answers(contract.TokenDoc, also={400: contract.OAuthErrorDoc, 401: contract.OAuthErrorDoc}),
    )
    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            try:
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return JSONResponse({"error": "invalid_request"}, status_code=400)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        try:
            with lock:
                body = issue_token(state["ledger"], state["secret"], client_id, client_secret, form.get("scope"))
        except AuthError as exc:
            return JSONResponse({"error": exc.error, "error_description": str(exc)}, status_code=exc.status)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @app.post(
        "/v1/events",
        status_code=201,
        summary="Append one event (idempotent by event_id)",
        dependencies=[contract.needs("events:write")],
        openapi_extra=contract.event_body(),
        responses=contract.answers(contract.PostedDoc, 409, 413, 422, status=201, also={200: contract.PostedDoc}),
    )
    async def post_event(request: Request) -> Response:
        # Served by SinglePostShortcut unless the request has a query string: the same function either way.
        return await single_post(request.headers.get("authorization"), await request.body())

    @app.post(
        "/v1/events/batch",
        summary=f"Append up to {MAX_BATCH_EVENTS} events; a result per event",
        dependencies=[contract.needs("events:write")],
        openapi_extra=contract.event_body(MAX_BATCH_EVENTS),
        responses=contract.answers(contract.BatchDoc, 400, 413),
    )
    async def post_batch(request: Request) -> Response:
        if (refused := guard(request, "events:write")) is not None:
            return refused
        raw = await request.body()
        if len(raw) > MAX_EVENT_BYTES * MAX_BATCH_EVENTS:
            return problem(413, "Batch too large", f"the body is {len(raw)} bytes")
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return problem(400, "Not JSON", f"body: not valid JSON ({exc})")
        if not isinstance(items, list):
            return problem(400, "Not a batch", "body: must be a JSON array of events")
        if len(items) > MAX_BATCH_EVENTS:
            return problem(413, "Batch too large", f"{len(items)} events; the limit is {MAX_BATCH_EVENTS}")
        # Each event is passed as its own JSON bytes, exactly as a single post would be.
        results = await grouped.post([orjson.dumps(item) for item in items])
        metrics.count(results)
        # orjson: the standard library's encoder took a tenth of a 1,000-event request.
        return Response(orjson.dumps({"results": [_result(r) for r in results]}), media_type="application/json")

    @app.get(
        "/v1/events",
        summary="The event feed after a position (cursor pagination)",
        dependencies=[contract.needs("ledger:read")],
        responses=contract.answers(contract.FeedDoc, 422),
    )
    def feed(
        request: Request,
        after: int = Query(0, ge=0, le=2**63 - 1, description="the last position already seen"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        with lock:
            records = state["ledger"].store.read(after, limit)
        events = [
            {"position": r.position, "event_id": str(r.event_id), "type": r.topic, "recorded_at_us": r.recorded_at_us,
             "chain_sha256": r.chain_sha256.hex(), "event": orjson.loads(r.body)}
            for r in records
        ]  # fmt: skip
        next_after = records[-1].position if records else after
        return JSONResponse({"events": events, "next": f"/v1/events?after={next_after}&limit={limit}"})

    @app.get(
        "/v1/balances",
        summary="Balances on each account's normal side, live or as of a position or time",
        dependencies=[contract.needs("ledger:read")],
        responses=contract.answers(list[contract.BalanceDoc], 422),
    )
    def balances(
        request: Request,
        account: str | None = Query(None, description="glob, e.g. seller:*:available:BRL"),
        as_of: str | None = Query(None, description="a log position, or an ISO 8601 time with offset"),
    ) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        with lock:
            ledger = state["ledger"]
            ledger.runner.run()
            try:
                rows = balance_rows(ledger, account, as_of)
            except ReportError as exc:
                reason = contract.as_field(str(exc), {"--as-of": "as_of"})
                return problem(422, "Invalid query", reason, [reason])
        return JSONResponse(rows)

    @app.get(
        "/v1/trial-balance",
        summary="Debits, credits and net per currency",
        dependencies=[contract.needs("ledger:read")],
        responses=contract.answers(list[contract.TrialBalanceDoc]),
    )
    def trial_balance(request: Request) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        with lock:
            ledger = state["ledger"]
            ledger.runner.run()
            return JSONResponse(trial_balance_rows(ledger))

    add_routes(app, guard, state, lock, problem)
    ledger_routes.add_routes(app, guard, state, lock, problem)
    fx_routes.add_routes(app, guard, state, lock, problem)
    audit_routes.add_routes(app, guard, state, lock, problem)
    mount_console(app, state, lock, auth)
    # Problems for FastAPI's own errors (after the token is checked), the body limit, the published contract.
    contract.install(app, guard, problem, MAX_EVENT_BYTES, {"/v1/events/batch": MAX_EVENT_BYTES * MAX_BATCH_EVENTS})
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (several worker processes): settings come from the environment.

    Each worker process sets up its own logging (``QUIPU_LOG_FORMAT``) and tracing (``QUIPU_OTEL_EXPORTER``).
    """
    from adapters.runtime import tune_gc

    configure_logging()
    if configure_tracing("quipu-api") is not None:
        import atexit

        atexit.register(shutdown_tracing)  # flush the spans still batched when the worker exits
    app = create_app(
        os.environ.get("QUIPU_DATABASE_URL"), auth=os.environ.get("QUIPU_API_AUTH", "1") != "0",
        committer=committer_choice(),
    )  # fmt: skip
    tune_gc()
    return app
