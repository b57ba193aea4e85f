"""The Python client against a real server process and a real database: single and batch posts,
retries that reuse the event id (recorded once), problem details on errors, floats refused; the typed
reads (accounts, journal, FX, audit), sync over HTTP and async over the ASGI app."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from adapters.audit import load_or_create_key
from adapters.bootstrap import open_ledger
from adapters.client import (
    ApiError,
    AsyncQuipuClient,
    Balance,
    ChainStatus,
    EventRefused,
    NotJson,
    Posting,
    QuipuClient,
)
from adapters.http.app import create_app
from adapters.http.auth import add_client
from tests.factories import authorized, captured, ev, fee
from tests.test_http import _quipu, _secret_of, serve  # noqa: F401  (the fixture)


class LoseFirstResponse(httpx.BaseTransport):
    """Forwards every request to the server, but answers the first event post with a 503 as if the
    response had been lost after the ledger committed: the client must retry the same bytes."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost = 0
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == "/v1/events":
            self.bodies.append(request.read())
            if not self.lost:
                self.lost += 1
                response.read()
                return httpx.Response(503, json={"title": "Service Unavailable", "detail": "lost"})
        return response


def test_the_client_posts_retries_with_the_same_id_and_reports_problems(
    serve: Callable[..., httpx.Client],  # noqa: F811
    ledger_url: str,
) -> None:
    secret = _secret_of(_quipu("clients", "add", "checkout", "--scope", "events:write", "--scope", "ledger:read",
                               "--database", ledger_url))  # fmt: skip
    api = serve()
    base = str(api.base_url)
    lossy = LoseFirstResponse()
    with QuipuClient(base, "checkout", secret, transport=lossy, backoff=0.01) as quipu:
        auth = authorized("p1", "100.00")
        del auth["event_id"]  # the client assigns one, before the first attempt
        first = quipu.post(auth)
        assert first.outcome == "duplicate" and first.position == 1  # the lost attempt had committed it
        assert len(set(lossy.bodies)) == 1 and len(lossy.bodies) == 2  # the retry sent the very same bytes
        assert quipu.post(captured("p1", "60.00")).outcome == "appended"
        with pytest.raises(EventRefused) as refused:
            quipu.post(captured("p1", "50.00"))  # more than what is left of the authorisation
        assert refused.value.status == 422 and any("amount" in e for e in refused.value.errors)
        with pytest.raises(NotJson, match=r"event.payload.amount.amount: a float"):
            quipu.post({**captured("p1", "1.00"), "payload": {"amount": {"amount": 1.5, "currency": "BRL"}}})
        batch = [authorized(f"b{i}", "10.00") for i in range(2500)]
        results = quipu.post_batch(batch)
        assert len(results) == 2500 and {r.outcome for r in results} == {"appended"}
        assert {r.outcome for r in quipu.post_batch(batch)} == {"duplicate"}
        assert sum(1 for _ in quipu.events(after=0, page=700)) == 2502
    with QuipuClient(base, "checkout", "wrong-secret", retries=0) as stranger, pytest.raises(ApiError) as denied:
        stranger.post(authorized("p9", "1.00"))
    assert denied.value.status == 401 and denied.value.title == "invalid_client"


def test_the_async_client_posts_and_batches(
    serve: Callable[..., httpx.Client],  # noqa: F811
    ledger_url: str,
) -> None:
    secret = _secret_of(_quipu("clients", "add", "svc", "--scope", "events:write", "--database", ledger_url))
    api = serve()

    async def run() -> None:
        async with AsyncQuipuClient(str(api.base_url), "svc", secret) as quipu:
            assert (await quipu.post(authorized("a1", "5.00"))).outcome == "appended"
            results = await quipu.post_batch([authorized(f"c{i}", "1.00") for i in range(1200)])
            assert len(results) == 1200 and results[-1].position == 1201
            with pytest.raises(EventRefused):
                await quipu.post(captured("zz", "1.00"))  # never authorised

    asyncio.run(run())


