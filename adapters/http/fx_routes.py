"""HTTP reads of FX: the recorded rate for a pair at a moment, and a quote priced on it (not booked).

``GET /v1/fx/rates`` answers with the latest ``fx.rate_published`` rate for the pair at or before
``at``, its source and the moment it is as of, and whether it is stale under the pair's limit in
``config/fx.toml`` (a quote refuses a stale rate; customs values and IAS 21 closing rates use the
longer official-fix limit, so the rate itself is reported either way).

``POST /v1/fx/quotes`` prices a conversion exactly as ``quipu fx quote`` does without ``--rate``
(``domain.fx.quote`` on the latest recorded rate, the configured markup and lock): it records nothing.
Locking a quote is an ``fx.quote_locked`` event in a seller's wallet that only the daily run's
conversion rules post, with the conversion that uses it; the API does not lock quotes on its own.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from decimal import Decimal
from typing import Any, Final

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from adapters import config_files
from adapters.http import contract
from adapters.http.contract import MONEY_PATTERN, Guard, Problem
from adapters.http.ledger_routes import Params, param, read_body
from adapters.rates import age_minutes, latest_rate
from domain.envelope import AMOUNT_PATTERN
from domain.fx import FxError, quote
from ledger.errors import QuipuError
from ledger.money import currency, parse_amount

RATE_PATTERN: Final = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,24})?$"
_CCY: Final = re.compile(r"[A-Z]{3}")


def _plain(d: Decimal) -> str:
    """A decimal without exponent or trailing zeros after the point ("0.1834", "1")."""
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _moment(q: Params, name: str) -> dt.datetime:
    """An ISO 8601 moment with its offset; now when not given."""
    value = q.text(name, longest=40)
    if value is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        q.errors.append(f"{name}: {value!r} is not an ISO 8601 time such as 2026-10-15T12:00:00-03:00")
        return dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        q.errors.append(f"{name}: {value!r} has no UTC offset; write e.g. {value}Z or {value}-03:00")
    return moment


class RateRow(BaseModel):
    base: str = Field(pattern=r"^[A-Z]{3}$")
    quote: str = Field(pattern=r"^[A-Z]{3}$")
    rate: str = Field(pattern=RATE_PATTERN, description="units of quote per unit of base", examples=["0.1834"])
    source: str = Field(examples=["BCB PTAX"])
    as_of: str = Field(description="the moment the rate is as of")
    at: str = Field(description="the moment asked about")
    age_minutes: int = Field(ge=0)
    staleness_limit_minutes: int = Field(description="the pair's limit for quotes (config/fx.toml)")
    stale: bool = Field(description="older than the limit: a quote at `at` would refuse it")


class QuoteRequest(BaseModel):
    """``POST /v1/fx/quotes``: price converting ``amount`` of ``from`` into ``to``."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(alias="from", pattern=r"^[A-Z]{3}$", description="currency sold")
    target: str = Field(alias="to", pattern=r"^[A-Z]{3}$", description="currency bought")
    amount: str = Field(pattern=AMOUNT_PATTERN, description='of `from`, a decimal string such as "1000.00"')
    markup: str | None = Field(None, pattern=r"^0(\.[0-9]{1,8})?$", description="default: config/fx.toml")
    at: dt.datetime | None = Field(None, description="the quote time, ISO 8601 with offset (default: now)")


class QuoteRow(BaseModel):
    source: str = Field(alias="from", pattern=r"^[A-Z]{3}$")
    target: str = Field(alias="to", pattern=r"^[A-Z]{3}$")
    amount: str = Field(pattern=AMOUNT_PATTERN)
    reference_rate: str = Field(pattern=RATE_PATTERN)
    rate_source: str
    rate_as_of: str
    markup: str = Field(pattern=r"^0(\.[0-9]+)?$")
    final_rate: str = Field(pattern=RATE_PATTERN)
    target_amount: str = Field(pattern=AMOUNT_PATTERN)
    revenue: str = Field(pattern=MONEY_PATTERN)
    markup_revenue: str = Field(pattern=AMOUNT_PATTERN)
    rounding: str = Field(pattern=MONEY_PATTERN)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="the currency of the target amount and revenues")
    quoted_at: str
    expires_at: str
    booked: bool = Field(False, description="always false: the quote is priced, not recorded")


_RATE_PARAMS: Final = [
    param("base", {"type": "string", "pattern": r"^[A-Z]{3}$"}, "the currency priced, e.g. BRL", required=True),
    param("quote", {"type": "string", "pattern": r"^[A-Z]{3}$"}, "the currency it is priced in, e.g. USD",
          required=True),
    param("at", {"type": "string", "format": "date-time"}, "ISO 8601 with offset (default: now)"),
]  # fmt: skip


def _field(exc: QuipuError) -> str:
    """A domain message names the CLI option (``--amount: …``); the API's field has the same name."""
    return str(exc).removeprefix("--")


