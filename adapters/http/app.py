"""``/v1`` REST API: post events (one or a batch), read the event feed, balances and the trial balance.

Every route parses, calls the application service or a report, and maps domain outcomes to
HTTP: appended 201, duplicate 200, conflict 409, rejected 422 — errors as RFC 9457
``application/problem+json`` naming the field and the reason. Amounts are decimal strings.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from adapters.bootstrap import Ledger, open_ledger
from adapters.reports import ReportError, balance_rows, trial_balance_rows
from domain.catalog import MAX_EVENT_BYTES
from domain.service import Outcome, PostResult

#: The most events one batch request may carry (larger bodies get 413).
MAX_BATCH_EVENTS: Final = 1000
PROBLEM: Final = "application/problem+json"
_STATUS: Final = {Outcome.APPENDED: 201, Outcome.DUPLICATE: 200, Outcome.CONFLICT: 409, Outcome.REJECTED: 422}


def problem(status: int, title: str, detail: str, errors: list[str] | None = None) -> JSONResponse:
    """An RFC 9457 problem document."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _result(r: PostResult) -> dict[str, Any]:
    out: dict[str, Any] = {"index": r.index, "outcome": r.outcome.value, "event_id": r.event_id}
    if r.position is not None:
        out["position"] = r.position
    if r.reason:
        out["reason"] = r.reason
    return out


def create_app(database_url: str | None = None) -> FastAPI:
    """The API over the ledger at ``database_url`` (else ``QUIPU_DATABASE_URL``, else the default)."""
    state: dict[str, Ledger] = {}
    lock = threading.Lock()  # one ledger per process; its service and views are not thread-safe

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["ledger"] = open_ledger(database_url or os.environ.get("QUIPU_DATABASE_URL"))
        try:
            yield
        finally:
            state["ledger"].close()

    app = FastAPI(
        title="Quipu",
        version="0.1.0",
        lifespan=lifespan,
        description="Event-sourced ledger: post events, read the feed, balances and the trial balance.",
    )

    @app.post("/v1/events", status_code=201, summary="Append one event (idempotent by event_id)")
    async def post_event(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_EVENT_BYTES:
            return problem(413, "Event too large", f"the body is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
        with lock:
            (result,) = state["ledger"].service.post([raw])
        if result.outcome in (Outcome.REJECTED, Outcome.CONFLICT):
            title = "Invalid event" if result.outcome is Outcome.REJECTED else "Conflicting event"
            reasons = (result.reason or "").split("; ")
            return problem(_STATUS[result.outcome], title, result.reason or "", reasons)
        return JSONResponse(_result(result), status_code=_STATUS[result.outcome])

    @app.post("/v1/events/batch", summary=f"Append up to {MAX_BATCH_EVENTS} events; a result per event")
    async def post_batch(request: Request) -> Response:
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
        with lock:
            results = state["ledger"].service.post([orjson.dumps(item) for item in items])
        return JSONResponse({"results": [_result(r) for r in results]})

    @app.get("/v1/events", summary="The event feed after a position (cursor pagination)")
    def feed(
        after: int = Query(0, ge=0, description="the last position already seen"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> Response:
        with lock:
            records = state["ledger"].store.read(after, limit)
        events = [
            {"position": r.position, "event_id": str(r.event_id), "type": r.topic, "recorded_at_us": r.recorded_at_us,
             "chain_sha256": r.chain_sha256.hex(), "event": orjson.loads(r.body)}
            for r in records
        ]  # fmt: skip
        next_after = records[-1].position if records else after
        return JSONResponse({"events": events, "next": f"/v1/events?after={next_after}&limit={limit}"})

    @app.get("/v1/balances", summary="Balances on each account's normal side, live or as of a position or time")
    def balances(
        account: str | None = Query(None, description="glob, e.g. seller:*:available:BRL"),
        as_of: str | None = Query(None, description="a log position, or an ISO 8601 time with offset"),
    ) -> Response:
        with lock:
            ledger = state["ledger"]
            ledger.runner.run()
            try:
                rows = balance_rows(ledger, account, as_of)
            except ReportError as exc:
                return problem(422, "Invalid query", str(exc))
        return JSONResponse(rows)

    @app.get("/v1/trial-balance", summary="Debits, credits and net per currency")
    def trial_balance() -> Response:
        with lock:
            ledger = state["ledger"]
            ledger.runner.run()
            return JSONResponse(trial_balance_rows(ledger))

    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (several worker processes): the URL comes from the environment."""
    return create_app(os.environ.get("QUIPU_DATABASE_URL"))