class LoseFirstRead(httpx.BaseTransport):
    """Answers the first journal page with a 503, as a proxy in trouble would: the client asks again."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.pages: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/journal/entries":
            self.pages.append(request.url.query.decode())
            if len(self.pages) == 1:
                return httpx.Response(503, headers={"Retry-After": "0"}, json={"title": "Service Unavailable"})
        return self.inner.handle_request(request)


def _reads_seed(url: str) -> None:
    """Two sales in BRL and one in CLP (one authorisation books nothing), and a BRL/USD fix."""
    events = [authorized("p1", "100.00"), captured("p1", "100.00"), fee("f1", "3.50"),
              authorized("p2", "9000", "CLP", seller="S2"), captured("p2", "9000", "CLP", seller="S2"),
              ev("fx.rate_published", {"base": "BRL", "quote": "USD", "rate": "0.1834", "source": "BCB PTAX",
                                       "as_of": "2026-10-01T13:00:00-03:00"},
                 when="2026-10-01T13:00:00-03:00")]  # fmt: skip
    with open_ledger(url) as ledger:
        assert {r.outcome.value for r in ledger.service.post(events)} == {"appended"}


def test_the_client_reads_typed_accounts_journal_fx_and_audit(
    serve: Callable[..., httpx.Client],  # noqa: F811
    ledger_url: str,
    tmp_path: Path,
) -> None:
    _reads_seed(ledger_url)
    key = tmp_path / "signing-key.pem"
    load_or_create_key(key)
    with open_ledger(ledger_url) as ledger:
        secret = add_client(ledger, "finance", ["ledger:read", "audit:read"])
    api = serve(QUIPU_SIGNING_KEY=str(key))
    lossy = LoseFirstRead()
    with QuipuClient(str(api.base_url), "finance", secret, transport=lossy, backoff=0.01) as quipu:
        entries = list(quipu.journal(page=2))
        assert [e.position for e in entries] == [2, 3, 5]  # authorisations book nothing
        assert lossy.pages[0] == lossy.pages[1] == "after=0&limit=2"  # the lost page was asked for again
        capture = entries[0]
        assert capture.postings == (
            Posting(1, "psp:cielo:receivable:BRL", "debit", Decimal("100.00"), "BRL"),
            Posting(2, "seller:S1:pending:BRL", "credit", Decimal("100.00"), "BRL"),
        )
        assert capture.occurred_at == dt.datetime(2026, 10, 1, 13, tzinfo=dt.UTC) and capture.recorded_at.tzinfo
        assert quipu.journal_entry(5).postings[0].amount == Decimal("9000")
        assert list(quipu.journal(after=3)) == entries[2:]
        with pytest.raises(ApiError) as none:
            quipu.journal_entry(1)
        assert none.value.status == 404 and none.value.errors[0].startswith("position:")
        with pytest.raises(ApiError) as bad:
            quipu.journal_entry(0)
        assert bad.value.status == 422 and bad.value.title == "Invalid query"
        names = [a.account for a in quipu.accounts(page=2)]
        assert names == sorted(names) and len(names) == 5
        assert [a.account for a in quipu.accounts("seller:*", page=1)] == ["seller:S1:pending:BRL",
                                                                          "seller:S2:pending:CLP"]  # fmt: skip
        [fees] = quipu.accounts(purpose="fee_revenue")
        parts = (fees.party, fees.party_id, fees.purpose, fees.normal_side)
        assert parts == ("platform", "main", "fee_revenue.commission", "credit")
        at = dt.datetime(2026, 10, 1, 18, tzinfo=dt.UTC)
        rate = quipu.fx_rate("BRL", "USD", at)
        assert (rate.rate, rate.source, rate.age_minutes, rate.stale) == (Decimal("0.1834"), "BCB PTAX", 120, False)
        priced = quipu.fx_quote("BRL", "USD", Decimal("1000.00"), at=at)
        assert (priced.final_rate, priced.target_amount, priced.revenue) == (Decimal("0.179732"), Decimal("179.73"),
                                                                            Decimal("3.67"))  # fmt: skip
        with pytest.raises(NotJson):
            quipu.fx_quote("BRL", "USD", 1000.0, at=at)  # type: ignore[arg-type]
        with pytest.raises(ApiError) as stale:
            quipu.fx_quote("BRL", "USD", "1000.00", at=at + dt.timedelta(days=3))
        assert stale.value.status == 422 and stale.value.errors[0].startswith("at:")
        chain = quipu.verify()
        assert (chain.ok, chain.events, chain.broken) == (True, 6, None)
        kept = quipu.checkpoint()
        assert kept["position"] == 6
        assert quipu.verify_checkpoint(kept, public_key=kept["public_key"]) == ChainStatus(
            True, 6, 6, kept["head_sha256"], None, 6)  # fmt: skip
        with pytest.raises(ApiError) as forged:
            quipu.verify_checkpoint({**kept, "position": 5})
        assert forged.value.status == 422 and forged.value.errors[0].startswith("checkpoint.signature:")
        then = quipu.audit_balances(3)
        assert (then.basis, then.position) == ("position", 3)
        assert {b.account: b.balance for b in then.balances}["seller:S1:pending:BRL"] == Decimal("96.50")
        assert quipu.audit_balances(at, account="seller:*").balances == (
            Balance("seller:S1:pending:BRL", "BRL", Decimal("3.50"), Decimal("100.00"), Decimal("96.50"), "credit"),
            Balance("seller:S2:pending:CLP", "CLP", Decimal("0"), Decimal("9000"), Decimal("9000"), "credit"),
        )


def test_the_async_client_reads_the_same_in_process(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The async client over the ASGI app itself (no server process): the same typed reads."""
    monkeypatch.setenv("QUIPU_API_SECRET", "async-client-reads-secret-0123456789-abcdefgh")
    _reads_seed(ledger_url)
    with open_ledger(ledger_url) as ledger:
        secret = add_client(ledger, "finance", ["ledger:read", "audit:read"])
    app = create_app(ledger_url)

    async def go() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with AsyncQuipuClient("http://quipu.test", "finance", secret, transport=transport) as quipu:
                entries = [e async for e in quipu.journal(page=1)]
                assert [e.position for e in entries] == [2, 3, 5]
                assert await quipu.journal_entry(3) == entries[1]
                assert [a.account async for a in quipu.accounts(currency="CLP")] == [
                    "psp:cielo:receivable:CLP", "seller:S2:pending:CLP"]  # fmt: skip
                assert len([e async for e in quipu.events(after=2, page=2)]) == 4
                live = await quipu.balances(account="seller:S1:*")
                assert live == [{"account": "seller:S1:pending:BRL", "currency": "BRL", "debits": "3.50",
                                 "credits": "100.00", "balance": "96.50", "normal_side": "credit"}]  # fmt: skip
                at = "2026-10-01T18:00:00Z"
                assert (await quipu.fx_rate("BRL", "USD", at)).rate == Decimal("0.1834")
                quote = await quipu.fx_quote("BRL", "USD", "10.00", markup="0", at=at)
                assert (quote.target_amount, quote.revenue) == (Decimal("1.83"), Decimal("0.00"))
                assert (await quipu.verify()).ok
                recorded = await quipu.audit_balances(dt.datetime.now(dt.UTC), basis="recorded")
                assert recorded.position == 6 and recorded.basis == "recorded"
                with pytest.raises(ApiError) as refused:
                    await quipu.audit_balances("soon")
                assert refused.value.status == 422 and refused.value.errors[0].startswith("as_of:")

    asyncio.run(go())
