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

    with QuipuClient("http://127.0.0.1:8000", "checkout", secret) as quipu:
        quipu.post(event)                 # Result(outcome="appended", position=…)
        quipu.post_batch(events)          # [Result, …]
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

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
