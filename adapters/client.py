"""A Python client for Quipu's HTTP API, sync (:class:`QuipuClient`) and async (:class:`AsyncQuipuClient`).

* **Idempotent retries.** Every event gets its ``event_id`` before the first attempt (a UUID4 when
  the caller gave none), so a retry after a timeout or a 5xx posts the very same bytes: the ledger
  records it once and answers ``duplicate`` to the retry.
* **Batches** of any length are cut into the API's limit (1,000 events per request); the result
  list has one entry per event, in order.
* **Errors carry the problem details** (RFC 9457): :class:`ApiError` has the status, title, detail
  and the per-field ``errors``; a refused single event raises :class:`EventRefused`.
* **Amounts are decimal strings.** A float anywhere in an event is refused before sending.
* Tokens come from the client-credentials grant and are renewed before they expire (and once on a
  401).

* **Typed reads.** Accounts, journal entries, FX rates and quotes, the audit routes: frozen
  dataclasses whose amounts and rates are :class:`~decimal.Decimal` (parsed from the API's decimal
  strings, never through a float) and whose times are aware datetimes; paged routes are iterated
  to the end, following the API's cursor.

    with QuipuClient("http://127.0.0.1:8000", "checkout", secret) as quipu:
        quipu.post(event)                 # Result(outcome="appended", position=…)
        quipu.post_batch(events)          # [Result, …]
        for entry in quipu.journal(after=0):   # JournalEntry(position=…, postings=(Posting(…), …))
            ...
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal, TypedDict

import httpx

from ledger.errors import QuipuError

#: The API's batch limit (``POST /v1/events/batch``).
BATCH_LIMIT: Final = 1000
#: Statuses worth another attempt: rate limited, or the server or a proxy in trouble.
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
Outcome = Literal["appended", "duplicate", "conflict", "rejected"]


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one event."""

    outcome: Outcome
    event_id: str | None
    position: int | None = None
    reason: str | None = None


@dataclass(slots=True)
class ApiError(QuipuError):
    """A response that is not a result: the problem document's fields, and the status."""

    status: int
    title: str
    detail: str
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"


class EventRefused(ApiError):
    """A single event the ledger refused (``rejected`` or ``conflict``); ``errors`` name the fields."""


class NotJson(TypeError):
    """An event holding a float (amounts are decimal strings) or something JSON cannot carry."""


