"""HTTP routes for settlement, payouts, taxes, AML and reconciliation, with the API's conventions: OAuth scopes,
RFC 9457 problems naming the field, decimal strings for amounts, the same adapters the CLI uses."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any, Final, Literal

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from adapters import aml, reconcile, settlement, taxes
from adapters.http.contract import (
    ActionDoc,
    AlertDoc,
    CaseStepDoc,
    PayoutDoc,
    ReconExceptionDoc,
    ResolutionDoc,
    SellerBalanceDoc,
    SettlementBatchDoc,
    TaxDoc,
    answers,
    as_field,
    needs,
)
from adapters.params import parse_day
from domain.envelope import AMOUNT_PATTERN
from ledger.errors import QuipuError

Guard = Callable[[Request, str], Response | None]
#: What the events take as an id (seller, payout): letters, digits, '.', '_' and '-'.
IDENT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"
#: The command line's options, as the shared payout code names them, and the request's fields.
_PAYOUT_FIELDS: Final = {"--seller": "seller_id", "--amount": "amount", "--currency": "currency", "--from": "currency",
                         "--to": "to", "--within": "within", "--destination": "destination"}  # fmt: skip
Problem = Callable[..., JSONResponse]


class PayoutRequest(BaseModel):
    """``POST /v1/payouts``: the cheapest route that arrives in time is chosen and recorded."""

    seller_id: str = Field(min_length=1, max_length=64, pattern=IDENT_PATTERN)
    amount: str = Field(
        pattern=AMOUNT_PATTERN,
        description='decimal string in the funds\' currency, e.g. "500.00"; the fee comes out of it',
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    to: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="currency to deliver (default: the funds')")
    destination: str = Field("primary", min_length=1, max_length=64, pattern=r"^[^\x00]+$")
    within: int | None = Field(None, ge=0, le=30, description="business days to arrive, at most")
    payout_id: str | None = Field(None, min_length=1, max_length=64, pattern=IDENT_PATTERN)


class CaseAction(BaseModel):
    """``POST /v1/aml/cases/{case_id}/actions``."""

    action: Literal["assign", "note", "escalate", "clear", "confirm"]
    by: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=500)
    assignee: str | None = None
    report: Literal["COAF", "UIF", "STR"] | None = None
    action_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="your id for this step: a retry with it is answered as a duplicate, never recorded twice",
    )  # fmt: skip


class Resolution(BaseModel):
    """``POST /v1/reconciliation/exceptions/{exception_id}/resolution``."""

    resolution: Literal["adjusted", "accepted_timing", "written_off"]
    decided_by: str = Field(min_length=1, max_length=100)
    note: str = Field(min_length=1, max_length=500)
    adjustment_id: str | None = Field(None, min_length=1, max_length=64, description="required unless accepted_timing")
    approved_by: str | None = Field(None, min_length=1, max_length=100, description="a write-off's second person")


def add_routes(app: FastAPI, guard: Guard, state: dict[str, Any], lock: threading.Lock, problem: Problem) -> None:
    """Mount the settlement, payout, tax and AML routes."""

    @app.get(
        "/v1/sellers/{seller_id}/balance",
        summary="A seller's funds per currency as of a date",
        dependencies=[needs("ledger:read")],
        responses=answers(list[SellerBalanceDoc], 404, 422),
    )
    def seller_balance(request: Request, seller_id: str, as_of: str | None = Query(None)) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        try:
            with lock:
                rows = settlement.seller_rows(state["ledger"], seller_id, parse_day(as_of, "as_of"))
        except settlement.SettlementError as exc:
            return problem(404, "Unknown seller", str(exc))
        except QuipuError as exc:
            return problem(422, "Invalid query", str(exc))
        return JSONResponse(rows)

    @app.get(
        "/v1/settlement/batches",
        summary="Daily settlement batches per site and currency",
        dependencies=[needs("ledger:read")],
        responses=answers(list[SettlementBatchDoc], 422),
    )
    def batches(
        request: Request,
        start: str | None = Query(None, alias="from"),
        end: str | None = Query(None, alias="to"),
        site: str | None = None,
    ) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        try:
            first = parse_day(start, "from")
            last = parse_day(end, "to") if end else first + dt.timedelta(days=30)
            with lock:
                return JSONResponse(settlement.batch_rows(state["ledger"], first, last, site))
        except QuipuError as exc:
            return problem(422, "Invalid query", str(exc))

    @app.post(
        "/v1/payouts",
        status_code=201,
        summary="Request a payout over the cheapest route (payouts:write)",
        dependencies=[needs("payouts:write")],
        responses=answers(PayoutDoc, 409, 422, status=201, also={200: PayoutDoc}),
    )
    def payout(request: Request, body: PayoutRequest) -> Response:
        if (refused := guard(request, "payouts:write")) is not None:
            return refused
        at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        try:
            with lock:
                event, result = settlement.request_payout(
                    state["ledger"], body.seller_id, body.amount, body.currency, body.to or body.currency,
                    body.destination, body.within, at, body.payout_id,
                )  # fmt: skip
        except QuipuError as exc:
            reason = as_field(str(exc), _PAYOUT_FIELDS)
            return problem(422, "Payout refused", reason, [reason])
        if result.outcome.value in ("rejected", "conflict"):
            status = 409 if result.outcome.value == "conflict" else 422
            return problem(status, "Payout refused", result.reason or "", [result.reason or ""])
        code = 201 if result.outcome.value == "appended" else 200
        return JSONResponse({"outcome": result.outcome.value, "event": event}, status_code=code)

    @app.get(
        "/v1/taxes/summary",
        summary="Taxes assessed less reversed per site, kind and tax",
        dependencies=[needs("ledger:read")],
        responses=answers(list[TaxDoc], 422),
    )
    def tax_summary(request: Request, site: str | None = None) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        with lock:
            return JSONResponse(taxes.summary_rows(state["ledger"], site))

    @app.get(
        "/v1/aml/alerts",
        summary="AML alerts with their evidence and case (aml:read)",
        dependencies=[needs("aml:read")],
        responses=answers(list[AlertDoc], 422),
    )
    def aml_alerts(request: Request, seller: str | None = None, severity: str | None = None) -> Response:
        if (refused := guard(request, "aml:read")) is not None:
            return refused
        with lock:
            return JSONResponse(aml.alerts(state["ledger"], seller, severity))

    @app.get(
        "/v1/aml/cases/{case_id}",
        summary="An AML case's timeline (aml:read)",
        dependencies=[needs("aml:read")],
        responses=answers(list[CaseStepDoc], 404, 422),
    )
    def aml_case(request: Request, case_id: str) -> Response:
        if (refused := guard(request, "aml:read")) is not None:
            return refused
        try:
            with lock:
                return JSONResponse(aml.case_rows(state["ledger"], case_id))
        except aml.AmlError as exc:
            return problem(404, "Unknown case", str(exc))

    @app.post(
        "/v1/aml/cases/{case_id}/actions",
        summary="Record a case action; clear lifts freeze and holds",
        dependencies=[needs("aml:write")],
        responses=answers(ActionDoc, 404, 409, 422),
    )
    def aml_action(request: Request, case_id: str, body: CaseAction) -> Response:
        if (refused := guard(request, "aml:write")) is not None:
            return refused
        at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        try:
            with lock:
                results = aml.decide(state["ledger"], case_id, body.action, body.by, body.text, at, body.assignee,
                                     body.report, body.action_id)  # fmt: skip
        except aml.AmlError as exc:
            return problem(404, "Unknown case", str(exc))
        refused_ = [r for r in results if r.outcome.value in ("rejected", "conflict")]
        if refused_:
            status = 409 if refused_[0].outcome.value == "conflict" else 422
            return problem(status, "Action refused", refused_[0].reason or "", [refused_[0].reason or ""])
        return JSONResponse({"outcomes": [r.outcome.value for r in results]})

    @app.get(
        "/v1/reconciliation/exceptions",
        summary="Reconciliation exceptions with evidence and age (recon:read)",
        dependencies=[needs("recon:read")],
        responses=answers(list[ReconExceptionDoc], 422),
    )
    def recon_exceptions(request: Request, as_of: str | None = None, status: str = "open") -> Response:
        if (refused := guard(request, "recon:read")) is not None:
            return refused
        try:
            day = parse_day(as_of, "as_of")
        except QuipuError as exc:
            return problem(422, "Invalid query", str(exc), [str(exc)])
        with lock:
            state["ledger"].runner.run()
            rows = reconcile.exception_rows(state["ledger"], day, None if status == "all" else status)
        return JSONResponse(rows)

    @app.post(
        "/v1/reconciliation/exceptions/{exception_id}/resolution",
        status_code=201,
        summary="Record a decision on an open exception (recon:write)",
        dependencies=[needs("recon:write")],
        responses=answers(ResolutionDoc, 404, 422, status=201, also={200: ResolutionDoc}),
    )
    def recon_resolve(request: Request, exception_id: str, body: Resolution) -> Response:
        if (refused := guard(request, "recon:write")) is not None:
            return refused
        at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        try:
            with lock:
                decision = reconcile.resolve(state["ledger"], exception_id, body.resolution, body.decided_by,
                                             body.note, body.adjustment_id, body.approved_by, at)  # fmt: skip
        except reconcile.ReconError as exc:
            status = 404 if str(exc).startswith("exception_id: no exception") else 422
            return problem(status, "Resolution refused", str(exc), [str(exc)])
        # The same decision asked again (a retry) answers 200 with the recorded event, as a duplicate post does.
        return JSONResponse({"exception_id": exception_id, "event_id": decision.event_id},
                            status_code=200 if decision.recorded_before else 201)  # fmt: skip
