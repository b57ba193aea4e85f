"""The ledger's read routes over HTTP (accounts, journal entries, FX rates and quotes), in process through the
ASGI app with its real lifespan, auth and middleware, on SQLite and PostgreSQL: pages that cover every entry
exactly once even while the log grows, filters that agree with a plain scan of the accounts, amounts as
decimal strings, problems naming each bad parameter, and scopes."""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.bootstrap import open_ledger
from adapters.http.app import create_app
from adapters.http.auth import add_client
from adapters.http.fx_routes import QuoteRow, RateRow
from adapters.http.ledger_routes import AccountsPage, EntriesPage, EntryRow
from domain.envelope import AMOUNT_PATTERN
from tests.factories import authorized, captured, ev, fee, refunded

SECRET = "ledger-routes-test-secret-0123456789-abcdefghij"
PROBLEM = "application/problem+json"
Scenario = Callable[[httpx.AsyncClient, dict[str, dict[str, str]]], Awaitable[None]]


@asynccontextmanager
async def served(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API over ``url``, in this process: lifespan, middleware, auth and all."""
    app = create_app(url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://quipu.test") as api:
            yield api


def run(url: str, scopes: dict[str, list[str]], scenario: Scenario) -> None:
    """Register a client per entry of ``scopes``, serve the ledger and run ``scenario`` with each one's headers."""
    with open_ledger(url) as ledger:
        secrets = {name: add_client(ledger, name, granted) for name, granted in scopes.items()}

    async def go() -> None:
        async with served(url) as api:
            headers = {}
            for name, secret in secrets.items():
                form = {"grant_type": "client_credentials", "client_id": name, "client_secret": secret}
                answer = await api.post("/oauth/token", data=form)
                assert answer.status_code == 200, answer.text
                headers[name] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
            await scenario(api, headers)

    asyncio.run(go())


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUIPU_API_SECRET", SECRET)


def sales(sellers: int, payments: int, tag: str = "") -> list[dict[str, Any]]:
    """Authorisations (no entry), captures, fees and a refund per seller, in three currencies."""
    out: list[dict[str, Any]] = []
    for s in range(sellers):
        ccy, value, cut = (("BRL", "100.00", "3.50"), ("MXN", "250.00", "7.25"), ("CLP", "9000", "270"))[s % 3]
        seller = f"S{s}"
        for p in range(payments):
            pid = f"p{tag}{s}-{p}"
            out += [authorized(pid, value, ccy, seller=seller), captured(pid, value, ccy, seller=seller),
                    fee(f"f{pid}", cut, ccy, seller=seller)]  # fmt: skip
        out.append(refunded(f"p{tag}{s}-0", f"r{tag}{s}", cut, ccy, seller=seller))
    return out


def post(url: str, events: list[dict[str, Any]]) -> None:
    with open_ledger(url) as ledger:
        assert {r.outcome.value for r in ledger.service.post(events)} == {"appended"}


def booked_positions(url: str) -> list[int]:
    """The positions of the events that book an entry, read from the log (authorisations book none)."""
    with open_ledger(url) as ledger:
        records = ledger.store.read(0, 100_000)
    return [r.position for r in records if r.topic != "payment.authorized"]


def is_problem(response: httpx.Response, status: int, field: str) -> bool:
    body = response.json()
    return (
        response.status_code == status
        and response.headers["content-type"].startswith(PROBLEM)
        and body["status"] == status
        and any(e.startswith(f"{field}:") for e in body.get("errors", []))
    )


def test_journal_pages_cover_every_entry_once_while_the_log_grows(ledger_url: str) -> None:
    post(ledger_url, sales(6, 5))

    async def scenario(api: httpx.AsyncClient, h: dict[str, dict[str, str]]) -> None:
        seen: list[int] = []
        url: str | None = "/v1/journal/entries?limit=7"
        pages = 0
        while url is not None:
            page = await api.get(url, headers=h["reader"])
            assert page.status_code == 200 and page.headers["content-type"] == "application/json", page.text
            body = page.json()
            EntriesPage.model_validate(body)
            assert len(body["entries"]) <= 7
            if body["next"] is None:
                assert "link" not in page.headers
            else:
                assert page.headers["link"] == f'<{body["next"]}>; rel="next"' and len(body["entries"]) == 7
            seen += [e["position"] for e in body["entries"]]
            for entry in body["entries"]:
                totals: dict[str, Decimal] = defaultdict(Decimal)
                for p in entry["postings"]:
                    assert isinstance(p["amount"], str) and re.fullmatch(AMOUNT_PATTERN, p["amount"])
                    assert Decimal(p["amount"]) > 0
                    totals[p["currency"]] += Decimal(p["amount"]) * (1 if p["side"] == "debit" else -1)
                assert set(totals.values()) == {Decimal(0)}, entry  # each entry balances per currency
            pages += 1
            if pages == 2:  # the log grows mid-way: the new entries come after, each once
                await asyncio.to_thread(post, ledger_url, sales(2, 2, tag="late"))
            url = body["next"]
        assert seen == booked_positions(ledger_url)  # every entry, once, in log order
        assert pages == -(-len(seen) // 7)
        one = await api.get(f"/v1/journal/entries/{seen[3]}", headers=h["reader"])
        assert one.status_code == 200 and EntryRow.model_validate(one.json()).position == seen[3]
        tail = await api.get(f"/v1/journal/entries?after={seen[-1]}", headers=h["reader"])
        assert tail.json() == {"entries": [], "cursor": seen[-1], "next": None}
        assert is_problem(await api.get("/v1/journal/entries/1", headers=h["reader"]), 404, "position")  # an auth.
        assert is_problem(await api.get("/v1/journal/entries/100000", headers=h["reader"]), 404, "position")
        clp = next(e for e in (await api.get("/v1/journal/entries?limit=1000", headers=h["reader"])).json()["entries"]
                   if e["postings"][0]["currency"] == "CLP")  # fmt: skip
        assert clp["postings"][0]["amount"] in ("9000", "270")  # no decimals for a currency without them

    run(ledger_url, {"reader": ["ledger:read"]}, scenario)


def test_accounts_filter_and_page_like_a_plain_scan(ledger_url: str) -> None:
    post(ledger_url, sales(12, 1))
    with open_ledger(ledger_url) as ledger:
        ledger.runner.run()
        every = sorted(a for (a,) in ledger.views.query("SELECT account FROM account_balances"))
    assert len(every) == 12 + 3 + 3  # each seller pending; receivable and fee revenue per currency

    async def pages(api: httpx.AsyncClient, h: dict[str, str], **query: str) -> list[str]:
        names: list[str] = []
        url: str | None = "/v1/accounts?" + "&".join(f"{k}={v}" for k, v in {**query, "limit": "3"}.items())
        while url is not None:
            page = await api.get(url, headers=h)
            assert page.status_code == 200, page.text
            body = AccountsPage.model_validate(page.json())
            assert len(body.accounts) <= 3
            for row in body.accounts:
                assert row.account == f"{row.party}:{row.party_id}:{row.purpose}:{row.currency}" and row.postings > 0
            names += [row.account for row in body.accounts]
            url = body.next
        return names

    async def scenario(api: httpx.AsyncClient, h: dict[str, dict[str, str]]) -> None:
        reader = h["reader"]
        assert await pages(api, reader) == every  # byte order on both databases
        cases: list[tuple[dict[str, str], Callable[[str], bool]]] = [
            ({"pattern": "seller:*:pending:*"}, lambda a: fnmatch.fnmatchcase(a, "seller:*:pending:*")),
            ({"pattern": "*:[!S]*:BRL"}, lambda a: fnmatch.fnmatchcase(a, "*:[!S]*:BRL")),
            ({"prefix": "seller:S1"}, lambda a: a.startswith("seller:S1")),  # S1, S10, S11
            ({"party": "psp"}, lambda a: a.startswith("psp:")),
            ({"purpose": "fee_revenue"}, lambda a: a.split(":")[2].split(".")[0] == "fee_revenue"),
            ({"currency": "MXN", "party": "seller"}, lambda a: a.endswith(":MXN") and a.startswith("seller:")),
            ({"prefix": "seller:", "pattern": "*:CLP"}, lambda a: a.startswith("seller:") and a.endswith(":CLP")),
        ]
        for query, keep in cases:
            expected = [a for a in every if keep(a)]
            assert expected, query
            assert await pages(api, reader, **query) == expected, query
        # A cursor names where the previous page ended, whatever the filter.
        resumed = await api.get("/v1/accounts", params={"after": every[4], "limit": 1000}, headers=reader)
        assert [r["account"] for r in resumed.json()["accounts"]] == every[5:]
        assert (await api.get("/v1/accounts", params={"prefix": "bank:"}, headers=reader)).json() == {
            "accounts": [], "cursor": None, "next": None}  # fmt: skip

    run(ledger_url, {"reader": ["ledger:read"]}, scenario)


BAD = [
    ("/v1/journal/entries?after=-1", "after"),
    ("/v1/journal/entries?after=abc", "after"),
    ("/v1/journal/entries?after=99999999999999999999", "after"),
    ("/v1/journal/entries?after=1.5", "after"),
    ("/v1/journal/entries?limit=0", "limit"),
    ("/v1/journal/entries?limit=1001", "limit"),
    ("/v1/journal/entries?limit=ten", "limit"),
    ("/v1/journal/entries?limit=5&limit=6", "limit"),
    ("/v1/journal/entries/0", "position"),
    ("/v1/journal/entries/x1", "position"),
    ("/v1/accounts?pattern=seller:[S", "pattern"),
    ("/v1/accounts?pattern=seller:*;drop", "pattern"),
    # No text in PostgreSQL can hold a NUL: refused before the route, even where the route takes any text.
    ("/v1/balances?account=a%00b", "account"),
    ("/v1/balances?as_of=%00", "as_of"),
    ("/v1/journal/entries/1%00", "path"),
    ("/v1/accounts?pattern=" + "*" * 201, "pattern"),
    ("/v1/accounts?prefix=seller%20S1", "prefix"),
    ("/v1/accounts?after=nope", "after"),
    ("/v1/accounts?after=seller:S1:wages:BRL", "after"),
    ("/v1/accounts?party=alien", "party"),
    ("/v1/accounts?purpose=wages", "purpose"),
    ("/v1/accounts?currency=brl", "currency"),
    ("/v1/accounts?limit=-3", "limit"),
    ("/v1/fx/rates?quote=USD", "base"),
    ("/v1/fx/rates?base=BRL&quote=usd", "quote"),
    ("/v1/fx/rates?base=BRL&quote=QQQ", "quote"),
    ("/v1/fx/rates?base=BRL&quote=BRL", "quote"),
    ("/v1/fx/rates?base=BRL&quote=USD&at=yesterday", "at"),
    ("/v1/fx/rates?base=BRL&quote=USD&at=2026-10-01T12:00:00", "at"),
]


async def bad_parameters_are_problems_naming_them(api: httpx.AsyncClient, h: dict[str, dict[str, str]]) -> None:
    for url, field in BAD:
        answer = await api.get(url, headers=h["reader"])
        assert is_problem(answer, 422, field), (url, answer.status_code, answer.text)
    both = (await api.get("/v1/journal/entries?after=x&limit=0", headers=h["reader"])).json()["errors"]
    assert [e.split(":")[0] for e in both] == ["after", "limit"]  # every bad parameter, not just the first
    bodies: list[tuple[Any, str, int]] = [
        ({"from": "BRL", "to": "USD"}, "amount", 422),
        ({"from": "BRL", "to": "USD", "amount": 10.5}, "amount", 422),  # a JSON number is not an amount
        ({"from": "BRL", "to": "USD", "amount": "10.005"}, "amount", 422),
        ({"from": "BRL", "to": "USD", "amount": "0"}, "amount", 422),
        ({"from": "BRL", "to": "USD", "amount": "10.00", "markup": "1.5"}, "markup", 422),
        ({"from": "BRL", "to": "BRL", "amount": "10.00"}, "to", 422),
        ({"from": "BRL", "to": "USD", "amount": "10.00", "at": "2026-10-01T12:00:00"}, "at", 422),
        ({"from": "BRL", "to": "USD", "amount": "10.00", "rate": "0.2"}, "rate", 422),  # no rate of one's own
    ]
    for body, field, status in bodies:
        answer = await api.post("/v1/fx/quotes", json=body, headers=h["reader"])
        assert is_problem(answer, status, field), (body, answer.text)
    not_json = await api.post("/v1/fx/quotes", content=b"{", headers=h["reader"])
    assert is_problem(not_json, 400, "body")


ROUTES = [("GET", "/v1/accounts"), ("GET", "/v1/journal/entries"), ("GET", "/v1/journal/entries/2"),
          ("GET", "/v1/fx/rates?base=BRL&quote=USD"), ("POST", "/v1/fx/quotes")]  # fmt: skip


def test_every_read_route_needs_ledger_read_and_names_bad_parameters(ledger_url: str) -> None:
    post(ledger_url, [*sales(1, 1), _rate("0.1834", "2026-01-01T00:00:00Z")])

    async def scenario(api: httpx.AsyncClient, h: dict[str, dict[str, str]]) -> None:
        body = {"from": "BRL", "to": "USD", "amount": "100.00", "at": "2026-01-01T06:00:00Z"}
        for method, url in ROUTES:
            kwargs: dict[str, Any] = {"json": body} if method == "POST" else {}
            missing = await api.request(method, url, **kwargs)
            assert missing.status_code == 401 and missing.headers["content-type"].startswith(PROBLEM), url
            assert missing.headers["WWW-Authenticate"].startswith('Bearer realm="quipu"')
            for other in ("writer", "auditor"):
                wrong = await api.request(method, url, headers=h[other], **kwargs)
                assert wrong.status_code == 403 and 'scope="ledger:read"' in wrong.headers["WWW-Authenticate"], url
            right = await api.request(method, url, headers=h["reader"], **kwargs)
            assert right.status_code == 200, (url, right.text)
            admin = await api.request(method, url, headers=h["admin"], **kwargs)
            assert admin.status_code == 200, url
        # Scope is checked before the parameters: a stranger learns nothing of what a route accepts.
        assert (await api.get("/v1/journal/entries?limit=0")).status_code == 401
        assert (await api.get("/v1/accounts?party=alien", headers=h["writer"])).status_code == 403
        await bad_parameters_are_problems_naming_them(api, h)

    scopes = {"reader": ["ledger:read"], "writer": ["events:write"], "auditor": ["audit:read"], "admin": ["admin"]}
    run(ledger_url, scopes, scenario)


def _rate(value: str, as_of: str, source: str = "BCB PTAX", base: str = "BRL", quote: str = "USD") -> dict[str, Any]:
    return ev("fx.rate_published", {"base": base, "quote": quote, "rate": value, "source": source, "as_of": as_of},
              when=as_of)  # fmt: skip


def test_fx_rate_in_force_and_a_quote_priced_on_it(ledger_url: str) -> None:
    post(ledger_url, [_rate("0.1834", "2026-10-01T13:00:00-03:00"), _rate("0.1851", "2026-10-02T13:00:00-03:00"),
                      _rate("0.1850", "2026-10-02T13:00:00-03:00", source="ECB"),
                      _rate("950.5", "2026-10-02T10:00:00-03:00", base="USD", quote="CLP")])  # fmt: skip

    async def scenario(api: httpx.AsyncClient, h: dict[str, dict[str, str]]) -> None:
        reader = h["reader"]

        async def rate(**query: str) -> httpx.Response:
            return await api.get("/v1/fx/rates", params=query, headers=reader)

        first = await rate(base="BRL", quote="USD", at="2026-10-01T18:00:00Z")
        assert first.status_code == 200
        assert RateRow.model_validate(first.json()).model_dump() == {
            "base": "BRL", "quote": "USD", "rate": "0.1834", "source": "BCB PTAX",
            "as_of": "2026-10-01T16:00:00+00:00", "at": "2026-10-01T18:00:00+00:00", "age_minutes": 120,
            "staleness_limit_minutes": 1440, "stale": False}  # fmt: skip
        # Two sources at the same moment: the same pick as the CLI's quotes (by source name).
        second = (await rate(base="BRL", quote="USD", at="2026-10-02T16:00:00Z")).json()
        assert (second["rate"], second["source"]) == ("0.1851", "BCB PTAX")
        stale = (await rate(base="BRL", quote="USD", at="2026-10-05T16:00:00Z")).json()
        assert stale["stale"] is True and stale["age_minutes"] == 3 * 1440 and stale["rate"] == "0.1851"
        assert (await rate(base="USD", quote="CLP", at="2026-10-02T13:00:00Z")).json()["rate"] == "950.5"
        before = await rate(base="BRL", quote="USD", at="2026-09-30T00:00:00Z")
        assert is_problem(before, 404, "quote") and "no BRL/USD rate recorded" in before.json()["detail"]
        assert is_problem(await rate(base="USD", quote="BRL", at="2026-10-03T00:00:00Z"), 404, "quote")

        async def quote(**body: str) -> httpx.Response:
            return await api.post("/v1/fx/quotes", json=body, headers=reader)

        priced = await quote(**{"from": "BRL", "to": "USD", "amount": "1000.00", "at": "2026-10-01T18:00:00Z"})
        assert priced.status_code == 200, priced.text
        assert QuoteRow.model_validate(priced.json()).model_dump(by_alias=True) == {
            "from": "BRL", "to": "USD", "amount": "1000.00", "reference_rate": "0.1834", "rate_source": "BCB PTAX",
            "rate_as_of": "2026-10-01T16:00:00+00:00", "markup": "0.02", "final_rate": "0.179732",
            "target_amount": "179.73", "revenue": "3.67", "markup_revenue": "3.67", "rounding": "0.00",
            "currency": "USD", "quoted_at": "2026-10-01T18:00:00+00:00", "expires_at": "2026-10-01T18:05:00+00:00",
            "booked": False}  # fmt: skip
        no_markup = (await quote(**{"from": "USD", "to": "CLP", "amount": "10.00", "markup": "0",
                                    "at": "2026-10-02T14:00:00Z"})).json()  # fmt: skip
        assert (no_markup["target_amount"], no_markup["revenue"]) == ("9505", "0")
        refused = await quote(**{"from": "BRL", "to": "USD", "amount": "1000.00", "at": "2026-10-05T16:00:00Z"})
        assert is_problem(refused, 422, "at") and "beyond the 1440-minute limit" in refused.json()["detail"]
        # Nothing was booked: the log holds the four rates only.
        assert (await api.get("/v1/events", headers=reader)).json()["events"][-1]["position"] == 4

    run(ledger_url, {"reader": ["ledger:read"]}, scenario)