def prepared(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with an ``event_id`` (kept across retries) and no float anywhere."""
    _no_floats(event, "event")
    out = dict(event)
    out.setdefault("event_id", str(uuid.uuid4()))
    return out


def _no_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise NotJson(f'{path}: a float; send amounts as decimal strings such as "12.34"')
    if isinstance(value, Mapping):
        for k, v in value.items():
            _no_floats(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _no_floats(v, f"{path}.{i}")


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    title = str(body.get("title") or body.get("error") or response.reason_phrase or "error")
    detail = str(body.get("detail") or body.get("error_description") or response.text[:500])
    errors = [str(e) for e in body.get("errors") or []]
    return ApiError(response.status_code, title, detail, errors)


def _result(doc: Mapping[str, Any]) -> Result:
    return Result(doc["outcome"], doc.get("event_id"), doc.get("position"), doc.get("reason"))


def _single(response: httpx.Response) -> Result:
    if response.status_code in (200, 201):
        return _result(response.json())
    if response.status_code in (409, 422) and response.headers.get("content-type", "").startswith(
        "application/problem+json"
    ):
        e = _error(response)
        raise EventRefused(e.status, e.title, e.detail, e.errors)
    raise _error(response)


def _chunks(events: Sequence[Mapping[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    ready = [prepared(e) for e in events]  # ids fixed once, before any attempt
    for i in range(0, len(ready), BATCH_LIMIT):
        yield ready[i : i + BATCH_LIMIT]


# ---- typed reads ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """One account of the chart (``GET /v1/accounts``)."""

    account: str
    party: str
    party_id: str
    purpose: str
    currency: str
    normal_side: Literal["debit", "credit"]
    postings: int


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of a journal entry: always a positive amount on one side."""

    line: int
    account: str
    side: Literal["debit", "credit"]
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """The entry one event booked (``GET /v1/journal/entries``)."""

    position: int
    event_id: str
    type: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    memo: str
    postings: tuple[Posting, ...]


@dataclass(frozen=True, slots=True)
class FxRate:
    """The recorded rate for a pair at a moment (``GET /v1/fx/rates``)."""

    base: str
    quote: str
    rate: Decimal
    source: str
    as_of: dt.datetime
    at: dt.datetime
    age_minutes: int
    staleness_limit_minutes: int
    stale: bool


@dataclass(frozen=True, slots=True)
class FxQuote:
    """A conversion priced on the latest recorded rate; not booked (``POST /v1/fx/quotes``)."""

    source: str
    target: str
    amount: Decimal
    reference_rate: Decimal
    rate_source: str
    rate_as_of: dt.datetime
    markup: Decimal
    final_rate: Decimal
    target_amount: Decimal
    revenue: Decimal
    markup_revenue: Decimal
    rounding: Decimal
    quoted_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """The first link of the hash chain that does not hold."""

    position: int
    event_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """A walk of the hash chain (``/v1/audit/verify``)."""

    ok: bool
    events: int
    head: int
    head_sha256: str
    broken: BrokenLink | None
    checkpoint: int | None


class CheckpointDoc(TypedDict):
    """A signed checkpoint, exactly as ``quipu checkpoint`` writes it: keep it outside the system."""

    format: str
    position: int
    head_sha256: str
    recorded_at_us: int
    public_key: str
    signature: str


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's balance on its normal side."""

    account: str
    currency: str
    debits: Decimal
    credits: Decimal
    balance: Decimal
    normal_side: Literal["debit", "credit"]


@dataclass(frozen=True, slots=True)
class BalancesAsOf:
    """Balances as of a position, a record time or a business time (``GET /v1/audit/balances``)."""

    as_of: str
    basis: Literal["position", "recorded", "effective"]
    position: int
    balances: tuple[Balance, ...]


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _moment(value: dt.datetime | str | None) -> str | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("at: a datetime without a UTC offset is ambiguous")
        return value.isoformat()
    return value


def _decimal_text(value: Decimal | str, name: str) -> str:
    if isinstance(value, float):
        raise NotJson(f'{name}: a float; send amounts as decimal strings such as "12.34"')
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _entry(doc: Mapping[str, Any]) -> JournalEntry:
    return JournalEntry(
        doc["position"], doc["event_id"], doc["type"], _time(doc["occurred_at"]), _time(doc["recorded_at"]),
        doc["memo"], tuple(Posting(p["line"], p["account"], p["side"], Decimal(p["amount"]), p["currency"])
                           for p in doc["postings"]),
    )  # fmt: skip


def _account(doc: Mapping[str, Any]) -> AccountInfo:
    return AccountInfo(doc["account"], doc["party"], doc["party_id"], doc["purpose"], doc["currency"],
                       doc["normal_side"], doc["postings"])  # fmt: skip


def _fx_rate(doc: Mapping[str, Any]) -> FxRate:
    return FxRate(doc["base"], doc["quote"], Decimal(doc["rate"]), doc["source"], _time(doc["as_of"]),
                  _time(doc["at"]), doc["age_minutes"], doc["staleness_limit_minutes"], doc["stale"])  # fmt: skip


def _fx_quote(doc: Mapping[str, Any]) -> FxQuote:
    d = Decimal
    return FxQuote(
        doc["from"], doc["to"], d(doc["amount"]), d(doc["reference_rate"]), doc["rate_source"],
        _time(doc["rate_as_of"]), d(doc["markup"]), d(doc["final_rate"]), d(doc["target_amount"]), d(doc["revenue"]),
        d(doc["markup_revenue"]), d(doc["rounding"]), _time(doc["quoted_at"]), _time(doc["expires_at"]),
    )  # fmt: skip


def _chain(doc: Mapping[str, Any]) -> ChainStatus:
    b = doc.get("broken")
    broken = None if b is None else BrokenLink(b["position"], b.get("event_id"), b["reason"])
    return ChainStatus(doc["ok"], doc["events"], doc["head"], doc["head_sha256"], broken, doc.get("checkpoint"))


def _balance(doc: Mapping[str, Any]) -> Balance:
    return Balance(doc["account"], doc["currency"], Decimal(doc["debits"]), Decimal(doc["credits"]),
                   Decimal(doc["balance"]), doc["normal_side"])  # fmt: skip


def _balances_as_of(doc: Mapping[str, Any]) -> BalancesAsOf:
    return BalancesAsOf(doc["as_of"], doc["basis"], doc["position"], tuple(_balance(b) for b in doc["balances"]))


def _params(**given: object) -> dict[str, str]:
    return {k: str(v) for k, v in given.items() if v is not None}


def _quote_body(
    source: str, target: str, amount: Decimal | str, markup: Decimal | str | None, at: dt.datetime | str | None
) -> dict[str, str]:
    body = {"from": source, "to": target, "amount": _decimal_text(amount, "amount")}
    if markup is not None:
        body["markup"] = _decimal_text(markup, "markup")
    if (when := _moment(at)) is not None:
        body["at"] = when
    return body


def _ok(response: httpx.Response) -> Any:
    """The JSON body of a 200, else the problem as :class:`ApiError`."""
    if response.status_code != 200:
        raise _error(response)
    return response.json()


@dataclass(slots=True)
class _Policy:
    """Retry and token bookkeeping shared by both clients (no I/O here)."""

    client_id: str
    client_secret: str
    scope: str | None = None
    retries: int = 5
    backoff: float = 0.2
    token: str | None = None
    expires_at: float = 0.0

    def token_form(self) -> dict[str, str]:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret}
        if self.scope:
            form["scope"] = self.scope
        return form

    def keep(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise _error(response)
        body = response.json()
        self.token = str(body["access_token"])
        # Renew a little early: a token that expires in flight costs a 401 and a retry.
        self.expires_at = time.monotonic() + max(0.0, float(body.get("expires_in", 300)) - 30)

    def fresh(self) -> bool:
        return self.token is not None and time.monotonic() < self.expires_at

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def wait(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before another attempt, or None when it should not be retried."""
        if attempt >= self.retries:
            return None
        if response is not None:
            if response.status_code not in RETRY_STATUSES:
                return None
            after = response.headers.get("Retry-After")
            if after and after.isdigit():
                return float(after)
        jitter: float = random.uniform(0.5, 1.5)  # spread retries of many clients apart
        return float(self.backoff * 2**attempt * jitter)


class QuipuClient:
    """The synchronous client."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self._policy = _Policy(client_id, client_secret, scope, retries, backoff)

    def __enter__(self) -> QuipuClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        renewed = False
        attempt = 0
        while True:
            if not self._policy.fresh():
                self._policy.keep(self._http.post("/oauth/token", data=self._policy.token_form()))
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, url, headers=self._policy.headers(), **kw)
            except httpx.TransportError:
                if (delay := self._policy.wait(attempt, None)) is None:
                    raise
            else:
                if response.status_code == 401 and not renewed:
                    self._policy.token, renewed = None, True
                    continue
                if (delay := self._policy.wait(attempt, response)) is None:
                    return response
            time.sleep(delay)
            attempt += 1

    def post(self, event: Mapping[str, Any]) -> Result:
        """Append one event; :class:`EventRefused` names the fields when the ledger refuses it."""
        ready = prepared(event)
        return _single(self._send("POST", "/v1/events", json=ready))

    def post_batch(self, events: Sequence[Mapping[str, Any]]) -> list[Result]:
        """Append any number of events, 1,000 per request; one result per event, in order."""
        out: list[Result] = []
        for chunk in _chunks(events):
            response = self._send("POST", "/v1/events/batch", json=chunk)
            if response.status_code != 200:
                raise _error(response)
            out += [_result(r) for r in response.json()["results"]]
        return out

    def balances(self, account: str | None = None, as_of: str | None = None) -> list[dict[str, Any]]:
        """Balances (amounts as decimal strings), live or as of a position or time."""
        params = {k: v for k, v in (("account", account), ("as_of", as_of)) if v is not None}
        response = self._send("GET", "/v1/balances", params=params)
        if response.status_code != 200:
            raise _error(response)
        return list(response.json())

    def events(self, after: int = 0, page: int = 1000) -> Iterator[dict[str, Any]]:
        """The event feed from a position, page by page, until the head."""
        while True:
            response = self._send("GET", "/v1/events", params={"after": after, "limit": page})
            if response.status_code != 200:
                raise _error(response)
            batch = response.json()["events"]
            if not batch:
                return
            yield from batch
            after = batch[-1]["position"]

    def _get(self, url: str, **params: object) -> Any:
        return _ok(self._send("GET", url, params=_params(**params)))

    def accounts(
        self,
        pattern: str | None = None,
        *,
        prefix: str | None = None,
        party: str | None = None,
        purpose: str | None = None,
        currency: str | None = None,
        page: int = 100,
    ) -> Iterator[AccountInfo]:
        """The chart of accounts (every account posted to), filtered, in name order, page by page to the end."""
        after: str | None = None
        while True:
            doc = self._get("/v1/accounts", pattern=pattern, prefix=prefix, party=party, purpose=purpose,
                            currency=currency, after=after, limit=page)  # fmt: skip
            yield from (_account(a) for a in doc["accounts"])
            if doc["next"] is None:
                return
            after = doc["cursor"]

    def journal(self, after: int = 0, page: int = 100) -> Iterator[JournalEntry]:
        """Journal entries after a log position, in log order, page by page to what is projected now."""
        while True:
            doc = self._get("/v1/journal/entries", after=after, limit=page)
            yield from (_entry(e) for e in doc["entries"])
            if doc["next"] is None:
                return
            after = doc["cursor"]

    def journal_entry(self, position: int) -> JournalEntry:
        """The entry booked by the event at ``position`` (:class:`ApiError` 404 when it booked none)."""
        return _entry(self._get(f"/v1/journal/entries/{int(position)}"))

    def fx_rate(self, base: str, quote: str, at: dt.datetime | str | None = None) -> FxRate:
        """The latest recorded rate for the pair at or before ``at`` (default now), and whether it is stale."""
        return _fx_rate(self._get("/v1/fx/rates", base=base, quote=quote, at=_moment(at)))

    def fx_quote(
        self,
        source: str,
        target: str,
        amount: Decimal | str,
        *,
        markup: Decimal | str | None = None,
        at: dt.datetime | str | None = None,
    ) -> FxQuote:
        """Price converting ``amount`` of ``source`` into ``target``; nothing is booked or locked."""
        body = _quote_body(source, target, amount, markup, at)
        return _fx_quote(_ok(self._send("POST", "/v1/fx/quotes", json=body)))

    def verify(self) -> ChainStatus:
        """Walk the whole hash chain (scope audit:read)."""
        return _chain(self._get("/v1/audit/verify"))

    def verify_checkpoint(self, checkpoint: Mapping[str, Any], public_key: str | None = None) -> ChainStatus:
        """Walk the chain up to a kept checkpoint; :class:`ApiError` 422 when its signature does not verify."""
        body = {"checkpoint": dict(checkpoint), **({"public_key": public_key} if public_key else {})}
        return _chain(_ok(self._send("POST", "/v1/audit/verify", json=body)))

    def checkpoint(self, position: int | None = None) -> CheckpointDoc:
        """A checkpoint of the head (or of ``position``) signed by the ledger's key."""
        doc: CheckpointDoc = self._get("/v1/audit/checkpoint", position=position)
        return doc

    def audit_balances(
        self, as_of: int | dt.datetime | str, basis: Literal["effective", "recorded"] | None = None,
        account: str | None = None,
    ) -> BalancesAsOf:  # fmt: skip
        """Balances as of a log position, or a time: what had happened (``effective``) or was recorded by then."""
        when = _moment(as_of) if not isinstance(as_of, int) else str(as_of)
        return _balances_as_of(self._get("/v1/audit/balances", as_of=when, basis=basis, account=account))


class AsyncQuipuClient:
    """The asynchronous client (the same behaviour, awaited)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)
        self._policy = _Policy(client_id, client_secret, scope, retries, backoff)

    async def __aenter__(self) -> AsyncQuipuClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        renewed = False
        attempt = 0
        while True:
            if not self._policy.fresh():
                self._policy.keep(await self._http.post("/oauth/token", data=self._policy.token_form()))
            response: httpx.Response | None = None
            try:
                response = await self._http.request(method, url, headers=self._policy.headers(), **kw)
            except httpx.TransportError:
                if (delay := self._policy.wait(attempt, None)) is None:
                    raise
            else:
                if response.status_code == 401 and not renewed:
                    self._policy.token, renewed = None, True
                    continue
                if (delay := self._policy.wait(attempt, response)) is None:
                    return response
            await asyncio.sleep(delay)
            attempt += 1

    async def post(self, event: Mapping[str, Any]) -> Result:
        """Append one event; :class:`EventRefused` names the fields when the ledger refuses it."""
        ready = prepared(event)
        return _single(await self._send("POST", "/v1/events", json=ready))

    async def post_batch(self, events: Sequence[Mapping[str, Any]]) -> list[Result]:
        """Append any number of events, 1,000 per request; one result per event, in order."""
        out: list[Result] = []
        for chunk in _chunks(events):
            response = await self._send("POST", "/v1/events/batch", json=chunk)
            if response.status_code != 200:
                raise _error(response)
            out += [_result(r) for r in response.json()["results"]]
        return out

    async def _get(self, url: str, **params: object) -> Any:
        return _ok(await self._send("GET", url, params=_params(**params)))

    async def balances(self, account: str | None = None, as_of: str | None = None) -> list[dict[str, Any]]:
        """Balances (amounts as decimal strings), live or as of a position or time."""
        return list(await self._get("/v1/balances", account=account, as_of=as_of))

    async def events(self, after: int = 0, page: int = 1000) -> AsyncIterator[dict[str, Any]]:
        """The event feed from a position, page by page, until the head."""
        while True:
            batch = (await self._get("/v1/events", after=after, limit=page))["events"]
            if not batch:
                return
            for event in batch:
                yield event
            after = batch[-1]["position"]

    async def accounts(
        self,
        pattern: str | None = None,
        *,
        prefix: str | None = None,
        party: str | None = None,
        purpose: str | None = None,
        currency: str | None = None,
        page: int = 100,
    ) -> AsyncIterator[AccountInfo]:
        """The chart of accounts (every account posted to), filtered, in name order, page by page to the end."""
        after: str | None = None
        while True:
            doc = await self._get("/v1/accounts", pattern=pattern, prefix=prefix, party=party, purpose=purpose,
                                  currency=currency, after=after, limit=page)  # fmt: skip
            for a in doc["accounts"]:
                yield _account(a)
            if doc["next"] is None:
                return
            after = doc["cursor"]

    async def journal(self, after: int = 0, page: int = 100) -> AsyncIterator[JournalEntry]:
        """Journal entries after a log position, in log order, page by page to what is projected now."""
        while True:
            doc = await self._get("/v1/journal/entries", after=after, limit=page)
            for e in doc["entries"]:
                yield _entry(e)
            if doc["next"] is None:
                return
            after = doc["cursor"]

    async def journal_entry(self, position: int) -> JournalEntry:
        """The entry booked by the event at ``position`` (:class:`ApiError` 404 when it booked none)."""
        return _entry(await self._get(f"/v1/journal/entries/{int(position)}"))

    async def fx_rate(self, base: str, quote: str, at: dt.datetime | str | None = None) -> FxRate:
        """The latest recorded rate for the pair at or before ``at`` (default now), and whether it is stale."""
        return _fx_rate(await self._get("/v1/fx/rates", base=base, quote=quote, at=_moment(at)))

    async def fx_quote(
        self,
        source: str,
        target: str,
        amount: Decimal | str,
        *,
        markup: Decimal | str | None = None,
        at: dt.datetime | str | None = None,
    ) -> FxQuote:
        """Price converting ``amount`` of ``source`` into ``target``; nothing is booked or locked."""
        body = _quote_body(source, target, amount, markup, at)
        return _fx_quote(_ok(await self._send("POST", "/v1/fx/quotes", json=body)))

    async def verify(self) -> ChainStatus:
        """Walk the whole hash chain (scope audit:read)."""
        return _chain(await self._get("/v1/audit/verify"))

    async def verify_checkpoint(self, checkpoint: Mapping[str, Any], public_key: str | None = None) -> ChainStatus:
        """Walk the chain up to a kept checkpoint; :class:`ApiError` 422 when its signature does not verify."""
        body = {"checkpoint": dict(checkpoint), **({"public_key": public_key} if public_key else {})}
        return _chain(_ok(await self._send("POST", "/v1/audit/verify", json=body)))

    async def checkpoint(self, position: int | None = None) -> CheckpointDoc:
        """A checkpoint of the head (or of ``position``) signed by the ledger's key."""
        doc: CheckpointDoc = await self._get("/v1/audit/checkpoint", position=position)
        return doc

    async def audit_balances(
        self, as_of: int | dt.datetime | str, basis: Literal["effective", "recorded"] | None = None,
        account: str | None = None,
    ) -> BalancesAsOf:  # fmt: skip
        """Balances as of a log position, or a time: what had happened (``effective``) or was recorded by then."""
        when = _moment(as_of) if not isinstance(as_of, int) else str(as_of)
        return _balances_as_of(await self._get("/v1/audit/balances", as_of=when, basis=basis, account=account))