def add_routes(app: FastAPI, guard: Guard, state: dict[str, Any], lock: threading.Lock, problem: Problem) -> None:
    """Mount ``/v1/fx/rates`` and ``/v1/fx/quotes`` (scope ``ledger:read``)."""

    @app.get(
        "/v1/fx/rates",
        dependencies=[contract.needs("ledger:read")],
        summary="The recorded FX rate for a pair at a moment, with its source and time",
        responses=contract.answers(RateRow, 404, 422),
        openapi_extra={"parameters": _RATE_PARAMS},
    )
    def fx_rate(request: Request) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        q = Params(request)
        base = q.text("base", _CCY, "a three-letter upper-case ISO 4217 code")
        quote_ccy = q.text("quote", _CCY, "a three-letter upper-case ISO 4217 code")
        at = _moment(q, "at")
        for name, code in (("base", base), ("quote", quote_ccy)):
            if code is None and not any(e.startswith(f"{name}:") for e in q.errors):
                q.errors.append(f"{name}: required")
            elif code is not None:
                try:
                    currency(code, name)
                except QuipuError as exc:
                    q.errors.append(str(exc))
        if base is not None and base == quote_ccy:
            q.errors.append(f"quote: {base} against itself has no rate")
        if (bad := q.refused(problem)) is not None:
            return bad
        assert base is not None and quote_ccy is not None
        with lock:
            ledger = state["ledger"]
            ledger.runner.run()
            found = latest_rate(ledger.views, base, quote_ccy, at)
        if found is None:
            why = f"no {base}/{quote_ccy} rate recorded at or before {at.isoformat()}"
            return problem(404, "No rate", why, [f"quote: {why}"])
        limit = config_files.fx_settings().staleness_limit_minutes(base, quote_ccy)
        age = age_minutes(found, at)
        return JSONResponse(
            {"base": base, "quote": quote_ccy, "rate": _plain(found.rate), "source": found.source,
             "as_of": found.as_of.isoformat(), "at": at.isoformat(), "age_minutes": int(age),
             "staleness_limit_minutes": limit, "stale": age > limit}
        )  # fmt: skip

    @app.post(
        "/v1/fx/quotes",
        dependencies=[contract.needs("ledger:read")],
        summary="Price a conversion on the latest recorded rate (not booked, not locked)",
        responses=contract.answers(QuoteRow, 400, 404, 422),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": QuoteRequest.model_json_schema(by_alias=True)}},
            }
        },
    )
    async def fx_quote(request: Request) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        body = read_body(QuoteRequest, await request.body(), problem, "Invalid quote request")
        if isinstance(body, JSONResponse):
            return body
        return await run_in_threadpool(_price, body)  # the ledger lock and its queries block

    def _price(body: QuoteRequest) -> Response:
        when = body.at or dt.datetime.now(dt.UTC).replace(microsecond=0)
        errors: list[str] = []
        if when.tzinfo is None:
            errors.append("at: the quote time needs a UTC offset")
        for name, code in (("from", body.source), ("to", body.target)):
            try:
                currency(code, name)
            except QuipuError as exc:
                errors.append(str(exc))
        if body.source == body.target:
            errors.append(f"to: converting {body.source} into itself needs no quote")
        if not errors:  # the amount against its currency, before any rate is looked up
            try:
                if parse_amount(body.amount, body.source, "amount") <= 0:
                    errors.append("amount: must be greater than zero")
            except QuipuError as exc:
                errors.append(str(exc))
        if errors:
            return problem(422, "Invalid quote request", "; ".join(errors), errors)
        settings = config_files.fx_settings()
        with lock:
            ledger = state["ledger"]
            ledger.runner.run()
            found = latest_rate(ledger.views, body.source, body.target, when)
        if found is None:
            why = f"no {body.source}/{body.target} rate recorded at or before {when.isoformat()}"
            return problem(404, "No rate", why, [f"to: {why}"])
        age, limit = age_minutes(found, when), settings.staleness_limit_minutes(body.source, body.target)
        if age > limit:
            why = (f"the latest {body.source}/{body.target} rate ({found.source}, as of {found.as_of.isoformat()}) is "
                   f"{age:.0f} minutes old, beyond the {limit}-minute limit for the pair")  # fmt: skip
            return problem(422, "Stale rate", why, [f"at: {why}"])
        markup = Decimal(body.markup if body.markup is not None else settings.default_markup)
        try:
            q = quote(body.source, body.target, body.amount, found.rate, found.source, markup, when,
                      dt.timedelta(seconds=settings.lock_seconds))  # fmt: skip
        except FxError as exc:
            return problem(422, "Invalid quote request", _field(exc), [_field(exc)])
        return JSONResponse(
            {"from": q.source_currency, "to": q.target_currency, "amount": str(q.source_amount),
             "reference_rate": _plain(q.reference_rate), "rate_source": q.rate_source,
             "rate_as_of": found.as_of.isoformat(), "markup": _plain(q.markup), "final_rate": _plain(q.final_rate),
             "target_amount": str(q.target_amount), "revenue": str(q.revenue), "markup_revenue": str(q.markup_revenue),
             "rounding": str(q.rounding), "currency": q.target_currency, "quoted_at": q.quoted_at.isoformat(),
             "expires_at": q.expires_at.isoformat(), "booked": False}
        )  # fmt: skip
